package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// routeInfo is one HTTPRoute or GRPCRoute and what was found about it. A
// GRPCRoute is translated as the HTTPRoute it converts to (see grpcAsHTTPRoute),
// so both kinds share the rule translation, attachment and placement.
type routeInfo struct {
	// kind is kindHTTPRoute or kindGRPCRoute.
	kind groupKind
	// route is the HTTPRoute, or the conversion of the GRPCRoute.
	route *gatewayv1.HTTPRoute
	key   types.NamespacedName
	// converted holds, for a GRPCRoute, why a rule could not be converted, by
	// rule index.
	converted map[int]*conversionProblem
	// hostnames are the valid route hostnames, lowercase; empty matches any.
	hostnames []string
	// rules are the translated rules; a dropped rule is nil.
	rules []*dataplanev1.Route
	// groups are the backend groups the rules refer to.
	groups []string
	// tlsPorts are the Service ports of its backend references that a
	// BackendTLSPolicy holds.
	tlsPorts []tlsPort
	// clientRules are the rules with the groups renamed for the client
	// certificate of a Gateway's spec.tls.backend (clientGroupName), by the
	// certificate's Secret.
	clientRules map[types.NamespacedName][]*dataplanev1.Route
	// refProblems are the unresolved references (ResolvedRefs False).
	refProblems problems
	// ruleProblems are the rules that could not be translated (PartiallyInvalid).
	ruleProblems problems
	// ruleFates say, for each of ruleProblems, what happens to the rule's requests.
	ruleFates []string
	// invalidRules counts the rules in ruleProblems.
	invalidRules int
	// notes are remarks appended to the Accepted condition's message.
	notes []string
	// parents are the status entries of Flax's parents.
	parents []gatewayv1.RouteParentStatus
	// gateways are the Gateways on whose listeners the route's rules are served.
	gateways map[types.NamespacedName]bool
}

// ruleName is the name of the dataplane route of rule i:
// "<namespace>/<route>/rule-<i>", or ".../grpc-rule-<i>" for a GRPCRoute, so
// that an HTTPRoute and a GRPCRoute of the same name have distinct routes.
func (ri *routeInfo) ruleName(i int) string {
	if ri.kind == kindGRPCRoute {
		return fmt.Sprintf("%s/%s/grpc-rule-%d", ri.key.Namespace, ri.key.Name, i)
	}
	return fmt.Sprintf("%s/%s/rule-%d", ri.key.Namespace, ri.key.Name, i)
}

// errorStatus is the status of the direct responses that stand for what
// cannot be served.
func (ri *routeInfo) errorStatus() uint32 {
	if ri.kind == kindGRPCRoute {
		return grpcErrorStatus
	}
	return errorStatus
}

// ref identifies the route among routes of every kind.
func (ri *routeInfo) ref() routeRef { return routeRef{kind: ri.kind.kind, key: ri.key} }

// routeRef identifies a route of any kind.
type routeRef struct {
	kind string
	key  types.NamespacedName
}

// allRulesInvalid reports whether no rule of the route could be translated.
func (ri *routeInfo) allRulesInvalid() bool {
	return ri.invalidRules > 0 && ri.invalidRules == len(ri.route.Spec.Rules)
}

// attachment is a route attached to a listener, with the hostnames it serves
// there ("" for any).
type attachment struct {
	listener  *listenerInfo
	hostnames []string
}

// translateRoutes attaches every HTTPRoute and GRPCRoute to the listeners of
// Flax's Gateways, translates its rules and places them on the virtual hosts of
// the binds, oldest route first (an HTTPRoute before a GRPCRoute of the same
// age and name), which decides the conflicts between the two kinds.
func (t *translator) translateRoutes() {
	t.routes = make([]*routeInfo, 0, len(t.in.HTTPRoutes)+len(t.in.GRPCRoutes))
	for i := range t.in.HTTPRoutes {
		r := &t.in.HTTPRoutes[i]
		t.routes = append(t.routes, &routeInfo{kind: kindHTTPRoute, route: r, key: key(r), gateways: map[types.NamespacedName]bool{}})
	}
	for i := range t.in.GRPCRoutes {
		r := &t.in.GRPCRoutes[i]
		hr, converted := grpcAsHTTPRoute(r)
		t.routes = append(t.routes, &routeInfo{kind: kindGRPCRoute, route: hr, key: key(r), converted: converted, gateways: map[types.NamespacedName]bool{}})
	}
	slices.SortFunc(t.routes, func(a, b *routeInfo) int {
		return cmp.Or(compareAge(a.route, b.route), compareStrings(b.kind.kind, a.kind.kind))
	})
	for _, ri := range t.routes {
		if !t.hasOurParent(ri.route) {
			continue
		}
		ri.routeHostnames()
		t.translateRules(ri)
		var attachments []attachment
		for i := range ri.route.Spec.ParentRefs {
			attachments = append(attachments, t.attach(ri, i)...)
		}
		for _, a := range attachments {
			t.place(ri, a)
		}
	}
}

