package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/nodes"
	"github.com/flaxlb/flax/controllers/status"
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
	Delivery deliver.Options
	// LeaseNamespace is the namespace of the node Leases ("flax-node-<node>")
	// through which the nodes report their dataplane results to the leader; empty
	// means nodes.DefaultNamespace. cmd/flax-controller uses the leader-election
	// namespace.
	LeaseNamespace string
	// NodeLeaseDuration is the leaseDurationSeconds of this node's Lease (whole
	// seconds, at least one); zero means nodes.DefaultLeaseDuration.
	NodeLeaseDuration time.Duration
	// NodeLeaseRenewInterval is how often this node renews its Lease; zero means
	// nodes.DefaultRenewInterval.
	NodeLeaseRenewInterval time.Duration
}

// Controller is Flax's control plane on one node: watches coalesced into a
// translation of the world, delivery of the result to the local dataplane, node
// Leases, Events and the leader-only status writer. Create it with New; the
// manager runs it.
type Controller struct {
	// Delivery streams snapshots to the local dataplane.
	Delivery *deliver.Delivery
	// Status writes statuses when this replica leads.
	Status *status.Writer

	opts      Options
	client    client.Client
	apiReader client.Reader
	log       logr.Logger
	coalescer *coalescer
	// leaseCache holds the node Leases, which leases reads and writes.
	leaseCache cache.Cache
	leases     *nodes.Leases
	// configs are the Gateways' config hashes of recently published snapshots.
	configs nodes.ConfigHistory
	// configMaps holds the referenced CA ConfigMaps read from the API server.
	configMaps configMapStore
	// events reports the local dataplane's problems on the Gateways.
	events *status.EventReporter
	// services writes the Gateways' Services when this replica leads.
	services *serviceWriter
	// l4Routes is set when the API server serves TCPRoutes and TLSRoutes
	// (gateway.networking.k8s.io/v1, standard channel since Gateway API v1.5):
	// only then are they watched, translated and given status.
	l4Routes bool
	// udpRoutes is set when the API server serves UDPRoutes (v1, standard
	// channel since Gateway API v1.6): only then are they watched, translated
	// and given status.
	udpRoutes bool
	// backendTLS is set when the API server serves BackendTLSPolicies (v1,
	// standard channel since Gateway API v1.4): only then are they watched,
	// translated and given status.
	backendTLS bool
}

