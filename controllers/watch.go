package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/nodes"
	"github.com/flaxlb/flax/controllers/translate"
)

// watch registers the watches. Every event that can change the translation queues
// the single world key; events that cannot are dropped here.
func (c *Controller) watch(mgr manager.Manager, ctrl controller.Controller) error {
	cache := mgr.GetCache()
	co := c.coalescer
	sources := []source.Source{
		// One translation at start, even when there is nothing to watch yet, so that
		// the dataplane learns it should serve nothing.
		source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(worldKey)
			return nil
		}),
		source.Kind(cache, &gatewayv1.GatewayClass{},
			enqueue(co, false, func(_ context.Context, gc *gatewayv1.GatewayClass) bool {
				return string(gc.Spec.ControllerName) == c.opts.ControllerName
			}),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.GatewayClass]{}),
		// Parameters are few and change rarely: any change may matter.
		source.Kind(cache, &flaxv1alpha1.GatewayClassParameters{},
			enqueue[*flaxv1alpha1.GatewayClassParameters](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*flaxv1alpha1.GatewayClassParameters]{}),
		// Gateway API CRDs (metadata only): their bundle versions decide the classes'
		// SupportedVersion condition, the HTTPRoute CRD's channel some of their
		// supported features.
		source.Kind(cache, crdMetadata(),
			enqueue(co, false, func(_ context.Context, o *metav1.PartialObjectMetadata) bool {
				return translate.IsGatewayAPICRD(o.Name)
			}),
			predicate.TypedFuncs[*metav1.PartialObjectMetadata]{UpdateFunc: func(e event.TypedUpdateEvent[*metav1.PartialObjectMetadata]) bool {
				o, n := e.ObjectOld.Annotations, e.ObjectNew.Annotations
				return o[translate.BundleVersionAnnotation] != n[translate.BundleVersionAnnotation] ||
					o[translate.ChannelAnnotation] != n[translate.ChannelAnnotation]
			}}),
		source.Kind(cache, &gatewayv1.Gateway{},
			enqueue(co, false, c.gatewayIsOurs),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.Gateway]{}),
		// ListenerSets of other controllers' Gateways are dropped when the input is
		// listed; their status is written by the leader and does not change the
		// generation.
		source.Kind(cache, &gatewayv1.ListenerSet{},
			enqueue[*gatewayv1.ListenerSet](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.ListenerSet]{}),
		source.Kind(cache, &gatewayv1.HTTPRoute{},
			enqueue[*gatewayv1.HTTPRoute](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.HTTPRoute]{}),
		source.Kind(cache, &gatewayv1.GRPCRoute{},
			enqueue[*gatewayv1.GRPCRoute](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.GRPCRoute]{}),
	}
	if c.l4Routes {
		sources = append(sources,
			source.Kind(cache, &gatewayv1.TCPRoute{},
				enqueue[*gatewayv1.TCPRoute](co, false, nil),
				predicate.TypedGenerationChangedPredicate[*gatewayv1.TCPRoute]{}),
			source.Kind(cache, &gatewayv1.TLSRoute{},
				enqueue[*gatewayv1.TLSRoute](co, false, nil),
				predicate.TypedGenerationChangedPredicate[*gatewayv1.TLSRoute]{}))
	}
	if c.udpRoutes {
		sources = append(sources,
			source.Kind(cache, &gatewayv1.UDPRoute{},
				enqueue[*gatewayv1.UDPRoute](co, false, nil),
				predicate.TypedGenerationChangedPredicate[*gatewayv1.UDPRoute]{}))
	}
	sources = append(sources,
		source.Kind(cache, &gatewayv1beta1.ReferenceGrant{},
			enqueue[*gatewayv1beta1.ReferenceGrant](co, false, nil),
			predicate.TypedResourceVersionChangedPredicate[*gatewayv1beta1.ReferenceGrant]{}),
		// Policies: every spec change; their status is written by the leader and
		// does not change the generation.
		source.Kind(cache, &flaxv1alpha1.BackendPolicy{},
			enqueue[*flaxv1alpha1.BackendPolicy](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*flaxv1alpha1.BackendPolicy]{}),
		source.Kind(cache, &flaxv1alpha1.RoutePolicy{},
			enqueue[*flaxv1alpha1.RoutePolicy](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*flaxv1alpha1.RoutePolicy]{}),
		source.Kind(cache, &corev1.Service{},
			enqueue(co, false, func(ctx context.Context, s *corev1.Service) bool {
				key := client.ObjectKeyFromObject(s)
				return s.Labels[translate.GatewayServiceLabel] == "true" || c.serviceIsUsed(ctx, key) || c.serviceIsTargeted(ctx, key)
			}),
			predicate.TypedResourceVersionChangedPredicate[*corev1.Service]{}),
		source.Kind(cache, &discoveryv1.EndpointSlice{},
			enqueue(co, true, func(ctx context.Context, s *discoveryv1.EndpointSlice) bool {
				key, ok := sliceService(s)
				return ok && c.serviceIsUsed(ctx, key)
			}),
			predicate.TypedResourceVersionChangedPredicate[*discoveryv1.EndpointSlice]{}),
		source.Kind(cache, &corev1.Secret{},
			enqueue(co, false, func(ctx context.Context, s *corev1.Secret) bool {
				return c.secretIsUsed(ctx, client.ObjectKeyFromObject(s))
			}),
			predicate.TypedResourceVersionChangedPredicate[*corev1.Secret]{}),
		// ConfigMaps (metadata only): those a Gateway's frontend validation or a
		// BackendTLSPolicy names; a change of their data changes their
		// resourceVersion, and the translation reads the data again.
		source.Kind(cache, configMapMetadata(),
			enqueue(co, false, func(ctx context.Context, m *metav1.PartialObjectMetadata) bool {
				return c.configMapIsUsed(ctx, client.ObjectKeyFromObject(m))
			}),
			predicate.TypedResourceVersionChangedPredicate[*metav1.PartialObjectMetadata]{}),
		source.Kind(cache, &corev1.Namespace{},
			enqueue(co, false, c.namespacesMatter),
			predicate.TypedLabelChangedPredicate[*corev1.Namespace]{}),
	)
	if c.backendTLS {
		// Every spec change; their status is written by the leader and does
		// not change the generation.
		sources = append(sources, source.Kind(cache, &gatewayv1.BackendTLSPolicy{},
			enqueue[*gatewayv1.BackendTLSPolicy](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.BackendTLSPolicy]{}))
	}
	sources = append(sources, source.Kind(cache, &corev1.Node{},
		enqueue(co, false, func(_ context.Context, n *corev1.Node) bool { return nodes.Selected(c.opts.NodeSelector, n) }),
		// Nodes change often (conditions, images); only their addresses, readiness
		// and labels matter here.
		predicate.TypedFuncs[*corev1.Node]{UpdateFunc: func(e event.TypedUpdateEvent[*corev1.Node]) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return nodes.Ready(o) != nodes.Ready(n) || !slices.Equal(nodes.Addresses(o), nodes.Addresses(n)) ||
				!maps.Equal(o.Labels, n.Labels)
		}}))
	// Node Leases: a node's result changed, a node came or went, or a Lease came
	// back from expiry (expiries themselves are found by reconcile's requeue).
	sources = append(sources, source.Kind(c.leaseCache, &coordinationv1.Lease{},
		enqueue(co, false, func(_ context.Context, l *coordinationv1.Lease) bool { return nodes.IsNodeLease(l) }),
		predicate.TypedFuncs[*coordinationv1.Lease]{UpdateFunc: func(e event.TypedUpdateEvent[*coordinationv1.Lease]) bool {
			return nodes.LeaseChanged(e.ObjectOld, e.ObjectNew)
		}}))
	for _, src := range sources {
		if err := ctrl.Watch(src); err != nil {
			return fmt.Errorf("watching %s: %w", src, err)
		}
	}
	return nil
}

