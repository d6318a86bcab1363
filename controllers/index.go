package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// Field indexes on the manager's cache. They answer "is this Secret, Service or
// EndpointSlice used by anything?" without walking every Gateway, HTTPRoute or
// BackendPolicy, both to drop irrelevant events and to hand the translator only the
// objects it needs.
const (
	// indexGatewaySecrets indexes Gateways by the "namespace/name" of every Secret
	// their listeners' TLS certificateRefs name.
	indexGatewaySecrets = "flax.gateway.secrets"
	// indexGatewaySelectsNamespaces indexes Gateways that have a listener whose
	// allowedRoutes select namespaces by label, or whose allowedListeners do, under
	// the value "true".
	indexGatewaySelectsNamespaces = "flax.gateway.selectsNamespaces"
	// indexGatewayConfigMaps indexes Gateways by the "namespace/name" of every
	// ConfigMap the caCertificateRefs of their spec.tls.frontend name.
	indexGatewayConfigMaps = "flax.gateway.configmaps"
	// indexListenerSetSecrets indexes ListenerSets by the "namespace/name" of
	// every Secret their listeners' TLS certificateRefs name.
	indexListenerSetSecrets = "flax.listenerset.secrets"
	// indexListenerSetSelectsNamespaces indexes ListenerSets that have a listener
	// whose allowedRoutes select namespaces by label, under the value "true".
	indexListenerSetSelectsNamespaces = "flax.listenerset.selectsNamespaces"
	// indexRouteServices indexes HTTPRoutes and GRPCRoutes by the
	// "namespace/name" of every Service their backendRefs and requestMirror
	// filters name, and TCPRoutes, TLSRoutes and UDPRoutes by those of their
	// backendRefs.
	indexRouteServices = "flax.httproute.services"
	// indexSliceService indexes EndpointSlices by the "namespace/name" of their
	// Service (the kubernetes.io/service-name label).
	indexSliceService = "flax.endpointslice.service"
	// indexBackendPolicyServices indexes BackendPolicies by the "namespace/name"
	// of every Service their targetRefs name.
	indexBackendPolicyServices = "flax.backendpolicy.services"
	// indexBackendTLSPolicyServices indexes BackendTLSPolicies by the
	// "namespace/name" of every Service their targetRefs name.
	indexBackendTLSPolicyServices = "flax.backendtlspolicy.services"
	// indexBackendTLSPolicyConfigMaps indexes BackendTLSPolicies by the
	// "namespace/name" of every ConfigMap their caCertificateRefs name.
	indexBackendTLSPolicyConfigMaps = "flax.backendtlspolicy.configmaps"
)

// indexTrue is the value of boolean indexes.
const indexTrue = "true"

