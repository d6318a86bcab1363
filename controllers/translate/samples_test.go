package translate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/config/samples/demo"
)

// samplesGolden is the translation of the samples (TestPolicySamples), rewritten
// with -update. flaxctl's tests check that `flaxctl translate -f config/samples -f
// config/samples/policies -f config/samples/grpc -n samples --node-address
// 192.0.2.10` prints the same.
const samplesGolden = "testdata/config-samples.out.yaml"

// loadSamples adds the objects of the files matching patterns (kustomization
// files aside) to in, in namespace ns: the samples carry no namespace, they
// are applied into one.
func loadSamples(t *testing.T, in *Input, ns string, patterns ...string) {
	t.Helper()
	for _, pattern := range patterns {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			addDocuments(t, in, f, string(data), "Deployment")
		}
	}
	for i := range in.Gateways {
		in.Gateways[i].Namespace = ns
	}
	for i := range in.HTTPRoutes {
		in.HTTPRoutes[i].Namespace = ns
	}
	for i := range in.GRPCRoutes {
		in.GRPCRoutes[i].Namespace = ns
	}
	for i := range in.TCPRoutes {
		in.TCPRoutes[i].Namespace = ns
	}
	for i := range in.TLSRoutes {
		in.TLSRoutes[i].Namespace = ns
	}
	for i := range in.UDPRoutes {
		in.UDPRoutes[i].Namespace = ns
	}
	for i := range in.Services {
		in.Services[i].Namespace = ns
	}
	for i := range in.BackendPolicies {
		in.BackendPolicies[i].Namespace = ns
	}
	for i := range in.RoutePolicies {
		in.RoutePolicies[i].Namespace = ns
	}
}

// TestPolicySamples translates the samples of config/samples with the policy
// samples of config/samples/policies, applied into one namespace, and compares the
// result with samplesGolden: every policy is accepted for the sample Gateway, and
// its settings reach the echo backend group and the echo route.
func TestPolicySamples(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	loadSamples(t, in, ns, "../../config/samples/*.yaml", "../../config/samples/policies/*.yaml", "../../config/samples/grpc/*.yaml")
	if len(in.BackendPolicies) == 0 || len(in.RoutePolicies) == 0 {
		t.Fatalf("want BackendPolicy and RoutePolicy samples, got %d and %d", len(in.BackendPolicies), len(in.RoutePolicies))
	}
	out := Translate(in)
	got := renderOutput(t, out)
	if *update {
		if err := os.WriteFile(samplesGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(samplesGolden); err != nil {
		t.Errorf("%v (run go test ./controllers/translate/ -update to create it)", err)
	} else if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", samplesGolden, diffLines(string(want), string(got)))
	}

	for _, ps := range append(out.BackendPolicies, out.RoutePolicies...) {
		if len(ps.Status.Ancestors) != 1 {
			t.Errorf("policy %s: ancestors %+v, want the sample Gateway alone", ps.NamespacedName, ps.Status.Ancestors)
			continue
		}
		a := ps.Status.Ancestors[0]
		if a.AncestorRef.Kind == nil || *a.AncestorRef.Kind != "Gateway" || a.AncestorRef.Name != "flax-sample" {
			t.Errorf("policy %s: ancestor %+v, want Gateway flax-sample", ps.NamespacedName, a.AncestorRef)
		}
		if c := a.Conditions[0]; c.Type != "Accepted" || c.Status != "True" {
			t.Errorf("policy %s: %s is %s: %s", ps.NamespacedName, c.Type, c.Status, c.Message)
		}
	}
	var group *dataplanev1.BackendGroup
	for _, g := range out.Snapshot.GetBackendGroups() {
		if g.GetName() == ns+"/echo:8080" {
			group = g
		}
	}
	want := backendSettingsOf(t, in.BackendPolicies[0].Spec)
	if group == nil {
		t.Fatalf("no backend group %s/echo:8080 in %v", ns, out.Snapshot.GetBackendGroups())
	}
	group = proto.CloneOf(group)
	group.Name, group.Endpoints = "", nil
	if !proto.Equal(group, want) {
		t.Errorf("echo backend group settings\n  %v\nwant the BackendPolicy sample's\n  %v", group, want)
	}
	var limited int
	for _, l := range out.Snapshot.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if rl := r.GetRateLimit(); rl != nil && rl.GetBucket() == r.GetName() && rl.GetRequests() == uint32(in.RoutePolicies[0].Spec.RateLimit.Requests) {
					limited++
				}
			}
		}
	}
	if limited == 0 {
		t.Errorf("no route carries the RoutePolicy sample's rate limit")
	}
}

