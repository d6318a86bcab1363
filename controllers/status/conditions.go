package status

import (
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// maxConditionMessage bounds the messages Flax writes into conditions (the API
// allows 32768 characters; a rejection reason can list many fields).
const maxConditionMessage = 4096

// mergeConditions returns desired with every LastTransitionTime set: kept from the
// existing condition of the same type when its status did not change, now
// otherwise. desired is not modified.
func mergeConditions(existing, desired []metav1.Condition, now metav1.Time) []metav1.Condition {
	if desired == nil {
		return nil
	}
	out := make([]metav1.Condition, len(desired))
	for i, c := range desired {
		c.LastTransitionTime = now
		for _, old := range existing {
			if old.Type == c.Type && old.Status == c.Status && !old.LastTransitionTime.IsZero() {
				c.LastTransitionTime = old.LastTransitionTime
				break
			}
		}
		out[i] = c
	}
	return out
}

// mergeClassStatus returns desired with the transition times merged from existing.
func mergeClassStatus(existing, desired gatewayv1.GatewayClassStatus, now metav1.Time) gatewayv1.GatewayClassStatus {
	out := *desired.DeepCopy()
	out.Conditions = mergeConditions(existing.Conditions, desired.Conditions, now)
	return out
}

// mergeGatewayStatus returns desired with the transition times of the Gateway's and
// each listener's conditions merged from existing (listeners matched by name).
func mergeGatewayStatus(existing, desired gatewayv1.GatewayStatus, now metav1.Time) gatewayv1.GatewayStatus {
	out := *desired.DeepCopy()
	out.Conditions = mergeConditions(existing.Conditions, desired.Conditions, now)
	for i := range out.Listeners {
		var old []metav1.Condition
		for _, l := range existing.Listeners {
			if l.Name == out.Listeners[i].Name {
				old = l.Conditions
				break
			}
		}
		out.Listeners[i].Conditions = mergeConditions(old, desired.Listeners[i].Conditions, now)
	}
	return out
}

// mergeListenerSetStatus returns desired with the transition times of the set's
// and each listener's conditions merged from existing (listeners matched by name).
func mergeListenerSetStatus(existing, desired gatewayv1.ListenerSetStatus, now metav1.Time) gatewayv1.ListenerSetStatus {
	out := *desired.DeepCopy()
	out.Conditions = mergeConditions(existing.Conditions, desired.Conditions, now)
	for i := range out.Listeners {
		var old []metav1.Condition
		for _, l := range existing.Listeners {
			if l.Name == out.Listeners[i].Name {
				old = l.Conditions
				break
			}
		}
		out.Listeners[i].Conditions = mergeConditions(old, desired.Listeners[i].Conditions, now)
	}
	return out
}

// mergeRouteStatus returns the status of a route with ours as the parent statuses
// of controller controllerName: the parents other controllers wrote are kept as
// they are, in their order, and ours follow, with transition times merged from the
// existing entry of the same parentRef. An empty ours removes this controller's
// entries.
func mergeRouteStatus(existing gatewayv1.RouteStatus, ours []gatewayv1.RouteParentStatus, controllerName gatewayv1.GatewayController, now metav1.Time) gatewayv1.RouteStatus {
	var out gatewayv1.RouteStatus
	for _, p := range existing.Parents {
		if p.ControllerName != controllerName {
			out.Parents = append(out.Parents, *p.DeepCopy())
		}
	}
	for _, p := range ours {
		p = *p.DeepCopy()
		p.ControllerName = controllerName
		p.ParentRef = withParentDefaults(p.ParentRef)
		var old []metav1.Condition
		for _, e := range existing.Parents {
			if e.ControllerName == controllerName && reflect.DeepEqual(withParentDefaults(e.ParentRef), p.ParentRef) {
				old = e.Conditions
				break
			}
		}
		p.Conditions = mergeConditions(old, p.Conditions, now)
		out.Parents = append(out.Parents, p)
	}
	return out
}

// maxPolicyAncestors is the most ancestor entries a policy status may hold.
const maxPolicyAncestors = 16

// mergePolicyStatus returns the status of a policy with ours as the ancestor
// entries of controller controllerName: the entries other controllers wrote are
// kept as they are, in their order, and ours follow, with transition times merged
// from the existing entry of the same ancestorRef. Ours are cut where the list
// would exceed maxPolicyAncestors; an empty ours removes this controller's entries.
func mergePolicyStatus(existing gatewayv1.PolicyStatus, ours []gatewayv1.PolicyAncestorStatus, controllerName gatewayv1.GatewayController, now metav1.Time) gatewayv1.PolicyStatus {
	out := gatewayv1.PolicyStatus{Ancestors: []gatewayv1.PolicyAncestorStatus{}}
	for _, a := range existing.Ancestors {
		if a.ControllerName != controllerName {
			out.Ancestors = append(out.Ancestors, *a.DeepCopy())
		}
	}
	for _, a := range ours {
		if len(out.Ancestors) >= maxPolicyAncestors {
			break
		}
		a = *a.DeepCopy()
		a.ControllerName = controllerName
		var old []metav1.Condition
		for _, e := range existing.Ancestors {
			if e.ControllerName == controllerName && reflect.DeepEqual(e.AncestorRef, a.AncestorRef) {
				old = e.Conditions
				break
			}
		}
		a.Conditions = mergeConditions(old, a.Conditions, now)
		out.Ancestors = append(out.Ancestors, a)
	}
	return out
}

// withParentDefaults returns ref with the group and kind the API server fills in
// when they are left out, so that references compare equal either way.
func withParentDefaults(ref gatewayv1.ParentReference) gatewayv1.ParentReference {
	if ref.Group == nil {
		g := gatewayv1.Group(gatewayv1.GroupName)
		ref.Group = &g
	}
	if ref.Kind == nil {
		k := gatewayv1.Kind("Gateway")
		ref.Kind = &k
	}
	return ref
}

// equalIgnoringTransitionTimes reports whether two statuses (any of the Gateway API
// status types) are equal when every condition's LastTransitionTime is ignored; nil
// and empty lists are equal.
func equalIgnoringTransitionTimes[S any](a, b S, clear func(*S)) bool {
	clear(&a)
	clear(&b)
	return equality.Semantic.DeepEqual(a, b)
}

// clearConditionTimes zeroes the transition times of conds in place.
func clearConditionTimes(conds []metav1.Condition) {
	for i := range conds {
		conds[i].LastTransitionTime = metav1.Time{}
	}
}

// classStatusWithoutTimes zeroes the transition times of a copy of s.
func classStatusWithoutTimes(s *gatewayv1.GatewayClassStatus) {
	*s = *s.DeepCopy()
	clearConditionTimes(s.Conditions)
}

// gatewayStatusWithoutTimes zeroes the transition times of a copy of s.
func gatewayStatusWithoutTimes(s *gatewayv1.GatewayStatus) {
	*s = *s.DeepCopy()
	clearConditionTimes(s.Conditions)
	for i := range s.Listeners {
		clearConditionTimes(s.Listeners[i].Conditions)
	}
}

// listenerSetStatusWithoutTimes zeroes the transition times of a copy of s.
func listenerSetStatusWithoutTimes(s *gatewayv1.ListenerSetStatus) {
	*s = *s.DeepCopy()
	clearConditionTimes(s.Conditions)
	for i := range s.Listeners {
		clearConditionTimes(s.Listeners[i].Conditions)
	}
}

// routeStatusWithoutTimes zeroes the transition times of a copy of s.
func routeStatusWithoutTimes(s *gatewayv1.RouteStatus) {
	*s = *s.DeepCopy()
	for i := range s.Parents {
		clearConditionTimes(s.Parents[i].Conditions)
	}
}

// policyStatusWithoutTimes zeroes the transition times of a copy of s.
func policyStatusWithoutTimes(s *gatewayv1.PolicyStatus) {
	*s = *s.DeepCopy()
	for i := range s.Ancestors {
		clearConditionTimes(s.Ancestors[i].Conditions)
	}
}
