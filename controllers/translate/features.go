package translate

import (
	"slices"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// SupportedFeatures are the Gateway API features Flax's GatewayClasses advertise in
// status.supportedFeatures: the core features of the Gateway, HTTPRoute and
// ReferenceGrant profiles and the extended ones the translator expresses fully in
// the snapshot and that pass their conformance tests (make conformance runs the
// tests of exactly these). Left out: features the snapshot cannot express (CORS,
// external auth, h2c backends, destination port matching), and HTTPRoute retry
// (HTTPRouteRetry and its sub-features), which the translator handles but whose
// spec.rules[].retry field exists only in the experimental channel's CRDs: with
// the standard channel the API server drops it and the conformance test fails.
// Session persistence, also translated, has no feature name or test in Gateway
// API v1.6.3.
var SupportedFeatures = sortedFeatures(
	// Core.
	features.SupportGateway,
	features.SupportHTTPRoute,
	features.SupportReferenceGrant,
	// Gateway extended.
	features.SupportGatewayPort8080,
	features.SupportGatewayHTTPListenerIsolation,
	features.SupportGatewayStaticAddresses,
	features.SupportGatewayAddressEmpty,
	// HTTPRoute extended.
	features.SupportHTTPRouteBackendRequestHeaderModification,
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRouteNamedRouteRule,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteRequestMirror,
	features.SupportHTTPRouteRequestMultipleMirrors,
	features.SupportHTTPRouteRequestPercentageMirror,
	features.SupportHTTPRouteBackendProtocolWebSocket,
)

// sortedFeatures returns the features as SupportedFeature values sorted by name,
// as the GatewayClass status lists them.
func sortedFeatures(names ...features.FeatureName) []gatewayv1.SupportedFeature {
	out := make([]gatewayv1.SupportedFeature, 0, len(names))
	for _, n := range names {
		out = append(out, gatewayv1.SupportedFeature{Name: gatewayv1.FeatureName(n)})
	}
	slices.SortFunc(out, func(a, b gatewayv1.SupportedFeature) int {
		return compareStrings(string(a.Name), string(b.Name))
	})
	return slices.CompactFunc(out, func(a, b gatewayv1.SupportedFeature) bool { return a.Name == b.Name })
}
