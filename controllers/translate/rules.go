package translate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// Defaults for fields the Gateway API leaves to the implementation.
const (
	// defaultRetryAttempts is the number of retries of a rule whose retry sets no
	// attempts.
	defaultRetryAttempts = 1
	// defaultSessionName names the cookie or header of session persistence when
	// sessionName is not set.
	defaultSessionName = "flax-session"
)

// errorStatus is the status answered for requests of an HTTPRoute that cannot be
// served as asked: the share of an invalid backend, or a rule that cannot be
// translated. GRPCRoutes answer grpcErrorStatus instead, which gRPC clients read
// as UNAVAILABLE, the code the Gateway API asks for.
const (
	errorStatus     = 500
	grpcErrorStatus = 503
)

// translateRules translates every rule of the route once; the result is shared by
// every virtual host the route is served on. The rules are checked against the
// dataplane's validation together, and a rule that fails is replaced (see
// fallback).
func (t *translator) translateRules(ri *routeInfo) {
	n := len(ri.route.Spec.Rules)
	ri.rules = make([]*dataplanev1.Route, n)
	builders := make([]*ruleBuilder, n)
	for i := range n {
		builders[i] = t.buildRule(ri, i)
	}
	candidates := make([]*dataplanev1.Route, n)
	for i, rb := range builders {
		if rb.invalid == nil {
			candidates[i] = rb.route
		}
	}
	problems := checkRoutes(candidates)
	for i, rb := range builders {
		if err := problems[i]; err != nil && rb.invalid == nil {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "the dataplane cannot serve it: %v", err)
		}
		if rb.invalid != nil {
			ri.rules[i] = rb.fallback(rb.route)
			continue
		}
		ri.rules[i] = rb.route
		ri.groups = append(ri.groups, mirrorGroups(rb.route.Filters)...)
		if len(rb.route.Backends) > 0 {
			ri.groups = append(ri.groups, rb.groups...)
		}
	}
	slices.Sort(ri.groups)
	ri.groups = slices.Compact(ri.groups)
}

// ruleBuilder translates one rule.
type ruleBuilder struct {
	t  *translator
	ri *routeInfo
	// index is the rule's index in the route.
	index int
	// where names the rule in messages, e.g. `rules[1]` or `rules[1] ("api")`.
	where string
	// invalid, once set, is why the rule cannot be translated.
	invalid *problem
	// groups are the backend groups the rule's backends refer to.
	groups []string
	// route is the translated rule, valid unless invalid is set.
	route *dataplanev1.Route
}

// fail records why the rule cannot be translated; the first reason wins.
func (rb *ruleBuilder) fail(reason gatewayv1.RouteConditionReason, format string, args ...any) {
	if rb.invalid == nil {
		msg := fmt.Sprintf(format, args...)
		if !strings.HasPrefix(msg, rb.where) {
			msg = rb.where + ": " + msg
		}
		rb.invalid = &problem{reason: string(reason), message: msg}
	}
}

// refProblem records an unresolved reference of the rule.
func (rb *ruleBuilder) refProblem(reason gatewayv1.RouteConditionReason, format string, args ...any) {
	rb.ri.refProblems.add(string(reason), fmt.Sprintf(format, args...))
}

