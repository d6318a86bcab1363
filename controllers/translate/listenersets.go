package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// listenerSetReasonParentNotProgrammed is the reason of a ListenerSet's Programmed
// condition when its Gateway is not programmed; Gateway API v1.6.3 documents it
// but has no constant for it.
const listenerSetReasonParentNotProgrammed gatewayv1.ListenerSetConditionReason = "ParentNotProgrammed"

// listenerSetInfo is a ListenerSet whose parentRef names a Gateway of Flax.
type listenerSetInfo struct {
	ls  *gatewayv1.ListenerSet
	key types.NamespacedName
	// gateway is the parent Gateway.
	gateway *gatewayInfo
	// rejected, when set, is why the set is not attached to its Gateway at all
	// (NotAllowed, ParentNotAccepted); its listeners are then not checked.
	rejected *problem
	// specs are the set's listener entries as Gateway listeners (the types have
	// the same fields).
	specs []gatewayv1.Listener
	// listeners are the checked listeners, in spec order; none when rejected.
	listeners []*listenerInfo
	// attached is true when the set is accepted: not rejected, and at least one
	// of its listeners could be served once the precedence rules were applied.
	// The listeners of an attached set join the Gateway's merged listener list.
	attached bool
}

// accepted reports whether the set is accepted: it is attached and a listener
// of it is still servable after the conflicts with other Gateways on the same
// address and port (resolveBinds).
func (s *listenerSetInfo) accepted() bool {
	return s.attached && slices.ContainsFunc(s.listeners, (*listenerInfo).servable)
}

// translateListenerSets attaches the ListenerSets of the Input to the Gateways of
// Flax their parentRef names. A set is attached when the Gateway's
// spec.allowedListeners admits its namespace (by default no namespace is
// admitted), the Gateway is accepted and at least one of its listeners can be
// served. Listeners are merged in precedence order: the Gateway's own listeners
// first, then the sets' by creation time, then namespace/name; a set's listener
// that conflicts with one earlier in that order (another protocol on its port, or
// the same hostname on its port) is not accepted, and the earlier one keeps
// serving.
func (t *translator) translateListenerSets() {
	t.listenerSetByKey = map[types.NamespacedName]*listenerSetInfo{}
	for i := range t.in.ListenerSets {
		ls := &t.in.ListenerSets[i]
		g := t.listenerSetParent(ls)
		if g == nil {
			continue
		}
		s := &listenerSetInfo{ls: ls, key: key(ls), gateway: g}
		for _, e := range ls.Spec.Listeners {
			s.specs = append(s.specs, gatewayv1.Listener(e))
		}
		g.sets = append(g.sets, s)
		t.listenerSets = append(t.listenerSets, s)
		t.listenerSetByKey[s.key] = s
	}
	slices.SortFunc(t.listenerSets, func(a, b *listenerSetInfo) int { return compareKeys(a.key, b.key) })
	for _, g := range t.gateways {
		if len(g.sets) == 0 {
			continue
		}
		slices.SortFunc(g.sets, func(a, b *listenerSetInfo) int { return compareAge(a.ls, b.ls) })
		claims := newPortClaims()
		for _, l := range g.listeners {
			if l.unsupported == nil {
				claims.claim(l)
			}
		}
		for _, s := range g.sets {
			t.attachListenerSet(g, s, claims)
		}
	}
}

// listenerSetParent returns the Gateway of Flax the parentRef of ls names, or nil.
func (t *translator) listenerSetParent(ls *gatewayv1.ListenerSet) *gatewayInfo {
	ref := ls.Spec.ParentRef
	group, kind := gatewayv1.GroupName, "Gateway"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if (groupKind{group, kind}) != kindGateway {
		return nil
	}
	ns := ls.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return t.gatewayByKey[types.NamespacedName{Namespace: ns, Name: string(ref.Name)}]
}

// attachListenerSet decides whether set s attaches to g, checking its listeners
// against claims, the ports and hostnames of the listeners of g that take
// precedence; the listeners of an attached set are added to claims and to g.
func (t *translator) attachListenerSet(g *gatewayInfo, s *listenerSetInfo, claims *portClaims) {
	switch {
	case !g.allowsListenerSet(s.key.Namespace, t):
		s.rejected = &problem{
			reason: string(gatewayv1.ListenerSetReasonNotAllowed),
			message: fmt.Sprintf("Gateway %s does not allow ListenerSets of namespace %s (spec.allowedListeners %s); ask its owner to allow them",
				g.key, s.key.Namespace, g.describeAllowedListeners()),
		}
		return
	case !g.accepted():
		s.rejected = &problem{
			reason:  string(gatewayv1.ListenerSetReasonParentNotAccepted),
			message: fmt.Sprintf("Gateway %s is not accepted; see its conditions", g.key),
		}
		return
	}
	tentative := claims.clone()
	for i := range s.specs {
		l := t.translateListener(g, s, &s.specs[i])
		if c := tentative.conflict(l); c != nil {
			l.conflict = c
		} else if l.unsupported == nil {
			tentative.claim(l)
		}
		s.listeners = append(s.listeners, l)
	}
	s.attached = slices.ContainsFunc(s.listeners, (*listenerInfo).complete)
	if !s.attached {
		return
	}
	*claims = *tentative
	g.setListeners = append(g.setListeners, s.listeners...)
}

