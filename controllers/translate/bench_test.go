package translate

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// benchInput builds a cluster of routes routes spread over services Services with
// endpointsPerService endpoints each, all attached to one Gateway.
func benchInput(routes, services, endpointsPerService int) *Input {
	const ns = "bench"
	in := &Input{ControllerName: testControllerName, NodeAddresses: []string{"192.0.2.10", "192.0.2.11"}}
	in.GatewayClasses = []gatewayv1.GatewayClass{{
		ObjectMeta: metav1.ObjectMeta{Name: "flax", Generation: 1},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: testControllerName},
	}}
	all := gatewayv1.NamespacesFromAll
	in.Gateways = []gatewayv1.Gateway{{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "infra", Generation: 1},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "flax",
			Listeners: []gatewayv1.Listener{{
				Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType,
				AllowedRoutes: &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: &all}},
			}},
		},
	}}
	for s := range services {
		name := fmt.Sprintf("svc-%03d", s)
		in.Services = append(in.Services, corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
		// Two slices per Service, as the EndpointSlice controller makes for
		// large Services.
		for half := range 2 {
			es := discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, half), Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
			}
			for e := half; e < endpointsPerService; e += 2 {
				ready := e%10 != 0
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e%250+1)},
					Conditions: discoveryv1.EndpointConditions{Ready: &ready},
					Zone:       ptr(fmt.Sprintf("zone-%d", e%3)),
				})
			}
			in.EndpointSlices = append(in.EndpointSlices, es)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exact := gatewayv1.PathMatchExact
	prefix := gatewayv1.PathMatchPathPrefix
	for r := range routes {
		svc := func(i int) gatewayv1.HTTPBackendRef {
			return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(fmt.Sprintf("svc-%03d", i%services)), Port: ptr(int32(80))},
				Weight:                 ptr(int32(1 + i%3)),
			}}
		}
		in.HTTPRoutes = append(in.HTTPRoutes, gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("route-%04d", r), Namespace: ns, Generation: 1,
				CreationTimestamp: metav1.NewTime(base.Add(time.Duration(r) * time.Second)),
			},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
					Name: "gw", Namespace: ptr(gatewayv1.Namespace("infra")),
				}}},
				Hostnames: []gatewayv1.Hostname{gatewayv1.Hostname(fmt.Sprintf("app-%04d.example.com", r))},
				Rules: []gatewayv1.HTTPRouteRule{
					{
						Matches: []gatewayv1.HTTPRouteMatch{{
							Path:    &gatewayv1.HTTPPathMatch{Type: &exact, Value: ptr("/healthz")},
							Headers: []gatewayv1.HTTPHeaderMatch{{Name: "X-Canary", Value: "true"}},
						}},
						BackendRefs: []gatewayv1.HTTPBackendRef{svc(r + 1)},
					},
					{
						Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &prefix, Value: ptr("/api")}}},
						Filters: []gatewayv1.HTTPRouteFilter{{
							Type:                  gatewayv1.HTTPRouteFilterRequestHeaderModifier,
							RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Route", Value: "api"}}},
						}},
						BackendRefs: []gatewayv1.HTTPBackendRef{svc(r), svc(r + 7)},
					},
					{BackendRefs: []gatewayv1.HTTPBackendRef{svc(r)}},
				},
			},
		})
	}
	return in
}

// BenchmarkTranslate1000Routes translates 1,000 HTTPRoutes (3 rules each) over
// 100 Services with 10,000 endpoints in all, and reports the size of the
// marshalled snapshot.
func BenchmarkTranslate1000Routes(b *testing.B) {
	in := benchInput(1000, 100, 100)
	out := Translate(in)
	if err := dataplanev1.Validate(out.Snapshot); err != nil {
		b.Fatal(err)
	}
	if n := len(out.Snapshot.BackendGroups); n != 100 {
		b.Fatalf("got %d backend groups, want 100", n)
	}
	endpoints := 0
	for _, g := range out.Snapshot.BackendGroups {
		endpoints += len(g.Endpoints)
	}
	if endpoints != 10000 {
		b.Fatalf("got %d endpoints, want 10000", endpoints)
	}
	size, err := proto.MarshalOptions{Deterministic: true}.Marshal(out.Snapshot)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Translate(in)
	}
	b.ReportMetric(float64(len(size)), "snapshot-bytes")
}