// buildRule translates rule i of the route into a dataplane route, not yet
// checked against the dataplane's validation.
func (t *translator) buildRule(ri *routeInfo, i int) *ruleBuilder {
	r := ri.route
	rule := &r.Spec.Rules[i]
	rb := &ruleBuilder{t: t, ri: ri, index: i, where: fmt.Sprintf("rules[%d]", i)}
	if rule.Name != nil && *rule.Name != "" {
		rb.where = fmt.Sprintf("rules[%d] (%q)", i, *rule.Name)
	}
	if c := ri.converted[i]; c != nil {
		rb.fail(gatewayv1.RouteConditionReason(c.reason), "%s", c.message)
	}
	rt := &dataplanev1.Route{
		Name: ri.ruleName(i),
		Order: &dataplanev1.RouteOrder{
			CreationTimestampUnixNanos: unixNanos(r),
			Namespace:                  r.Namespace,
			Name:                       r.Name,
			RuleIndex:                  uint32(i),
		},
	}
	rt.Matches = rb.matches(rule.Matches)
	filters, redirect, errorFilter := rb.filters(rule.Filters, rb.where+".filters", true)
	rt.Filters = filters
	backends, valid, weight := rb.backends(rule.BackendRefs)
	rt.Timeouts = rb.timeouts(rule.Timeouts)
	rt.Retry = rb.retry(rule.Retry)
	rt.SessionAffinity = rb.sessionAffinity(rule.SessionPersistence)
	switch {
	case errorFilter:
		// A filter that must not be skipped cannot run: the rule answers 500 and
		// runs none of its filters (a redirect would skip it).
		rt.Filters = nil
		rt.DirectResponse = &dataplanev1.DirectResponse{Status: ri.errorStatus()}
	case redirect:
		// The redirect answers; backendRefs are resolved for the status only.
	case valid == 0 || weight == 0:
		rt.DirectResponse = &dataplanev1.DirectResponse{Status: ri.errorStatus()}
	default:
		rt.Backends = backends
	}
	rb.route = rt
	return rb
}

// mirrorGroups lists the backend groups the request mirrors and the
// external authorization among fs refer to.
func mirrorGroups(fs []*dataplanev1.RouteFilter) []string {
	var out []string
	for _, f := range fs {
		if m := f.GetRequestMirror(); m != nil {
			out = append(out, m.GetBackendGroup())
		}
		if a := f.GetExtAuth(); a != nil {
			out = append(out, a.GetBackendGroup())
		}
	}
	return out
}

// fallback returns the route that replaces a rule that cannot be translated: its
// matches answered with 500, or nil when the matches themselves are invalid.
func (rb *ruleBuilder) fallback(rt *dataplanev1.Route) *dataplanev1.Route {
	ri := rb.ri
	ri.invalidRules++
	fb := &dataplanev1.Route{
		Name:           rt.Name,
		Order:          rt.Order,
		Matches:        rt.Matches,
		DirectResponse: &dataplanev1.DirectResponse{Status: ri.errorStatus()},
	}
	ri.ruleProblems.add(rb.invalid.reason, rb.invalid.message)
	if c := ri.converted[rb.index]; (c != nil && c.badMatch) || checkRoute(fb) != nil {
		ri.ruleFates = append(ri.ruleFates, "the rule is not served until it is fixed")
		return nil
	}
	ri.ruleFates = append(ri.ruleFates, fmt.Sprintf("requests the rule matches are answered %d until it is fixed", ri.errorStatus()))
	return fb
}

// routePrefix is the field path of the routes of the snapshot checkRoutes builds.
const routePrefix = "listeners[0].virtualHosts[0].routes["

// checkRoute validates rt as the dataplane would, and returns its problems with
// field paths relative to the route.
func checkRoute(rt *dataplanev1.Route) error {
	return checkRoutes([]*dataplanev1.Route{rt})[0]
}