// setupIndexes registers the field indexes; those of TCPRoutes and TLSRoutes
// only when l4 is set, those of UDPRoutes only when udp is set, those of
// BackendTLSPolicies only when btls is set (their CRDs are installed).
func setupIndexes(ctx context.Context, idx client.FieldIndexer, l4, udp, btls bool) error {
	indexes := []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&gatewayv1.Gateway{}, indexGatewaySecrets, func(o client.Object) []string {
			return keyStrings(gatewaySecretRefs(o.(*gatewayv1.Gateway)))
		}},
		{&gatewayv1.Gateway{}, indexGatewayConfigMaps, func(o client.Object) []string {
			return keyStrings(gatewayConfigMapRefs(o.(*gatewayv1.Gateway)))
		}},
		{&gatewayv1.Gateway{}, indexGatewaySelectsNamespaces, func(o client.Object) []string {
			if gatewaySelectsNamespaces(o.(*gatewayv1.Gateway)) {
				return []string{indexTrue}
			}
			return nil
		}},
		{&gatewayv1.ListenerSet{}, indexListenerSetSecrets, func(o client.Object) []string {
			return keyStrings(listenerSetSecretRefs(o.(*gatewayv1.ListenerSet)))
		}},
		{&gatewayv1.ListenerSet{}, indexListenerSetSelectsNamespaces, func(o client.Object) []string {
			if listenerSetSelectsNamespaces(o.(*gatewayv1.ListenerSet)) {
				return []string{indexTrue}
			}
			return nil
		}},
		{&gatewayv1.HTTPRoute{}, indexRouteServices, func(o client.Object) []string {
			return keyStrings(routeServiceRefs(o.(*gatewayv1.HTTPRoute)))
		}},
		{&gatewayv1.GRPCRoute{}, indexRouteServices, func(o client.Object) []string {
			return keyStrings(grpcRouteServiceRefs(o.(*gatewayv1.GRPCRoute)))
		}},
		{&gatewayv1.TCPRoute{}, indexRouteServices, func(o client.Object) []string {
			r := o.(*gatewayv1.TCPRoute)
			return keyStrings(l4ServiceRefs(r.Namespace, tcpRouteBackends(r)))
		}},
		{&gatewayv1.TLSRoute{}, indexRouteServices, func(o client.Object) []string {
			r := o.(*gatewayv1.TLSRoute)
			return keyStrings(l4ServiceRefs(r.Namespace, tlsRouteBackends(r)))
		}},
		{&gatewayv1.UDPRoute{}, indexRouteServices, func(o client.Object) []string {
			r := o.(*gatewayv1.UDPRoute)
			return keyStrings(l4ServiceRefs(r.Namespace, udpRouteBackends(r)))
		}},
		{&discoveryv1.EndpointSlice{}, indexSliceService, func(o client.Object) []string {
			if key, ok := sliceService(o.(*discoveryv1.EndpointSlice)); ok {
				return []string{key.String()}
			}
			return nil
		}},
		{&flaxv1alpha1.BackendPolicy{}, indexBackendPolicyServices, func(o client.Object) []string {
			return keyStrings(policyServiceRefs(o.(*flaxv1alpha1.BackendPolicy)))
		}},
		{&gatewayv1.BackendTLSPolicy{}, indexBackendTLSPolicyServices, func(o client.Object) []string {
			return keyStrings(tlsPolicyServiceRefs(o.(*gatewayv1.BackendTLSPolicy)))
		}},
		{&gatewayv1.BackendTLSPolicy{}, indexBackendTLSPolicyConfigMaps, func(o client.Object) []string {
			return keyStrings(tlsPolicyConfigMapRefs(o.(*gatewayv1.BackendTLSPolicy)))
		}},
	}
	for _, i := range indexes {
		switch i.obj.(type) {
		case *gatewayv1.TCPRoute, *gatewayv1.TLSRoute:
			if !l4 {
				continue
			}
		case *gatewayv1.UDPRoute:
			if !udp {
				continue
			}
		case *gatewayv1.BackendTLSPolicy:
			if !btls {
				continue
			}
		}
		if err := idx.IndexField(ctx, i.obj, i.field, i.extract); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", i.obj, i.field, err)
		}
	}
	return nil
}

// gatewaySecretRefs returns the Secrets named by the TLS certificateRefs of gw's
// listeners and by its spec.tls.backend.clientCertificateRef, without
// duplicates. References to other kinds are left out.
func gatewaySecretRefs(gw *gatewayv1.Gateway) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, l := range gw.Spec.Listeners {
		keys = appendSecretRefs(keys, gw.Namespace, l.TLS)
	}
	if gw.Spec.TLS != nil && gw.Spec.TLS.Backend != nil && gw.Spec.TLS.Backend.ClientCertificateRef != nil {
		ref := gw.Spec.TLS.Backend.ClientCertificateRef
		if isCore(ref.Group) && (ref.Kind == nil || *ref.Kind == "Secret") {
			ns := gw.Namespace
			if ref.Namespace != nil && *ref.Namespace != "" {
				ns = string(*ref.Namespace)
			}
			keys = appendUnique(keys, types.NamespacedName{Namespace: ns, Name: string(ref.Name)})
		}
	}
	return keys
}

// gatewayConfigMapRefs returns the ConfigMaps named by the caCertificateRefs
// of gw's spec.tls.frontend (default and perPort), without duplicates.
// References to other kinds are left out.
func gatewayConfigMapRefs(gw *gatewayv1.Gateway) []types.NamespacedName {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil
	}
	f := gw.Spec.TLS.Frontend
	validations := []*gatewayv1.FrontendTLSValidation{f.Default.Validation}
	for _, p := range f.PerPort {
		validations = append(validations, p.TLS.Validation)
	}
	var keys []types.NamespacedName
	for _, v := range validations {
		if v == nil {
			continue
		}
		for _, ref := range v.CACertificateRefs {
			if !isCore(&ref.Group) || ref.Kind != "ConfigMap" {
				continue
			}
			ns := gw.Namespace
			if ref.Namespace != nil && *ref.Namespace != "" {
				ns = string(*ref.Namespace)
			}
			keys = appendUnique(keys, types.NamespacedName{Namespace: ns, Name: string(ref.Name)})
		}
	}
	return keys
}

