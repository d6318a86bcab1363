package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/translate"
)

// input lists what the translator needs from the cache: every GatewayClass of ours,
// the GatewayClassParameters they name, the Gateway API CRDs (bundle version and
// channel), their Gateways (whose status.addresses keep pool allocations stable),
// the ListenerSets of those Gateways, every HTTPRoute, ReferenceGrant, Namespace,
// BackendPolicy and RoutePolicy, only
// the Services, EndpointSlices and Secrets that routes and listeners name (and the
// Services BackendPolicies target), and the addresses of the Ready nodes that run a
// dataplane and whose dataplane is connected by their node Lease. It also returns the earliest expiry of a fresh node
// Lease (zero if none).
func (c *Controller) input(ctx context.Context) (*translate.Input, time.Time, error) {
	in, err := c.listInput(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	addresses, serving, nextExpiry, err := c.leases.GatewayAddresses(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	in.NodeAddresses, in.DataplaneNodes = addresses, serving
	return in, nextExpiry, nil
}

// listInput lists everything input needs but the node addresses. Each step reads
// what the steps before it put into the input.
func (c *Controller) listInput(ctx context.Context) (*translate.Input, error) {
	in := &translate.Input{ControllerName: c.opts.ControllerName}
	for _, list := range []func(context.Context, *translate.Input) error{
		c.listClasses,
		c.listCRDs,
		c.listGateways,
		c.listListenerSets,
		c.listRoutes,
		c.listPolicies,
		c.getServices,
		c.listGatewayServices,
		c.getSecrets,
		c.getConfigMaps,
	} {
		if err := list(ctx, in); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// listClasses adds the GatewayClasses of ours and the GatewayClassParameters they
// name.
func (c *Controller) listClasses(ctx context.Context, in *translate.Input) error {
	var classes gatewayv1.GatewayClassList
	if err := c.client.List(ctx, &classes); err != nil {
		return fmt.Errorf("listing gatewayclasses: %w", err)
	}
	for _, gc := range classes.Items {
		if string(gc.Spec.ControllerName) == c.opts.ControllerName {
			in.GatewayClasses = append(in.GatewayClasses, gc)
		}
	}
	for _, gc := range in.GatewayClasses {
		ref := gc.Spec.ParametersRef
		if ref == nil || string(ref.Group) != flaxv1alpha1.GroupName || string(ref.Kind) != flaxv1alpha1.KindGatewayClassParameters ||
			slices.ContainsFunc(in.Parameters, func(p flaxv1alpha1.GatewayClassParameters) bool { return p.Name == ref.Name }) {
			continue
		}
		var p flaxv1alpha1.GatewayClassParameters
		switch err := c.client.Get(ctx, types.NamespacedName{Name: ref.Name}, &p); {
		case err == nil:
			in.Parameters = append(in.Parameters, p)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("getting gatewayclassparameters %s: %w", ref.Name, err)
		}
	}
	return nil
}

// listCRDs adds the installed Gateway API CRDs with their bundle versions and
// channels (from the cache of CRD metadata).
func (c *Controller) listCRDs(ctx context.Context, in *translate.Input) error {
	crds := crdMetadataList()
	if err := c.client.List(ctx, crds); err != nil {
		return fmt.Errorf("listing customresourcedefinitions: %w", err)
	}
	for _, crd := range crds.Items {
		if translate.IsGatewayAPICRD(crd.Name) {
			in.GatewayAPICRDs = append(in.GatewayAPICRDs, translate.CRD{
				Name:          crd.Name,
				BundleVersion: crd.Annotations[translate.BundleVersionAnnotation],
				Channel:       crd.Annotations[translate.ChannelAnnotation],
			})
		}
	}
	return nil
}

// crdGroupVersion is the API of CustomResourceDefinitions, of which the controller
// reads (and caches) only the metadata.
var crdGroupVersion = schema.GroupVersion{Group: "apiextensions.k8s.io", Version: "v1"}

// crdMetadata returns an empty CustomResourceDefinition metadata object.
func crdMetadata() *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(crdGroupVersion.WithKind("CustomResourceDefinition"))
	return o
}

// crdMetadataList returns an empty list of CustomResourceDefinition metadata.
func crdMetadataList() *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(crdGroupVersion.WithKind("CustomResourceDefinitionList"))
	return l
}

// listGateways adds the Gateways of the classes in the input.
func (c *Controller) listGateways(ctx context.Context, in *translate.Input) error {
	var gateways gatewayv1.GatewayList
	if err := c.client.List(ctx, &gateways); err != nil {
		return fmt.Errorf("listing gateways: %w", err)
	}
	for _, gw := range gateways.Items {
		if slices.ContainsFunc(in.GatewayClasses, func(gc gatewayv1.GatewayClass) bool { return gc.Name == string(gw.Spec.GatewayClassName) }) {
			in.Gateways = append(in.Gateways, gw)
		}
	}
	return nil
}

// listListenerSets adds the ListenerSets whose parentRef names a Gateway in the
// input.
func (c *Controller) listListenerSets(ctx context.Context, in *translate.Input) error {
	var sets gatewayv1.ListenerSetList
	if err := c.client.List(ctx, &sets); err != nil {
		return fmt.Errorf("listing listenersets: %w", err)
	}
	for _, ls := range sets.Items {
		parent, ok := listenerSetParent(&ls)
		if ok && slices.ContainsFunc(in.Gateways, func(gw gatewayv1.Gateway) bool {
			return gw.Namespace == parent.Namespace && gw.Name == parent.Name
		}) {
			in.ListenerSets = append(in.ListenerSets, ls)
		}
	}
	return nil
}

// listRoutes adds every HTTPRoute, GRPCRoute, TCPRoute, TLSRoute, UDPRoute and
// ReferenceGrant, and every Namespace (for the listeners' allowedRoutes).
func (c *Controller) listRoutes(ctx context.Context, in *translate.Input) error {
	var routes gatewayv1.HTTPRouteList
	if err := c.client.List(ctx, &routes); err != nil {
		return fmt.Errorf("listing httproutes: %w", err)
	}
	in.HTTPRoutes = routes.Items
	var grpc gatewayv1.GRPCRouteList
	if err := c.client.List(ctx, &grpc); err != nil {
		return fmt.Errorf("listing grpcroutes: %w", err)
	}
	in.GRPCRoutes = grpc.Items
	if c.l4Routes {
		var tcp gatewayv1.TCPRouteList
		if err := c.client.List(ctx, &tcp); err != nil {
			return fmt.Errorf("listing tcproutes: %w", err)
		}
		in.TCPRoutes = tcp.Items
		var tls gatewayv1.TLSRouteList
		if err := c.client.List(ctx, &tls); err != nil {
			return fmt.Errorf("listing tlsroutes: %w", err)
		}
		in.TLSRoutes = tls.Items
	}
	if c.udpRoutes {
		var udp gatewayv1.UDPRouteList
		if err := c.client.List(ctx, &udp); err != nil {
			return fmt.Errorf("listing udproutes: %w", err)
		}
		in.UDPRoutes = udp.Items
	}
	var grants gatewayv1beta1.ReferenceGrantList
	if err := c.client.List(ctx, &grants); err != nil {
		return fmt.Errorf("listing referencegrants: %w", err)
	}
	in.ReferenceGrants = grants.Items
	var namespaces corev1.NamespaceList
	if err := c.client.List(ctx, &namespaces); err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	in.Namespaces = namespaces.Items
	return nil
}

// listPolicies adds every BackendPolicy and RoutePolicy, and every
// BackendTLSPolicy when they are served.
func (c *Controller) listPolicies(ctx context.Context, in *translate.Input) error {
	var backendPolicies flaxv1alpha1.BackendPolicyList
	if err := c.client.List(ctx, &backendPolicies); err != nil {
		return fmt.Errorf("listing backendpolicies: %w", err)
	}
	in.BackendPolicies = backendPolicies.Items
	var routePolicies flaxv1alpha1.RoutePolicyList
	if err := c.client.List(ctx, &routePolicies); err != nil {
		return fmt.Errorf("listing routepolicies: %w", err)
	}
	in.RoutePolicies = routePolicies.Items
	if c.backendTLS {
		var tlsPolicies gatewayv1.BackendTLSPolicyList
		if err := c.client.List(ctx, &tlsPolicies); err != nil {
			return fmt.Errorf("listing backendtlspolicies: %w", err)
		}
		in.BackendTLSPolicies = tlsPolicies.Items
	}
	return nil
}

// getServices adds the Services the input's routes name, with their
// EndpointSlices, then the Services only BackendPolicies and BackendTLSPolicies
// target, without theirs:
// whether those exist and their port names decide the policies' status; their
// endpoints do not matter.
func (c *Controller) getServices(ctx context.Context, in *translate.Input) error {
	var routed, targeted []types.NamespacedName
	for i := range in.HTTPRoutes {
		for _, key := range routeServiceRefs(&in.HTTPRoutes[i]) {
			routed = appendUnique(routed, key)
		}
	}
	for i := range in.GRPCRoutes {
		for _, key := range grpcRouteServiceRefs(&in.GRPCRoutes[i]) {
			routed = appendUnique(routed, key)
		}
	}
	for i := range in.TCPRoutes {
		r := &in.TCPRoutes[i]
		for _, key := range l4ServiceRefs(r.Namespace, tcpRouteBackends(r)) {
			routed = appendUnique(routed, key)
		}
	}
	for i := range in.TLSRoutes {
		r := &in.TLSRoutes[i]
		for _, key := range l4ServiceRefs(r.Namespace, tlsRouteBackends(r)) {
			routed = appendUnique(routed, key)
		}
	}
	for i := range in.UDPRoutes {
		r := &in.UDPRoutes[i]
		for _, key := range l4ServiceRefs(r.Namespace, udpRouteBackends(r)) {
			routed = appendUnique(routed, key)
		}
	}
	for i := range in.BackendPolicies {
		for _, key := range policyServiceRefs(&in.BackendPolicies[i]) {
			if !slices.Contains(routed, key) {
				targeted = appendUnique(targeted, key)
			}
		}
	}
	for i := range in.BackendTLSPolicies {
		for _, key := range tlsPolicyServiceRefs(&in.BackendTLSPolicies[i]) {
			if !slices.Contains(routed, key) {
				targeted = appendUnique(targeted, key)
			}
		}
	}
	for _, key := range routed {
		if err := c.getService(ctx, in, key); err != nil {
			return err
		}
		var eps discoveryv1.EndpointSliceList
		if err := c.client.List(ctx, &eps, client.InNamespace(key.Namespace),
			client.MatchingFields{indexSliceService: key.String()}); err != nil {
			return fmt.Errorf("listing endpointslices of service %s: %w", key, err)
		}
		in.EndpointSlices = append(in.EndpointSlices, eps.Items...)
	}
	for _, key := range targeted {
		if err := c.getService(ctx, in, key); err != nil {
			return err
		}
	}
	return nil
}

// listGatewayServices adds the Services Flax created for Gateways (labelled
// translate.GatewayServiceLabel), whose load balancer status may hold their
// Gateway's addresses.
func (c *Controller) listGatewayServices(ctx context.Context, in *translate.Input) error {
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.MatchingLabels{translate.GatewayServiceLabel: "true"}); err != nil {
		return fmt.Errorf("listing gateway services: %w", err)
	}
	in.GatewayServices = list.Items
	return nil
}

// getService adds the Service key if it exists.
func (c *Controller) getService(ctx context.Context, in *translate.Input, key types.NamespacedName) error {
	var svc corev1.Service
	switch err := c.client.Get(ctx, key, &svc); {
	case err == nil:
		in.Services = append(in.Services, svc)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("getting service %s: %w", key, err)
	}
	return nil
}

// getSecrets adds the Secrets the listeners of the input's Gateways and
// ListenerSets, and the Gateways' spec.tls.backend, name, those that exist.
func (c *Controller) getSecrets(ctx context.Context, in *translate.Input) error {
	var keys []types.NamespacedName
	for i := range in.Gateways {
		for _, key := range gatewaySecretRefs(&in.Gateways[i]) {
			keys = appendUnique(keys, key)
		}
	}
	for i := range in.ListenerSets {
		for _, key := range listenerSetSecretRefs(&in.ListenerSets[i]) {
			keys = appendUnique(keys, key)
		}
	}
	for _, key := range keys {
		s, err := c.secret(ctx, key)
		if err != nil {
			return err
		}
		if s != nil {
			in.Secrets = append(in.Secrets, *s)
		}
	}
	return nil
}

// getConfigMaps adds the ConfigMaps the frontend CA certificate references of
// the input's Gateways and the CA certificate references of its
// BackendTLSPolicies name, those that exist.
func (c *Controller) getConfigMaps(ctx context.Context, in *translate.Input) error {
	var keys []types.NamespacedName
	for i := range in.Gateways {
		for _, key := range gatewayConfigMapRefs(&in.Gateways[i]) {
			keys = appendUnique(keys, key)
		}
	}
	for i := range in.BackendTLSPolicies {
		for _, key := range tlsPolicyConfigMapRefs(&in.BackendTLSPolicies[i]) {
			keys = appendUnique(keys, key)
		}
	}
	for _, key := range keys {
		cm, err := c.configMap(ctx, key)
		if err != nil {
			return err
		}
		if cm != nil {
			in.ConfigMaps = append(in.ConfigMaps, *cm)
		}
	}
	return nil
}

// configMap returns the ConfigMap key, or nil if it does not exist. The cache
// holds ConfigMaps' metadata only (a cluster has many ConfigMaps, few of them
// CA certificates); the data of a referenced one is read from the API server
// when its resourceVersion changes and kept in c.configMaps until then.
func (c *Controller) configMap(ctx context.Context, key types.NamespacedName) (*corev1.ConfigMap, error) {
	m := configMapMetadata()
	err := c.client.Get(ctx, key, m)
	switch {
	case apierrors.IsNotFound(err):
		c.configMaps.forget(key)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting configmap %s metadata: %w", key, err)
	}
	if cm := c.configMaps.get(key, m.ResourceVersion); cm != nil {
		return cm, nil
	}
	var cm corev1.ConfigMap
	err = c.apiReader.Get(ctx, key, &cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting configmap %s: %w", key, err)
	}
	c.configMaps.put(key, &cm)
	return &cm, nil
}

// configMapMetadata returns an empty ConfigMap metadata object.
func configMapMetadata() *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	return o
}