// allowsListenerSet reports whether spec.allowedListeners of g admits
// ListenerSets of namespace ns.
func (g *gatewayInfo) allowsListenerSet(ns string, t *translator) bool {
	al := g.gw.Spec.AllowedListeners
	if al == nil || al.Namespaces == nil || al.Namespaces.From == nil {
		return false
	}
	switch *al.Namespaces.From {
	case gatewayv1.NamespacesFromAll:
		return true
	case gatewayv1.NamespacesFromSame:
		return ns == g.key.Namespace
	case gatewayv1.NamespacesFromSelector:
		if al.Namespaces.Selector == nil {
			return false
		}
		sel, err := metav1.LabelSelectorAsSelector(al.Namespaces.Selector)
		return err == nil && sel.Matches(labels.Set(t.namespaceLabels(ns)))
	}
	return false
}

// allowsListenerSets reports whether spec.allowedListeners of g may admit any
// ListenerSet.
func (g *gatewayInfo) allowsListenerSets() bool {
	al := g.gw.Spec.AllowedListeners
	return al != nil && al.Namespaces != nil && al.Namespaces.From != nil && *al.Namespaces.From != gatewayv1.NamespacesFromNone
}

// describeAllowedListeners describes spec.allowedListeners of g for messages.
func (g *gatewayInfo) describeAllowedListeners() string {
	al := g.gw.Spec.AllowedListeners
	if al == nil || al.Namespaces == nil || al.Namespaces.From == nil {
		return "is not set, which allows none"
	}
	switch from := *al.Namespaces.From; from {
	case gatewayv1.NamespacesFromSelector:
		if al.Namespaces.Selector == nil {
			return "selects namespaces without a selector, which allows none"
		}
		sel, err := metav1.LabelSelectorAsSelector(al.Namespaces.Selector)
		if err != nil {
			return fmt.Sprintf("has an invalid selector (%v), which allows none", err)
		}
		return fmt.Sprintf("allows namespaces whose labels match %q", sel.String())
	default:
		return fmt.Sprintf("namespaces.from is %s", from)
	}
}

// attachedListenerSets counts the accepted sets of g.
func (g *gatewayInfo) attachedListenerSets() int32 {
	var n int32
	for _, s := range g.sets {
		if s.accepted() {
			n++
		}
	}
	return n
}

// portHost is a port and a listener hostname on it.
type portHost struct {
	port     gatewayv1.PortNumber
	hostname string
}

// portClaims are the protocols and hostnames the listeners that take precedence
// hold on each port.
type portClaims struct {
	protocols map[gatewayv1.PortNumber]map[gatewayv1.ProtocolType]bool
	hosts     map[portHost]bool
}

// newPortClaims returns empty claims.
func newPortClaims() *portClaims {
	return &portClaims{protocols: map[gatewayv1.PortNumber]map[gatewayv1.ProtocolType]bool{}, hosts: map[portHost]bool{}}
}

// clone returns a deep copy of c.
func (c *portClaims) clone() *portClaims {
	out := &portClaims{protocols: make(map[gatewayv1.PortNumber]map[gatewayv1.ProtocolType]bool, len(c.protocols)), hosts: maps.Clone(c.hosts)}
	for p, set := range c.protocols {
		out.protocols[p] = maps.Clone(set)
	}
	return out
}

// claim records the port, protocol and hostname of l.
func (c *portClaims) claim(l *listenerInfo) {
	set := c.protocols[l.spec.Port]
	if set == nil {
		set = map[gatewayv1.ProtocolType]bool{}
		c.protocols[l.spec.Port] = set
	}
	set[l.spec.Protocol] = true
	c.hosts[portHost{l.spec.Port, l.hostname}] = true
}