// checkRoutes validates the routes (nil entries are skipped) as the dataplane
// would, in one snapshot, and returns the problems of each, with field paths
// relative to the route; the result is nil for valid routes.
func checkRoutes(routes []*dataplanev1.Route) []error {
	out := make([]error, len(routes))
	vh := &dataplanev1.VirtualHost{Name: "check"}
	var index []int // position in vh.Routes -> position in routes
	var groups []string
	for i, rt := range routes {
		if rt == nil {
			continue
		}
		vh.Routes = append(vh.Routes, rt)
		index = append(index, i)
		groups = append(groups, mirrorGroups(rt.Filters)...)
		for _, b := range rt.Backends {
			if g := b.GetBackendGroup(); g != "" {
				groups = append(groups, g)
			}
			groups = append(groups, mirrorGroups(b.Filters)...)
		}
	}
	if len(vh.Routes) == 0 {
		return out
	}
	snap := &dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{{
		Name: "check", Port: 1, Protocol: dataplanev1.Listener_HTTP, VirtualHosts: []*dataplanev1.VirtualHost{vh},
	}}}
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		snap.BackendGroups = append(snap.BackendGroups, &dataplanev1.BackendGroup{Name: g})
	}
	err := dataplanev1.Validate(snap)
	if err == nil {
		return out
	}
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else {
		errs = []error{err}
	}
	msgs := make([][]string, len(routes))
	for _, e := range errs {
		var fe *dataplanev1.FieldError
		pos, field, ok := -1, "", errors.As(e, &fe)
		if ok {
			pos, field, ok = routeField(fe.Field)
		}
		if !ok || pos >= len(index) {
			// A problem that cannot be tied to one route (such as a summary of
			// further problems): check the routes one at a time.
			if len(routes) == 1 {
				return []error{e}
			}
			for i, rt := range routes {
				if rt != nil {
					out[i] = checkRoute(rt)
				}
			}
			return out
		}
		msg := fe.Detail
		if field != "" {
			msg = field + ": " + fe.Detail
		}
		msgs[index[pos]] = append(msgs[index[pos]], msg)
	}
	for i, m := range msgs {
		if len(m) > 0 {
			out[i] = errors.New(strings.Join(m, "; "))
		}
	}
	return out
}

// routeField splits a field path of the snapshot checkRoutes builds into the
// route's position and the path within the route.
func routeField(path string) (pos int, field string, ok bool) {
	rest, found := strings.CutPrefix(path, routePrefix)
	if !found {
		return 0, "", false
	}
	num, field, found := strings.Cut(rest, "]")
	if !found {
		return 0, "", false
	}
	pos, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", false
	}
	return pos, strings.TrimPrefix(field, "."), true
}

// matches translates the matches of a rule; no match matches every request.
func (rb *ruleBuilder) matches(ms []gatewayv1.HTTPRouteMatch) []*dataplanev1.RouteMatch {
	if len(ms) == 0 {
		return []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: "/"}}}
	}
	out := make([]*dataplanev1.RouteMatch, 0, len(ms))
	for j := range ms {
		m := &ms[j]
		where := fmt.Sprintf("matches[%d]", j)
		dm := &dataplanev1.RouteMatch{}

		typ, value := gatewayv1.PathMatchPathPrefix, "/"
		if m.Path != nil {
			if m.Path.Type != nil {
				typ = *m.Path.Type
			}
			if m.Path.Value != nil {
				value = *m.Path.Value
			}
		}
		switch typ {
		case gatewayv1.PathMatchExact:
			dm.Path = &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_EXACT, Value: value}
		case gatewayv1.PathMatchPathPrefix:
			dm.Path = &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: value}
		case gatewayv1.PathMatchRegularExpression:
			dm.Path = &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_REGULAR_EXPRESSION, Value: value}
		default:
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s.path.type %q is not supported; use Exact, PathPrefix or RegularExpression", where, typ)
		}

		seenHeaders := map[string]bool{}
		for k, h := range m.Headers {
			name := strings.ToLower(string(h.Name))
			if seenHeaders[name] {
				continue // the Gateway API honours only the first match of a name
			}
			seenHeaders[name] = true
			hm := &dataplanev1.HeaderMatch{Type: dataplanev1.HeaderMatch_EXACT, Name: string(h.Name), Value: h.Value}
			if h.Type != nil {
				switch *h.Type {
				case gatewayv1.HeaderMatchExact:
				case gatewayv1.HeaderMatchRegularExpression:
					hm.Type = dataplanev1.HeaderMatch_REGULAR_EXPRESSION
				default:
					rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s.headers[%d].type %q is not supported; use Exact or RegularExpression", where, k, *h.Type)
				}
			}
			dm.Headers = append(dm.Headers, hm)
		}

		seenParams := map[string]bool{}
		for k, q := range m.QueryParams {
			if seenParams[string(q.Name)] {
				continue
			}
			seenParams[string(q.Name)] = true
			qm := &dataplanev1.QueryParamMatch{Type: dataplanev1.QueryParamMatch_EXACT, Name: string(q.Name), Value: q.Value}
			if q.Type != nil {
				switch *q.Type {
				case gatewayv1.QueryParamMatchExact:
				case gatewayv1.QueryParamMatchRegularExpression:
					qm.Type = dataplanev1.QueryParamMatch_REGULAR_EXPRESSION
				default:
					rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s.queryParams[%d].type %q is not supported; use Exact or RegularExpression", where, k, *q.Type)
				}
			}
			dm.QueryParams = append(dm.QueryParams, qm)
		}

		if m.Method != nil {
			dm.Method = string(*m.Method)
		}
		out = append(out, dm)
	}
	return out
}

