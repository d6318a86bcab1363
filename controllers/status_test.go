package controllers_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/status"
	"github.com/flaxlb/flax/controllers/translate"
)

// cond returns a condition without transition time, as the translator makes them.
func cond(typ string, st metav1.ConditionStatus, reason string, gen int64) metav1.Condition {
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: reason, ObservedGeneration: gen}
}

// syncedResults is a ResultSource whose dataplane has applied everything.
type syncedResults struct{}

// Results implements status.ResultSource.
func (syncedResults) Results() []deliver.Result {
	return []deliver.Result{{Node: "node", Connected: true, Synced: true, InSync: true}}
}

// statusFixture creates a GatewayClass, a Gateway and an HTTPRoute, and returns the
// translator output for them with the route's ResolvedRefs set to resolved and the
// listener's attachedRoutes to attached.
func statusFixture(w *world) (gw *gatewayv1.Gateway, route *gatewayv1.HTTPRoute, output func(resolved bool, attached int32) *translate.Output) {
	class := gatewayClass(w.name, w.controllerName)
	w.create(class)
	gw = gateway(w.name, "web", class.Name, 8080)
	w.create(gw)
	route = httpRoute(w.name, "route", "web", "echo", 80)
	w.create(route)
	output = func(resolved bool, attached int32) *translate.Output {
		refs := cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", route.Generation)
		if !resolved {
			refs = cond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", route.Generation)
		}
		return &translate.Output{
			GatewayClasses: []translate.ClassStatus{{Name: class.Name, Status: gatewayv1.GatewayClassStatus{
				Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", class.Generation)},
			}}},
			Gateways: []translate.GatewayStatus{{NamespacedName: client.ObjectKeyFromObject(gw), Status: gatewayv1.GatewayStatus{
				Addresses: []gatewayv1.GatewayStatusAddress{{Value: w.nodeAddress}},
				Conditions: []metav1.Condition{
					cond("Accepted", metav1.ConditionTrue, "Accepted", gw.Generation),
					cond("Programmed", metav1.ConditionTrue, "Programmed", gw.Generation),
				},
				Listeners: []gatewayv1.ListenerStatus{{
					Name: "http", AttachedRoutes: attached,
					SupportedKinds: []gatewayv1.RouteGroupKind{{Kind: "HTTPRoute"}},
					Conditions: []metav1.Condition{
						cond("Accepted", metav1.ConditionTrue, "Accepted", gw.Generation),
						cond("Programmed", metav1.ConditionTrue, "Programmed", gw.Generation),
					},
				}},
			}}},
			HTTPRoutes: []translate.RouteStatus{{NamespacedName: client.ObjectKeyFromObject(route), Status: gatewayv1.HTTPRouteStatus{
				RouteStatus: gatewayv1.RouteStatus{Parents: []gatewayv1.RouteParentStatus{{
					ParentRef:      gatewayv1.ParentReference{Name: "web"},
					ControllerName: gatewayv1.GatewayController(w.controllerName),
					Conditions:     []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", route.Generation), refs},
				}}},
			}}},
		}
	}
	return gw, route, output
}