// listenerSetSecretRefs returns the Secrets named by the TLS certificateRefs of
// ls's listeners, without duplicates. References to other kinds are left out.
func listenerSetSecretRefs(ls *gatewayv1.ListenerSet) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, l := range ls.Spec.Listeners {
		keys = appendSecretRefs(keys, ls.Namespace, l.TLS)
	}
	return keys
}

// appendSecretRefs appends the Secrets named by the certificateRefs of tls, a
// listener's TLS configuration in namespace ns, to keys.
func appendSecretRefs(keys []types.NamespacedName, ns string, tls *gatewayv1.ListenerTLSConfig) []types.NamespacedName {
	if tls == nil {
		return keys
	}
	for _, ref := range tls.CertificateRefs {
		if !isCore(ref.Group) || (ref.Kind != nil && *ref.Kind != "Secret") {
			continue
		}
		refNS := ns
		if ref.Namespace != nil {
			refNS = string(*ref.Namespace)
		}
		keys = appendUnique(keys, types.NamespacedName{Namespace: refNS, Name: string(ref.Name)})
	}
	return keys
}

// gatewaySelectsNamespaces reports whether a listener of gw admits routes from
// namespaces chosen by a label selector, or gw admits ListenerSets so, which makes
// Namespace labels matter.
func gatewaySelectsNamespaces(gw *gatewayv1.Gateway) bool {
	if al := gw.Spec.AllowedListeners; al != nil && al.Namespaces != nil && al.Namespaces.From != nil &&
		*al.Namespaces.From == gatewayv1.NamespacesFromSelector {
		return true
	}
	for _, l := range gw.Spec.Listeners {
		if selectsNamespaces(l.AllowedRoutes) {
			return true
		}
	}
	return false
}

// listenerSetSelectsNamespaces reports whether a listener of ls admits routes
// from namespaces chosen by a label selector.
func listenerSetSelectsNamespaces(ls *gatewayv1.ListenerSet) bool {
	for _, l := range ls.Spec.Listeners {
		if selectsNamespaces(l.AllowedRoutes) {
			return true
		}
	}
	return false
}

// selectsNamespaces reports whether ar admits routes from namespaces chosen by a
// label selector.
func selectsNamespaces(ar *gatewayv1.AllowedRoutes) bool {
	return ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil &&
		*ar.Namespaces.From == gatewayv1.NamespacesFromSelector
}

// listenerSetParent returns the Gateway the parentRef of ls names; false when it
// names another kind.
func listenerSetParent(ls *gatewayv1.ListenerSet) (types.NamespacedName, bool) {
	ref := ls.Spec.ParentRef
	if (ref.Group != nil && *ref.Group != gatewayv1.GroupName) || (ref.Kind != nil && *ref.Kind != "Gateway") {
		return types.NamespacedName{}, false
	}
	ns := ls.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return types.NamespacedName{Namespace: ns, Name: string(ref.Name)}, true
}

// routeServiceRefs returns the Services named by route's backendRefs (rule and
// per-backend requestMirror filters included), without duplicates.
func routeServiceRefs(route *gatewayv1.HTTPRoute) []types.NamespacedName {
	var keys []types.NamespacedName
	mirrors := func(filters []gatewayv1.HTTPRouteFilter) {
		for _, f := range filters {
			if f.RequestMirror != nil {
				keys = appendServiceRef(keys, route.Namespace, f.RequestMirror.BackendRef)
			}
		}
	}
	for _, rule := range route.Spec.Rules {
		mirrors(rule.Filters)
		for _, b := range rule.BackendRefs {
			keys = appendServiceRef(keys, route.Namespace, b.BackendObjectReference)
			mirrors(b.Filters)
		}
	}
	return keys
}

// grpcRouteServiceRefs returns the Services named by route's backendRefs
// (rule and per-backend requestMirror filters included), without duplicates.
func grpcRouteServiceRefs(route *gatewayv1.GRPCRoute) []types.NamespacedName {
	var keys []types.NamespacedName
	mirrors := func(filters []gatewayv1.GRPCRouteFilter) {
		for _, f := range filters {
			if f.RequestMirror != nil {
				keys = appendServiceRef(keys, route.Namespace, f.RequestMirror.BackendRef)
			}
		}
	}
	for _, rule := range route.Spec.Rules {
		mirrors(rule.Filters)
		for _, b := range rule.BackendRefs {
			keys = appendServiceRef(keys, route.Namespace, b.BackendObjectReference)
			mirrors(b.Filters)
		}
	}
	return keys
}