// filters translates the filters of a rule (onRoute) or of one of its backendRefs.
// redirect reports a RequestRedirect filter; errorFilter reports a filter Flax
// cannot run but must not skip (an ExtensionRef), whose requests get 500.
func (rb *ruleBuilder) filters(fs []gatewayv1.HTTPRouteFilter, where string, onRoute bool) (out []*dataplanev1.RouteFilter, redirect, errorFilter bool) {
	seen := map[gatewayv1.HTTPRouteFilterType]bool{}
	for j := range fs {
		f := &fs[j]
		fw := fmt.Sprintf("%s[%d]", where, j)
		if seen[f.Type] && f.Type != gatewayv1.HTTPRouteFilterRequestMirror {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: there may be only one %s filter; merge them into one", fw, f.Type)
			continue
		}
		seen[f.Type] = true
		missing := func(field string) {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: a filter of type %s needs the %s field; set it", fw, f.Type, field)
		}
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			if f.RequestHeaderModifier == nil {
				missing("requestHeaderModifier")
				continue
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_RequestHeaderModifier{
				RequestHeaderModifier: headerModifier(f.RequestHeaderModifier),
			}})
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			if f.ResponseHeaderModifier == nil {
				missing("responseHeaderModifier")
				continue
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_ResponseHeaderModifier{
				ResponseHeaderModifier: headerModifier(f.ResponseHeaderModifier),
			}})
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			if f.RequestRedirect == nil {
				missing("requestRedirect")
				continue
			}
			if !onRoute {
				rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: a RequestRedirect filter is not allowed on a backendRef; move it to the rule's filters", fw)
				continue
			}
			redirect = true
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_RequestRedirect{
				RequestRedirect: rb.redirect(f.RequestRedirect, fw),
			}})
		case gatewayv1.HTTPRouteFilterURLRewrite:
			if f.URLRewrite == nil {
				missing("urlRewrite")
				continue
			}
			rw := &dataplanev1.URLRewrite{}
			if f.URLRewrite.Hostname != nil {
				rw.Hostname = string(*f.URLRewrite.Hostname)
			}
			if f.URLRewrite.Path != nil {
				rw.Path = rb.pathModifier(f.URLRewrite.Path, fw+".urlRewrite.path")
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_UrlRewrite{UrlRewrite: rw}})
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if f.RequestMirror == nil {
				missing("requestMirror")
				continue
			}
			group, ok := rb.backendRef(f.RequestMirror.BackendRef, fw+".requestMirror.backendRef", "the mirror is skipped")
			if !ok {
				continue
			}
			m := &dataplanev1.RequestMirror{BackendGroup: group}
			switch {
			case f.RequestMirror.Percent != nil:
				m.Share = &dataplanev1.RequestMirror_Percent{Percent: uint32(max(*f.RequestMirror.Percent, 0))}
			case f.RequestMirror.Fraction != nil:
				den := int32(100)
				if f.RequestMirror.Fraction.Denominator != nil {
					den = *f.RequestMirror.Fraction.Denominator
				}
				m.Share = &dataplanev1.RequestMirror_Fraction{Fraction: &dataplanev1.Fraction{
					Numerator: uint32(max(f.RequestMirror.Fraction.Numerator, 0)), Denominator: uint32(max(den, 0)),
				}}
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_RequestMirror{RequestMirror: m}})
		case gatewayv1.HTTPRouteFilterExtensionRef:
			desc := "an extension"
			if f.ExtensionRef != nil {
				desc = fmt.Sprintf("%s %s", describeKind(string(f.ExtensionRef.Group), string(f.ExtensionRef.Kind)), f.ExtensionRef.Name)
			}
			rb.refProblem(gatewayv1.RouteReasonInvalidKind,
				"%s: the ExtensionRef filter refers to %s, a kind Flax does not support; remove the filter (requests it applies to are answered %d until then)", fw, desc, rb.ri.errorStatus())
			errorFilter = true
		case gatewayv1.HTTPRouteFilterCORS:
			if f.CORS == nil {
				missing("cors")
				continue
			}
			if !onRoute {
				rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: a CORS filter is not allowed on a backendRef; move it to the rule's filters", fw)
				continue
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_Cors{Cors: rb.cors(f.CORS, fw+".cors")}})
		case gatewayv1.HTTPRouteFilterExternalAuth:
			if f.ExternalAuth == nil {
				missing("externalAuth")
				continue
			}
			if !onRoute {
				rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: an ExternalAuth filter is not allowed on a backendRef; move it to the rule's filters", fw)
				continue
			}
			a, ok := rb.extAuth(f.ExternalAuth, fw+".externalAuth")
			if !ok {
				// Authorization must not be skipped: the rule fails closed.
				errorFilter = true
				continue
			}
			out = append(out, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_ExtAuth{ExtAuth: a}})
		default:
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s: unknown filter type %q; use RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, CORS or ExternalAuth", fw, f.Type)
		}
	}
	if seen[gatewayv1.HTTPRouteFilterRequestRedirect] && seen[gatewayv1.HTTPRouteFilterURLRewrite] {
		rb.fail(gatewayv1.RouteReasonIncompatibleFilters, "%s: RequestRedirect and URLRewrite filters cannot be used together; remove one of them", where)
	}
	return out, redirect, errorFilter
}