// TestStatusWriterKeepsTransitionTimes checks that the writer writes only what
// changed, keeps LastTransitionTime for conditions whose status did not change, and
// leaves other controllers' route parents alone.
func TestStatusWriterKeepsTransitionTimes(t *testing.T) {
	w := newWorld(t, "status-times", "10.12.0.1")
	gw, route, output := statusFixture(w)

	// Another implementation already reported on the route.
	other := gatewayv1.RouteParentStatus{
		ParentRef:      gatewayv1.ParentReference{Name: "elsewhere"},
		ControllerName: "example.com/other-controller",
		Conditions:     []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now()}},
	}
	route.Status.Parents = []gatewayv1.RouteParentStatus{other}
	if err := w.c.Status().Update(w.ctx, route); err != nil {
		t.Fatalf("set other controller's route status: %v", err)
	}

	writer := status.NewWriter(status.WriterOptions{
		Client: w.c, Reader: w.c, ControllerName: w.controllerName, Results: syncedResults{},
	})
	writer.Update(output(true, 1))
	if err := writer.Sync(w.ctx); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	first := readStatus(t, w, gw, route)
	if len(first.route.Status.Parents) != 2 || first.route.Status.Parents[0].ControllerName != other.ControllerName {
		t.Fatalf("route parents %+v, want the other controller's entry kept first, then ours", first.route.Status.Parents)
	}

	// The API server stores LastTransitionTime with second precision: make sure a
	// rewrite would show.
	time.Sleep(1100 * time.Millisecond)
	writer.Update(output(true, 1))
	if err := writer.Sync(w.ctx); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	same := readStatus(t, w, gw, route)
	if same.gw.ResourceVersion != first.gw.ResourceVersion || same.route.ResourceVersion != first.route.ResourceVersion ||
		same.class.ResourceVersion != first.class.ResourceVersion {
		t.Errorf("an unchanged status was written again (resourceVersions %s/%s/%s → %s/%s/%s)",
			first.class.ResourceVersion, first.gw.ResourceVersion, first.route.ResourceVersion,
			same.class.ResourceVersion, same.gw.ResourceVersion, same.route.ResourceVersion)
	}

	// attachedRoutes and the route's ResolvedRefs change; nothing else does.
	writer.Update(output(false, 2))
	if err := writer.Sync(w.ctx); err != nil {
		t.Fatalf("third sync: %v", err)
	}
	changed := readStatus(t, w, gw, route)
	if changed.gw.ResourceVersion == first.gw.ResourceVersion || changed.gw.Status.Listeners[0].AttachedRoutes != 2 {
		t.Errorf("gateway not rewritten with attachedRoutes 2: %+v", changed.gw.Status.Listeners)
	}
	for _, typ := range []string{"Accepted", "Programmed"} {
		if a, b := ltt(first.gw.Status.Conditions, typ), ltt(changed.gw.Status.Conditions, typ); !a.Equal(&b) {
			t.Errorf("gateway %s: LastTransitionTime changed from %v to %v although its status did not", typ, a, b)
		}
		if a, b := ltt(first.gw.Status.Listeners[0].Conditions, typ), ltt(changed.gw.Status.Listeners[0].Conditions, typ); !a.Equal(&b) {
			t.Errorf("listener %s: LastTransitionTime changed from %v to %v although its status did not", typ, a, b)
		}
	}
	ourFirst, ourChanged := first.route.Status.Parents[1], changed.route.Status.Parents[1]
	if a, b := ltt(ourFirst.Conditions, "Accepted"), ltt(ourChanged.Conditions, "Accepted"); !a.Equal(&b) {
		t.Errorf("route Accepted: LastTransitionTime changed from %v to %v although its status did not", a, b)
	}
	if a, b := ltt(ourFirst.Conditions, "ResolvedRefs"), ltt(ourChanged.Conditions, "ResolvedRefs"); !b.After(a.Time) {
		t.Errorf("route ResolvedRefs turned False but LastTransitionTime stayed %v (now %v)", a, b)
	}
	if p := changed.route.Status.Parents[0]; p.ControllerName != other.ControllerName || p.ParentRef.Name != "elsewhere" {
		t.Errorf("other controller's parent status changed: %+v", p)
	}

	// A route that no longer attaches to our Gateways loses our entry, not theirs.
	out := output(false, 0)
	out.HTTPRoutes = nil
	writer.Update(out)
	if err := writer.Sync(w.ctx); err != nil {
		t.Fatalf("fourth sync: %v", err)
	}
	detached := readStatus(t, w, gw, route)
	if ps := detached.route.Status.Parents; len(ps) != 1 || ps[0].ControllerName != other.ControllerName {
		t.Errorf("after detaching, route parents %+v, want only the other controller's", ps)
	}
}

// TestStatusWriterRetriesConflicts makes another writer change the Gateway between
// the status writer's read and its write: the API server answers Conflict, and the
// writer re-reads and succeeds.
func TestStatusWriterRetriesConflicts(t *testing.T) {
	w := newWorld(t, "status-conflict", "10.13.0.1")
	gw, _, output := statusFixture(w)

	cc := &conflictingClient{Client: w.c, raw: w.c}
	writer := status.NewWriter(status.WriterOptions{
		Client: cc, Reader: w.c, ControllerName: w.controllerName, Results: syncedResults{},
	})
	out := output(true, 1)
	out.GatewayClasses, out.HTTPRoutes = nil, nil
	writer.Update(out)
	if err := writer.Sync(w.ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if n := cc.updates.Load(); n != 2 {
		t.Errorf("%d status updates, want 2 (one conflict, one retry)", n)
	}
	var got gatewayv1.Gateway
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(gw), &got); err != nil {
		t.Fatal(err)
	}
	if err := hasCondition(got.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
		t.Errorf("after the retry: %v", err)
	}
	if got.Annotations["test/concurrent"] != "1" {
		t.Errorf("the concurrent change was lost: annotations %v", got.Annotations)
	}
}

// conflictingClient changes the object through raw right before the first status
// update, so that the update carries a stale resourceVersion.
type conflictingClient struct {
	client.Client
	raw     client.Client
	updates atomic.Int32
}

// Status implements client.Client.
func (c *conflictingClient) Status() client.SubResourceWriter {
	return &conflictingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

// conflictingStatus is conflictingClient's status writer.
type conflictingStatus struct {
	client.SubResourceWriter
	c *conflictingClient
}

// Update implements client.SubResourceWriter.
func (s *conflictingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if s.c.updates.Add(1) == 1 {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := s.c.raw.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			return fmt.Errorf("test: re-reading: %w", err)
		}
		ann := fresh.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann["test/concurrent"] = "1"
		fresh.SetAnnotations(ann)
		if err := s.c.raw.Update(ctx, fresh); err != nil {
			return fmt.Errorf("test: concurrent update: %w", err)
		}
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

// statuses are the objects of statusFixture as read back.
type statuses struct {
	class gatewayv1.GatewayClass
	gw    gatewayv1.Gateway
	route gatewayv1.HTTPRoute
}

// readStatus reads the fixture's objects from the API server.
func readStatus(t *testing.T, w *world, gw *gatewayv1.Gateway, route *gatewayv1.HTTPRoute) statuses {
	t.Helper()
	var s statuses
	if err := w.c.Get(w.ctx, types.NamespacedName{Name: string(gw.Spec.GatewayClassName)}, &s.class); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(gw), &s.gw); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(route), &s.route); err != nil {
		t.Fatal(err)
	}
	return s
}

// ltt returns the LastTransitionTime of the condition of type typ.
func ltt(conds []metav1.Condition, typ string) metav1.Time {
	for _, c := range conds {
		if c.Type == typ {
			return c.LastTransitionTime
		}
	}
	return metav1.Time{}
}
