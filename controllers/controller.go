package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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
	"github.com/flaxlb/flax/controllers/translate"
)

// DefaultControllerName is the GatewayClass spec.controllerName Flax answers to.
const DefaultControllerName = "flaxlb.io/gateway-controller"

// EventRecorderName is the reporting controller of the Events Flax emits.
const EventRecorderName = "flax-controller"

// Options configure a Controller.
type Options struct {
	// ControllerName is the GatewayClass spec.controllerName to handle; classes
	// with another name, and their Gateways, are ignored. Required.
	ControllerName string
	// NodeName is the node this controller and its dataplane run on; it names the
	// dataplane in conditions and logs.
	NodeName string
	// NodeSelector selects the nodes that run a dataplane (the DaemonSet's node
	// selector); the addresses of those that are Ready become the addresses of
	// Gateways without spec.addresses. Nil selects every node.
	NodeSelector labels.Selector
	// DataplaneSocket is the path of the local dataplane's unix socket. Required.
	DataplaneSocket string
	// CoalesceDelay is the quiet period after an event before translating; zero
	// means DefaultCoalesceDelay.
	CoalesceDelay time.Duration
	// CoalesceMaxWait bounds how long a stream of events delays a translation;
	// zero means DefaultCoalesceMaxWait.
	CoalesceMaxWait time.Duration
	// Delivery tunes the delivery to the dataplane; Socket, NodeName, Log and
	// OnResult are filled in by New.
	Delivery DeliveryOptions
	// LeaseNamespace is the namespace of the node Leases ("flax-node-<node>")
	// through which the nodes report their dataplane results to the leader; empty
	// means DefaultLeaseNamespace. cmd/flax-controller uses the leader-election
	// namespace.
	LeaseNamespace string
	// NodeLeaseDuration is the leaseDurationSeconds of this node's Lease (whole
	// seconds, at least one); zero means DefaultNodeLeaseDuration.
	NodeLeaseDuration time.Duration
	// NodeLeaseRenewInterval is how often this node renews its Lease; zero means
	// DefaultNodeLeaseRenewInterval.
	NodeLeaseRenewInterval time.Duration
}

// Controller is Flax's control plane on one node: watches coalesced into a
// translation of the world, delivery of the result to the local dataplane, and the
// leader-only status writer. Create it with New; the manager runs it.
type Controller struct {
	// Delivery streams snapshots to the local dataplane.
	Delivery *Delivery
	// Status writes statuses when this replica leads.
	Status *StatusWriter

	opts      Options
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	log       logr.Logger
	coalescer *coalescer
	// leaseCache holds the Leases of leaseNamespace.
	leaseCache     cache.Cache
	leaseNamespace string
	leaser         *nodeLeaser

	// configs are the Gateways' config hashes of recently published snapshots.
	configs configBook

	mu sync.Mutex
	// latest is the latest translator output.
	latest *translate.Output
	// lastResult is the local result onResult saw last (its node report, without
	// version and hash).
	lastResult string

	// reportMu serializes report, which runs after translations and after results.
	reportMu sync.Mutex
	// reported are the problems already announced by Events, per Gateway.
	reported map[types.NamespacedName][]gatewayProblem
}