// cors translates a CORS filter. Header names are kept once (compared
// case-insensitively) and maxAge is capped at a day, as browsers cap it too.
func (rb *ruleBuilder) cors(f *gatewayv1.HTTPCORSFilter, where string) *dataplanev1.CORSPolicy {
	c := &dataplanev1.CORSPolicy{}
	for i, o := range f.AllowOrigins {
		if _, err := dataplanev1.ParseCORSOrigin(string(o)); err != nil {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s.allowOrigins[%d]: %v", where, i, err)
			continue
		}
		c.AllowOrigins = append(c.AllowOrigins, string(o))
	}
	if f.AllowCredentials != nil {
		c.AllowCredentials = *f.AllowCredentials
	}
	for _, m := range f.AllowMethods {
		if !slices.Contains(c.AllowMethods, string(m)) {
			c.AllowMethods = append(c.AllowMethods, string(m))
		}
	}
	names := func(in []gatewayv1.HTTPHeaderName) []string {
		var out []string
		for _, h := range in {
			if !slices.ContainsFunc(out, func(s string) bool { return strings.EqualFold(s, string(h)) }) {
				out = append(out, string(h))
			}
		}
		return out
	}
	c.AllowHeaders = names(f.AllowHeaders)
	c.ExposeHeaders = names(f.ExposeHeaders)
	if f.MaxAge > 0 {
		c.MaxAgeSeconds = uint32(min(f.MaxAge, dataplanev1.MaxCORSMaxAge))
	}
	return c
}

// headerModifier translates a header filter. Only the first entry of a name
// (compared case-insensitively) is kept, as the Gateway API asks.
func headerModifier(f *gatewayv1.HTTPHeaderFilter) *dataplanev1.HeaderModifier {
	hm := &dataplanev1.HeaderModifier{}
	headers := func(in []gatewayv1.HTTPHeader) []*dataplanev1.Header {
		var out []*dataplanev1.Header
		seen := map[string]bool{}
		for _, h := range in {
			k := strings.ToLower(string(h.Name))
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, &dataplanev1.Header{Name: string(h.Name), Value: h.Value})
		}
		return out
	}
	hm.Set = headers(f.Set)
	hm.Add = headers(f.Add)
	seen := map[string]bool{}
	for _, name := range f.Remove {
		k := strings.ToLower(name)
		if !seen[k] {
			seen[k] = true
			hm.Remove = append(hm.Remove, name)
		}
	}
	return hm
}