// appendServiceRef appends the Service ref names, a reference of a route in
// namespace ns, to keys unless it is there already or ref names another kind.
func appendServiceRef(keys []types.NamespacedName, ns string, ref gatewayv1.BackendObjectReference) []types.NamespacedName {
	if !isCore(ref.Group) || (ref.Kind != nil && *ref.Kind != "Service") {
		return keys
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return appendUnique(keys, types.NamespacedName{Namespace: ns, Name: string(ref.Name)})
}

// tcpRouteBackends returns the backendRefs of a TCPRoute's rules.
func tcpRouteBackends(r *gatewayv1.TCPRoute) []gatewayv1.BackendRef {
	var refs []gatewayv1.BackendRef
	for _, rule := range r.Spec.Rules {
		refs = append(refs, rule.BackendRefs...)
	}
	return refs
}

// udpRouteBackends returns the backendRefs of a UDPRoute's rules.
func udpRouteBackends(r *gatewayv1.UDPRoute) []gatewayv1.BackendRef {
	var refs []gatewayv1.BackendRef
	for _, rule := range r.Spec.Rules {
		refs = append(refs, rule.BackendRefs...)
	}
	return refs
}

// tlsRouteBackends returns the backendRefs of a TLSRoute's rules.
func tlsRouteBackends(r *gatewayv1.TLSRoute) []gatewayv1.BackendRef {
	var refs []gatewayv1.BackendRef
	for _, rule := range r.Spec.Rules {
		refs = append(refs, rule.BackendRefs...)
	}
	return refs
}

// l4ServiceRefs returns the Services named by refs, backendRefs of a route in
// namespace ns, without duplicates.
func l4ServiceRefs(ns string, refs []gatewayv1.BackendRef) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, ref := range refs {
		if !isCore(ref.Group) || (ref.Kind != nil && *ref.Kind != "Service") {
			continue
		}
		rns := ns
		if ref.Namespace != nil {
			rns = string(*ref.Namespace)
		}
		keys = appendUnique(keys, types.NamespacedName{Namespace: rns, Name: string(ref.Name)})
	}
	return keys
}

// policyServiceRefs returns the Services named by the targetRefs of a
// BackendPolicy, without duplicates. References to other kinds are left out.
func policyServiceRefs(p *flaxv1alpha1.BackendPolicy) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, ref := range p.Spec.TargetRefs {
		if isCore(&ref.Group) && ref.Kind == "Service" {
			keys = appendUnique(keys, types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)})
		}
	}
	return keys
}

// tlsPolicyServiceRefs returns the Services named by the targetRefs of a
// BackendTLSPolicy, without duplicates. References to other kinds are left out.
func tlsPolicyServiceRefs(p *gatewayv1.BackendTLSPolicy) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, ref := range p.Spec.TargetRefs {
		if isCore(&ref.Group) && ref.Kind == "Service" {
			keys = appendUnique(keys, types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)})
		}
	}
	return keys
}

// tlsPolicyConfigMapRefs returns the ConfigMaps named by the caCertificateRefs
// of a BackendTLSPolicy (its own namespace), without duplicates. References to
// other kinds are left out.
func tlsPolicyConfigMapRefs(p *gatewayv1.BackendTLSPolicy) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, ref := range p.Spec.Validation.CACertificateRefs {
		if isCore(&ref.Group) && ref.Kind == "ConfigMap" {
			keys = appendUnique(keys, types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)})
		}
	}
	return keys
}

// sliceService returns the Service an EndpointSlice belongs to.
func sliceService(s *discoveryv1.EndpointSlice) (types.NamespacedName, bool) {
	name, ok := s.Labels[discoveryv1.LabelServiceName]
	if !ok || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: s.Namespace, Name: name}, true
}

// isCore reports whether an API group reference names the core group.
func isCore(g *gatewayv1.Group) bool { return g == nil || *g == "" || *g == corev1.GroupName }

// appendUnique appends key to keys unless it is there already.
func appendUnique(keys []types.NamespacedName, key types.NamespacedName) []types.NamespacedName {
	if slices.Contains(keys, key) {
		return keys
	}
	return append(keys, key)
}

// keyStrings returns the "namespace/name" form of keys.
func keyStrings(keys []types.NamespacedName) []string {
	if len(keys) == 0 {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out
}