// gatewayIsOurs reports whether gw belongs to a GatewayClass of ours.
func (c *Controller) gatewayIsOurs(ctx context.Context, gw *gatewayv1.Gateway) bool {
	var gc gatewayv1.GatewayClass
	if err := c.client.Get(ctx, types.NamespacedName{Name: string(gw.Spec.GatewayClassName)}, &gc); err != nil {
		// A class created later triggers a translation itself.
		return false
	}
	return string(gc.Spec.ControllerName) == c.opts.ControllerName
}

// serviceIsUsed reports whether an HTTPRoute, GRPCRoute, TCPRoute, TLSRoute or
// UDPRoute names the Service key.
func (c *Controller) serviceIsUsed(ctx context.Context, key types.NamespacedName) bool {
	lists := []client.ObjectList{&gatewayv1.HTTPRouteList{}, &gatewayv1.GRPCRouteList{}}
	if c.l4Routes {
		lists = append(lists, &gatewayv1.TCPRouteList{}, &gatewayv1.TLSRouteList{})
	}
	if c.udpRoutes {
		lists = append(lists, &gatewayv1.UDPRouteList{})
	}
	for _, routes := range lists {
		if err := c.client.List(ctx, routes, client.MatchingFields{indexRouteServices: key.String()}); err != nil {
			return true // when in doubt, translate
		}
		if meta.LenList(routes) > 0 {
			return true
		}
	}
	return false
}