// hasOurParent reports whether a parentRef of r refers to a Gateway of Flax or to
// a ListenerSet of one.
func (t *translator) hasOurParent(r *gatewayv1.HTTPRoute) bool {
	for _, ref := range r.Spec.ParentRefs {
		if _, ok := t.parentOf(r, ref); ok {
			return true
		}
	}
	return false
}

// parent is what a parentRef of a route refers to: a Gateway of Flax, or a
// ListenerSet whose parent is one.
type parent struct {
	gateway *gatewayInfo
	// set is the ListenerSet; nil for a Gateway.
	set *listenerSetInfo
}

// String names the parent for messages.
func (p parent) String() string {
	if p.set != nil {
		return "ListenerSet " + p.set.key.String()
	}
	return "Gateway " + p.gateway.key.String()
}

// kind is the kind of the parent.
func (p parent) kind() string {
	if p.set != nil {
		return "ListenerSet"
	}
	return "Gateway"
}

// listeners are the listeners a route may attach to through the parent: a
// Gateway's own listeners (not those of its ListenerSets), or the set's.
func (p parent) listeners() []*listenerInfo {
	if p.set != nil {
		return p.set.listeners
	}
	return p.gateway.listeners
}

// parentOf returns the parent of Flax that ref, a parentRef of r, refers to.
func (t *translator) parentOf(r *gatewayv1.HTTPRoute, ref gatewayv1.ParentReference) (parent, bool) {
	group, kind := gatewayv1.GroupName, "Gateway"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := r.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	k := types.NamespacedName{Namespace: ns, Name: string(ref.Name)}
	switch (groupKind{group, kind}) {
	case kindGateway:
		if g, ok := t.gatewayByKey[k]; ok {
			return parent{gateway: g}, true
		}
	case kindListenerSet:
		if s, ok := t.listenerSetByKey[k]; ok {
			return parent{gateway: s.gateway, set: s}, true
		}
	}
	return parent{}, false
}

// routeHostnames lowercases the route's hostnames and drops invalid ones.
func (ri *routeInfo) routeHostnames() {
	for _, h := range ri.route.Spec.Hostnames {
		lh := strings.ToLower(string(h))
		if !validHostname(lh) {
			ri.notes = append(ri.notes, fmt.Sprintf("hostname %q is not a valid DNS name or wildcard and is ignored", h))
			continue
		}
		if !slices.Contains(ri.hostnames, lh) {
			ri.hostnames = append(ri.hostnames, lh)
		}
	}
}

// sameParentRef reports whether two parentRefs of one route refer to the same
// parent and section.
func sameParentRef(a, b gatewayv1.ParentReference, routeNS string) bool {
	str := func(p *string, def string) string {
		if p == nil || *p == "" {
			return def
		}
		return *p
	}
	norm := func(r gatewayv1.ParentReference) [6]string {
		port := ""
		if r.Port != nil {
			port = fmt.Sprint(*r.Port)
		}
		return [6]string{
			str((*string)(r.Group), gatewayv1.GroupName), str((*string)(r.Kind), "Gateway"),
			str((*string)(r.Namespace), routeNS), string(r.Name), str((*string)(r.SectionName), ""), port,
		}
	}
	return norm(a) == norm(b)
}

// Attachment stages, in the order they are checked; a parent that fails reports
// the furthest stage any of its candidate listeners reached.
const (
	stageListenerInvalid = iota
	stageNotAllowed
	stageHostname
)