// configMapStore keeps the ConfigMaps read from the API server, by key.
type configMapStore struct {
	mu   sync.Mutex
	maps map[types.NamespacedName]*corev1.ConfigMap
}

// get returns the stored ConfigMap key if it has resourceVersion rv.
func (s *configMapStore) get(key types.NamespacedName, rv string) *corev1.ConfigMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cm := s.maps[key]; cm != nil && cm.ResourceVersion == rv {
		return cm
	}
	return nil
}

// put stores cm under key.
func (s *configMapStore) put(key types.NamespacedName, cm *corev1.ConfigMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maps == nil {
		s.maps = map[types.NamespacedName]*corev1.ConfigMap{}
	}
	s.maps[key] = cm
}

// forget drops the ConfigMap key.
func (s *configMapStore) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.maps, key)
}

// secret returns the Secret key, or nil if it does not exist. The cache holds only
// kubernetes.io/tls Secrets (see CacheOptions); a referenced Secret missing from it
// is read from the API server, so that a Secret of the wrong type is reported as
// such rather than as missing.
func (c *Controller) secret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	err := c.client.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		err = c.apiReader.Get(ctx, key, &s)
	}
	switch {
	case err == nil:
		return &s, nil
	case apierrors.IsNotFound(err):
		return nil, nil
	default:
		return nil, fmt.Errorf("getting secret %s: %w", key, err)
	}
}
