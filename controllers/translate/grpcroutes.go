package translate

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// grpcPath is the request path pattern of a gRPC call: "/<service>/<method>".
// Path matches stand for gRPC method matches:
//
//   - Exact service and method: the Exact path "/<service>/<method>".
//   - Exact service alone: the PathPrefix "/<service>/".
//   - Exact method alone: the RegularExpression "/[^/]+/<method>" (quoted).
//   - RegularExpression: the RegularExpression "/(?:<service>)/(?:<method>)",
//     "[^/]+" standing for the one left empty.
//   - No method match: the PathPrefix "/".
//
// Every match also asks for the POST method, which every gRPC call uses.
const grpcAnyName = "[^/]+"

// grpcAsHTTPRoute converts a GRPCRoute into the HTTPRoute it is served as:
// the same metadata, parentRefs and hostnames, and one rule per rule, with
// method matches as path matches (see grpcAnyName), header matches, filters
// and backendRefs carried over. Rules that cannot be converted are returned
// with why, by index; their conversion is a best effort that the rule
// translation reports and does not serve as asked.
func grpcAsHTTPRoute(g *gatewayv1.GRPCRoute) (*gatewayv1.HTTPRoute, map[int]*conversionProblem) {
	hr := &gatewayv1.HTTPRoute{
		TypeMeta:   g.TypeMeta,
		ObjectMeta: g.ObjectMeta,
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: g.Spec.CommonRouteSpec,
			Hostnames:       g.Spec.Hostnames,
			Rules:           make([]gatewayv1.HTTPRouteRule, len(g.Spec.Rules)),
		},
	}
	var problems map[int]*conversionProblem
	for i := range g.Spec.Rules {
		rule := &g.Spec.Rules[i]
		c := grpcConversion{}
		out := &hr.Spec.Rules[i]
		out.Name = rule.Name
		out.SessionPersistence = rule.SessionPersistence
		out.Matches = c.matches(rule.Matches)
		out.Filters = c.filters(rule.Filters, "filters")
		for j := range rule.BackendRefs {
			ref := &rule.BackendRefs[j]
			out.BackendRefs = append(out.BackendRefs, gatewayv1.HTTPBackendRef{
				BackendRef: ref.BackendRef,
				Filters:    c.filters(ref.Filters, fmt.Sprintf("backendRefs[%d].filters", j)),
			})
		}
		if c.problem != nil {
			if problems == nil {
				problems = map[int]*conversionProblem{}
			}
			problems[i] = c.problem
		}
	}
	return hr, problems
}

// conversionProblem is why a GRPCRoute rule cannot be served as asked.
type conversionProblem struct {
	problem
	// badMatch is set when a match cannot be expressed: the rule is then not
	// served at all, rather than answering errors for what its matches stand
	// for.
	badMatch bool
}

// grpcConversion converts one GRPCRoute rule and keeps the first reason it
// cannot be served as asked.
type grpcConversion struct {
	problem *conversionProblem
}

// fail records a problem of the rule's filters.
func (c *grpcConversion) fail(format string, args ...any) {
	if c.problem == nil {
		c.problem = &conversionProblem{problem: problem{reason: string(gatewayv1.RouteReasonUnsupportedValue), message: fmt.Sprintf(format, args...)}}
	}
}

// failMatch records a match that cannot be expressed.
func (c *grpcConversion) failMatch(format string, args ...any) {
	c.fail(format, args...)
	c.problem.badMatch = true
}

