package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/translate"
)

func TestMergeConditions(t *testing.T) {
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	existing := []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: old},
		{Type: "ResolvedRefs", Status: metav1.ConditionTrue, Reason: "ResolvedRefs", LastTransitionTime: old},
	}
	desired := []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "new message"},
		{Type: "ResolvedRefs", Status: metav1.ConditionFalse, Reason: "BackendNotFound"},
		{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"},
	}
	got := mergeConditions(existing, desired, now)
	want := map[string]metav1.Time{"Accepted": old, "ResolvedRefs": now, "Programmed": now}
	for _, c := range got {
		if !c.LastTransitionTime.Equal(&metav1.Time{Time: want[c.Type].Time}) {
			t.Errorf("%s: LastTransitionTime %v, want %v", c.Type, c.LastTransitionTime, want[c.Type])
		}
	}
	if !desired[0].LastTransitionTime.IsZero() {
		t.Error("mergeConditions modified desired")
	}
	if got[0].Message != "new message" {
		t.Errorf("message %q, want the desired one", got[0].Message)
	}
}

func TestMergeRouteStatusKeepsOtherControllers(t *testing.T) {
	ours := gatewayv1.GatewayController("flaxlb.io/gateway-controller")
	theirs := gatewayv1.GatewayController("example.com/other")
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	accepted := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: old}
	existing := gatewayv1.RouteStatus{Parents: []gatewayv1.RouteParentStatus{
		{ParentRef: gatewayv1.ParentReference{Name: "foreign"}, ControllerName: theirs, Conditions: []metav1.Condition{accepted}},
		{ParentRef: gatewayv1.ParentReference{Name: "web"}, ControllerName: ours, Conditions: []metav1.Condition{accepted}},
		{ParentRef: gatewayv1.ParentReference{Name: "gone"}, ControllerName: ours, Conditions: []metav1.Condition{accepted}},
	}}
	desired := []gatewayv1.RouteParentStatus{{
		ParentRef:  gatewayv1.ParentReference{Name: "web"},
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"}},
	}}
	got := mergeRouteStatus(existing, desired, ours, now)
	if len(got.Parents) != 2 {
		t.Fatalf("parents = %+v, want foreign and web", got.Parents)
	}
	if got.Parents[0].ControllerName != theirs || got.Parents[0].ParentRef.Name != "foreign" {
		t.Errorf("first parent %+v, want the other controller's untouched", got.Parents[0])
	}
	if p := got.Parents[1]; p.ControllerName != ours || p.ParentRef.Name != "web" || !p.Conditions[0].LastTransitionTime.Equal(&old) {
		t.Errorf("second parent %+v, want ours with the old transition time", p)
	}
	if !equalIgnoringTransitionTimes(got, mergeRouteStatus(got, desired, ours, now), routeStatusWithoutTimes) {
		t.Error("merging the same desired status again changed it")
	}
	if got := mergeRouteStatus(existing, nil, ours, now); len(got.Parents) != 1 || got.Parents[0].ControllerName != theirs {
		t.Errorf("removing ours: parents = %+v", got.Parents)
	}
}

