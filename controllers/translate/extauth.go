package translate

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// extAuth translates a rule's ExternalAuth filter (experimental channel;
// Gateway API v1.6.3 has no conformance tests for it) into the dataplane's
// ExtAuth. Only protocol HTTP is supported. It reports false when the filter
// cannot run, after recording why: the rule then fails closed (its requests
// are answered 500), since authorization must never be skipped.
func (rb *ruleBuilder) extAuth(f *gatewayv1.HTTPExternalAuthFilter, where string) (*dataplanev1.ExtAuth, bool) {
	if f.ExternalAuthProtocol != gatewayv1.HTTPRouteExternalAuthHTTPProtocol {
		rb.fail(gatewayv1.RouteReasonUnsupportedValue,
			"%s.protocol %q is not supported: Flax speaks only HTTP to authorization services (gRPC ext_authz is not implemented); use protocol HTTP with an HTTP authorization service",
			where, f.ExternalAuthProtocol)
		return nil, false
	}
	consequence := fmt.Sprintf("requests of the rule are answered %d", rb.ri.errorStatus())
	group, ok := rb.backendRef(f.BackendRef, where+".backendRef", consequence)
	if !ok {
		return nil, false
	}
	if g := rb.t.groups[group]; g != nil && g.protocol == dataplanev1.BackendGroup_H2C {
		rb.refProblem(gatewayv1.RouteReasonUnsupportedProtocol,
			"%s.backendRef refers to port %d of Service %s/%s, which speaks HTTP/2 (h2c), but Flax speaks HTTP/1.1 to authorization services: use a port without appProtocol kubernetes.io/h2c; until then %s",
			where, g.port.Port, g.service.Namespace, g.service.Name, consequence)
		return nil, false
	}
	a := &dataplanev1.ExtAuth{BackendGroup: group}
	if h := f.HTTPAuthConfig; h != nil {
		if p := h.Path; p != "" {
			if !strings.HasPrefix(p, "/") {
				p = "/" + p
			}
			a.PathPrefix = p
		}
		a.AllowedRequestHeaders = uniqueNames(h.AllowedRequestHeaders)
		a.AllowedResponseHeaders = uniqueNames(h.AllowedResponseHeaders)
	}
	if fb := f.ForwardBody; fb != nil {
		a.MaxBodyBytes = uint32(fb.MaxSize)
	}
	return a, true
}

// uniqueNames returns names without repeats, compared without case.
func uniqueNames(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		k := strings.ToLower(n)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, n)
	}
	return out
}
