package status

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
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

func TestMergeListenerSetStatus(t *testing.T) {
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	existing := gatewayv1.ListenerSetStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: old}},
		Listeners: []gatewayv1.ListenerEntryStatus{
			{Name: "a", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", LastTransitionTime: old}}},
			{Name: "b", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", LastTransitionTime: old}}},
		},
	}
	desired := gatewayv1.ListenerSetStatus{
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "ListenersNotValid"}},
		Listeners: []gatewayv1.ListenerEntryStatus{
			// Listeners are matched by name, not position.
			{Name: "b", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionFalse, Reason: "HostnameConflict"}}},
			{Name: "a", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}}},
		},
	}
	got := mergeListenerSetStatus(existing, desired, now)
	if c := got.Conditions[0]; !c.LastTransitionTime.Equal(&old) || c.Reason != "ListenersNotValid" {
		t.Errorf("Accepted = %+v, want the desired reason with the old transition time", c)
	}
	if c := got.Listeners[0].Conditions[0]; !c.LastTransitionTime.Equal(&now) {
		t.Errorf("listener b Programmed turned False at %v, want now", c.LastTransitionTime)
	}
	if c := got.Listeners[1].Conditions[0]; !c.LastTransitionTime.Equal(&old) {
		t.Errorf("listener a Programmed stayed True but got %v, want the old time", c.LastTransitionTime)
	}
	if !desired.Conditions[0].LastTransitionTime.IsZero() {
		t.Error("mergeListenerSetStatus modified desired")
	}
	if !equalIgnoringTransitionTimes(got, desired, listenerSetStatusWithoutTimes) {
		t.Error("merged status differs from desired beyond transition times")
	}
}
