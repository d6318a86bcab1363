package controllers_test

import (
	"fmt"
	"slices"
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

// TestTCPAndTLSRoutes runs TCPRoutes and TLSRoutes through a real API server:
// their statuses are written, a Service a TCPRoute names only after the route
// exists reaches the snapshot through the route→Service index, a TLSRoute is
// served by server name on a mixed Passthrough/Terminate port with the
// terminating listener's certificate, and a rotated certificate Secret reaches
// the dataplane.
func TestTCPAndTLSRoutes(t *testing.T) {
	w := newWorld(t, "l4routes", "10.16.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("l4routes", w.controllerName)
	w.create(class)
	gw := gateway(w.name, "l4", class.Name, 8080)
	gw.Spec.Listeners = []gatewayv1.Listener{
		{Name: "db", Port: 5432, Protocol: gatewayv1.TCPProtocolType},
		{
			Name: "pass", Port: 8443, Protocol: gatewayv1.TLSProtocolType, Hostname: ptr.To(gatewayv1.Hostname("*.example.com")),
			TLS: &gatewayv1.ListenerTLSConfig{Mode: ptr.To(gatewayv1.TLSModePassthrough)},
		},
		{
			Name: "term", Port: 8443, Protocol: gatewayv1.TLSProtocolType, Hostname: ptr.To(gatewayv1.Hostname("secure.example.org")),
			TLS: &gatewayv1.ListenerTLSConfig{
				Mode:            ptr.To(gatewayv1.TLSModeTerminate),
				CertificateRefs: []gatewayv1.SecretObjectReference{{Name: "term-cert"}},
			},
		},
	}
	w.create(gw)
	certPEM, keyPEM := selfSigned(t, "secure.example.org")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "term-cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
	w.create(secret)
	w.create(service(w.name, "tls-app", 443, 8443))
	w.create(endpointSlice(w.name, "tls-app-1", "tls-app", 8443, "10.26.0.1"))
	w.create(tcpRoute(w.name, "db", "l4", "db", "db", 5432))
	w.create(tlsRoute(w.name, "app", "l4", "pass", "tls-app", 443, "app.example.com"))
	w.create(tlsRoute(w.name, "secure", "l4", "term", "tls-app", 443, "secure.example.org"))
	w.startController()

	tcpParent := func(name string) (*gatewayv1.RouteParentStatus, error) {
		var r gatewayv1.TCPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: name}, &r); err != nil {
			return nil, err
		}
		return ourParent(r.Status.Parents, w.controllerName)
	}
	tlsParent := func(name string) (*gatewayv1.RouteParentStatus, error) {
		var r gatewayv1.TLSRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: name}, &r); err != nil {
			return nil, err
		}
		return ourParent(r.Status.Parents, w.controllerName)
	}
	listener := func(port uint32) (*dataplanev1.Listener, error) {
		for _, l := range dp.Running().GetListeners() {
			if l.GetPort() == port {
				return l, nil
			}
		}
		return nil, fmt.Errorf("no dataplane listener on port %d", port)
	}

	eventually(t, 30*time.Second, "TCPRoute db Accepted, ResolvedRefs False/BackendNotFound", func() error {
		p, err := tcpParent("db")
		if err != nil {
			return err
		}
		if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound")
	})
	eventually(t, 10*time.Second, "TCP listener rejects the missing backend's share", func() error {
		l, err := listener(5432)
		if err != nil {
			return err
		}
		b := l.GetTcpRoute().GetBackends()
		if l.GetProtocol() != dataplanev1.Listener_TCP || len(b) != 1 || !b[0].GetReject() {
			return fmt.Errorf("listener %v, want a TCP listener with one reject backend", l)
		}
		return nil
	})

	// The Service arrives after the route: the route→Service index makes it matter.
	w.create(service(w.name, "db", 5432, 5432))
	w.create(endpointSlice(w.name, "db-1", "db", 5432, "10.26.1.1"))
	eventually(t, 10*time.Second, "TCPRoute db ResolvedRefs True", func() error {
		p, err := tcpParent("db")
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	})
	eventually(t, 10*time.Second, "TCP listener forwards to the db endpoints", func() error {
		l, err := listener(5432)
		if err != nil {
			return err
		}
		group := w.name + "/db:5432"
		if b := l.GetTcpRoute().GetBackends(); len(b) != 1 || b[0].GetBackendGroup() != group {
			return fmt.Errorf("tcp route backends %v, want %s", b, group)
		}
		g, err := backendGroup(dp.Running(), group)
		if err != nil {
			return err
		}
		if len(g.GetEndpoints()) != 1 || g.GetEndpoints()[0].GetAddress() != "10.26.1.1" {
			return fmt.Errorf("endpoints %v, want 10.26.1.1", g.GetEndpoints())
		}
		return nil
	})

	for _, name := range []string{"app", "secure"} {
		eventually(t, 10*time.Second, "TLSRoute "+name+" Accepted and ResolvedRefs", func() error {
			p, err := tlsParent(name)
			if err != nil {
				return err
			}
			if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
				return err
			}
			return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
		})
	}
	tlsServes := func(cert []byte) func() error {
		return func() error {
			l, err := listener(8443)
			if err != nil {
				return err
			}
			if l.GetProtocol() != dataplanev1.Listener_TLS {
				return fmt.Errorf("listener on 8443 has protocol %v, want TLS", l.GetProtocol())
			}
			routes := map[string]*dataplanev1.TLSRoute{}
			for _, r := range l.GetTlsRoutes() {
				routes[r.GetName()] = r
			}
			app, secure := routes[w.name+"/app/rule-0"], routes[w.name+"/secure/rule-0"]
			if app == nil || app.GetTerminate() || !slices.Equal(app.GetHostnames(), []string{"app.example.com"}) {
				return fmt.Errorf("route app %v, want passthrough for app.example.com", app)
			}
			if secure == nil || !secure.GetTerminate() || !slices.Equal(secure.GetHostnames(), []string{"secure.example.org"}) {
				return fmt.Errorf("route secure %v, want terminating for secure.example.org", secure)
			}
			if c := l.GetCertificates(); len(c) != 1 || string(c[0].GetCertPem()) != string(cert) {
				return fmt.Errorf("listener has %d certificates, or not the expected one", len(c))
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "mixed TLS listener serves both routes with the certificate", tlsServes(certPEM))
	eventually(t, 10*time.Second, "listeners count their routes", func() error {
		gw, err := w.getGateway("l4")
		if err != nil {
			return err
		}
		for name, want := range map[string]int32{"db": 1, "pass": 1, "term": 1} {
			l, err := listenerStatus(gw, name)
			if err != nil {
				return err
			}
			if l.AttachedRoutes != want {
				return fmt.Errorf("listener %s has %d attached routes, want %d", name, l.AttachedRoutes, want)
			}
			if err := hasCondition(l.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
				return fmt.Errorf("listener %s: %w", name, err)
			}
		}
		return nil
	})

	// Certificate rotation follows the Secret, as on HTTPS listeners.
	newCert, newKey := selfSigned(t, "secure.example.org")
	update(w, secret, func(s *corev1.Secret) {
		s.Data = map[string][]byte{corev1.TLSCertKey: newCert, corev1.TLSPrivateKeyKey: newKey}
	})
	eventually(t, 10*time.Second, "rotated certificate served", tlsServes(newCert))

	// A TLSRoute moved to the TCP listener is not allowed there, and the
	// passthrough listener keeps its hostname with no route.
	update(w, &gatewayv1.TLSRoute{ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "app"}}, func(r *gatewayv1.TLSRoute) {
		r.Spec.ParentRefs[0].SectionName = ptr.To(gatewayv1.SectionName("db"))
	})
	eventually(t, 10*time.Second, "TLSRoute app NotAllowedByListeners", func() error {
		p, err := tlsParent("app")
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "Accepted", metav1.ConditionFalse, "NotAllowedByListeners")
	})
	eventually(t, 10*time.Second, "app.example.com no longer routed", func() error {
		l, err := listener(8443)
		if err != nil {
			return err
		}
		for _, r := range l.GetTlsRoutes() {
			if slices.Contains(r.GetHostnames(), "app.example.com") {
				return fmt.Errorf("route %s still serves app.example.com", r.GetName())
			}
		}
		return nil
	})
}

