package translate

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// l4Route is one TCPRoute, TLSRoute or UDPRoute and what was found about it.
// Each kind has one rule (the API allows no more) whose weighted backendRefs
// become the TCP backends of the dataplane route (a UDP route's too).
type l4Route struct {
	kind groupKind
	obj  metav1.Object
	key  types.NamespacedName
	// parentRefs are the route's spec.parentRefs.
	parentRefs []gatewayv1.ParentReference
	// specHostnames are the TLSRoute's spec.hostnames; hostnames the valid ones,
	// lowercase.
	specHostnames []gatewayv1.Hostname
	hostnames     []string
	// backends are the translated backendRefs of the rule; nil when no
	// connection is to be forwarded (no rule, or every weight 0).
	backends []*dataplanev1.TCPBackend
	// groups are the backend groups the backends refer to.
	groups []string
	// refProblems are the unresolved references (ResolvedRefs False).
	refProblems problems
	// notes are remarks appended to the Accepted condition's message.
	notes []string
	// parents are the status entries of Flax's parents.
	parents []gatewayv1.RouteParentStatus
}

// name is the name of the route's dataplane route: its rule's, as HTTPRoute rules
// are named.
func (ri *l4Route) name() string { return ri.key.Namespace + "/" + ri.key.Name + "/rule-0" }

// tlsEntryKey identifies the dataplane TLS route of one TLSRoute and mode on a
// bind: a TLSRoute attached to a passthrough and a terminating listener of one
// port has one of each.
type tlsEntryKey struct {
	route     types.NamespacedName
	terminate bool
}

// translateL4Routes attaches every TCPRoute, TLSRoute and UDPRoute to the
// listeners of Flax's Gateways and places them on the binds, oldest route
// first: a TCP (UDP) listener forwards to its oldest attached TCPRoute
// (UDPRoute), and a server name of a TLS listener goes to the oldest TLSRoute
// that claims it.
func (t *translator) translateL4Routes() {
	for i := range t.in.TCPRoutes {
		r := &t.in.TCPRoutes[i]
		ri := &l4Route{kind: kindTCPRoute, obj: r, key: key(r), parentRefs: r.Spec.ParentRefs}
		if len(r.Spec.Rules) > 0 {
			ri.backends, ri.groups = t.tcpBackends(ri, r.Spec.Rules[0].BackendRefs)
		}
		t.tcpRoutes = append(t.tcpRoutes, ri)
	}
	for i := range t.in.TLSRoutes {
		r := &t.in.TLSRoutes[i]
		ri := &l4Route{kind: kindTLSRoute, obj: r, key: key(r), parentRefs: r.Spec.ParentRefs, specHostnames: r.Spec.Hostnames}
		for _, h := range r.Spec.Hostnames {
			lh := strings.ToLower(string(h))
			if !validHostname(lh) {
				ri.notes = append(ri.notes, fmt.Sprintf("hostname %q is not a valid DNS name or wildcard and is ignored", h))
				continue
			}
			if !slices.Contains(ri.hostnames, lh) {
				ri.hostnames = append(ri.hostnames, lh)
			}
		}
		if len(r.Spec.Rules) > 0 {
			ri.backends, ri.groups = t.tcpBackends(ri, r.Spec.Rules[0].BackendRefs)
		}
		t.tlsRoutes = append(t.tlsRoutes, ri)
	}
	for i := range t.in.UDPRoutes {
		r := &t.in.UDPRoutes[i]
		ri := &l4Route{kind: kindUDPRoute, obj: r, key: key(r), parentRefs: r.Spec.ParentRefs}
		if len(r.Spec.Rules) > 0 {
			ri.backends, ri.groups = t.tcpBackends(ri, r.Spec.Rules[0].BackendRefs)
		}
		t.udpRoutes = append(t.udpRoutes, ri)
	}
	for _, list := range [][]*l4Route{t.tcpRoutes, t.tlsRoutes, t.udpRoutes} {
		slices.SortFunc(list, func(a, b *l4Route) int { return compareAge(a.obj, b.obj) })
		for _, ri := range list {
			for i := range ri.parentRefs {
				t.attachL4(ri, i)
			}
		}
	}
}

// tcpBackends translates the backendRefs of a TCPRoute, TLSRoute or UDPRoute
// rule. A reference that cannot be resolved keeps its weight as a backend that
// closes the connections (drops the datagrams) it gets.
func (t *translator) tcpBackends(ri *l4Route, refs []gatewayv1.BackendRef) ([]*dataplanev1.TCPBackend, []string) {
	var out []*dataplanev1.TCPBackend
	var groups []string
	var total uint64
	for j := range refs {
		ref := &refs[j]
		w := uint32(1)
		if ref.Weight != nil {
			w = uint32(max(*ref.Weight, 0))
		}
		total += uint64(w)
		where := fmt.Sprintf("rules[0].backendRefs[%d]", j)
		consequence := fmt.Sprintf("its share of connections (weight %d) is closed", w)
		if ri.kind == kindUDPRoute {
			consequence = fmt.Sprintf("the datagrams of its share of flows (weight %d) are dropped", w)
		}
		group, _, p := t.serviceBackend(ri.kind, ri.key.Namespace, ref.BackendObjectReference, where, consequence)
		if p != nil {
			ri.refProblems.add(p.reason, p.message)
			out = append(out, &dataplanev1.TCPBackend{Target: &dataplanev1.TCPBackend_Reject{Reject: true}, Weight: w})
			continue
		}
		groups = append(groups, group)
		out = append(out, &dataplanev1.TCPBackend{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: group}, Weight: w})
	}
	if total == 0 {
		// Nothing gets a share: every connection is closed.
		return nil, nil
	}
	slices.Sort(groups)
	return out, slices.Compact(groups)
}