// TestGRPCSample translates the gRPC sample of config/samples/grpc with the
// samples it attaches to: the GRPCRoute is accepted with its references
// resolved, and its calls go to an h2c backend group of grpc-echo.
func TestGRPCSample(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	loadSamples(t, in, ns, "../../config/samples/*.yaml", "../../config/samples/grpc/*.yaml")
	if len(in.GRPCRoutes) != 1 {
		t.Fatalf("want one GRPCRoute sample, got %d", len(in.GRPCRoutes))
	}
	out := Translate(in)
	if len(out.GRPCRoutes) != 1 || len(out.GRPCRoutes[0].Status.Parents) != 1 {
		t.Fatalf("GRPCRoute statuses %+v, want one parent", out.GRPCRoutes)
	}
	for _, c := range out.GRPCRoutes[0].Status.Parents[0].Conditions {
		if c.Status != metav1.ConditionTrue {
			t.Errorf("GRPCRoute %s: %s is %s: %s", out.GRPCRoutes[0].NamespacedName, c.Type, c.Status, c.Message)
		}
	}
	g, err := findGroup(out.Snapshot, ns+"/grpc-echo:3000")
	if err != nil {
		t.Fatal(err)
	}
	if g.GetProtocol() != dataplanev1.BackendGroup_H2C {
		t.Errorf("group %s speaks %v, want H2C", g.GetName(), g.GetProtocol())
	}
	var served []string
	for _, l := range out.Snapshot.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() == ns+"/grpc-echo/grpc-rule-0" {
					served = append(served, fmt.Sprintf("%d/%s", l.GetPort(), vh.GetName()))
				}
			}
		}
	}
	if want := []string{"8080/grpc.example.com"}; !slices.Equal(served, want) {
		t.Errorf("GRPCRoute rule 0 served on %v, want %v", served, want)
	}
}

