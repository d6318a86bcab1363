package translate

import (
	"slices"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// SupportedFeatures are the Gateway API features Flax's GatewayClasses advertise in
// status.supportedFeatures whatever the installed CRDs: the core features of the
// Gateway, HTTPRoute and ReferenceGrant profiles and the extended ones the
// translator expresses fully in the snapshot and that pass their conformance tests
// (make conformance runs the tests of exactly the features a class lists). Left
// out: features the snapshot cannot express (external auth). GRPCRoute (the
// GATEWAY-GRPC profile), GRPCRouteNamedRouteRule and HTTPRouteBackendProtocolH2C
// rest on the dataplane's HTTP/2: h2c with prior knowledge from clients on HTTP
// listeners and h2c to backend groups of protocol H2C; misdirected-request
// detection on ALPN h2 to HTTPS listeners.
// HTTPRouteDestinationPortMatching is what Gateway API v1.6.3 calls a parentRef
// port that selects no listener (the route is not accepted: NoMatchingParent).
// Session persistence, also translated, has no feature name or test in Gateway
// API v1.6.3.
var SupportedFeatures = sortedFeatures(
	// Core.
	features.SupportGateway,
	features.SupportHTTPRoute,
	features.SupportReferenceGrant,
	// TCPRoute (the GATEWAY-TCP profile).
	features.SupportTCPRoute,
	// GRPCRoute (the GATEWAY-GRPC profile) and its named rules.
	features.SupportGRPCRoute,
	features.SupportGRPCRouteNamedRouteRule,
	// TLSRoute (the GATEWAY-TLS profile): passthrough, terminate, and both
	// on one port.
	features.SupportTLSRoute,
	features.SupportTLSRouteModeTerminate,
	features.SupportTLSRouteModeMixed,
	// UDPRoute (the GATEWAY-UDP profile): UDP listeners, flow by flow.
	features.SupportUDPRoute,
	// Gateway extended.
	features.SupportGatewayPort8080,
	features.SupportGatewayHTTPListenerIsolation,
	features.SupportGatewayStaticAddresses,
	features.SupportGatewayAddressEmpty,
	features.SupportListenerSet,
	// 421 for a request whose host belongs to another HTTPS listener of
	// the port than the connection's server name (HTTP/1.1 and HTTP/2).
	features.SupportGatewayHTTPSListenerDetectMisdirectedRequests,
	// Client certificate validation (spec.tls.frontend), both modes.
	features.SupportGatewayFrontendClientCertificateValidation,
	features.SupportGatewayFrontendClientCertificateValidationInsecureFallback,
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
	features.SupportHTTPRouteBackendProtocolH2C,
	features.SupportHTTPRouteCORS,
	features.SupportHTTPRouteDestinationPortMatching,
)

// experimentalHTTPRouteFeatures are claimed in addition when the installed HTTPRoute
// CRD is of the experimental channel: their fields (spec.rules[].retry) exist only
// there, and with the standard channel the API server drops them.
// HTTPRouteRetryBackendTimeout and HTTPRouteRetryConnectionError have no
// conformance test in Gateway API v1.6.3: the dataplane's engine tests
// (enginetest TestRetryOnBackendTimeout, TestResilienceFailingEndpoint and
// the connect-failure retry tests) show the behaviour instead.
var experimentalHTTPRouteFeatures = []features.FeatureName{
	features.SupportHTTPRouteRetry,
	features.SupportHTTPRouteRetryBackendTimeout,
	features.SupportHTTPRouteRetryConnectionError,
}

// serviceFeatures are claimed in addition by the classes whose parameters give
// each Gateway a Service (GatewayClassParameters spec.service): the Service is
// what Flax creates for a Gateway, so spec.infrastructure's labels and
// annotations have somewhere to go. Classes without one create nothing per
// Gateway (the dataplanes are a shared DaemonSet) and do not claim it.
var serviceFeatures = []features.FeatureName{
	features.SupportGatewayInfrastructure,
}

// httpRouteCRD is the name of the HTTPRoute CRD.
const httpRouteCRD = "httproutes." + gatewayv1.GroupName

// supportedFeatures returns the features a class advertises with the installed
// Gateway API CRDs crds: SupportedFeatures, plus experimentalHTTPRouteFeatures when
// the HTTPRoute CRD is of the experimental channel, plus serviceFeatures when
// the class gives each Gateway a Service (withService).
func supportedFeatures(crds []CRD, withService bool) []gatewayv1.SupportedFeature {
	names := make([]features.FeatureName, 0, len(SupportedFeatures)+len(experimentalHTTPRouteFeatures)+len(serviceFeatures))
	for _, f := range SupportedFeatures {
		names = append(names, features.FeatureName(f.Name))
	}
	if slices.ContainsFunc(crds, func(c CRD) bool { return c.Name == httpRouteCRD && c.Channel == "experimental" }) {
		names = append(names, experimentalHTTPRouteFeatures...)
	}
	if withService {
		names = append(names, serviceFeatures...)
	}
	return sortedFeatures(names...)
}

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