func TestMergePolicyStatus(t *testing.T) {
	ours := gatewayv1.GatewayController("flaxlb.io/gateway-controller")
	theirs := gatewayv1.GatewayController("example.com/other")
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	gatewayRef := func(name string) gatewayv1.ParentReference {
		g, k, ns := gatewayv1.Group(gatewayv1.GroupName), gatewayv1.Kind("Gateway"), gatewayv1.Namespace("default")
		return gatewayv1.ParentReference{Group: &g, Kind: &k, Namespace: &ns, Name: gatewayv1.ObjectName(name)}
	}
	accepted := func(status metav1.ConditionStatus, at metav1.Time) []metav1.Condition {
		return []metav1.Condition{{Type: "Accepted", Status: status, Reason: "Accepted", LastTransitionTime: at}}
	}
	existing := gatewayv1.PolicyStatus{Ancestors: []gatewayv1.PolicyAncestorStatus{
		{AncestorRef: gatewayRef("foreign"), ControllerName: theirs, Conditions: accepted(metav1.ConditionTrue, old)},
		{AncestorRef: gatewayRef("web"), ControllerName: ours, Conditions: accepted(metav1.ConditionTrue, old)},
		{AncestorRef: gatewayRef("api"), ControllerName: ours, Conditions: accepted(metav1.ConditionTrue, old)},
		{AncestorRef: gatewayRef("gone"), ControllerName: ours, Conditions: accepted(metav1.ConditionTrue, old)},
	}}
	desired := []gatewayv1.PolicyAncestorStatus{
		{AncestorRef: gatewayRef("web"), Conditions: accepted(metav1.ConditionTrue, metav1.Time{})},
		{AncestorRef: gatewayRef("api"), Conditions: accepted(metav1.ConditionFalse, metav1.Time{})},
	}
	got := mergePolicyStatus(existing, desired, ours, now)
	if len(got.Ancestors) != 3 {
		t.Fatalf("ancestors = %+v, want foreign, web and api", got.Ancestors)
	}
	if a := got.Ancestors[0]; a.ControllerName != theirs || a.AncestorRef.Name != "foreign" {
		t.Errorf("first ancestor %+v, want the other controller's untouched", a)
	}
	if a := got.Ancestors[1]; a.ControllerName != ours || a.AncestorRef.Name != "web" || !a.Conditions[0].LastTransitionTime.Equal(&old) {
		t.Errorf("second ancestor %+v, want web, ours, with the old transition time", a)
	}
	if a := got.Ancestors[2]; a.AncestorRef.Name != "api" || !a.Conditions[0].LastTransitionTime.Equal(&now) {
		t.Errorf("third ancestor %+v, want api with a new transition time (its status changed)", a)
	}
	if !equalIgnoringTransitionTimes(got, mergePolicyStatus(got, desired, ours, now), policyStatusWithoutTimes) {
		t.Error("merging the same desired status again changed it")
	}
	if got := mergePolicyStatus(existing, nil, ours, now); len(got.Ancestors) != 1 || got.Ancestors[0].ControllerName != theirs {
		t.Errorf("removing ours: ancestors = %+v", got.Ancestors)
	}

	// The API allows 16 ancestors: the other controllers' entries stay, ours are
	// cut to fit.
	var crowded gatewayv1.PolicyStatus
	for i := range 10 {
		crowded.Ancestors = append(crowded.Ancestors, gatewayv1.PolicyAncestorStatus{
			AncestorRef: gatewayRef(fmt.Sprintf("theirs-%d", i)), ControllerName: theirs, Conditions: accepted(metav1.ConditionTrue, old),
		})
	}
	var many []gatewayv1.PolicyAncestorStatus
	for i := range 10 {
		many = append(many, gatewayv1.PolicyAncestorStatus{AncestorRef: gatewayRef(fmt.Sprintf("ours-%d", i)), Conditions: accepted(metav1.ConditionTrue, metav1.Time{})})
	}
	got = mergePolicyStatus(crowded, many, ours, now)
	if len(got.Ancestors) != maxPolicyAncestors || got.Ancestors[9].ControllerName != theirs || got.Ancestors[15].AncestorRef.Name != "ours-5" {
		t.Errorf("crowded merge gave %d ancestors (want 16: 10 theirs, then ours-0 to ours-5)", len(got.Ancestors))
	}
}

func TestEqualIgnoringTransitionTimes(t *testing.T) {
	a := gatewayv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, LastTransitionTime: metav1.Now()}},
		Listeners:  []gatewayv1.ListenerStatus{{Name: "http", AttachedRoutes: 1, SupportedKinds: []gatewayv1.RouteGroupKind{}}},
	}
	b := *a.DeepCopy()
	b.Conditions[0].LastTransitionTime = metav1.NewTime(time.Unix(0, 0))
	b.Listeners[0].SupportedKinds = nil
	if !equalIgnoringTransitionTimes(a, b, gatewayStatusWithoutTimes) {
		t.Error("statuses differing only in transition time and nil/empty lists compare unequal")
	}
	if a.Conditions[0].LastTransitionTime.IsZero() {
		t.Error("the comparison cleared the caller's transition times")
	}
	b.Listeners[0].AttachedRoutes = 2
	if equalIgnoringTransitionTimes(a, b, gatewayStatusWithoutTimes) {
		t.Error("statuses differing in attachedRoutes compare equal")
	}
}