// New creates the Controller and registers its field indexes, its watches, the
// delivery, the node Lease and the status writer with mgr. The manager's scheme
// must hold the core, coordination, discovery, Gateway API (v1, v1beta1) and Flax
// (api/v1alpha1) types, and the cluster must have Flax's CRDs (config/crd/bases)
// installed.
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
		log:       log,
		coalescer: newCoalescer(opts.CoalesceDelay, opts.CoalesceMaxWait),
	}
	dopts := opts.Delivery
	dopts.Socket, dopts.NodeName, dopts.Log, dopts.OnResult = opts.DataplaneSocket, opts.NodeName, log.WithName("delivery"), c.onResult
	c.Delivery = deliver.New(dopts)
	c.events = status.NewEventReporter(mgr.GetClient(), mgr.GetEventRecorder(EventRecorderName), c.Delivery)
	leaseNamespace := cmp.Or(opts.LeaseNamespace, nodes.DefaultNamespace)
	// The node Leases live in one namespace: a cache of its Leases only, so that
	// the controller needs no cluster-wide Lease rights.
	leaseCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{leaseNamespace: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating node lease cache: %w", err)
	}
	c.leaseCache = leaseCache
	c.leases = nodes.NewLeases(nodes.Options{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Cache:         leaseCache,
		Namespace:     leaseNamespace,
		Node:          opts.NodeName,
		Selector:      opts.NodeSelector,
		LeaseDuration: opts.NodeLeaseDuration,
		RenewInterval: opts.NodeLeaseRenewInterval,
		Delivery:      c.Delivery,
		Configs:       &c.configs,
		Log:           log.WithName("lease"),
	})
	c.Status = status.NewWriter(status.WriterOptions{
		Client:         mgr.GetClient(),
		Reader:         mgr.GetAPIReader(),
		ControllerName: opts.ControllerName,
		Results:        c.leases,
		Log:            log.WithName("status"),
	})

	c.services = newServiceWriter(mgr.GetClient(), mgr.GetAPIReader(), log.WithName("services"))

	c.l4Routes = servesL4Routes(mgr.GetRESTMapper())
	if !c.l4Routes {
		log.Info("the API server does not serve gateway.networking.k8s.io/v1 TCPRoutes and TLSRoutes: they are not watched; install the Gateway API CRDs of the standard channel v1.5 or later and restart flax-controller to use them")
	}
	c.Status.SetL4Routes(c.l4Routes)
	c.udpRoutes = serves(mgr.GetRESTMapper(), "UDPRoute")
	if !c.udpRoutes {
		log.Info("the API server does not serve gateway.networking.k8s.io/v1 UDPRoutes: they are not watched; install the Gateway API CRDs of the standard channel v1.6 or later and restart flax-controller to use them")
	}
	c.Status.SetUDPRoutes(c.udpRoutes)
	c.backendTLS = serves(mgr.GetRESTMapper(), "BackendTLSPolicy")
	if !c.backendTLS {
		log.Info("the API server does not serve gateway.networking.k8s.io/v1 BackendTLSPolicies: they are not watched; install the Gateway API CRDs of the standard channel v1.4 or later and restart flax-controller to use them")
	}
	c.Status.SetBackendTLSPolicies(c.backendTLS)

	if err := setupIndexes(ctx, mgr.GetFieldIndexer(), c.l4Routes, c.udpRoutes, c.backendTLS); err != nil {
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
	if err := mgr.Add(c.services); err != nil {
		return nil, fmt.Errorf("adding gateway service writer: %w", err)
	}
	if err := mgr.Add(unelectedCache{leaseCache}); err != nil {
		return nil, fmt.Errorf("adding node lease cache: %w", err)
	}
	if opts.NodeName != "" {
		if err := mgr.Add(c.leases); err != nil {
			return nil, fmt.Errorf("adding node lease: %w", err)
		}
	}
	return c, nil
}

// servesL4Routes reports whether the API server serves the v1 TCPRoute and
// TLSRoute kinds.
func servesL4Routes(m meta.RESTMapper) bool { return serves(m, "TCPRoute", "TLSRoute") }

// serves reports whether the API server serves every one of the v1 Gateway API
// kinds.
func serves(m meta.RESTMapper, kinds ...string) bool {
	for _, kind := range kinds {
		if _, err := m.RESTMapping(schema.GroupKind{Group: gatewayv1.GroupName, Kind: kind}, gatewayv1.GroupVersion.Version); err != nil {
			return false
		}
	}
	return true
}

// reconcile translates the world once the current burst of events is over and
// hands the result to the delivery, the status writer and the Events.
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
		"gateways", len(out.Gateways), "httpRoutes", len(out.HTTPRoutes), "grpcRoutes", len(out.GRPCRoutes),
		"tcpRoutes", len(out.TCPRoutes), "tlsRoutes", len(out.TLSRoutes))

	c.events.Update(out)
	// Before publishing: the Ack may come at once.
	c.configs.Add(out)
	c.Delivery.Publish(out.Snapshot, b.endpointsChangedAt)
	c.Status.Update(out)
	c.services.Update(out)
	c.events.Report(ctx)
	if !nextExpiry.IsZero() {
		// Translate again when the first node Lease may expire: its node's address
		// and results drop out then, unless it was renewed.
		return reconcile.Result{RequeueAfter: max(time.Until(nextExpiry), 0) + 100*time.Millisecond}, nil
	}
	return reconcile.Result{}, nil
}

// onResult runs when the dataplane's result changed. When something the node
// Lease reports changed, other than the applied version and hash (a change of
// endpoints alone changes those), the Lease is rewritten, new problems are
// announced and the status writer folds the result into conditions.
func (c *Controller) onResult() {
	if !c.leases.ResultChanged() {
		return
	}
	c.events.Report(context.Background())
	c.Status.Trigger()
}

// unelectedCache runs a cache on every replica: a manager runs a runnable that does
// not say otherwise only on the leader.
type unelectedCache struct{ cache.Cache }

// NeedLeaderElection returns false.
func (unelectedCache) NeedLeaderElection() bool { return false }