// redirect translates a RequestRedirect filter.
func (rb *ruleBuilder) redirect(f *gatewayv1.HTTPRequestRedirectFilter, where string) *dataplanev1.RequestRedirect {
	rr := &dataplanev1.RequestRedirect{StatusCode: 302}
	if f.Scheme != nil {
		rr.Scheme = strings.ToLower(*f.Scheme)
	}
	if f.Hostname != nil {
		rr.Hostname = string(*f.Hostname)
	}
	if f.Path != nil {
		rr.Path = rb.pathModifier(f.Path, where+".requestRedirect.path")
	}
	if f.Port != nil {
		rr.Port = uint32(max(*f.Port, 0))
	}
	if f.StatusCode != nil {
		rr.StatusCode = uint32(max(*f.StatusCode, 0))
	}
	return rr
}

// pathModifier translates the path of a redirect or rewrite. An empty
// replacement stands for "/".
func (rb *ruleBuilder) pathModifier(p *gatewayv1.HTTPPathModifier, where string) *dataplanev1.PathModifier {
	orSlash := func(s *string) string {
		if s == nil || *s == "" {
			return "/"
		}
		return *s
	}
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		return &dataplanev1.PathModifier{Modifier: &dataplanev1.PathModifier_ReplaceFullPath{ReplaceFullPath: orSlash(p.ReplaceFullPath)}}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		return &dataplanev1.PathModifier{Modifier: &dataplanev1.PathModifier_ReplacePrefixMatch{ReplacePrefixMatch: orSlash(p.ReplacePrefixMatch)}}
	}
	rb.fail(gatewayv1.RouteReasonUnsupportedValue, "%s.type %q is not supported; use ReplaceFullPath or ReplacePrefixMatch", where, p.Type)
	return nil
}

// backends translates the backendRefs of a rule. It returns the weighted
// backends, the number of valid ones and the total weight.
func (rb *ruleBuilder) backends(refs []gatewayv1.HTTPBackendRef) (out []*dataplanev1.WeightedBackend, valid int, weight uint64) {
	for j := range refs {
		ref := &refs[j]
		w := uint32(1)
		if ref.Weight != nil {
			w = uint32(max(*ref.Weight, 0))
		}
		weight += uint64(w)
		where := fmt.Sprintf("%s.backendRefs[%d]", rb.where, j)
		group, ok := rb.backendRef(ref.BackendObjectReference, where,
			fmt.Sprintf("its share of requests (weight %d) gets %d", w, rb.ri.errorStatus()))
		if !ok {
			out = append(out, &dataplanev1.WeightedBackend{
				Target: &dataplanev1.WeightedBackend_DirectResponse{DirectResponse: &dataplanev1.DirectResponse{Status: rb.ri.errorStatus()}},
				Weight: w,
			})
			continue
		}
		filters, _, errorFilter := rb.filters(ref.Filters, where+".filters", false)
		if errorFilter {
			out = append(out, &dataplanev1.WeightedBackend{
				Target: &dataplanev1.WeightedBackend_DirectResponse{DirectResponse: &dataplanev1.DirectResponse{Status: rb.ri.errorStatus()}},
				Weight: w,
			})
			continue
		}
		rb.groups = append(rb.groups, group)
		rb.groups = append(rb.groups, mirrorGroups(filters)...)
		out = append(out, &dataplanev1.WeightedBackend{
			Target:  &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: group},
			Weight:  w,
			Filters: filters,
		})
		valid++
	}
	return out, valid, weight
}