// findGroup returns the backend group name of snap.
func findGroup(snap *dataplanev1.Snapshot, name string) (*dataplanev1.BackendGroup, error) {
	for _, g := range snap.GetBackendGroups() {
		if g.GetName() == name {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no backend group %s", name)
}

// backendSettingsOf translates a valid BackendPolicy spec, failing the test if
// it is not valid.
func backendSettingsOf(t *testing.T, spec flaxv1alpha1.BackendPolicySpec) *dataplanev1.BackendGroup {
	t.Helper()
	g, problems := backendSettings(&spec)
	if len(problems) > 0 {
		t.Fatalf("BackendPolicy sample is invalid: %v", problems)
	}
	return g
}

// TestL4Samples translates the TCP, TLS and UDP samples of config/samples/l4 with
// the GatewayClass sample, applied into one namespace: the routes are accepted with
// their references resolved, the TCP listener forwards to tcp-echo, the TLS
// listener passes echo.example.com through to tls-echo and the UDP listener
// forwards to udp-echo.
func TestL4Samples(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses}
	loadSamples(t, in, ns, "../../config/samples/l4/*.yaml", "../../config/samples/gatewayclass.yaml")
	if len(in.TCPRoutes) != 1 || len(in.TLSRoutes) != 1 || len(in.UDPRoutes) != 1 {
		t.Fatalf("want one TCPRoute, TLSRoute and UDPRoute sample, got %d, %d and %d", len(in.TCPRoutes), len(in.TLSRoutes), len(in.UDPRoutes))
	}
	out := Translate(in)
	if err := dataplanev1.Validate(out.Snapshot); err != nil {
		t.Fatal(err)
	}
	for _, rs := range slices.Concat(out.TCPRoutes, out.TLSRoutes, out.UDPRoutes) {
		if len(rs.Status.Parents) != 1 {
			t.Fatalf("route %s: parents %+v, want the sample Gateway alone", rs.NamespacedName, rs.Status.Parents)
		}
		for _, c := range rs.Status.Parents[0].Conditions {
			if c.Status != "True" {
				t.Errorf("route %s: %s is %s: %s", rs.NamespacedName, c.Type, c.Status, c.Message)
			}
		}
	}
	var tcp, tls, udp *dataplanev1.Listener
	for _, l := range out.Snapshot.GetListeners() {
		switch l.GetPort() {
		case 9000:
			tcp = l
		case 9443:
			tls = l
		case 9053:
			udp = l
		}
	}
	if b := udp.GetUdpRoute().GetBackends(); udp.GetProtocol() != dataplanev1.Listener_UDP || len(b) != 1 || b[0].GetBackendGroup() != ns+"/udp-echo:8080/udp" {
		t.Errorf("listener on 9053: %v, want UDP to %s/udp-echo:8080/udp", udp, ns)
	}
	if b := tcp.GetTcpRoute().GetBackends(); tcp.GetProtocol() != dataplanev1.Listener_TCP || len(b) != 1 || b[0].GetBackendGroup() != ns+"/tcp-echo:3000" {
		t.Errorf("listener on 9000: %v, want TCP to %s/tcp-echo:3000", tcp, ns)
	}
	found := false
	for _, r := range tls.GetTlsRoutes() {
		if len(r.GetHostnames()) == 1 && r.GetHostnames()[0] == "echo.example.com" && !r.GetTerminate() &&
			len(r.GetBackends()) == 1 && r.GetBackends()[0].GetBackendGroup() == ns+"/tls-echo:8443" {
			found = true
		}
	}
	if tls.GetProtocol() != dataplanev1.Listener_TLS || !found {
		t.Errorf("listener on 9443: %v, want TLS passing echo.example.com through to %s/tls-echo:8443", tls, ns)
	}
}

// TestDemoListenerSetSample translates the local cluster's sample with its
// ListenerSet (config/samples/demo/listenerset.yaml): the set is accepted by Gateway
// demo, and HTTPRoute team is served on the set's port 8081 for team.example.com
// only, not on the Gateway's own listener.
func TestDemoListenerSetSample(t *testing.T) {
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	addDocuments(t, in, "config/samples/demo", demo.App+"---\n"+demo.EchoRoute+"---\n"+demo.ListenerSet, "Deployment")
	in.GatewayClasses = append(in.GatewayClasses, gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "flax"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: testControllerName},
	})
	out := Translate(in)
	if len(out.ListenerSets) != 1 {
		t.Fatalf("ListenerSet statuses: %+v, want demo/team", out.ListenerSets)
	}
	for _, c := range out.ListenerSets[0].Status.Conditions {
		if c.Status != metav1.ConditionTrue {
			t.Errorf("ListenerSet demo/team: %s is %s (%s): %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	var teamRouteOn []string
	for _, l := range out.Snapshot.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() == "demo/team/rule-0" {
					teamRouteOn = append(teamRouteOn, fmt.Sprintf("%d/%s", l.GetPort(), vh.GetName()))
				}
			}
		}
	}
	if want := []string{"8081/team.example.com"}; !slices.Equal(teamRouteOn, want) {
		t.Errorf("HTTPRoute team served on %v, want %v", teamRouteOn, want)
	}
}