// matchListeners returns the listeners of parent p that a route of kind in
// namespace ns attaches to through its parentRefs[i], ref, with the
// hostnames intersect gives for each (none: the listener's hostname matches
// none of the route's). When there is none it returns the reason and message
// of the route's Accepted=False condition for the parent, from the furthest
// stage a candidate listener reached. HTTP, TCP and TLS routes share it.
func matchListeners(p parent, ref gatewayv1.ParentReference, i int, kind, ns string, intersect func(hostname string) []string) ([]attachment, gatewayv1.RouteConditionReason, string) {
	var candidates []*listenerInfo
	for _, l := range p.listeners() {
		if ref.SectionName != nil && *ref.SectionName != "" && l.spec.Name != *ref.SectionName {
			continue
		}
		if ref.Port != nil && *ref.Port != 0 && l.spec.Port != *ref.Port {
			continue
		}
		candidates = append(candidates, l)
	}
	if len(candidates) == 0 {
		return nil, gatewayv1.RouteReasonNoMatchingParent, noCandidateMessage(p, ref, i)
	}
	stage := -1
	var why []string
	var attached []attachment
	for _, l := range candidates {
		switch {
		case !l.takes(kind):
			stage = max(stage, stageNotAllowed)
			why = append(why, fmt.Sprintf("listener %s has protocol %s, which does not take %ss", l.spec.Name, l.spec.Protocol, kind))
			continue
		case !l.valid():
			stage = max(stage, stageListenerInvalid)
			reason := l.unsupported
			if reason == nil {
				reason = l.conflict
			}
			why = append(why, fmt.Sprintf("listener %s is not accepted (%s)", l.spec.Name, reason.reason))
			continue
		case !l.allows(kind):
			stage = max(stage, stageNotAllowed)
			why = append(why, fmt.Sprintf("listener %s does not allow %ss (allowedRoutes.kinds)", l.spec.Name, kind))
			continue
		case !l.allowNamespace(ns):
			stage = max(stage, stageNotAllowed)
			why = append(why, fmt.Sprintf("listener %s allows %s", l.spec.Name, l.namespacePolicy))
			continue
		}
		hs := intersect(l.hostname)
		if len(hs) == 0 {
			stage = max(stage, stageHostname)
			why = append(why, fmt.Sprintf("listener %s serves hostname %s, which matches none of the route's hostnames", l.spec.Name, l.hostname))
			continue
		}
		attached = append(attached, attachment{listener: l, hostnames: hs})
	}
	if len(attached) > 0 {
		return attached, "", ""
	}
	switch stage {
	case stageHostname:
		return nil, gatewayv1.RouteReasonNoMatchingListenerHostname, strings.Join(why, "; ") +
			"; add a hostname the listener serves to spec.hostnames, or attach the route to another listener"
	case stageNotAllowed:
		return nil, gatewayv1.RouteReasonNotAllowedByListeners, strings.Join(why, "; ") +
			"; change the listener's allowedRoutes or attach the route to another listener"
	default:
		return nil, gatewayv1.RouteReasonNoMatchingParent, strings.Join(why, "; ") +
			fmt.Sprintf("; fix the listener (see the %s's status) or attach the route to another listener", p.kind())
	}
}

