package controllers_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestObjectsInConditionsOut runs the controller against a real API server: Gateway
// API objects, a Service and its EndpointSlice go in; the GatewayClass, Gateway and
// HTTPRoute conditions come out, and the dataplane receives the backends.
func TestObjectsInConditionsOut(t *testing.T) {
	w := newWorld(t, "objects", "10.10.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	ours := gatewayClass("objects", w.controllerName)
	other := gatewayClass("objects-other", "example.com/other-controller")
	w.create(ours)
	w.create(other)
	w.create(gateway(w.name, "web", ours.Name, 8080))
	foreign := gateway(w.name, "foreign", other.Name, 8080)
	w.create(foreign)
	w.create(service(w.name, "echo", 80, 8080))
	w.create(endpointSlice(w.name, "echo-1", "echo", 8080, "10.20.0.1"))
	w.create(httpRoute(w.name, "good", "web", "echo", 80))
	w.create(httpRoute(w.name, "missing", "web", "nope", 80))

	// What the API server defaulted before any controller ran.
	var otherBefore gatewayv1.GatewayClass
	if err := w.c.Get(w.ctx, types.NamespacedName{Name: other.Name}, &otherBefore); err != nil {
		t.Fatal(err)
	}
	var foreignBefore gatewayv1.Gateway
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "foreign"}, &foreignBefore); err != nil {
		t.Fatal(err)
	}

	c := w.startController()

	eventually(t, 30*time.Second, "GatewayClass Accepted", func() error {
		var gc gatewayv1.GatewayClass
		if err := w.c.Get(w.ctx, types.NamespacedName{Name: ours.Name}, &gc); err != nil {
			return err
		}
		return hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})
	eventually(t, 10*time.Second, "Gateway Programmed with two attached routes", func() error {
		gw, err := w.getGateway("web")
		if err != nil {
			return err
		}
		if err := hasCondition(gw.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
			return err
		}
		l, err := listenerStatus(gw, "http")
		if err != nil {
			return err
		}
		if l.AttachedRoutes != 2 {
			return fmt.Errorf("listener http has %d attached routes, want 2", l.AttachedRoutes)
		}
		if err := hasCondition(l.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
			return fmt.Errorf("listener http: %w", err)
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != w.nodeAddress {
			return fmt.Errorf("addresses %+v, want the node's %s", gw.Status.Addresses, w.nodeAddress)
		}
		return nil
	})
	eventually(t, 10*time.Second, "route good Accepted and ResolvedRefs", func() error {
		var r gatewayv1.HTTPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "good"}, &r); err != nil {
			return err
		}
		p, err := routeParent(&r, "web", w.controllerName)
		if err != nil {
			return err
		}
		if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs")
	})
	eventually(t, 10*time.Second, "route missing ResolvedRefs False/BackendNotFound", func() error {
		var r gatewayv1.HTTPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "missing"}, &r); err != nil {
			return err
		}
		p, err := routeParent(&r, "web", w.controllerName)
		if err != nil {
			return err
		}
		if err := hasCondition(p.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound")
	})
	eventually(t, 10*time.Second, "dataplane runs the echo endpoints", func() error {
		g, err := backendGroup(dp.Running(), w.name+"/echo:80")
		if err != nil {
			return err
		}
		if len(g.GetEndpoints()) != 1 || g.GetEndpoints()[0].GetAddress() != "10.20.0.1" || g.GetEndpoints()[0].GetPort() != 8080 {
			return fmt.Errorf("endpoints %v, want 10.20.0.1:8080", g.GetEndpoints())
		}
		return nil
	})

	// Once converged, writing again changes nothing: what the API server stores
	// (with its defaults) compares equal to what the translator computes.
	before := resourceVersions(t, w, ours.Name)
	if err := c.Status.Sync(w.ctx); err != nil {
		t.Fatalf("sync status: %v", err)
	}
	if after := resourceVersions(t, w, ours.Name); !reflect.DeepEqual(before, after) {
		t.Errorf("a status write without changes rewrote objects: resourceVersions %v → %v", before, after)
	}

	// The statuses above were written in one pass, which would have covered the
	// other controller's objects too.
	var otherAfter gatewayv1.GatewayClass
	if err := w.c.Get(w.ctx, types.NamespacedName{Name: other.Name}, &otherAfter); err != nil {
		t.Fatal(err)
	}
	if otherAfter.ResourceVersion != otherBefore.ResourceVersion || !reflect.DeepEqual(otherAfter.Status, otherBefore.Status) {
		t.Errorf("GatewayClass of another controller changed: %+v", otherAfter.Status)
	}
	var foreignAfter gatewayv1.Gateway
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "foreign"}, &foreignAfter); err != nil {
		t.Fatal(err)
	}
	if foreignAfter.ResourceVersion != foreignBefore.ResourceVersion {
		t.Errorf("Gateway of another controller's class changed: %+v", foreignAfter.Status)
	}
}

// resourceVersions returns the resourceVersions of the GatewayClass class and of
// the Gateways and HTTPRoutes of the world's namespace.
func resourceVersions(t *testing.T, w *world, class string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var gc gatewayv1.GatewayClass
	if err := w.c.Get(w.ctx, types.NamespacedName{Name: class}, &gc); err != nil {
		t.Fatal(err)
	}
	out["gatewayclass/"+gc.Name] = gc.ResourceVersion
	var gws gatewayv1.GatewayList
	if err := w.c.List(w.ctx, &gws, client.InNamespace(w.name)); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws.Items {
		out["gateway/"+g.Name] = g.ResourceVersion
	}
	var routes gatewayv1.HTTPRouteList
	if err := w.c.List(w.ctx, &routes, client.InNamespace(w.name)); err != nil {
		t.Fatal(err)
	}
	for _, r := range routes.Items {
		out["httproute/"+r.Name] = r.ResourceVersion
	}
	return out
}