// TestMTLSSample translates the client certificate validation sample of
// config/samples/mtls with the echo Service sample, its Secret and its CA
// ConfigMap: the Gateway and its listener are accepted and the dataplane
// listener on 8443 checks clients against the ConfigMap's CA.
func TestMTLSSample(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	loadSamples(t, in, ns, "../../config/samples/mtls/*.yaml", "../../config/samples/echo.yaml", "../../config/samples/gatewayclass.yaml")
	addDocuments(t, in, "TestMTLSSample", `
apiVersion: v1
kind: Secret
metadata: {name: echo-tls, namespace: samples}
type: kubernetes.io/tls
stringData: {tls.crt: <test-cert>, tls.key: <test-key>}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: client-ca, namespace: samples}
data: {ca.crt: <test-cert-2>}
`)
	out := Translate(in)
	if err := dataplanev1.Validate(out.Snapshot); err != nil {
		t.Fatal(err)
	}
	if len(out.Gateways) != 1 {
		t.Fatalf("gateways: %+v", out.Gateways)
	}
	for _, c := range append(out.Gateways[0].Status.Conditions, out.Gateways[0].Status.Listeners[0].Conditions...) {
		if c.Type != "Conflicted" && c.Status != metav1.ConditionTrue {
			t.Errorf("Gateway flax-mtls: %s is %s (%s): %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	ca := in.ConfigMaps[0].Data["ca.crt"]
	for _, l := range out.Snapshot.GetListeners() {
		if l.GetPort() == 8443 {
			if cv := l.GetClientValidation(); cv == nil || !strings.Contains(string(cv.GetCaCertPem()), strings.TrimSpace(ca)) || cv.GetAllowInsecureFallback() {
				t.Errorf("listener on 8443: client validation %v, want the client-ca ConfigMap's, AllowValidOnly", cv)
			}
			return
		}
	}
	t.Errorf("no listener on port 8443 in %v", out.Snapshot.GetListeners())
}

// TestCORSSample translates the CORS sample of config/samples/cors with the
// samples it attaches to: the route is accepted and its rule carries the CORS
// policy the dataplane enforces.
func TestCORSSample(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	loadSamples(t, in, ns, "../../config/samples/*.yaml", "../../config/samples/cors/*.yaml")
	out := Translate(in)
	var found bool
	for _, st := range out.HTTPRoutes {
		if st.NamespacedName.Name != "api-cors" {
			continue
		}
		found = true
		for _, p := range st.Status.Parents {
			for _, c := range p.Conditions {
				if c.Status != metav1.ConditionTrue {
					t.Errorf("HTTPRoute api-cors: %s is %s: %s", c.Type, c.Status, c.Message)
				}
			}
		}
	}
	if !found {
		t.Fatal("no status for HTTPRoute api-cors")
	}
	var cors *dataplanev1.CORSPolicy
	for _, l := range out.Snapshot.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() != ns+"/api-cors/rule-0" {
					continue
				}
				for _, f := range r.GetFilters() {
					if c := f.GetCors(); c != nil {
						cors = c
					}
				}
			}
		}
	}
	if cors == nil {
		t.Fatal("rule api-cors/rule-0 has no CORS filter in the snapshot")
	}
	if want := []string{"https://app.example.com", "https://*.example.org"}; !slices.Equal(cors.GetAllowOrigins(), want) {
		t.Errorf("allowOrigins %v, want %v", cors.GetAllowOrigins(), want)
	}
	if !cors.GetAllowCredentials() || cors.GetMaxAgeSeconds() != 600 {
		t.Errorf("allowCredentials %v maxAge %d, want true and 600", cors.GetAllowCredentials(), cors.GetMaxAgeSeconds())
	}
}

// TestExtAuthSample translates the external authorization sample of
// config/samples/extauth with the samples it attaches to: the HTTPRoute is
// accepted with its references resolved, and its rule asks the authz
// Service before going to echo.
func TestExtAuthSample(t *testing.T) {
	const ns = "samples"
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	loadSamples(t, in, ns, "../../config/samples/*.yaml", "../../config/samples/extauth/*.yaml")
	out := Translate(in)
	if err := dataplanev1.Validate(out.Snapshot); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rs := range out.HTTPRoutes {
		if rs.NamespacedName.Name != "echo-authed" {
			continue
		}
		found = true
		if len(rs.Status.Parents) != 1 {
			t.Fatalf("parents %+v, want the sample Gateway alone", rs.Status.Parents)
		}
		for _, c := range rs.Status.Parents[0].Conditions {
			if c.Status != metav1.ConditionTrue {
				t.Errorf("HTTPRoute echo-authed: %s is %s: %s", c.Type, c.Status, c.Message)
			}
		}
	}
	if !found {
		t.Fatal("no status for HTTPRoute echo-authed")
	}
	var auth *dataplanev1.ExtAuth
	for _, l := range out.Snapshot.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() != ns+"/echo-authed/rule-0" {
					continue
				}
				for _, f := range r.GetFilters() {
					if a := f.GetExtAuth(); a != nil {
						auth = a
					}
				}
				if len(r.GetBackends()) != 1 || r.GetBackends()[0].GetBackendGroup() != ns+"/echo:8080" {
					t.Errorf("route backends %v, want echo", r.GetBackends())
				}
			}
		}
	}
	want := &dataplanev1.ExtAuth{BackendGroup: ns + "/authz:8080", PathPrefix: "/check", AllowedResponseHeaders: []string{"x-user"}}
	if !proto.Equal(auth, want) {
		t.Fatalf("route's ExtAuth %v, want %v", auth, want)
	}
}