// timeouts translates the timeouts of a rule.
func (rb *ruleBuilder) timeouts(to *gatewayv1.HTTPRouteTimeouts) *dataplanev1.RouteTimeouts {
	if to == nil || to.Request == nil && to.BackendRequest == nil {
		return nil
	}
	out := &dataplanev1.RouteTimeouts{}
	if to.Request != nil {
		d, err := parseDuration(string(*to.Request))
		if err != nil {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "timeouts.request: %v", err)
			return nil
		}
		out.Request = durationpb.New(d)
	}
	if to.BackendRequest != nil {
		d, err := parseDuration(string(*to.BackendRequest))
		if err != nil {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "timeouts.backendRequest: %v", err)
			return nil
		}
		out.BackendRequest = durationpb.New(d)
	}
	if req, be := out.Request.AsDuration(), out.BackendRequest.AsDuration(); out.Request != nil && req > 0 && be > req {
		rb.fail(gatewayv1.RouteReasonUnsupportedValue, "timeouts.backendRequest (%s) must not exceed timeouts.request (%s); lower it", be, req)
		return nil
	}
	return out
}

// retry translates the retry policy of a rule. Connection failures, and
// attempts that get no response head within timeouts.backendRequest, are
// retried whenever a policy is set (the spec's HTTPRouteRetryConnectionError
// and HTTPRouteRetryBackendTimeout).
func (rb *ruleBuilder) retry(r *gatewayv1.HTTPRouteRetry) *dataplanev1.RetryPolicy {
	if r == nil {
		return nil
	}
	rp := &dataplanev1.RetryPolicy{Attempts: defaultRetryAttempts, RetryOnConnectFailure: true, RetryOnBackendTimeout: true}
	if r.Attempts != nil {
		a := max(*r.Attempts, 0)
		if a > dataplanev1.MaxRetryAttempts {
			rb.ri.notes = append(rb.ri.notes, fmt.Sprintf("%s.retry.attempts %d is capped at %d", rb.where, a, dataplanev1.MaxRetryAttempts))
			a = dataplanev1.MaxRetryAttempts
		}
		rp.Attempts = uint32(a)
	}
	for _, c := range r.Codes {
		if c < 400 || c > 599 {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "retry.codes: %d is not a status code between 400 and 599; remove it", c)
			return nil
		}
		if !slices.Contains(rp.RetryOnStatusCodes, uint32(c)) {
			rp.RetryOnStatusCodes = append(rp.RetryOnStatusCodes, uint32(c))
		}
	}
	slices.Sort(rp.RetryOnStatusCodes)
	if r.Backoff != nil {
		d, err := parseDuration(string(*r.Backoff))
		if err != nil {
			rb.fail(gatewayv1.RouteReasonUnsupportedValue, "retry.backoff: %v", err)
			return nil
		}
		rp.BackoffBase = durationpb.New(d)
	}
	return rp
}

// sessionAffinity translates the session persistence of a rule.
func (rb *ruleBuilder) sessionAffinity(sp *gatewayv1.SessionPersistence) *dataplanev1.SessionAffinity {
	if sp == nil {
		return nil
	}
	name := defaultSessionName
	if sp.SessionName != nil && *sp.SessionName != "" {
		name = *sp.SessionName
	}
	typ := gatewayv1.CookieBasedSessionPersistence
	if sp.Type != nil {
		typ = *sp.Type
	}
	switch typ {
	case gatewayv1.CookieBasedSessionPersistence:
		c := &dataplanev1.CookieAffinity{Name: name}
		permanent := sp.CookieConfig != nil && sp.CookieConfig.LifetimeType != nil &&
			*sp.CookieConfig.LifetimeType == gatewayv1.PermanentCookieLifetimeType
		if permanent && sp.AbsoluteTimeout != nil {
			d, err := parseDuration(string(*sp.AbsoluteTimeout))
			if err != nil {
				rb.fail(gatewayv1.RouteReasonUnsupportedValue, "sessionPersistence.absoluteTimeout: %v", err)
				return nil
			}
			c.Ttl = durationpb.New(d)
		}
		return &dataplanev1.SessionAffinity{Kind: &dataplanev1.SessionAffinity_Cookie{Cookie: c}}
	case gatewayv1.HeaderBasedSessionPersistence:
		return &dataplanev1.SessionAffinity{Kind: &dataplanev1.SessionAffinity_Header{Header: &dataplanev1.HeaderAffinity{Name: name}}}
	}
	rb.fail(gatewayv1.RouteReasonUnsupportedValue, "sessionPersistence.type %q is not supported; use Cookie or Header", typ)
	return nil
}