// matches converts the matches of a rule; no match matches every call.
func (c *grpcConversion) matches(ms []gatewayv1.GRPCRouteMatch) []gatewayv1.HTTPRouteMatch {
	post := gatewayv1.HTTPMethod(http.MethodPost)
	if len(ms) == 0 {
		return []gatewayv1.HTTPRouteMatch{{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/"), Method: &post}}
	}
	out := make([]gatewayv1.HTTPRouteMatch, len(ms))
	for j := range ms {
		m := &ms[j]
		out[j].Method = &post
		out[j].Path = c.methodMatch(m.Method, fmt.Sprintf("matches[%d].method", j))
		for _, h := range m.Headers {
			hm := gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(h.Name), Value: h.Value}
			if h.Type != nil {
				hm.Type = ptr(gatewayv1.HeaderMatchType(*h.Type))
			}
			out[j].Headers = append(out[j].Headers, hm)
		}
	}
	return out
}

// methodMatch converts a gRPC method match into a path match.
func (c *grpcConversion) methodMatch(m *gatewayv1.GRPCMethodMatch, where string) *gatewayv1.HTTPPathMatch {
	if m == nil {
		return pathMatch(gatewayv1.PathMatchPathPrefix, "/")
	}
	service, method := "", ""
	if m.Service != nil {
		service = *m.Service
	}
	if m.Method != nil {
		method = *m.Method
	}
	typ := gatewayv1.GRPCMethodMatchExact
	if m.Type != nil {
		typ = *m.Type
	}
	if service == "" && method == "" {
		c.failMatch("%s sets neither service nor method; set at least one, or remove the method match to match every call", where)
		return pathMatch(gatewayv1.PathMatchPathPrefix, "/")
	}
	switch typ {
	case gatewayv1.GRPCMethodMatchExact:
		for _, fv := range [][2]string{{"service", service}, {"method", method}} {
			if strings.Contains(fv[1], "/") {
				c.failMatch("%s.%s %q contains \"/\", which an Exact match cannot: remove it", where, fv[0], fv[1])
			}
		}
		switch {
		case service != "" && method != "":
			return pathMatch(gatewayv1.PathMatchExact, "/"+service+"/"+method)
		case service != "":
			return pathMatch(gatewayv1.PathMatchPathPrefix, "/"+service+"/")
		}
		return pathMatch(gatewayv1.PathMatchRegularExpression, "/"+grpcAnyName+"/"+regexp.QuoteMeta(method))
	case gatewayv1.GRPCMethodMatchRegularExpression:
		part := func(field, v string) string {
			if v == "" {
				return grpcAnyName
			}
			if _, err := regexp.Compile(v); err != nil {
				c.failMatch("%s.%s %q is not a valid regular expression (RE2 syntax): %v; fix it", where, field, v, err)
			}
			return "(?:" + v + ")"
		}
		return pathMatch(gatewayv1.PathMatchRegularExpression, "/"+part("service", service)+"/"+part("method", method))
	}
	c.failMatch("%s.type %q is not supported; use Exact or RegularExpression", where, typ)
	return pathMatch(gatewayv1.PathMatchPathPrefix, "/")
}

// filters converts the filters of a rule or of a backendRef (where).
func (c *grpcConversion) filters(fs []gatewayv1.GRPCRouteFilter, where string) []gatewayv1.HTTPRouteFilter {
	var out []gatewayv1.HTTPRouteFilter
	for j := range fs {
		f := &fs[j]
		hf := gatewayv1.HTTPRouteFilter{
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			hf.Type = gatewayv1.HTTPRouteFilterRequestHeaderModifier
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			hf.Type = gatewayv1.HTTPRouteFilterResponseHeaderModifier
		case gatewayv1.GRPCRouteFilterRequestMirror:
			hf.Type = gatewayv1.HTTPRouteFilterRequestMirror
		case gatewayv1.GRPCRouteFilterExtensionRef:
			hf.Type = gatewayv1.HTTPRouteFilterExtensionRef
		default:
			c.fail("%s[%d]: unknown filter type %q; use RequestHeaderModifier, ResponseHeaderModifier or RequestMirror", where, j, f.Type)
			continue
		}
		out = append(out, hf)
	}
	return out
}

// pathMatch returns an HTTPRoute path match.
func pathMatch(typ gatewayv1.PathMatchType, value string) *gatewayv1.HTTPPathMatch {
	return &gatewayv1.HTTPPathMatch{Type: &typ, Value: &value}
}
