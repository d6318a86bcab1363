package controllers_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestUDPRoutes runs a UDPRoute through a real API server: its status is
// written, the UDP listener shares its port with a TCP listener of the same
// Gateway, and a UDP Service the route names only after the route exists
// reaches the snapshot through the route→Service index.
func TestUDPRoutes(t *testing.T) {
	w := newWorld(t, "udproutes", "10.17.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("udproutes", w.controllerName)
	w.create(class)
	gw := gateway(w.name, "dns", class.Name, 8080)
	gw.Spec.Listeners = []gatewayv1.Listener{
		{Name: "udp", Port: 5300, Protocol: gatewayv1.UDPProtocolType},
		{Name: "tcp", Port: 5300, Protocol: gatewayv1.TCPProtocolType},
	}
	w.create(gw)
	w.create(&gatewayv1.UDPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "dns"},
		Spec: gatewayv1.UDPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: "dns", SectionName: ptr.To(gatewayv1.SectionName("udp")),
			}}},
			Rules: []gatewayv1.UDPRouteRule{{BackendRefs: []gatewayv1.BackendRef{{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "coredns", Port: ptr.To(gatewayv1.PortNumber(53))},
			}}}},
		},
	})
	w.startController()

	parent := func() (*gatewayv1.RouteParentStatus, error) {
		var r gatewayv1.UDPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "dns"}, &r); err != nil {
			return nil, err
		}
		return ourParent(r.Status.Parents, w.controllerName)
	}
	udpListener := func() (*dataplanev1.Listener, error) {
		var tcp bool
		var udp *dataplanev1.Listener
		for _, l := range dp.Running().GetListeners() {
			if l.GetPort() != 5300 {
				continue
			}
			switch l.GetProtocol() {
			case dataplanev1.Listener_UDP:
				udp = l
			case dataplanev1.Listener_TCP:
				tcp = true
			}
		}
		if udp == nil || !tcp {
			return nil, fmt.Errorf("want a UDP and a TCP listener on port 5300, got %v", dp.Running().GetListeners())
		}
		return udp, nil
	}

	eventually(t, 30*time.Second, "UDPRoute Accepted, ResolvedRefs False/BackendNotFound", func() error {
		p, err := parent()
		if err != nil {
			return err
		}
		if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound")
	})
	eventually(t, 10*time.Second, "the UDP listener drops the missing backend's share", func() error {
		l, err := udpListener()
		if err != nil {
			return err
		}
		if b := l.GetUdpRoute().GetBackends(); len(b) != 1 || !b[0].GetReject() {
			return fmt.Errorf("udp route backends %v, want one reject backend", b)
		}
		return nil
	})

	svc := service(w.name, "coredns", 53, 1053)
	svc.Spec.Ports[0].Protocol = corev1.ProtocolUDP
	w.create(svc)
	slice := endpointSlice(w.name, "coredns-1", "coredns", 1053, "10.27.0.1")
	slice.Ports[0].Protocol = ptr.To(corev1.ProtocolUDP)
	w.create(slice)
	eventually(t, 10*time.Second, "UDPRoute ResolvedRefs True", func() error {
		p, err := parent()
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	})
	eventually(t, 10*time.Second, "the UDP listener forwards to the coredns endpoints", func() error {
		l, err := udpListener()
		if err != nil {
			return err
		}
		group := w.name + "/coredns:53/udp"
		if b := l.GetUdpRoute().GetBackends(); len(b) != 1 || b[0].GetBackendGroup() != group {
			return fmt.Errorf("udp route backends %v, want %s", b, group)
		}
		g, err := backendGroup(dp.Running(), group)
		if err != nil {
			return err
		}
		if e := g.GetEndpoints(); len(e) != 1 || e[0].GetAddress() != "10.27.0.1" || e[0].GetPort() != 1053 {
			return fmt.Errorf("endpoints %v, want 10.27.0.1:1053", e)
		}
		return nil
	})
}
