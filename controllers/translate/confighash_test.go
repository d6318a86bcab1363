package translate

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// configHashesOf returns the config hash of every Gateway of out by
// "namespace/name".
func configHashesOf(out *Output) map[string]string {
	m := map[string]string{}
	for _, gs := range out.Gateways {
		m[gs.NamespacedName.String()] = gs.ConfigHash
	}
	return m
}

// TestConfigHash checks what a Gateway's config hash depends on: not on the node
// addresses, the order of the input or endpoints, but on the routes it serves, and
// only for the Gateways serving them.
func TestConfigHash(t *testing.T) {
	in := loadInput(t, "testdata/multiple-gateways.in.yaml")
	in.Gateways = append(in.Gateways, gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "broken", Generation: 1},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: "flax", Listeners: []gatewayv1.Listener{
			{Name: "sctp", Port: 53, Protocol: "SCTP"},
		}},
	})
	slice := func(addr string) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "apps", Name: "app-1", Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(int32(80)), Protocol: ptr(corev1.ProtocolTCP)}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		}
	}
	in.EndpointSlices = []discoveryv1.EndpointSlice{slice("10.1.0.1")}
	base := Translate(in)
	hashes := configHashesOf(base)
	public, internal, nodes := hashes["infra/public"], hashes["infra/internal"], hashes["infra/nodes"]
	if len(public) != configHashLen || len(internal) != configHashLen || len(nodes) != configHashLen {
		t.Fatalf("config hashes %v, want %d hex digits for every served Gateway", hashes, configHashLen)
	}
	if public == internal || public == nodes || internal == nodes {
		t.Errorf("Gateways served by different listeners share a config hash: %v", hashes)
	}
	if h := hashes["infra/broken"]; h != "" {
		t.Errorf("a Gateway with nothing in the snapshot has config hash %q, want none", h)
	}

	same := func(what string, out *Output) {
		t.Helper()
		for gw, want := range hashes {
			if got := configHashesOf(out)[gw]; got != want {
				t.Errorf("%s: config hash of %s changed from %q to %q", what, gw, want, got)
			}
		}
	}
	other := *in
	other.NodeAddresses = []string{"198.51.100.7"}
	same("other node addresses", Translate(&other))
	same("input in reverse order", Translate(reverseInput(in)))

	moved := *in
	moved.EndpointSlices = []discoveryv1.EndpointSlice{slice("10.1.0.2")}
	out := Translate(&moved)
	if out.Snapshot.GetHash() == base.Snapshot.GetHash() {
		t.Fatal("moving the endpoint did not change the snapshot")
	}
	same("endpoints changed", out)

	changed := *in
	changed.HTTPRoutes = []gatewayv1.HTTPRoute{*in.HTTPRoutes[0].DeepCopy()}
	changed.HTTPRoutes[0].Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
		Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/v2"),
	}}}
	after := configHashesOf(Translate(&changed))
	if after["infra/public"] == public || after["infra/internal"] == internal {
		t.Errorf("a route change left the config hashes of the Gateways serving it unchanged: %v → %v", hashes, after)
	}
	if after["infra/nodes"] != nodes {
		t.Errorf("a route change changed the config hash of a Gateway not serving it: %q → %q", nodes, after["infra/nodes"])
	}
}

// TestGroupRefFields checks that appendGroupRefs knows every place of a Listener
// that names a backend group: every field called backend_group reachable from
// dataplanev1.Listener must be one it reads.
func TestGroupRefFields(t *testing.T) {
	known := map[protoreflect.FullName]bool{
		"flax.dataplane.v1.WeightedBackend.backend_group": true,
		"flax.dataplane.v1.RequestMirror.backend_group":   true,
		"flax.dataplane.v1.ExtAuth.backend_group":         true,
		"flax.dataplane.v1.TCPBackend.backend_group":      true,
	}
	found := map[protoreflect.FullName]bool{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Name() == "backend_group" {
				found[fd.FullName()] = true
			}
			if fd.Message() != nil {
				walk(fd.Message())
			}
		}
	}
	walk((&dataplanev1.Listener{}).ProtoReflect().Descriptor())
	for name := range found {
		if !known[name] {
			t.Errorf("%s names a backend group, but appendGroupRefs does not read it", name)
		}
	}
	for name := range known {
		if !found[name] {
			t.Errorf("%s is not in the snapshot's Listener any more; update appendGroupRefs", name)
		}
	}

	// And it reads them all.
	l := &dataplanev1.Listener{
		VirtualHosts: []*dataplanev1.VirtualHost{{Routes: []*dataplanev1.Route{{
			Filters: []*dataplanev1.RouteFilter{{Filter: &dataplanev1.RouteFilter_RequestMirror{RequestMirror: &dataplanev1.RequestMirror{BackendGroup: "mirror"}}}},
			Backends: []*dataplanev1.WeightedBackend{
				{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "backend"}, Filters: []*dataplanev1.RouteFilter{
					{Filter: &dataplanev1.RouteFilter_RequestMirror{RequestMirror: &dataplanev1.RequestMirror{BackendGroup: "backend-mirror"}}},
				}},
				{Target: &dataplanev1.WeightedBackend_DirectResponse{DirectResponse: &dataplanev1.DirectResponse{Status: 500}}},
			},
		}}}},
		TcpRoute: &dataplanev1.TCPRoute{Backends: []*dataplanev1.TCPBackend{{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "tcp"}}}},
	}
	got := appendGroupRefs(nil, l)
	slices.Sort(got)
	if want := []string{"backend", "backend-mirror", "mirror", "tcp"}; !slices.Equal(got, want) {
		t.Errorf("appendGroupRefs = %v, want %v", got, want)
	}
}