// New creates the Controller and registers its field indexes, its watches, the
// delivery and the status writer with mgr. The manager's scheme must hold the core,
// discovery, Gateway API (v1, v1beta1) and Flax (api/v1alpha1) types, and the
// cluster must have Flax's CRDs (config/crd/bases) installed.
func New(ctx context.Context, mgr manager.Manager, opts Options) (*Controller, error) {
	if opts.ControllerName == "" {
		return nil, errors.New("creating flax controller: controller name is empty")
	}
	if opts.DataplaneSocket == "" {
		return nil, errors.New("creating flax controller: dataplane socket path is empty")
	}
	log := mgr.GetLogger().WithName("flax")
	c := &Controller{
		opts:      opts,
		client:    mgr.GetClient(),
		apiReader: mgr.GetAPIReader(),
		recorder:  mgr.GetEventRecorder(EventRecorderName),
		log:       log,
		coalescer: newCoalescer(opts.CoalesceDelay, opts.CoalesceMaxWait),
		reported:  map[types.NamespacedName][]gatewayProblem{},
	}
	dopts := opts.Delivery
	dopts.Socket, dopts.NodeName, dopts.Log, dopts.OnResult = opts.DataplaneSocket, opts.NodeName, log.WithName("delivery"), c.onResult
	c.Delivery = NewDelivery(dopts)
	c.Status = NewStatusWriter(StatusWriterOptions{
		Client:         mgr.GetClient(),
		Reader:         mgr.GetAPIReader(),
		ControllerName: opts.ControllerName,
		Results:        leaseResults{c: c},
		Log:            log.WithName("status"),
	})
	c.leaseNamespace = cmp.Or(opts.LeaseNamespace, DefaultLeaseNamespace)
	// The node Leases live in one namespace: a cache of its Leases only, so that
	// the controller needs no cluster-wide Lease rights.
	leaseCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{c.leaseNamespace: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating node lease cache: %w", err)
	}
	c.leaseCache = leaseCache
	c.leaser = &nodeLeaser{
		client:    mgr.GetClient(),
		reader:    mgr.GetAPIReader(),
		namespace: c.leaseNamespace,
		node:      opts.NodeName,
		duration:  cmp.Or(opts.NodeLeaseDuration, DefaultNodeLeaseDuration),
		renew:     cmp.Or(opts.NodeLeaseRenewInterval, DefaultNodeLeaseRenewInterval),
		result:    c.localResult,
		log:       log.WithName("lease"),
		wake:      make(chan struct{}, 1),
	}

	if err := setupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, fmt.Errorf("creating flax controller: %w", err)
	}
	ctrl, err := controller.New("flax", mgr, controller.Options{
		Reconciler: reconcile.Func(c.reconcile),
		// Every node translates for its own dataplane; only status needs the lease.
		NeedLeaderElection:      ptr.To(false),
		MaxConcurrentReconciles: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating flax controller: %w", err)
	}
	if err := c.watch(mgr, ctrl); err != nil {
		return nil, fmt.Errorf("creating flax controller: %w", err)
	}
	if err := mgr.Add(c.Delivery); err != nil {
		return nil, fmt.Errorf("adding dataplane delivery: %w", err)
	}
	if err := mgr.Add(c.Status); err != nil {
		return nil, fmt.Errorf("adding status writer: %w", err)
	}
	if err := mgr.Add(unelectedCache{leaseCache}); err != nil {
		return nil, fmt.Errorf("adding node lease cache: %w", err)
	}
	if opts.NodeName != "" {
		if err := mgr.Add(c.leaser); err != nil {
			return nil, fmt.Errorf("adding node lease: %w", err)
		}
	}
	return c, nil
}

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
		source.Kind(cache, &gatewayv1.Gateway{},
			enqueue(co, false, c.gatewayIsOurs),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.Gateway]{}),
		source.Kind(cache, &gatewayv1.HTTPRoute{},
			enqueue[*gatewayv1.HTTPRoute](co, false, nil),
			predicate.TypedGenerationChangedPredicate[*gatewayv1.HTTPRoute]{}),
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
				return c.serviceIsUsed(ctx, key) || c.serviceIsTargeted(ctx, key)
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
		source.Kind(cache, &corev1.Namespace{},
			enqueue(co, false, c.namespacesMatter),
			predicate.TypedLabelChangedPredicate[*corev1.Namespace]{}),
	}
	sources = append(sources, source.Kind(cache, &corev1.Node{},
		enqueue(co, false, func(_ context.Context, n *corev1.Node) bool { return c.nodeSelected(n) }),
		// Nodes change often (conditions, images); only their addresses, readiness
		// and labels matter here.
		predicate.TypedFuncs[*corev1.Node]{UpdateFunc: func(e event.TypedUpdateEvent[*corev1.Node]) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return nodeReady(o) != nodeReady(n) || !slices.Equal(nodeAddresses(o), nodeAddresses(n)) ||
				!maps.Equal(o.Labels, n.Labels)
		}}))
	// Node Leases: a node's result changed, a node came or went, or a Lease came
	// back from expiry (expiries themselves are found by reconcile's requeue).
	sources = append(sources, source.Kind(c.leaseCache, &coordinationv1.Lease{},
		enqueue(co, false, func(_ context.Context, l *coordinationv1.Lease) bool {
			return strings.HasPrefix(l.Name, NodeLeasePrefix)
		}),
		predicate.TypedFuncs[*coordinationv1.Lease]{UpdateFunc: func(e event.TypedUpdateEvent[*coordinationv1.Lease]) bool {
			return leaseChanged(e.ObjectOld, e.ObjectNew)
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

// serviceIsUsed reports whether an HTTPRoute names the Service key.
func (c *Controller) serviceIsUsed(ctx context.Context, key types.NamespacedName) bool {
	var routes gatewayv1.HTTPRouteList
	if err := c.client.List(ctx, &routes, client.MatchingFields{indexRouteServices: key.String()}); err != nil {
		return true // when in doubt, translate
	}
	return len(routes.Items) > 0
}

// serviceIsTargeted reports whether a BackendPolicy targets the Service key.
func (c *Controller) serviceIsTargeted(ctx context.Context, key types.NamespacedName) bool {
	var policies flaxv1alpha1.BackendPolicyList
	if err := c.client.List(ctx, &policies, client.InNamespace(key.Namespace),
		client.MatchingFields{indexBackendPolicyServices: key.String()}); err != nil {
		return true
	}
	return len(policies.Items) > 0
}

// secretIsUsed reports whether a Gateway listener names the Secret key.
func (c *Controller) secretIsUsed(ctx context.Context, key types.NamespacedName) bool {
	var gws gatewayv1.GatewayList
	if err := c.client.List(ctx, &gws, client.MatchingFields{indexGatewaySecrets: key.String()}); err != nil {
		return true
	}
	return len(gws.Items) > 0
}

// namespacesMatter reports whether a Gateway selects route namespaces by label.
func (c *Controller) namespacesMatter(ctx context.Context, _ *corev1.Namespace) bool {
	var gws gatewayv1.GatewayList
	if err := c.client.List(ctx, &gws, client.MatchingFields{indexGatewaySelectsNamespaces: indexTrue}); err != nil {
		return true
	}
	return len(gws.Items) > 0
}

// reconcile translates the world once the current burst of events is over and
// hands the result to the delivery and the status writer.
func (c *Controller) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	wait, b := c.coalescer.take()
	if wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	start := time.Now()
	in, nextExpiry, err := c.input(ctx)
	if err != nil {
		c.coalescer.putBack(b)
		return reconcile.Result{}, err
	}
	out := translate.Translate(in)
	elapsed := time.Since(start)
	translateDuration.Observe(elapsed.Seconds())
	c.log.V(1).Info("translated", "events", b.events, "duration", elapsed, "hash", out.Snapshot.GetHash(),
		"gateways", len(out.Gateways), "httpRoutes", len(out.HTTPRoutes))

	c.mu.Lock()
	c.latest = out
	c.mu.Unlock()
	// Before publishing: the Ack may come at once.
	c.configs.add(out)
	c.Delivery.Publish(out.Snapshot, b.endpointsChangedAt)
	c.Status.Update(out)
	c.report(ctx)
	if !nextExpiry.IsZero() {
		// Translate again when the first node Lease may expire: its node's address
		// and results drop out then, unless it was renewed.
		return reconcile.Result{RequeueAfter: max(time.Until(nextExpiry), 0) + 100*time.Millisecond}, nil
	}
	return reconcile.Result{}, nil
}

// input lists what the translator needs from the cache: every GatewayClass of ours,
// the GatewayClassParameters they name, their Gateways (whose status.addresses
// keep pool allocations stable), every HTTPRoute, ReferenceGrant, Namespace,
// BackendPolicy and RoutePolicy, only the Services, EndpointSlices and Secrets that
// routes and listeners name (and the Services BackendPolicies target), and the
// addresses of the Ready nodes that run a dataplane and whose dataplane is
// connected by their node Lease. It also returns the earliest expiry of a fresh node
// Lease (zero if none).
func (c *Controller) input(ctx context.Context) (*translate.Input, time.Time, error) {
	in, err := c.listInput(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	live, anyLease, nextExpiry, err := c.liveNodes(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var nodes corev1.NodeList
	if err := c.client.List(ctx, &nodes); err != nil {
		return nil, time.Time{}, fmt.Errorf("listing nodes: %w", err)
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !c.nodeSelected(n) || !nodeReady(n) {
			continue
		}
		// Until some node has published a Lease (a fresh install, or an older
		// controller version), every Ready node counts, as before node Leases.
		if anyLease && !live[n.Name] {
			continue
		}
		for _, a := range nodeAddresses(n) {
			if !slices.Contains(in.NodeAddresses, a) {
				in.NodeAddresses = append(in.NodeAddresses, a)
			}
		}
	}
	return in, nextExpiry, nil
}

// listInput lists everything input needs but the node addresses.
func (c *Controller) listInput(ctx context.Context) (*translate.Input, error) {
	in := &translate.Input{ControllerName: c.opts.ControllerName}

	var classes gatewayv1.GatewayClassList
	if err := c.client.List(ctx, &classes); err != nil {
		return nil, fmt.Errorf("listing gatewayclasses: %w", err)
	}
	ours := map[string]bool{}
	for _, gc := range classes.Items {
		if string(gc.Spec.ControllerName) == c.opts.ControllerName {
			in.GatewayClasses = append(in.GatewayClasses, gc)
			ours[gc.Name] = true
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
			return nil, fmt.Errorf("getting gatewayclassparameters %s: %w", ref.Name, err)
		}
	}
	var gateways gatewayv1.GatewayList
	if err := c.client.List(ctx, &gateways); err != nil {
		return nil, fmt.Errorf("listing gateways: %w", err)
	}
	var secrets []types.NamespacedName
	for _, gw := range gateways.Items {
		if ours[string(gw.Spec.GatewayClassName)] {
			in.Gateways = append(in.Gateways, gw)
			for _, key := range gatewaySecretRefs(&gw) {
				secrets = appendUnique(secrets, key)
			}
		}
	}
	var routes gatewayv1.HTTPRouteList
	if err := c.client.List(ctx, &routes); err != nil {
		return nil, fmt.Errorf("listing httproutes: %w", err)
	}
	in.HTTPRoutes = routes.Items
	var services []types.NamespacedName
	for i := range routes.Items {
		for _, key := range routeServiceRefs(&routes.Items[i]) {
			services = appendUnique(services, key)
		}
	}
	var grants gatewayv1beta1.ReferenceGrantList
	if err := c.client.List(ctx, &grants); err != nil {
		return nil, fmt.Errorf("listing referencegrants: %w", err)
	}
	in.ReferenceGrants = grants.Items
	var namespaces corev1.NamespaceList
	if err := c.client.List(ctx, &namespaces); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	in.Namespaces = namespaces.Items
	var backendPolicies flaxv1alpha1.BackendPolicyList
	if err := c.client.List(ctx, &backendPolicies); err != nil {
		return nil, fmt.Errorf("listing backendpolicies: %w", err)
	}
	in.BackendPolicies = backendPolicies.Items
	// Services only policies target: whether they exist and their port names
	// decide the policies' status; their endpoints do not matter.
	var targeted []types.NamespacedName
	for i := range backendPolicies.Items {
		for _, key := range policyServiceRefs(&backendPolicies.Items[i]) {
			if !slices.Contains(services, key) {
				targeted = appendUnique(targeted, key)
			}
		}
	}
	var routePolicies flaxv1alpha1.RoutePolicyList
	if err := c.client.List(ctx, &routePolicies); err != nil {
		return nil, fmt.Errorf("listing routepolicies: %w", err)
	}
	in.RoutePolicies = routePolicies.Items

	for _, key := range services {
		var svc corev1.Service
		switch err := c.client.Get(ctx, key, &svc); {
		case err == nil:
			in.Services = append(in.Services, svc)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("getting service %s: %w", key, err)
		}
		var eps discoveryv1.EndpointSliceList
		if err := c.client.List(ctx, &eps, client.InNamespace(key.Namespace),
			client.MatchingFields{indexSliceService: key.String()}); err != nil {
			return nil, fmt.Errorf("listing endpointslices of service %s: %w", key, err)
		}
		in.EndpointSlices = append(in.EndpointSlices, eps.Items...)
	}
	for _, key := range targeted {
		var svc corev1.Service
		switch err := c.client.Get(ctx, key, &svc); {
		case err == nil:
			in.Services = append(in.Services, svc)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("getting service %s: %w", key, err)
		}
	}
	for _, key := range secrets {
		s, err := c.secret(ctx, key)
		if err != nil {
			return nil, err
		}
		if s != nil {
			in.Secrets = append(in.Secrets, *s)
		}
	}
	return in, nil
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

// nodeSelected reports whether n runs a dataplane, by Options.NodeSelector.
func (c *Controller) nodeSelected(n *corev1.Node) bool {
	return c.opts.NodeSelector == nil || c.opts.NodeSelector.Matches(labels.Set(n.Labels))
}

// nodeReady reports whether n's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeAddresses returns the internal, then the external IP addresses of a node.
func nodeAddresses(n *corev1.Node) []string {
	var out []string
	for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type == typ && !slices.Contains(out, a.Address) {
				out = append(out, a.Address)
			}
		}
	}
	return out
}

// onResult runs when the dataplane's result changed. When something the node
// Lease reports changed, other than the applied version and hash (a change of
// endpoints alone changes those), it rewrites the Lease, announces new problems
// and has the status writer fold the result into conditions.
func (c *Controller) onResult() {
	rep := reportOf(c.localResult())
	rep.Version, rep.Hash = 0, ""
	raw, _ := json.Marshal(rep) // plain strings, numbers and maps: cannot fail
	c.mu.Lock()
	changed := string(raw) != c.lastResult
	c.lastResult = string(raw)
	c.mu.Unlock()
	if !changed {
		return
	}
	c.leaser.changed()
	c.report(context.Background())
	c.Status.Trigger()
}

// localResult returns the local dataplane's result with the config hashes of the
// configuration it runs. Once the dataplane is Synced they are never nil: a
// configuration this controller cannot tell (not published recently) has none, so
// the node is waited for until it runs the current one.
func (c *Controller) localResult() DataplaneResult {
	r := c.Delivery.Result()
	if r.Synced {
		configs, ok := c.configs.lookup(r.AppliedHash)
		if !ok {
			configs = map[types.NamespacedName]string{}
		}
		r.Configs = configs
	}
	return r
}

// report emits a Warning Event on a Gateway for every dataplane problem that was
// not reported already. It runs on every node, so each node reports its own
// dataplane's problems.
func (c *Controller) report(ctx context.Context) {
	c.reportMu.Lock()
	defer c.reportMu.Unlock()
	c.mu.Lock()
	out := c.latest
	c.mu.Unlock()
	if out == nil {
		return
	}
	results := c.Delivery.Results()
	gateways := map[types.NamespacedName]*gatewayv1.Gateway{}
	current := map[types.NamespacedName][]gatewayProblem{}
	for _, gs := range out.Gateways {
		if !anyProblem(results) {
			break // the common case: no Gateway to look at
		}
		var gw gatewayv1.Gateway
		if err := c.client.Get(ctx, gs.NamespacedName, &gw); err != nil {
			continue
		}
		if ps := problemsOf(&gw, gs.BindAddresses, results); len(ps) > 0 {
			current[gs.NamespacedName] = ps
			gateways[gs.NamespacedName] = &gw
		}
	}
	previous := c.reported
	c.reported = current
	for key, ps := range current {
		for _, p := range ps {
			if slices.Contains(previous[key], p) {
				continue
			}
			action := "Apply"
			if p.reason == eventReasonNotBound {
				action = "Bind"
			}
			// events.k8s.io notes are limited to 1 kB.
			c.recorder.Eventf(gateways[key], nil, corev1.EventTypeWarning, p.reason, action, "%s", truncate(p.message, 1000))
		}
	}
}

// anyProblem reports whether a result holds a rejection or an unbound listener.
func anyProblem(results []DataplaneResult) bool {
	for _, r := range results {
		if r.Rejection != nil {
			return true
		}
		for _, l := range r.Listeners {
			if !l.Bound {
				return true
			}
		}
	}
	return false
}

// unelectedCache runs a cache on every replica: a manager runs a runnable that does
// not say otherwise only on the leader.
type unelectedCache struct{ cache.Cache }

// NeedLeaderElection returns false.
func (unelectedCache) NeedLeaderElection() bool { return false }
