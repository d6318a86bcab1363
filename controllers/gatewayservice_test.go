package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestGatewayService runs the controller against a real API server with a
// GatewayClass whose GatewayClassParameters ask for a Service of type
// LoadBalancer per Gateway. The Service is created in the Gateway's namespace,
// owned by it, with the Gateway's listener ports (UDP listeners' as UDP ports, a
// TCP and a UDP listener on one port number as two ports), externalTrafficPolicy Local,
// the labels and annotations of spec.infrastructure and an EndpointSlice naming
// the dataplane node; the Gateway waits for an address (AddressNotAssigned)
// until a load balancer (the test, as a cloud controller would) writes an
// ingress address into the Service's status, which then becomes the Gateway's
// address. Changing the Gateway updates the Service (a new port, a dropped
// annotation, an annotation someone else added kept); switching the class to
// ClusterIP turns the Gateway back to the node address; removing spec.service
// deletes the Service and its EndpointSlice. A Service of the name Flax would use
// that Flax did not create is left alone, without EndpointSlices. The API server
// rejects a pool together with a LoadBalancer Service.
func TestGatewayService(t *testing.T) {
	w := newWorld(t, "gwsvc", "10.20.0.9")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	bad := &flaxv1alpha1.GatewayClassParameters{
		ObjectMeta: metav1.ObjectMeta{Name: w.name + "-bad"},
		Spec: flaxv1alpha1.GatewayClassParametersSpec{
			AddressPools: []flaxv1alpha1.AddressPool{"198.51.100.1"},
			Service:      &flaxv1alpha1.GatewayService{Type: corev1.ServiceTypeLoadBalancer},
		},
	}
	if err := w.c.Create(w.ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("GatewayClassParameters with an address pool and a LoadBalancer Service: got %v, want an Invalid error", err)
	}
	params := &flaxv1alpha1.GatewayClassParameters{
		ObjectMeta: metav1.ObjectMeta{Name: w.name},
		Spec:       flaxv1alpha1.GatewayClassParametersSpec{Service: &flaxv1alpha1.GatewayService{}}, // type defaults to LoadBalancer
	}
	w.create(params)
	class := gatewayClass(w.name, w.controllerName)
	class.Spec.ParametersRef = &gatewayv1.ParametersReference{Group: flaxv1alpha1.GroupName, Kind: flaxv1alpha1.KindGatewayClassParameters, Name: w.name}
	w.create(class)
	gw := gateway(w.name, "web", class.Name, 8080)
	gw.Spec.Listeners = append(gw.Spec.Listeners,
		gatewayv1.Listener{Name: "tcp", Port: 9000, Protocol: gatewayv1.TCPProtocolType},
		gatewayv1.Listener{Name: "udp", Port: 9000, Protocol: gatewayv1.UDPProtocolType},
		gatewayv1.Listener{Name: "dns", Port: 5353, Protocol: gatewayv1.UDPProtocolType})
	gw.Spec.Infrastructure = &gatewayv1.GatewayInfrastructure{
		Labels:      map[gatewayv1.LabelKey]gatewayv1.LabelValue{"team": "web"},
		Annotations: map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{"example.com/scheme": "internal", "example.com/drop": "me"},
	}
	w.create(gw)
	// Someone else's Service has the name Flax would give Gateway other's.
	w.create(service(w.name, "other-flax", 1, 1))
	w.create(gateway(w.name, "other", class.Name, 8088))
	w.startController()

	svcKey := types.NamespacedName{Namespace: w.name, Name: "web-flax"}
	sliceKey := types.NamespacedName{Namespace: w.name, Name: "web-flax-ipv4"}
	// serviceIs checks the Service and its EndpointSlice.
	serviceIs := func(typ corev1.ServiceType, ports []string, annotations map[string]string) error {
		var svc corev1.Service
		if err := w.c.Get(w.ctx, svcKey, &svc); err != nil {
			return err
		}
		if svc.Spec.Type != typ {
			return fmt.Errorf("service type %s, want %s", svc.Spec.Type, typ)
		}
		wantETP := corev1.ServiceExternalTrafficPolicyLocal
		if typ == corev1.ServiceTypeClusterIP {
			wantETP = ""
		}
		if svc.Spec.ExternalTrafficPolicy != wantETP {
			return fmt.Errorf("externalTrafficPolicy %q, want %q", svc.Spec.ExternalTrafficPolicy, wantETP)
		}
		var got []string
		for _, p := range svc.Spec.Ports {
			got = append(got, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
			if want := fmt.Sprintf("%s-%d", strings.ToLower(string(p.Protocol)), p.Port); p.Name != want {
				return fmt.Errorf("service port %d/%s named %q, want %q", p.Port, p.Protocol, p.Name, want)
			}
		}
		if !slices.Equal(got, ports) {
			return fmt.Errorf("service ports %v, want %v", got, ports)
		}
		if len(svc.Spec.Selector) != 0 {
			return fmt.Errorf("service has selector %v, want none", svc.Spec.Selector)
		}
		if svc.Labels[gatewayv1.GatewayNameLabelKey] != "web" || svc.Labels["team"] != "web" {
			return fmt.Errorf("service labels %v, want gateway-name web and team web", svc.Labels)
		}
		for k, v := range annotations {
			if svc.Annotations[k] != v {
				return fmt.Errorf("service annotations %v, want %s=%q", svc.Annotations, k, v)
			}
		}
		if _, ok := svc.Annotations["example.com/drop"]; ok && annotations["example.com/drop"] == "" {
			return fmt.Errorf("service annotations %v still hold the dropped example.com/drop", svc.Annotations)
		}
		var g gatewayv1.Gateway
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "web"}, &g); err != nil {
			return err
		}
		if len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].UID != g.UID || svc.OwnerReferences[0].Kind != "Gateway" {
			return fmt.Errorf("service owners %+v, want Gateway web (%s)", svc.OwnerReferences, g.UID)
		}
		var es discoveryv1.EndpointSlice
		if err := w.c.Get(w.ctx, sliceKey, &es); err != nil {
			return err
		}
		if es.Labels[discoveryv1.LabelServiceName] != "web-flax" || es.Labels["team"] != "web" {
			return fmt.Errorf("endpointslice labels %v", es.Labels)
		}
		if len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "10.20.0.9" || es.Endpoints[0].NodeName == nil || *es.Endpoints[0].NodeName != "node-"+w.name {
			return fmt.Errorf("endpointslice endpoints %+v, want 10.20.0.9 on node-%s", es.Endpoints, w.name)
		}
		got = got[:0]
		for _, p := range es.Ports {
			got = append(got, fmt.Sprintf("%d/%s", *p.Port, *p.Protocol))
		}
		if !slices.Equal(got, ports) {
			return fmt.Errorf("endpointslice ports %v, want %v", got, ports)
		}
		return nil
	}
	gatewayAt := func(reason string, addresses ...string) error {
		g, err := w.getGateway("web")
		if err != nil {
			return err
		}
		status := metav1.ConditionTrue
		if reason != "Programmed" {
			status = metav1.ConditionFalse
		}
		if err := hasCondition(g.Status.Conditions, "Programmed", status, reason); err != nil {
			return err
		}
		var got []string
		for _, a := range g.Status.Addresses {
			got = append(got, a.Value)
		}
		if !slices.Equal(got, addresses) {
			return fmt.Errorf("gateway addresses %v, want %v", got, addresses)
		}
		return nil
	}

	eventually(t, 30*time.Second, "a LoadBalancer Service for the Gateway, which waits for its address", func() error {
		if err := serviceIs(corev1.ServiceTypeLoadBalancer, []string{"5353/UDP", "8080/TCP", "9000/TCP", "9000/UDP"}, map[string]string{"example.com/scheme": "internal", "example.com/drop": "me"}); err != nil {
			return err
		}
		return gatewayAt("AddressNotAssigned")
	})
	var other corev1.Service
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "other-flax"}, &other); err != nil {
		t.Fatal(err)
	}
	if other.Spec.Type != corev1.ServiceTypeClusterIP || len(other.Spec.Ports) != 1 || other.Spec.Ports[0].Port != 1 || len(other.OwnerReferences) != 0 {
		t.Errorf("someone else's Service other-flax was changed: %+v", other)
	}
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "other-flax-ipv4"}, &discoveryv1.EndpointSlice{}); !apierrors.IsNotFound(err) {
		t.Errorf("EndpointSlice other-flax-ipv4: %v, want NotFound (not Flax's Service)", err)
	}

	// A load balancer controller's work: an ingress address and an annotation.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: svcKey.Namespace, Name: svcKey.Name}}
	update(w, svc, func(s *corev1.Service) { s.Annotations["lb.example.com/id"] = "lb-1" })
	for range 10 {
		if err := w.c.Get(w.ctx, svcKey, svc); err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		if err := w.c.Status().Update(w.ctx, svc); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the load balancer's address is the Gateway's", func() error {
		return gatewayAt("Programmed", "203.0.113.7")
	})

	update(w, &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "web"}}, func(g *gatewayv1.Gateway) {
		g.Spec.Listeners = append(g.Spec.Listeners, gatewayv1.Listener{Name: "alt", Port: 8081, Protocol: gatewayv1.HTTPProtocolType})
		delete(g.Spec.Infrastructure.Annotations, "example.com/drop")
	})
	eventually(t, 30*time.Second, "the Service follows the Gateway: a new port, an annotation dropped, the load balancer's kept", func() error {
		return serviceIs(corev1.ServiceTypeLoadBalancer, []string{"5353/UDP", "8080/TCP", "8081/TCP", "9000/TCP", "9000/UDP"}, map[string]string{"example.com/scheme": "internal", "lb.example.com/id": "lb-1"})
	})

	update(w, params, func(p *flaxv1alpha1.GatewayClassParameters) { p.Spec.Service.Type = corev1.ServiceTypeClusterIP })
	eventually(t, 30*time.Second, "a ClusterIP Service and the node address", func() error {
		if err := serviceIs(corev1.ServiceTypeClusterIP, []string{"5353/UDP", "8080/TCP", "8081/TCP", "9000/TCP", "9000/UDP"}, nil); err != nil {
			return err
		}
		return gatewayAt("Programmed", "10.20.0.9")
	})

	update(w, params, func(p *flaxv1alpha1.GatewayClassParameters) { p.Spec.Service = nil })
	eventually(t, 30*time.Second, "the Service and its EndpointSlice deleted", func() error {
		if err := w.c.Get(w.ctx, svcKey, &corev1.Service{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service: %w, want NotFound", err)
		}
		if err := w.c.Get(w.ctx, sliceKey, &discoveryv1.EndpointSlice{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("endpointslice: %w, want NotFound", err)
		}
		return gatewayAt("Programmed", "10.20.0.9")
	})
}