// attach evaluates parentRefs[i] of the route: it records the parent's status
// entry and returns the listeners the route attaches to through it.
func (t *translator) attach(ri *routeInfo, i int) []attachment {
	r := ri.route
	ref := r.Spec.ParentRefs[i]
	p, ok := t.parentOf(r, ref)
	if !ok {
		return nil
	}
	g := p.gateway
	for _, prev := range r.Spec.ParentRefs[:i] {
		if sameParentRef(prev, ref, r.Namespace) {
			return nil
		}
	}
	gen := r.Generation
	entry := gatewayv1.RouteParentStatus{ParentRef: *ref.DeepCopy(), ControllerName: gatewayv1.GatewayController(t.in.ControllerName)}
	reject := func(reason gatewayv1.RouteConditionReason, msg string) []attachment {
		entry.Conditions = append([]metav1.Condition{condition(gatewayv1.RouteConditionAccepted, false, reason, msg, gen)}, ri.otherConditions(gen)...)
		ri.parents = append(ri.parents, entry)
		return nil
	}

	if !g.accepted() {
		return reject(gatewayv1.RouteReasonNoMatchingParent, fmt.Sprintf(
			"Gateway %s is not accepted, so no route can attach to it; see the Gateway's conditions", g.key))
	}
	if p.set != nil && !p.set.attached {
		return reject(gatewayv1.RouteReasonNoMatchingParent, fmt.Sprintf(
			"%s is not accepted by Gateway %s, so no route can attach to it; see the ListenerSet's conditions", p, g.key))
	}
	attached, reason, msg := matchListeners(p, ref, i, ri.kind.kind, r.Namespace, ri.intersect)
	if len(attached) == 0 {
		return reject(reason, msg)
	}
	if ri.allRulesInvalid() {
		return reject(gatewayv1.RouteConditionReason(ri.ruleProblems.reason()),
			"No rule of the route can be served, so the route is not attached: "+ri.ruleProblems.message())
	}
	attached, conflicts := ri.withoutConflicts(attached)
	if len(attached) == 0 {
		return reject(gatewayv1.RouteReasonNotAllowedByListeners, strings.Join(conflicts, "; ")+
			"; the Gateway API serves only the older of an HTTPRoute and a GRPCRoute whose hostnames meet on a listener: give the routes distinct hostnames or attach them to different listeners")
	}
	ri.notes = append(ri.notes, conflicts...)
	names := make([]string, len(attached))
	for j, a := range attached {
		names[j] = string(a.listener.spec.Name)
		a.listener.attached[ri.ref()] = struct{}{}
		a.listener.claims = append(a.listener.claims, hostClaim{route: ri.ref(), hostnames: a.hostnames})
	}
	msg = fmt.Sprintf("The route is attached to listener %s of %s", strings.Join(names, ", "), p)
	if len(names) > 1 {
		msg = fmt.Sprintf("The route is attached to listeners %s of %s", strings.Join(names, ", "), p)
	}
	for _, n := range ri.notes {
		msg += "; " + n
	}
	entry.Conditions = append([]metav1.Condition{condition(gatewayv1.RouteConditionAccepted, true, gatewayv1.RouteReasonAccepted, msg, gen)},
		ri.otherConditions(gen)...)
	ri.parents = append(ri.parents, entry)
	return attached
}

// hostClaim records the hostnames an HTTPRoute or GRPCRoute serves on a
// listener it is attached to.
type hostClaim struct {
	route     routeRef
	hostnames []string
}

// withoutConflicts drops from attached the listeners where an older route of
// the other kind (HTTPRoute against GRPCRoute) is attached with a hostname that
// meets one of the route's there: the Gateway API accepts only the older of the
// two. It returns the remaining attachments and a note per dropped listener.
func (ri *routeInfo) withoutConflicts(attached []attachment) ([]attachment, []string) {
	var kept []attachment
	var notes []string
	for _, a := range attached {
		var older *hostClaim
		for k := range a.listener.claims {
			c := &a.listener.claims[k]
			if c.route.kind != ri.kind.kind && hostnamesMeet(c.hostnames, a.hostnames) {
				older = c
				break
			}
		}
		if older == nil {
			kept = append(kept, a)
			continue
		}
		notes = append(notes, fmt.Sprintf("listener %s already serves the older %s %s on hostnames this route shares, so the route is not attached there",
			a.listener.spec.Name, older.route.kind, older.route.key))
	}
	return kept, notes
}

// hostnamesMeet reports whether a name is matched by a hostname of a and one of
// b ("" matches every name).
func hostnamesMeet(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if _, ok := intersect(x, y); ok {
				return true
			}
		}
	}
	return false
}