// ourParent returns the parent status entry of controllerName.
func ourParent(parents []gatewayv1.RouteParentStatus, controllerName string) (*gatewayv1.RouteParentStatus, error) {
	for i := range parents {
		if string(parents[i].ControllerName) == controllerName {
			return &parents[i], nil
		}
	}
	return nil, fmt.Errorf("no parent status of %s in %+v", controllerName, parents)
}

// tcpRoute returns a TCPRoute attached to listener section of gateway that
// forwards to service:port.
func tcpRoute(ns, name, gateway, section, service string, port int32) *gatewayv1.TCPRoute {
	return &gatewayv1.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.TCPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: gatewayv1.ObjectName(gateway), SectionName: ptr.To(gatewayv1.SectionName(section)),
			}}},
			Rules: []gatewayv1.TCPRouteRule{{BackendRefs: []gatewayv1.BackendRef{{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: ptr.To(gatewayv1.PortNumber(port))},
			}}}},
		},
	}
}

// tlsRoute returns a TLSRoute for hostname attached to listener section of
// gateway that forwards to service:port.
func tlsRoute(ns, name, gateway, section, service string, port int32, hostname string) *gatewayv1.TLSRoute {
	return &gatewayv1.TLSRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.TLSRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: gatewayv1.ObjectName(gateway), SectionName: ptr.To(gatewayv1.SectionName(section)),
			}}},
			Hostnames: []gatewayv1.Hostname{gatewayv1.Hostname(hostname)},
			Rules: []gatewayv1.TLSRouteRule{{BackendRefs: []gatewayv1.BackendRef{{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: ptr.To(gatewayv1.PortNumber(port))},
			}}}},
		},
	}
}