// conflict returns why l conflicts with the claims, or nil: its port is held with
// another protocol, or its hostname on its port is held.
func (c *portClaims) conflict(l *listenerInfo) *problem {
	port := l.spec.Port
	var others []string
	for p := range c.protocols[port] {
		if p != l.spec.Protocol {
			others = append(others, string(p))
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		return &problem{
			reason: string(gatewayv1.ListenerEntryReasonProtocolConflict),
			message: fmt.Sprintf("port %d of Gateway %s already serves %s for a listener that takes precedence (the Gateway's own listeners, then older ListenerSets); use another port",
				port, l.gateway.key, strings.Join(others, ", ")),
		}
	}
	if c.hosts[portHost{port, l.hostname}] {
		return &problem{
			reason: string(gatewayv1.ListenerEntryReasonHostnameConflict),
			message: fmt.Sprintf("a listener of Gateway %s that takes precedence (the Gateway's own listeners, then older ListenerSets) already serves %s on port %d; use another hostname or port",
				l.gateway.key, describeHostname(l.hostname), port),
		}
	}
	return nil
}

// listenerSetStatuses returns the status of every ListenerSet attached to, or
// naming, a Gateway of Flax.
func (t *translator) listenerSetStatuses() []ListenerSetStatus {
	out := make([]ListenerSetStatus, 0, len(t.listenerSets))
	for _, s := range t.listenerSets {
		ports := make(map[gatewayv1.SectionName]gatewayv1.PortNumber, len(s.listeners))
		for _, l := range s.listeners {
			ports[l.spec.Name] = l.spec.Port
		}
		out = append(out, ListenerSetStatus{NamespacedName: s.key, Gateway: s.gateway.key, Status: s.status(), ListenerPorts: ports})
	}
	return out
}

// status computes the status of s.
func (s *listenerSetInfo) status() gatewayv1.ListenerSetStatus {
	gen := s.ls.Generation
	st := gatewayv1.ListenerSetStatus{Listeners: make([]gatewayv1.ListenerEntryStatus, 0, len(s.listeners))}
	if p := s.rejected; p != nil {
		st.Conditions = []metav1.Condition{
			condition(gatewayv1.ListenerSetConditionAccepted, false, p.reason, p.message, gen),
			condition(gatewayv1.ListenerSetConditionProgrammed, false, p.reason, p.message, gen),
		}
		return st
	}
	var invalid []string
	anyProgrammed := false
	for _, l := range s.listeners {
		ls := l.status(gen)
		if l.conflict != nil {
			// The listener is not programmed because of the conflict: say so in
			// the Programmed condition too.
			for i := range ls.Conditions {
				if ls.Conditions[i].Type == string(gatewayv1.ListenerEntryConditionProgrammed) {
					ls.Conditions[i].Reason = l.conflict.reason
				}
			}
		}
		st.Listeners = append(st.Listeners, gatewayv1.ListenerEntryStatus(ls))
		if !l.servable() {
			invalid = append(invalid, string(l.spec.Name))
		}
		anyProgrammed = anyProgrammed || l.programmed()
	}

	g := s.gateway
	var accepted, programmed metav1.Condition
	switch {
	case !s.accepted():
		msg := "No listener of the ListenerSet can be served; see the conditions of each listener in status.listeners and fix them"
		accepted = condition(gatewayv1.ListenerSetConditionAccepted, false, gatewayv1.ListenerSetReasonListenersNotValid, msg, gen)
		programmed = condition(gatewayv1.ListenerSetConditionProgrammed, false, gatewayv1.ListenerSetReasonListenersNotValid, msg, gen)
		return withConditions(st, accepted, programmed)
	case len(invalid) > 0:
		what := "listener " + invalid[0] + " is"
		if len(invalid) > 1 {
			what = "listeners " + strings.Join(invalid, ", ") + " are"
		}
		accepted = condition(gatewayv1.ListenerSetConditionAccepted, true, gatewayv1.ListenerSetReasonListenersNotValid, fmt.Sprintf(
			"The ListenerSet is attached to Gateway %s, but %s not served; see status.listeners", g.key, what), gen)
	default:
		accepted = condition(gatewayv1.ListenerSetConditionAccepted, true, gatewayv1.ListenerSetReasonAccepted,
			fmt.Sprintf("The ListenerSet is attached to Gateway %s", g.key), gen)
	}
	switch {
	case g.noAddress != nil || len(g.statusAddresses) == 0:
		programmed = condition(gatewayv1.ListenerSetConditionProgrammed, false, listenerSetReasonParentNotProgrammed,
			fmt.Sprintf("Gateway %s has no address yet; see its Programmed condition", g.key), gen)
	case !anyProgrammed:
		programmed = condition(gatewayv1.ListenerSetConditionProgrammed, false, gatewayv1.ListenerSetReasonListenersNotValid,
			"No listener of the ListenerSet can be programmed; see status.listeners", gen)
	default:
		programmed = condition(gatewayv1.ListenerSetConditionProgrammed, true, gatewayv1.ListenerSetReasonProgrammed,
			fmt.Sprintf("The ListenerSet's listeners are programmed on the addresses of Gateway %s", g.key), gen)
	}
	return withConditions(st, accepted, programmed)
}

// withConditions returns st with conds as its conditions.
func withConditions(st gatewayv1.ListenerSetStatus, conds ...metav1.Condition) gatewayv1.ListenerSetStatus {
	st.Conditions = conds
	return st
}