// noCandidateMessage explains why parentRefs[i] selects no listener of p.
func noCandidateMessage(p parent, ref gatewayv1.ParentReference, i int) string {
	var names, ports []string
	for _, l := range p.listeners() {
		names = append(names, string(l.spec.Name))
		p := fmt.Sprint(l.spec.Port)
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	var sel []string
	if ref.SectionName != nil && *ref.SectionName != "" {
		sel = append(sel, fmt.Sprintf("named %s", *ref.SectionName))
	}
	if ref.Port != nil && *ref.Port != 0 {
		sel = append(sel, fmt.Sprintf("on port %d", *ref.Port))
	}
	return fmt.Sprintf("%s has no listener %s (its listeners are %s on ports %s); fix parentRefs[%d].sectionName or .port",
		p, strings.Join(sel, " and "), strings.Join(names, ", "), strings.Join(ports, ", "), i)
}

// intersect returns the hostnames the route serves on a listener of hostname lh;
// none means the route does not match the listener.
func (ri *routeInfo) intersect(lh string) []string {
	if len(ri.route.Spec.Hostnames) == 0 {
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

// otherConditions are the route conditions that do not depend on the parent:
// ResolvedRefs and, when some rules are invalid, PartiallyInvalid.
func (ri *routeInfo) otherConditions(gen int64) []metav1.Condition {
	resolved := condition(gatewayv1.RouteConditionResolvedRefs, true, gatewayv1.RouteReasonResolvedRefs, "All references are resolved", gen)
	if len(ri.refProblems) > 0 {
		resolved = condition(gatewayv1.RouteConditionResolvedRefs, false, ri.refProblems.reason(), ri.refProblems.message(), gen)
	}
	conds := []metav1.Condition{resolved}
	if ri.invalidRules > 0 && !ri.allRulesInvalid() {
		msgs := make([]string, len(ri.ruleProblems))
		for i, p := range ri.ruleProblems {
			msgs[i] = p.message + "; " + ri.ruleFates[i]
		}
		conds = append(conds, condition(gatewayv1.RouteConditionPartiallyInvalid, true, ri.ruleProblems.reason(),
			"Dropped Rule: "+strings.Join(msgs, "; "), gen))
	}
	return conds
}

// place adds the rules of an attached route to the virtual hosts of the
// listener's binds, honouring listener isolation.
func (t *translator) place(ri *routeInfo, a attachment) {
	l := a.listener
	if !l.programmed() {
		return
	}
	placed := false
	cert := l.gateway.clientCert
	rules := t.rulesFor(ri, cert)
	for _, addr := range l.gateway.bindAddresses {
		b := t.binds[bindKeyOf(addr, l)]
		if b == nil {
			continue
		}
		hosts := b.hostnames()
		for _, h := range a.hostnames {
			if own, ok := owner(hosts, h); !ok || own != l.hostname {
				continue // a more specific listener serves h
			}
			vh := b.vhost(h)
			if vh.seen[ri.key] {
				continue
			}
			vh.seen[ri.key] = true
			for _, r := range rules {
				if r != nil {
					vh.routes = append(vh.routes, r)
				}
			}
			placed = true
		}
	}
	if placed {
		ri.gateways[l.gateway.key] = true
		for _, name := range ri.groups {
			g := t.groups[name]
			if cert != nil && g.tls != nil {
				g = t.clientGroup(g, cert)
			}
			g.used = true
			g.gateways[l.gateway.key] = true
		}
		for _, tp := range ri.tlsPorts {
			t.noteTLSPortUse(tp, l.gateway.key)
		}
	}
}

// routeStatuses returns the status of every HTTPRoute or GRPCRoute (kind).
func (t *translator) routeStatuses(kind groupKind) []RouteStatus {
	var list []*routeInfo
	for _, ri := range t.routes {
		if ri.kind == kind {
			list = append(list, ri)
		}
	}
	return routeStatusesOf(list, func(ri *routeInfo) (types.NamespacedName, []gatewayv1.RouteParentStatus) {
		return ri.key, ri.parents
	})
}

// routeStatusesOf returns the status of every route of list, of any kind,
// from each one's name and parent entries, sorted by name.
func routeStatusesOf[R any](list []R, status func(R) (types.NamespacedName, []gatewayv1.RouteParentStatus)) []RouteStatus {
	out := make([]RouteStatus, 0, len(list))
	for _, r := range list {
		key, parents := status(r)
		if parents == nil {
			parents = []gatewayv1.RouteParentStatus{}
		}
		out = append(out, RouteStatus{
			NamespacedName: key,
			Status:         gatewayv1.HTTPRouteStatus{RouteStatus: gatewayv1.RouteStatus{Parents: parents}},
		})
	}
	slices.SortFunc(out, func(a, b RouteStatus) int { return compareKeys(a.NamespacedName, b.NamespacedName) })
	return out
}