func TestCoalescer(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start
	c := newCoalescer(20*time.Millisecond, 100*time.Millisecond)
	c.now = func() time.Time { return now }

	if wait, b := c.take(); wait != 0 || b.events != 0 {
		t.Fatalf("no events: take = %v, %+v; want to translate at once", wait, b)
	}
	c.record(false)
	now = now.Add(5 * time.Millisecond)
	c.record(true)
	if wait, _ := c.take(); wait != 20*time.Millisecond {
		t.Errorf("during a burst: wait %v, want the quiet period after the last event (20ms)", wait)
	}
	// Events every 15ms keep the burst going until the max wait.
	for now.Sub(start) < 90*time.Millisecond {
		now = now.Add(15 * time.Millisecond)
		c.record(false)
	}
	if wait, _ := c.take(); wait != start.Add(100*time.Millisecond).Sub(now) {
		t.Errorf("near the max wait: wait %v, want %v", wait, start.Add(100*time.Millisecond).Sub(now))
	}
	now = start.Add(100 * time.Millisecond)
	wait, b := c.take()
	if wait != 0 || b.events != 8 || !b.endpointsChangedAt.Equal(start.Add(5*time.Millisecond)) {
		t.Errorf("at the max wait: take = %v, %+v; want 8 events, endpoints changed at +5ms", wait, b)
	}
	c.putBack(b)
	if _, again := c.take(); again.events != 8 || !again.endpointsChangedAt.Equal(b.endpointsChangedAt) {
		t.Errorf("after putBack: %+v, want the same batch", again)
	}
}