// attachL4 evaluates parentRefs[i] of a TCPRoute, TLSRoute or UDPRoute: it attaches the
// route to the listeners it selects, places it on their binds and records the
// parent's status entry.
func (t *translator) attachL4(ri *l4Route, i int) {
	ref := ri.parentRefs[i]
	g, ok := t.parentGatewayIn(ri.key.Namespace, ref)
	if !ok {
		return
	}
	for _, prev := range ri.parentRefs[:i] {
		if sameParentRef(prev, ref, ri.key.Namespace) {
			return
		}
	}
	gen := ri.obj.GetGeneration()
	entry := gatewayv1.RouteParentStatus{ParentRef: *ref.DeepCopy(), ControllerName: gatewayv1.GatewayController(t.in.ControllerName)}
	finish := func(accepted metav1.Condition) {
		entry.Conditions = []metav1.Condition{accepted, ri.resolvedRefs(gen)}
		ri.parents = append(ri.parents, entry)
	}
	reject := func(reason gatewayv1.RouteConditionReason, msg string) {
		finish(condition(gatewayv1.RouteConditionAccepted, false, reason, msg, gen))
	}

	if !g.accepted() {
		reject(gatewayv1.RouteReasonNoMatchingParent, fmt.Sprintf(
			"Gateway %s is not accepted, so no route can attach to it; see the Gateway's conditions", g.key))
		return
	}
	intersect := func(string) []string { return []string{""} } // TCP and UDP routes have no hostnames
	if ri.kind == kindTLSRoute {
		intersect = ri.intersect
	}
	attached, reason, msg := matchListeners(parent{gateway: g}, ref, i, ri.kind.kind, ri.key.Namespace, intersect)
	if len(attached) == 0 {
		reject(reason, msg)
		return
	}
	names := make([]string, len(attached))
	var notes []string
	for j, a := range attached {
		names[j] = string(a.listener.spec.Name)
		a.listener.attached[routeRef{kind: ri.kind.kind, key: ri.key}] = struct{}{}
		notes = append(notes, t.placeL4(ri, a)...)
	}
	msg = fmt.Sprintf("The route is attached to listener %s of Gateway %s", strings.Join(names, ", "), g.key)
	if len(names) > 1 {
		msg = fmt.Sprintf("The route is attached to listeners %s of Gateway %s", strings.Join(names, ", "), g.key)
	}
	for _, n := range append(slices.Clone(ri.notes), slices.Compact(notes)...) {
		msg += "; " + n
	}
	finish(condition(gatewayv1.RouteConditionAccepted, true, gatewayv1.RouteReasonAccepted, msg, gen))
}

// parentGatewayIn returns the Gateway of Flax that ref, a parentRef of a route in
// namespace ns, refers to.
func (t *translator) parentGatewayIn(ns string, ref gatewayv1.ParentReference) (*gatewayInfo, bool) {
	group, kind := gatewayv1.GroupName, "Gateway"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if (groupKind{group, kind}) != kindGateway {
		return nil, false
	}
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	g, ok := t.gatewayByKey[types.NamespacedName{Namespace: ns, Name: string(ref.Name)}]
	return g, ok
}

