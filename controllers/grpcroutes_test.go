package controllers_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestGRPCRoutes runs a GRPCRoute through a real API server: its status is
// written (ResolvedRefs False while its Service is missing), the Service it
// names reaches the snapshot through the route→Service index once created, as
// an h2c backend group, its method match becomes an exact POST path, and a
// younger HTTPRoute on the same hostname of the listener is not accepted.
func TestGRPCRoutes(t *testing.T) {
	w := newWorld(t, "grpcroutes", "10.17.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("grpcroutes", w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "gw", class.Name, 8080))
	w.create(&gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "echo"},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			Hostnames:       []gatewayv1.Hostname{"grpc.example.com"},
			Rules: []gatewayv1.GRPCRouteRule{{
				Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{
					Service: ptr.To("echo.v1.Echo"), Method: ptr.To("Say"),
				}}},
				BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "echo", Port: ptr.To(gatewayv1.PortNumber(9000))},
				}}},
			}},
		},
	})
	w.startController()

	grpcParent := func() (*gatewayv1.RouteParentStatus, error) {
		var r gatewayv1.GRPCRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "echo"}, &r); err != nil {
			return nil, err
		}
		return ourParent(r.Status.Parents, w.controllerName)
	}
	eventually(t, 30*time.Second, "GRPCRoute echo Accepted, ResolvedRefs False/BackendNotFound", func() error {
		p, err := grpcParent()
		if err != nil {
			return err
		}
		if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound")
	})

	// The Service arrives after the route: the route→Service index makes it
	// matter. It declares no appProtocol: a GRPCRoute speaks h2c to it anyway.
	w.create(service(w.name, "echo", 9000, 3000))
	w.create(endpointSlice(w.name, "echo-1", "echo", 3000, "10.27.0.1"))
	group := w.name + "/echo:9000/h2c"
	eventually(t, 10*time.Second, "GRPCRoute echo ResolvedRefs True", func() error {
		p, err := grpcParent()
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	})
	eventually(t, 10*time.Second, "the GRPCRoute's rule is served over an h2c group", func() error {
		snap := dp.Running()
		g, err := backendGroup(snap, group)
		if err != nil {
			return err
		}
		if g.GetProtocol() != dataplanev1.BackendGroup_H2C || len(g.GetEndpoints()) != 1 || g.GetEndpoints()[0].GetAddress() != "10.27.0.1" {
			return fmt.Errorf("group %v, want protocol H2C with endpoint 10.27.0.1", g)
		}
		rt, err := vhostRoute(snap, "grpc.example.com", w.name+"/echo/grpc-rule-0")
		if err != nil {
			return err
		}
		m := rt.GetMatches()
		if len(m) != 1 || m[0].GetMethod() != "POST" || m[0].GetPath().GetType() != dataplanev1.PathMatch_EXACT || m[0].GetPath().GetValue() != "/echo.v1.Echo/Say" {
			return fmt.Errorf("matches %v, want POST /echo.v1.Echo/Say exactly", m)
		}
		if b := rt.GetBackends(); len(b) != 1 || b[0].GetBackendGroup() != group {
			return fmt.Errorf("backends %v, want %s", b, group)
		}
		return nil
	})

	// A younger HTTPRoute on the same hostname and listener is not accepted.
	hr := httpRoute(w.name, "web", "gw", "echo", 9000)
	hr.Spec.Hostnames = []gatewayv1.Hostname{"grpc.example.com"}
	w.create(hr)
	eventually(t, 10*time.Second, "HTTPRoute web Accepted False/NotAllowedByListeners", func() error {
		var r gatewayv1.HTTPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "web"}, &r); err != nil {
			return err
		}
		p, err := ourParent(r.Status.Parents, w.controllerName)
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "Accepted", metav1.ConditionFalse, "NotAllowedByListeners")
	})
	gw, err := w.getGateway("gw")
	if err != nil {
		t.Fatal(err)
	}
	l, err := listenerStatus(gw, "http")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[gatewayv1.Kind]bool{}
	for _, k := range l.SupportedKinds {
		kinds[k.Kind] = true
	}
	if !kinds["HTTPRoute"] || !kinds["GRPCRoute"] {
		t.Errorf("listener supportedKinds %v, want HTTPRoute and GRPCRoute", l.SupportedKinds)
	}
}

// vhostRoute returns the route named name of the virtual host named host of
// any listener of snap.
func vhostRoute(snap *dataplanev1.Snapshot, host, name string) (*dataplanev1.Route, error) {
	for _, l := range snap.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			if vh.GetName() != host {
				continue
			}
			for _, r := range vh.GetRoutes() {
				if r.GetName() == name {
					return r, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no route %s on virtual host %s", name, host)
}
