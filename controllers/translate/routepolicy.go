package translate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// maxRateLimitInterval is the longest rate-limit interval.
const maxRateLimitInterval = 24 * time.Hour

// translateRoutePolicies translates the settings of every RoutePolicy, resolves
// its targets, gives every HTTPRoute rule to the policy that holds it, sets the
// rate limits of the rules' dataplane routes and finds the Gateways each target
// concerns. It runs once the routes are placed.
func (t *translator) translateRoutePolicies() {
	routes := make(map[types.NamespacedName]*routeInfo, len(t.routes))
	var httpRoutes []*routeInfo
	for _, ri := range t.routes {
		if ri.kind == kindHTTPRoute {
			routes[ri.key] = ri
			httpRoutes = append(httpRoutes, ri)
		}
	}
	for i := range t.in.RoutePolicies {
		rp := &t.in.RoutePolicies[i]
		p := newPolicy(flaxv1alpha1.KindRoutePolicy, rp, rp.Spec.TargetRefs, kindHTTPRoute, describeRouteTarget)
		var problems []string
		p.rateLimit, problems = rateLimit(rp.Spec.RateLimit)
		p.invalid = append(p.invalid, problems...)
		for _, tg := range p.targets {
			resolveRouteTarget(tg, routes[tg.slot.object])
		}
		t.routePolicies = append(t.routePolicies, p)
	}
	sortPolicies(t.routePolicies)
	t.routeHolders = claimSlots(t.routePolicies, false)
	for _, ri := range httpRoutes {
		for _, rules := range ri.ruleSets() {
			for i, rt := range rules {
				if rt == nil {
					continue
				}
				h := holder(t.routeHolders, ri.key, ruleName(ri.route, i))
				if h == nil || h.rateLimit == nil {
					continue
				}
				rl := proto.CloneOf(h.rateLimit)
				rl.Bucket = rt.Name
				rt.RateLimit = rl
			}
		}
	}
	for _, p := range t.routePolicies {
		for _, tg := range p.targets {
			t.routeTargetGateways(p, tg, routes[tg.slot.object])
		}
	}
}

// describeRouteTarget names a RoutePolicy target in messages.
func describeRouteTarget(name, section string) string {
	if section == "" {
		return "HTTPRoute " + name
	}
	return fmt.Sprintf("rule %s of HTTPRoute %s", section, name)
}

// ruleName is the name of rule i of r, "" if it has none.
func ruleName(r *gatewayv1.HTTPRoute, i int) string {
	if n := r.Spec.Rules[i].Name; n != nil {
		return string(*n)
	}
	return ""
}

// resolveRouteTarget checks that the HTTPRoute of tg exists (ri is not nil) and
// has the rule its sectionName names.
func resolveRouteTarget(tg *policyTarget, ri *routeInfo) {
	if tg.foreign {
		return
	}
	if ri == nil {
		tg.notFound = fmt.Sprintf("targetRefs[%d]: HTTPRoute %s does not exist; create it or fix the reference", tg.index, tg.slot.object)
		return
	}
	if tg.slot.section == "" {
		return
	}
	var names []string
	for i := range ri.route.Spec.Rules {
		if n := ruleName(ri.route, i); n != "" {
			names = append(names, n)
		}
	}
	if !slices.Contains(names, tg.slot.section) {
		have := "it has no named rules"
		if len(names) > 0 {
			have = "its named rules are " + strings.Join(names, ", ")
		}
		tg.notFound = fmt.Sprintf("targetRefs[%d]: HTTPRoute %s has no rule named %s (%s); fix sectionName", tg.index, tg.slot.object, tg.slot.section, have)
	}
}

// routeTargetGateways finds the Gateways that serve the route of tg. A
// whole-route target of the policy in effect notes the rules that more specific
// policies hold, and concerns no Gateway when they hold every rule.
func (t *translator) routeTargetGateways(p *policyInfo, tg *policyTarget, ri *routeInfo) {
	if !tg.resolved() {
		return
	}
	if p.applies(tg) && tg.slot.section == "" {
		held := 0
		for i := range ri.route.Spec.Rules {
			name := ruleName(ri.route, i)
			if h := holder(t.routeHolders, ri.key, name); h != p {
				tg.notes = append(tg.notes, fmt.Sprintf("rule %s of HTTPRoute %s is configured by the more specific RoutePolicy %s", name, ri.key, h.key))
				continue
			}
			held++
		}
		if held == 0 {
			return
		}
	}
	for gw := range ri.gateways {
		tg.gateways[gw] = true
	}
}

// rateLimit translates the rate limit of a RoutePolicy (nil gives nil) and returns
// what is wrong with it.
func rateLimit(rl *flaxv1alpha1.RateLimit) (*dataplanev1.LocalRateLimit, []string) {
	if rl == nil {
		return nil, nil
	}
	var fp fieldProblems
	out := &dataplanev1.LocalRateLimit{
		Requests:    count(&fp, "rateLimit.requests", &rl.Requests, 1, 0),
		Interval:    policyDuration(&fp, "rateLimit.interval", &rl.Interval, time.Millisecond),
		Burst:       count(&fp, "rateLimit.burst", rl.Burst, 1, 0),
		PerClientIp: rl.PerClientIP != nil && *rl.PerClientIP,
	}
	if out.Interval != nil && out.Interval.AsDuration() > maxRateLimitInterval {
		fp.add("rateLimit.interval", "must be at most %s, got %s", maxRateLimitInterval, out.Interval.AsDuration())
	}

	// The dataplane's validation of a route with the limit, for what the API does
	// not say.
	check := &dataplanev1.Route{Name: "check", DirectResponse: &dataplanev1.DirectResponse{Status: errorStatus}, RateLimit: proto.CloneOf(out)}
	check.RateLimit.Bucket = "check"
	const prefix = routePrefix + "0]."
	snap := &dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{{
		Name: "check", Port: 1, Protocol: dataplanev1.Listener_HTTP,
		VirtualHosts: []*dataplanev1.VirtualHost{{Name: "check", Routes: []*dataplanev1.Route{check}}},
	}}}
	if err := dataplanev1.Validate(snap); err != nil {
		for _, e := range unjoin(err) {
			var fe *dataplanev1.FieldError
			if !errors.As(e, &fe) {
				fp.add("rateLimit", "%v", e)
				continue
			}
			fp.add(strings.TrimPrefix(fe.Field, prefix), "%s", fe.Detail)
		}
	}
	return out, fp.msgs
}