// serviceIsTargeted reports whether a BackendPolicy or a BackendTLSPolicy
// targets the Service key.
func (c *Controller) serviceIsTargeted(ctx context.Context, key types.NamespacedName) bool {
	var policies flaxv1alpha1.BackendPolicyList
	if err := c.client.List(ctx, &policies, client.InNamespace(key.Namespace),
		client.MatchingFields{indexBackendPolicyServices: key.String()}); err != nil || len(policies.Items) > 0 {
		return true
	}
	if !c.backendTLS {
		return false
	}
	var tlsPolicies gatewayv1.BackendTLSPolicyList
	if err := c.client.List(ctx, &tlsPolicies, client.InNamespace(key.Namespace),
		client.MatchingFields{indexBackendTLSPolicyServices: key.String()}); err != nil {
		return true
	}
	return len(tlsPolicies.Items) > 0
}

// secretIsUsed reports whether a listener of a Gateway or ListenerSet names the
// Secret key.
func (c *Controller) secretIsUsed(ctx context.Context, key types.NamespacedName) bool {
	var gws gatewayv1.GatewayList
	if err := c.client.List(ctx, &gws, client.MatchingFields{indexGatewaySecrets: key.String()}); err != nil || len(gws.Items) > 0 {
		return true
	}
	var sets gatewayv1.ListenerSetList
	if err := c.client.List(ctx, &sets, client.MatchingFields{indexListenerSetSecrets: key.String()}); err != nil {
		return true
	}
	return len(sets.Items) > 0
}

// configMapIsUsed reports whether a Gateway's frontend validation or a
// BackendTLSPolicy names the ConfigMap key.
func (c *Controller) configMapIsUsed(ctx context.Context, key types.NamespacedName) bool {
	var gws gatewayv1.GatewayList
	if err := c.client.List(ctx, &gws, client.MatchingFields{indexGatewayConfigMaps: key.String()}); err != nil || len(gws.Items) > 0 {
		return true
	}
	if !c.backendTLS {
		return false
	}
	var policies gatewayv1.BackendTLSPolicyList
	if err := c.client.List(ctx, &policies, client.InNamespace(key.Namespace),
		client.MatchingFields{indexBackendTLSPolicyConfigMaps: key.String()}); err != nil {
		return true
	}
	return len(policies.Items) > 0
}

// namespacesMatter reports whether a Gateway selects route or ListenerSet
// namespaces by label, or a ListenerSet selects route namespaces so.
func (c *Controller) namespacesMatter(ctx context.Context, _ *corev1.Namespace) bool {
	var gws gatewayv1.GatewayList
	if err := c.client.List(ctx, &gws, client.MatchingFields{indexGatewaySelectsNamespaces: indexTrue}); err != nil || len(gws.Items) > 0 {
		return true
	}
	var sets gatewayv1.ListenerSetList
	if err := c.client.List(ctx, &sets, client.MatchingFields{indexListenerSetSelectsNamespaces: indexTrue}); err != nil {
		return true
	}
	return len(sets.Items) > 0
}
