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

// TestListenerSets checks ListenerSets end to end on a real API server: a set the
// Gateway allows adds its listeners to the dataplane and takes routes that name
// it, its Secret created later reaches the snapshot through the ListenerSet→Secret
// index, the statuses of the set, the Gateway (attachedListenerSets) and the route
// are written, and closing the Gateway's allowedListeners detaches the set.
func TestListenerSets(t *testing.T) {
	w := newWorld(t, "listenersets", "10.15.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("listenersets", w.controllerName)
	w.create(class)
	gw := gateway(w.name, "web", class.Name, 8080)
	gw.Spec.AllowedListeners = &gatewayv1.AllowedListeners{Namespaces: &gatewayv1.ListenerNamespaces{From: ptr.To(gatewayv1.NamespacesFromSame)}}
	w.create(gw)
	w.create(&gatewayv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "extra"},
		Spec: gatewayv1.ListenerSetSpec{
			ParentRef: gatewayv1.ParentGatewayReference{Name: "web"},
			Listeners: []gatewayv1.ListenerEntry{
				{Name: "app", Port: 8081, Protocol: gatewayv1.HTTPProtocolType, Hostname: ptr.To(gatewayv1.Hostname("app.example.com"))},
				{
					Name: "secure", Port: 9443, Protocol: gatewayv1.HTTPSProtocolType, Hostname: ptr.To(gatewayv1.Hostname("app.example.com")),
					TLS: &gatewayv1.ListenerTLSConfig{CertificateRefs: []gatewayv1.SecretObjectReference{{Name: "ls-cert"}}},
				},
			},
		},
	})
	route := httpRoute(w.name, "app", "web", "backend", 80)
	route.Spec.ParentRefs = []gatewayv1.ParentReference{{
		Group: ptr.To(gatewayv1.Group(gatewayv1.GroupName)), Kind: ptr.To(gatewayv1.Kind("ListenerSet")), Name: "extra",
	}}
	w.create(route)
	w.create(service(w.name, "backend", 80, 8080))
	w.startController()

	getSet := func() (*gatewayv1.ListenerSet, error) {
		var ls gatewayv1.ListenerSet
		err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "extra"}, &ls)
		return &ls, err
	}
	setListener := func(ls *gatewayv1.ListenerSet, name string) (*gatewayv1.ListenerEntryStatus, error) {
		for i, l := range ls.Status.Listeners {
			if string(l.Name) == name {
				return &ls.Status.Listeners[i], nil
			}
		}
		return nil, fmt.Errorf("ListenerSet has no status for listener %s: %+v", name, ls.Status.Listeners)
	}
	servedPorts := func() map[uint32]*dataplanev1.Listener {
		ports := map[uint32]*dataplanev1.Listener{}
		for _, l := range dp.Running().GetListeners() {
			ports[l.GetPort()] = l
		}
		return ports
	}

	eventually(t, 30*time.Second, "ListenerSet accepted, missing certificate reported", func() error {
		ls, err := getSet()
		if err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Conditions, "Accepted", metav1.ConditionTrue, "ListenersNotValid"); err != nil {
			return err
		}
		l, err := setListener(ls, "secure")
		if err != nil {
			return err
		}
		return hasCondition(l.Conditions, "ResolvedRefs", metav1.ConditionFalse, "InvalidCertificateRef")
	})
	eventually(t, 10*time.Second, "Gateway counts the set", func() error {
		gw, err := w.getGateway("web")
		if err != nil {
			return err
		}
		if got := ptr.Deref(gw.Status.AttachedListenerSets, -1); got != 1 {
			return fmt.Errorf("attachedListenerSets = %d, want 1", got)
		}
		return nil
	})
	eventually(t, 10*time.Second, "route accepted by the ListenerSet", func() error {
		var r gatewayv1.HTTPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "app"}, &r); err != nil {
			return err
		}
		p, err := routeParent(&r, "extra", w.controllerName)
		if err != nil {
			return err
		}
		if k := ptr.Deref(p.ParentRef.Kind, ""); k != "ListenerSet" {
			return fmt.Errorf("parent kind %q, want ListenerSet", k)
		}
		return hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})
	eventually(t, 10*time.Second, "dataplane serves the set's HTTP listener with the route", func() error {
		l := servedPorts()[8081]
		if l == nil {
			return fmt.Errorf("no listener on port 8081")
		}
		for _, vh := range l.GetVirtualHosts() {
			if vh.GetName() == "app.example.com" && len(vh.GetRoutes()) == 1 {
				return nil
			}
		}
		return fmt.Errorf("listener %s lacks the route on app.example.com: %v", l.GetName(), l.GetVirtualHosts())
	})

	certPEM, keyPEM := selfSigned(t, "app.example.com")
	w.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "ls-cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	})
	eventually(t, 10*time.Second, "the set's Secret reaches the dataplane", func() error {
		l := servedPorts()[9443]
		if l == nil || len(l.GetCertificates()) != 1 || string(l.GetCertificates()[0].GetCertPem()) != string(certPEM) {
			return fmt.Errorf("no listener on port 9443 with the certificate")
		}
		ls, err := getSet()
		if err != nil {
			return err
		}
		return hasCondition(ls.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})

	update(w, gw, func(gw *gatewayv1.Gateway) { gw.Spec.AllowedListeners = nil })
	eventually(t, 10*time.Second, "closing allowedListeners detaches the set", func() error {
		ls, err := getSet()
		if err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Conditions, "Accepted", metav1.ConditionFalse, "NotAllowed"); err != nil {
			return err
		}
		if l := servedPorts()[8081]; l != nil {
			return fmt.Errorf("port 8081 still served")
		}
		return nil
	})
}