// intersect returns the hostnames a TLSRoute serves on a listener of hostname
// lh; none means the route does not match the listener.
func (ri *l4Route) intersect(lh string) []string {
	if len(ri.specHostnames) == 0 {
		return []string{lh}
	}
	var out []string
	for _, rh := range ri.hostnames {
		if h, ok := intersect(lh, rh); ok && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// resolvedRefs is the route's ResolvedRefs condition.
func (ri *l4Route) resolvedRefs(gen int64) metav1.Condition {
	if len(ri.refProblems) > 0 {
		return condition(gatewayv1.RouteConditionResolvedRefs, false, ri.refProblems.reason(), ri.refProblems.message(), gen)
	}
	return condition(gatewayv1.RouteConditionResolvedRefs, true, gatewayv1.RouteReasonResolvedRefs, "All references are resolved", gen)
}

// placeL4 puts an attached route on the binds of the listener, when the
// listener is programmed, and returns notes on what an older route keeps from
// it. Routes are placed oldest first, so what is taken is taken by an older
// route.
func (t *translator) placeL4(ri *l4Route, a attachment) []string {
	l := a.listener
	if !l.programmed() {
		return nil
	}
	var notes []string
	placed := false
	for _, addr := range l.gateway.bindAddresses {
		b := t.binds[bindKeyOf(addr, l)]
		if b == nil {
			continue
		}
		switch b.protocol {
		case dataplanev1.Listener_TCP, dataplanev1.Listener_UDP:
			switch {
			case b.tcp == nil:
				b.tcp = ri
				placed = true
			case b.tcp != ri:
				what := "connections"
				if b.protocol == dataplanev1.Listener_UDP {
					what = "datagrams"
				}
				notes = append(notes, fmt.Sprintf(
					"listener %s forwards its %s to the older %s %s only, so this route gets none until that one is removed or detached",
					l.spec.Name, what, ri.kind.kind, b.tcp.key))
			}
		case dataplanev1.Listener_TLS:
			hosts := b.hostnames()
			for _, h := range a.hostnames {
				if own, ok := owner(hosts, h); !ok || own != l.hostname {
					continue // a more specific listener serves h
				}
				switch holder, taken := b.tlsHosts[h]; {
				case !taken:
					b.tlsHosts[h] = ri
					k := tlsEntryKey{route: ri.key, terminate: l.terminate}
					e := b.tls[k]
					if e == nil {
						e = &dataplanev1.TLSRoute{Name: ri.name(), Terminate: l.terminate, Backends: ri.backends}
						b.tls[k] = e
					}
					if h != "" {
						e.Hostnames = append(e.Hostnames, h)
					}
					placed = true
				case holder != ri:
					notes = append(notes, fmt.Sprintf(
						"%s on listener %s goes to the older TLSRoute %s, which claims it too", describeHostname(h), l.spec.Name, holder.key))
				}
			}
		}
	}
	if placed {
		for _, name := range ri.groups {
			t.groups[name].used = true
			t.groups[name].gateways[l.gateway.key] = true
		}
	}
	return notes
}

// tcpRoute returns the dataplane route of a TCP bind: its oldest attached
// TCPRoute, or, when none is attached, a route without backends, which closes
// every connection (the port stays bound, as an HTTP listener without routes
// answers 404).
func (b *bind) tcpRoute() *dataplanev1.TCPRoute {
	if b.tcp == nil {
		return &dataplanev1.TCPRoute{Name: b.name + "/no-route"}
	}
	return &dataplanev1.TCPRoute{Name: b.tcp.name(), Backends: b.tcp.backends}
}

// udpRoute returns the dataplane route of a UDP bind: its oldest attached
// UDPRoute, or, when none is attached, a route without backends, which drops
// every datagram (the port stays bound).
func (b *bind) udpRoute() *dataplanev1.UDPRoute {
	if b.tcp == nil {
		return &dataplanev1.UDPRoute{Name: b.name + "/no-route"}
	}
	return &dataplanev1.UDPRoute{Name: b.tcp.name(), Backends: b.tcp.backends}
}

// tlsRoutes returns the dataplane routes of a TLS bind, sorted by name: those
// placed, and, for the hostname of every usable listener that no route claims
// as such (one without a valid certificate included, as on HTTP ports), a route "<namespace>/<gateway>/<listener>/unrouted" without
// backends, which closes the connections. It keeps the server names a listener
// owns, but none of its routes serves, from the routes of a less specific
// listener (listener isolation). A route
// placed through both a terminating and a passthrough listener has its
// terminating part named with a "/terminate" suffix.
func (b *bind) tlsRoutes() []*dataplanev1.TLSRoute {
	out := make([]*dataplanev1.TLSRoute, 0, len(b.tls)+len(b.members))
	for k, e := range b.tls {
		r := &dataplanev1.TLSRoute{Name: e.Name, Hostnames: slices.Clone(e.Hostnames), Terminate: e.Terminate, Backends: e.Backends}
		if k.terminate {
			if _, both := b.tls[tlsEntryKey{route: k.route}]; both {
				r.Name += "/terminate"
			}
		}
		slices.Sort(r.Hostnames)
		out = append(out, r)
	}
	reserved := map[string]bool{}
	for _, l := range b.members {
		if !l.usable() {
			continue
		}
		if _, taken := b.tlsHosts[l.hostname]; taken || reserved[l.hostname] {
			continue
		}
		reserved[l.hostname] = true
		r := &dataplanev1.TLSRoute{Name: l.gateway.key.String() + "/" + string(l.spec.Name) + "/unrouted"}
		if l.hostname != "" {
			r.Hostnames = []string{l.hostname}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *dataplanev1.TLSRoute) int { return compareStrings(a.Name, b.Name) })
	return out
}

// l4RouteStatuses returns the status of every route of list.
func l4RouteStatuses(list []*l4Route) []RouteStatus {
	return routeStatusesOf(list, func(ri *l4Route) (types.NamespacedName, []gatewayv1.RouteParentStatus) {
		return ri.key, ri.parents
	})
}
