package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/translate"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Client reads objects (normally from the manager's cache) and writes status.
	Client client.Client
	// Reader reads objects from the API server, bypassing the cache; it is used to
	// re-read an object after a conflict. Nil uses Client.
	Reader client.Reader
	// ControllerName is the controller's name (GatewayClass spec.controllerName);
	// only GatewayClasses with this name, and HTTPRoute parent statuses and policy
	// ancestor statuses with this controllerName, are written.
	ControllerName string
	// Results supplies the dataplane results folded into Gateway conditions; nil
	// means none.
	Results ResultSource
	// Log receives what the writer does.
	Log logr.Logger
	// Backoff paces the retries after a conflict; zero uses client-go's
	// retry.DefaultRetry.
	Backoff wait.Backoff
	// Now returns the current time for new LastTransitionTimes; nil uses
	// metav1.Now.
	Now func() metav1.Time
}

// Writer writes the statuses the translator computed, with the dataplane
// results folded in, to GatewayClasses, Gateways, ListenerSets, HTTPRoutes and
// GRPCRoutes (TCPRoutes and TLSRoutes too once SetL4Routes says they are served), and the ancestor
// entries of BackendPolicies and RoutePolicies (and BackendTLSPolicies once
// SetBackendTLSPolicies says they are served). It is a manager runnable that
// needs leader election, so only the leader writes. It compares each status with
// the object's current one ignoring LastTransitionTime and writes only when they
// differ; it keeps a condition's LastTransitionTime when the condition's status
// did not change; it retries a write that conflicts (client-go
// retry.RetryOnConflict), re-reading the object from the API server. On
// routes it owns only the parent statuses carrying its controllerName, and
// removes them from routes that no longer attach to its Gateways. On
// BackendPolicies and RoutePolicies it owns the status.ancestors entries carrying
// its controllerName, keeps those of other controllers, and never writes more than
// the API's 16 entries.
type Writer struct {
	opts    WriterOptions
	log     logr.Logger
	trigger chan struct{}

	// l4Routes is set when TCPRoutes and TLSRoutes are served (SetL4Routes),
	// udpRoutes when UDPRoutes are (SetUDPRoutes).
	l4Routes  atomic.Bool
	udpRoutes atomic.Bool
	// backendTLS is set when BackendTLSPolicies are served
	// (SetBackendTLSPolicies).
	backendTLS atomic.Bool

	mu     sync.Mutex
	latest *translate.Output
}

// SetL4Routes tells the writer whether the API server serves TCPRoutes and
// TLSRoutes; only then does it write their status.
func (w *Writer) SetL4Routes(served bool) { w.l4Routes.Store(served) }

// SetUDPRoutes tells the writer whether the API server serves UDPRoutes; only
// then does it write their status.
func (w *Writer) SetUDPRoutes(served bool) { w.udpRoutes.Store(served) }

// SetBackendTLSPolicies tells the writer whether the API server serves
// BackendTLSPolicies; only then does it write their status.
func (w *Writer) SetBackendTLSPolicies(served bool) { w.backendTLS.Store(served) }

// NewWriter returns a Writer; run it with Start.
func NewWriter(opts WriterOptions) *Writer {
	if opts.Reader == nil {
		opts.Reader = opts.Client
	}
	if opts.Backoff.Steps == 0 {
		opts.Backoff = retry.DefaultRetry
	}
	if opts.Now == nil {
		opts.Now = metav1.Now
	}
	return &Writer{opts: opts, log: opts.Log, trigger: make(chan struct{}, 1)}
}

// NeedLeaderElection returns true: only the leader writes status.
func (w *Writer) NeedLeaderElection() bool { return true }

// Update makes out the statuses to write and schedules a write. It is cheap and
// is called on every node; only the leader's writer runs.
func (w *Writer) Update(out *translate.Output) {
	w.mu.Lock()
	w.latest = out
	w.mu.Unlock()
	w.Trigger()
}

// Trigger schedules a write of the latest statuses, e.g. after the dataplane
// results changed.
func (w *Writer) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Start writes statuses whenever triggered until ctx is done; a failed write is
// retried with capped exponential backoff.
func (w *Writer) Start(ctx context.Context) error {
	w.log.Info("writing status as the leader")
	const minRetry, maxRetry = time.Second, time.Minute
	retryIn := minRetry
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.trigger:
		case <-retryC:
		}
		retryC = nil
		if err := w.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Error(err, "writing status failed; retrying", "after", retryIn)
			retryC = time.After(retryIn)
			retryIn = min(2*retryIn, maxRetry)
			continue
		}
		retryIn = minRetry
	}
}