func TestFoldResults(t *testing.T) {
	gw := &gatewayv1.Gateway{Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{
		{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType},
		{Name: "alt", Port: 8081, Protocol: gatewayv1.HTTPProtocolType},
	}}}
	gw.Namespace, gw.Name = "ns", "web"
	programmed := func(typ string, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: 3}
	}
	st := gatewayv1.GatewayStatus{
		Conditions: []metav1.Condition{programmed("Accepted", "Accepted"), programmed("Programmed", "Programmed")},
		Listeners: []gatewayv1.ListenerStatus{
			{Name: "http", Conditions: []metav1.Condition{programmed("Programmed", "Programmed")}},
			{Name: "alt", Conditions: []metav1.Condition{programmed("Programmed", "Programmed")}},
		},
	}
	gs := translate.GatewayStatus{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, Status: st, BindAddresses: []string{""}}
	synced := DataplaneResult{Node: "node-a", Connected: true, Synced: true, Listeners: []ListenerResult{
		{Name: "ns/web/80", Port: 80, Bound: true},
		{Name: "ns/web/8081", Port: 8081, Error: "address already in use"},
	}}
	got := foldResults(gw, gs, []DataplaneResult{synced})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("gateway Programmed = %+v, want True despite one unbound listener", c)
	}
	if c := meta.FindStatusCondition(got.Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("listener http Programmed = %+v, want True", c)
	}
	c := meta.FindStatusCondition(got.Listeners[1].Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "Pending" || !strings.Contains(c.Message, "address already in use") ||
		!strings.Contains(c.Message, "node-a") || c.ObservedGeneration != 3 {
		t.Errorf("listener alt Programmed = %+v, want False/Pending naming the node and the bind error", c)
	}
	if meta.FindStatusCondition(st.Listeners[1].Conditions, "Programmed").Status != metav1.ConditionTrue {
		t.Error("foldResults modified its input")
	}

	rejected := synced
	rejected.Listeners = nil
	rejected.Rejection = &Rejection{Version: 9, Code: rpc.Nack_INVALID, Reason: "listeners[0].port: must be 1-65535"}
	got = foldResults(gw, gs, []DataplaneResult{rejected})
	c = meta.FindStatusCondition(got.Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "Invalid" || !strings.Contains(c.Message, "listeners[0].port: must be 1-65535") {
		t.Errorf("after a rejection, gateway Programmed = %+v, want False/Invalid with the reason", c)
	}

	got = foldResults(gw, gs, []DataplaneResult{{Node: "node-a"}})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "Pending" {
		t.Errorf("before any Ack, gateway Programmed = %+v, want False/Pending", c)
	}
}

// TestFoldResultsWaitsForEveryNode checks that a Gateway is Programmed only once
// every node runs its current configuration, and that the condition names the
// nodes it waits for.
func TestFoldResultsWaitsForEveryNode(t *testing.T) {
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	gw := &gatewayv1.Gateway{Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType}}}}
	gw.Namespace, gw.Name = web.Namespace, web.Name
	programmed := metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", Message: "ok", ObservedGeneration: 4}
	gs := translate.GatewayStatus{
		NamespacedName: web,
		Status: gatewayv1.GatewayStatus{
			Conditions: []metav1.Condition{programmed},
			Listeners:  []gatewayv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{programmed}}},
		},
		BindAddresses: []string{""},
		ConfigHash:    "new",
	}
	node := func(name string, configs map[types.NamespacedName]string) DataplaneResult {
		return DataplaneResult{Node: name, Connected: true, Synced: true, Configs: configs}
	}
	check := func(what string, results []DataplaneResult, status metav1.ConditionStatus, reason string, names, notNames []string) {
		t.Helper()
		got := foldResults(gw, gs, results)
		c := meta.FindStatusCondition(got.Conditions, "Programmed")
		if c.Status != status || c.Reason != reason || c.ObservedGeneration != 4 {
			t.Errorf("%s: Programmed = %+v, want %s/%s", what, c, status, reason)
		}
		for _, n := range names {
			if !strings.Contains(c.Message, n) {
				t.Errorf("%s: Programmed message %q does not name %s", what, c.Message, n)
			}
		}
		for _, n := range notNames {
			if strings.Contains(c.Message, n) {
				t.Errorf("%s: Programmed message %q names %s", what, c.Message, n)
			}
		}
		if l := meta.FindStatusCondition(got.Listeners[0].Conditions, "Programmed"); l.Status != metav1.ConditionTrue {
			t.Errorf("%s: listener Programmed = %+v, want True (a lagging node is a Gateway matter)", what, l)
		}
	}
	current := map[types.NamespacedName]string{web: "new", other: "x"}
	stale := map[types.NamespacedName]string{web: "old", other: "x"}

	check("one node lags", []DataplaneResult{node("node-a", current), node("node-b", stale)},
		metav1.ConditionFalse, "Pending", []string{"node node-b", "current configuration"}, []string{"node-a"})
	check("a node does not know what it runs", []DataplaneResult{node("node-a", current), node("node-b", map[types.NamespacedName]string{})},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("a node lacks the new Gateway", []DataplaneResult{node("node-a", current), node("node-b", map[types.NamespacedName]string{other: "x"})},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("two nodes lag", []DataplaneResult{node("node-a", current), node("node-b", stale), node("node-c", stale)},
		metav1.ConditionFalse, "Pending", []string{"nodes node-b, node-c"}, []string{"node-a"})
	check("a node never acknowledged", []DataplaneResult{node("node-a", current), {Node: "node-b", Connected: true}},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("every node caught up", []DataplaneResult{node("node-a", current), node("node-b", current)},
		metav1.ConditionTrue, "Programmed", nil, []string{"node-a", "node-b"})
	check("a node without config hashes counts once synced", []DataplaneResult{node("node-a", current), node("node-b", nil)},
		metav1.ConditionTrue, "Programmed", nil, nil)

	rejected := node("node-b", stale)
	rejected.Rejection = &Rejection{Version: 9, Code: rpc.Nack_INVALID, Reason: "bad port"}
	check("a lagging node that rejected the configuration", []DataplaneResult{node("node-a", current), rejected},
		metav1.ConditionFalse, "Invalid", []string{"bad port", "node-b"}, nil)

	unserved := gs
	unserved.ConfigHash = ""
	got := foldResults(gw, unserved, []DataplaneResult{node("node-a", map[types.NamespacedName]string{other: "x"})})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("a Gateway with nothing in the snapshot waits for a node that runs nothing of it: %+v", c)
	}
}