// Sync writes the latest statuses now and returns the errors of the writes that
// failed.
func (w *Writer) Sync(ctx context.Context) error {
	w.mu.Lock()
	out := w.latest
	w.mu.Unlock()
	if out == nil {
		return nil
	}
	var results []deliver.Result
	if w.opts.Results != nil {
		results = w.opts.Results.Results()
	}
	var errs []error
	for _, cs := range out.GatewayClasses {
		if err := w.writeClass(ctx, cs); err != nil {
			errs = append(errs, err)
		}
	}
	gatewayProgrammed := make(map[types.NamespacedName]*metav1.Condition, len(out.Gateways))
	for _, gs := range out.Gateways {
		if err := w.writeGateway(ctx, gs, results, gatewayProgrammed); err != nil {
			errs = append(errs, err)
		}
	}
	bindAddresses := make(map[types.NamespacedName][]string, len(out.Gateways))
	for _, gs := range out.Gateways {
		bindAddresses[gs.NamespacedName] = gs.BindAddresses
	}
	for _, ls := range out.ListenerSets {
		if err := w.writeListenerSet(ctx, foldListenerSetResults(ls, bindAddresses[ls.Gateway], results), gatewayProgrammed[ls.Gateway]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.writeRoutes(ctx, out.HTTPRoutes, out.GRPCRoutes); err != nil {
		errs = append(errs, err)
	}
	if w.l4Routes.Load() {
		if err := w.writeL4Routes(ctx, out.TCPRoutes, out.TLSRoutes); err != nil {
			errs = append(errs, err)
		}
	}
	if w.udpRoutes.Load() {
		if err := w.writeUDPRoutes(ctx, out.UDPRoutes); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ps := range out.BackendPolicies {
		if err := writePolicy(ctx, w, flaxv1alpha1.KindBackendPolicy, ps,
			func() *flaxv1alpha1.BackendPolicy { return &flaxv1alpha1.BackendPolicy{} },
			func(p *flaxv1alpha1.BackendPolicy) *gatewayv1.PolicyStatus { return &p.Status }); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ps := range out.RoutePolicies {
		if err := writePolicy(ctx, w, flaxv1alpha1.KindRoutePolicy, ps,
			func() *flaxv1alpha1.RoutePolicy { return &flaxv1alpha1.RoutePolicy{} },
			func(p *flaxv1alpha1.RoutePolicy) *gatewayv1.PolicyStatus { return &p.Status }); err != nil {
			errs = append(errs, err)
		}
	}
	if w.backendTLS.Load() {
		for _, ps := range out.BackendTLSPolicies {
			if err := writePolicy(ctx, w, "BackendTLSPolicy", ps,
				func() *gatewayv1.BackendTLSPolicy { return &gatewayv1.BackendTLSPolicy{} },
				func(p *gatewayv1.BackendTLSPolicy) *gatewayv1.PolicyStatus { return &p.Status }); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// writePolicy writes our ancestor entries of one BackendPolicy, RoutePolicy or
// BackendTLSPolicy, keeping those of other controllers.
func writePolicy[T client.Object](ctx context.Context, w *Writer, kind string, ps translate.PolicyStatus, newObj func() T, status func(T) *gatewayv1.PolicyStatus) error {
	controller := gatewayv1.GatewayController(w.opts.ControllerName)
	var ours []gatewayv1.PolicyAncestorStatus
	for _, a := range ps.Status.Ancestors {
		if a.ControllerName == "" || a.ControllerName == controller {
			ours = append(ours, a)
		}
	}
	return writeStatus(ctx, w, kind, ps.NamespacedName, newObj, func(p T) bool {
		current := status(p)
		next := mergePolicyStatus(*current, ours, controller, w.opts.Now())
		if equalIgnoringTransitionTimes(*current, next, policyStatusWithoutTimes) {
			return false
		}
		*current = next
		return true
	})
}

// writeClass writes the status of one of our GatewayClasses.
func (w *Writer) writeClass(ctx context.Context, cs translate.ClassStatus) error {
	return writeStatus(ctx, w, "GatewayClass", types.NamespacedName{Name: cs.Name},
		func() *gatewayv1.GatewayClass { return &gatewayv1.GatewayClass{} },
		func(gc *gatewayv1.GatewayClass) bool {
			if string(gc.Spec.ControllerName) != w.opts.ControllerName {
				return false // not ours: never touched
			}
			next := mergeClassStatus(gc.Status, cs.Status, w.opts.Now())
			if equalIgnoringTransitionTimes(gc.Status, next, classStatusWithoutTimes) {
				return false
			}
			gc.Status = next
			return true
		})
}

// writeGateway writes the status of one Gateway, with the dataplane results folded
// in, and records its Programmed condition in programmed.
func (w *Writer) writeGateway(ctx context.Context, gs translate.GatewayStatus, results []deliver.Result, programmed map[types.NamespacedName]*metav1.Condition) error {
	return writeStatus(ctx, w, "Gateway", gs.NamespacedName,
		func() *gatewayv1.Gateway { return &gatewayv1.Gateway{} },
		func(gw *gatewayv1.Gateway) bool {
			folded := foldResults(gw, gs, results)
			programmed[gs.NamespacedName] = meta.FindStatusCondition(folded.Conditions, string(gatewayv1.GatewayConditionProgrammed))
			next := mergeGatewayStatus(gw.Status, folded, w.opts.Now())
			if equalIgnoringTransitionTimes(gw.Status, next, gatewayStatusWithoutTimes) {
				return false
			}
			gw.Status = next
			return true
		})
}

// writeListenerSet writes the status of one ListenerSet. Its Programmed
// condition turns False (reason ParentNotProgrammed) when the dataplane results
// made its Gateway's False: gatewayProgrammed is that condition, nil when
// unknown.
func (w *Writer) writeListenerSet(ctx context.Context, ls translate.ListenerSetStatus, gatewayProgrammed *metav1.Condition) error {
	desired := *ls.Status.DeepCopy()
	if c := gatewayProgrammed; c != nil && c.Status == metav1.ConditionFalse {
		demote(&desired.Conditions, string(gatewayv1.ListenerSetConditionProgrammed), reasonParentNotProgrammed,
			fmt.Sprintf("Gateway %s is not programmed (%s): %s", ls.Gateway, c.Reason, c.Message))
	}
	return writeStatus(ctx, w, "ListenerSet", ls.NamespacedName,
		func() *gatewayv1.ListenerSet { return &gatewayv1.ListenerSet{} },
		func(obj *gatewayv1.ListenerSet) bool {
			next := mergeListenerSetStatus(obj.Status, desired, w.opts.Now())
			if equalIgnoringTransitionTimes(obj.Status, next, listenerSetStatusWithoutTimes) {
				return false
			}
			obj.Status = next
			return true
		})
}

// reasonParentNotProgrammed is the ListenerSet Programmed reason for a parent
// Gateway that is not programmed (Gateway API v1.6.3 has no constant for it).
const reasonParentNotProgrammed = "ParentNotProgrammed"

// writeRoutes writes our parent statuses of the HTTPRoutes and GRPCRoutes in
// statuses and removes our parent statuses from every other HTTPRoute and
// GRPCRoute (routes that no longer attach to our Gateways).
func (w *Writer) writeRoutes(ctx context.Context, http, grpc []translate.RouteStatus) error {
	errHTTP := writeRouteKind(ctx, w, "HTTPRoute", http,
		func(ctx context.Context) ([]*gatewayv1.HTTPRoute, error) {
			var l gatewayv1.HTTPRouteList
			err := w.opts.Client.List(ctx, &l)
			return pointers(l.Items), err
		},
		func() *gatewayv1.HTTPRoute { return &gatewayv1.HTTPRoute{} },
		func(r *gatewayv1.HTTPRoute) *gatewayv1.RouteStatus { return &r.Status.RouteStatus })
	errGRPC := writeRouteKind(ctx, w, "GRPCRoute", grpc,
		func(ctx context.Context) ([]*gatewayv1.GRPCRoute, error) {
			var l gatewayv1.GRPCRouteList
			err := w.opts.Client.List(ctx, &l)
			return pointers(l.Items), err
		},
		func() *gatewayv1.GRPCRoute { return &gatewayv1.GRPCRoute{} },
		func(r *gatewayv1.GRPCRoute) *gatewayv1.RouteStatus { return &r.Status.RouteStatus })
	return errors.Join(errHTTP, errGRPC)
}

// writeL4Routes writes our parent statuses of TCPRoutes and TLSRoutes as
// writeRoutes does for HTTPRoutes and GRPCRoutes.
func (w *Writer) writeL4Routes(ctx context.Context, tcp, tls []translate.RouteStatus) error {
	errTCP := writeRouteKind(ctx, w, "TCPRoute", tcp,
		func(ctx context.Context) ([]*gatewayv1.TCPRoute, error) {
			var l gatewayv1.TCPRouteList
			err := w.opts.Client.List(ctx, &l)
			return pointers(l.Items), err
		},
		func() *gatewayv1.TCPRoute { return &gatewayv1.TCPRoute{} },
		func(r *gatewayv1.TCPRoute) *gatewayv1.RouteStatus { return &r.Status.RouteStatus })
	errTLS := writeRouteKind(ctx, w, "TLSRoute", tls,
		func(ctx context.Context) ([]*gatewayv1.TLSRoute, error) {
			var l gatewayv1.TLSRouteList
			err := w.opts.Client.List(ctx, &l)
			return pointers(l.Items), err
		},
		func() *gatewayv1.TLSRoute { return &gatewayv1.TLSRoute{} },
		func(r *gatewayv1.TLSRoute) *gatewayv1.RouteStatus { return &r.Status.RouteStatus })
	return errors.Join(errTCP, errTLS)
}

// writeUDPRoutes writes our parent statuses of UDPRoutes as writeRoutes does
// for HTTPRoutes.
func (w *Writer) writeUDPRoutes(ctx context.Context, udp []translate.RouteStatus) error {
	return writeRouteKind(ctx, w, "UDPRoute", udp,
		func(ctx context.Context) ([]*gatewayv1.UDPRoute, error) {
			var l gatewayv1.UDPRouteList
			err := w.opts.Client.List(ctx, &l)
			return pointers(l.Items), err
		},
		func() *gatewayv1.UDPRoute { return &gatewayv1.UDPRoute{} },
		func(r *gatewayv1.UDPRoute) *gatewayv1.RouteStatus { return &r.Status.RouteStatus })
}

// pointers returns pointers to the elements of items.
func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// writeRouteKind writes our parent statuses of the routes of one kind in
// statuses and removes our parent statuses from every other route of the kind
// that list returns (routes that no longer attach to our Gateways).
func writeRouteKind[T client.Object](ctx context.Context, w *Writer, kind string, statuses []translate.RouteStatus,
	list func(context.Context) ([]T, error), newObj func() T, status func(T) *gatewayv1.RouteStatus,
) error {
	controller := gatewayv1.GatewayController(w.opts.ControllerName)
	want := make(map[types.NamespacedName][]gatewayv1.RouteParentStatus, len(statuses))
	for _, rs := range statuses {
		var ours []gatewayv1.RouteParentStatus
		for _, p := range rs.Status.Parents {
			if p.ControllerName == "" || p.ControllerName == controller {
				ours = append(ours, p)
			}
		}
		want[rs.NamespacedName] = ours
	}
	routes, err := list(ctx)
	if err != nil {
		return fmt.Errorf("listing %ss: %w", strings.ToLower(kind), err)
	}
	for _, r := range routes {
		key := client.ObjectKeyFromObject(r)
		if _, ok := want[key]; ok {
			continue
		}
		for _, p := range status(r).Parents {
			if p.ControllerName == controller {
				want[key] = nil // stale: remove our entries
				break
			}
		}
	}
	var errs []error
	for key, ours := range want {
		err := writeStatus(ctx, w, kind, key, newObj,
			func(r T) bool {
				current := status(r)
				next := mergeRouteStatus(*current, ours, controller, w.opts.Now())
				if equalIgnoringTransitionTimes(*current, next, routeStatusWithoutTimes) {
					return false
				}
				*current = next
				return true
			})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeStatus updates the status of the object key of kind kind: mutate gets the
// current object and returns whether it changed its status. The first attempt
// reads from Client (the cache); after a conflict the object is read again from
// Reader (the API server) and mutate runs again. A missing object is not an error.
func writeStatus[T client.Object](ctx context.Context, w *Writer, kind string, key types.NamespacedName, newObj func() T, mutate func(T) bool) error {
	attempt := 0
	err := retry.RetryOnConflict(w.opts.Backoff, func() error {
		attempt++
		obj := newObj()
		var reader client.Reader = w.opts.Client
		if attempt > 1 {
			reader = w.opts.Reader
		}
		if err := reader.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if !mutate(obj) {
			return nil
		}
		err := w.opts.Client.Status().Update(ctx, obj)
		switch {
		case err == nil:
			statusWrites.WithLabelValues(kind, "ok").Inc()
			w.log.V(1).Info("wrote status", "kind", kind, "object", key, "attempt", attempt)
		case apierrors.IsConflict(err):
			statusWrites.WithLabelValues(kind, "conflict").Inc()
			w.log.V(1).Info("status write conflicted; re-reading", "kind", kind, "object", key, "attempt", attempt)
		case apierrors.IsNotFound(err):
			return nil
		default:
			statusWrites.WithLabelValues(kind, "error").Inc()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("writing status of %s %s: %w", kind, key, err)
	}
	return nil
}
