package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// Node Lease defaults and names.
const (
	// NodeLeasePrefix starts the name of every node's result Lease
	// ("flax-node-<node>").
	NodeLeasePrefix = "flax-node-"
	// NodeResultAnnotation holds a node's dataplane result, as JSON, on its Lease.
	NodeResultAnnotation = "flaxlb.io/dataplane-result"
	// DefaultNodeLeaseDuration is the leaseDurationSeconds of a node's Lease.
	DefaultNodeLeaseDuration = 40 * time.Second
	// DefaultNodeLeaseRenewInterval is how often a node renews its Lease.
	DefaultNodeLeaseRenewInterval = 10 * time.Second
	// DefaultLeaseNamespace is the namespace of the node Leases when none is set.
	DefaultLeaseNamespace = "default"
	// maxReportReason bounds the rejection reason and bind errors kept in a Lease.
	maxReportReason = 512
)

// nodeReport is the compact JSON summary of a DataplaneResult in a node Lease.
// Configs ("namespace/name" to config hash) is written even when empty: a report
// without it comes from a controller that does not report config hashes.
type nodeReport struct {
	Version   uint64            `json:"version,omitempty"`
	Hash      string            `json:"hash,omitempty"`
	Connected bool              `json:"connected"`
	Synced    bool              `json:"synced"`
	Rejection *reportRejection  `json:"rejection,omitempty"`
	Unbound   []reportListener  `json:"unbound,omitempty"`
	Configs   map[string]string `json:"configs"`
}

// reportRejection is a rejected configuration in a nodeReport.
type reportRejection struct {
	Version uint64 `json:"version"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
}

// reportListener is an unbound dataplane listener in a nodeReport.
type reportListener struct {
	Address string `json:"address,omitempty"`
	Port    uint32 `json:"port"`
	Error   string `json:"error,omitempty"`
}

// reportOf summarizes r.
func reportOf(r DataplaneResult) nodeReport {
	rep := nodeReport{Version: r.AppliedVersion, Hash: r.AppliedHash, Connected: r.Connected, Synced: r.Synced}
	if rej := r.Rejection; rej != nil {
		rep.Rejection = &reportRejection{Version: rej.Version, Code: rej.Code.String(), Reason: truncate(rej.Reason, maxReportReason)}
	}
	for _, l := range r.Listeners {
		if !l.Bound {
			rep.Unbound = append(rep.Unbound, reportListener{Address: l.Address, Port: l.Port, Error: truncate(l.Error, maxReportReason)})
		}
	}
	if r.Configs != nil {
		rep.Configs = make(map[string]string, len(r.Configs))
		for gw, h := range r.Configs {
			rep.Configs[gw.String()] = h
		}
	}
	return rep
}

// result turns a report of node back into a DataplaneResult (unbound listeners only).
func (rep nodeReport) result(node string) DataplaneResult {
	r := DataplaneResult{Node: node, Connected: rep.Connected, Synced: rep.Synced, AppliedVersion: rep.Version, AppliedHash: rep.Hash}
	if rej := rep.Rejection; rej != nil {
		r.Rejection = &Rejection{Version: rej.Version, Code: rpc.Nack_Code(rpc.Nack_Code_value[rej.Code]), Reason: rej.Reason}
	}
	for _, l := range rep.Unbound {
		r.Listeners = append(r.Listeners, ListenerResult{Address: l.Address, Port: l.Port, Error: l.Error})
	}
	if rep.Configs != nil {
		r.Configs = make(map[types.NamespacedName]string, len(rep.Configs))
		for gw, h := range rep.Configs {
			if ns, name, ok := strings.Cut(gw, "/"); ok {
				r.Configs[types.NamespacedName{Namespace: ns, Name: name}] = h
			}
		}
	}
	return r
}

// nodeLeaseName returns the Lease name of node.
func nodeLeaseName(node string) string { return NodeLeasePrefix + node }

// leaseExpiry returns when l expires, and false if it has no renew time or duration.
func leaseExpiry(l *coordinationv1.Lease) (time.Time, bool) {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second), true
}

// leaseFresh reports whether l is a node Lease that has not expired at now.
func leaseFresh(l *coordinationv1.Lease, now time.Time) bool {
	exp, ok := leaseExpiry(l)
	return ok && strings.HasPrefix(l.Name, NodeLeasePrefix) && now.Before(exp)
}

// leaseNode returns the node a node Lease reports for.
func leaseNode(l *coordinationv1.Lease) string {
	if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "" {
		return h
	}
	return strings.TrimPrefix(l.Name, NodeLeasePrefix)
}

// nodeLeaser maintains this node's Lease: it writes the local dataplane's result
// whenever it changes and renews the Lease every renew interval. It runs on every
// node, leader or not, and deletes nothing on shutdown (the Lease expires).
type nodeLeaser struct {
	client    client.Client
	reader    client.Reader
	namespace string
	node      string
	duration  time.Duration
	renew     time.Duration
	result    func() DataplaneResult
	log       logr.Logger
	wake      chan struct{}

	mu      sync.Mutex
	written string // annotation last written
}

// NeedLeaderElection returns false: every node publishes its own result.
func (n *nodeLeaser) NeedLeaderElection() bool { return false }

// changed wakes the leaser after the local result changed.
func (n *nodeLeaser) changed() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Start writes the Lease now, on every change and every renew interval, until ctx
// is done.
func (n *nodeLeaser) Start(ctx context.Context) error {
	t := time.NewTicker(n.renew)
	defer t.Stop()
	for {
		if err := n.write(ctx); err != nil && ctx.Err() == nil {
			n.log.V(1).Info("writing node lease failed; retrying", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.wake:
		}
	}
}

// write creates or renews the Lease with the current result.
func (n *nodeLeaser) write(ctx context.Context) error {
	raw, err := json.Marshal(reportOf(n.result()))
	if err != nil {
		return err
	}
	now := metav1.NowMicro()
	key := types.NamespacedName{Namespace: n.namespace, Name: nodeLeaseName(n.node)}
	var l coordinationv1.Lease
	err = n.reader.Get(ctx, key, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		n.fill(&l, string(raw), now)
		l.Spec.AcquireTime = &now
		err = n.client.Create(ctx, &l)
	} else if err == nil {
		n.fill(&l, string(raw), now)
		err = n.client.Update(ctx, &l)
	}
	if err != nil {
		return fmt.Errorf("writing lease %s: %w", key, err)
	}
	n.mu.Lock()
	n.written = string(raw)
	n.mu.Unlock()
	return nil
}

// fill sets the holder, duration, renew time and result of l.
func (n *nodeLeaser) fill(l *coordinationv1.Lease, report string, now metav1.MicroTime) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[NodeResultAnnotation] = report
	l.Spec.HolderIdentity = ptr.To(n.node)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, n.duration.Round(time.Second)/time.Second)))
	l.Spec.RenewTime = &now
}

// leaseResults is the ResultSource of the status writer: the local dataplane's
// result (see Controller.localResult) and the result of every other node whose
// Lease has not expired and whose Node is Ready and picked by the node selector.
type leaseResults struct {
	c *Controller
}

// Results implements ResultSource.
func (s leaseResults) Results() []DataplaneResult {
	out := []DataplaneResult{s.c.localResult()}
	leases, _ := s.c.nodeLeases(context.Background())
	now := time.Now()
	for i := range leases {
		l := &leases[i]
		node := leaseNode(l)
		if node == s.c.opts.NodeName || !leaseFresh(l, now) || !s.c.nodeNameServes(context.Background(), node) {
			continue
		}
		var rep nodeReport
		if err := json.Unmarshal([]byte(l.Annotations[NodeResultAnnotation]), &rep); err != nil {
			continue
		}
		out = append(out, rep.result(node))
	}
	slices.SortStableFunc(out[1:], func(a, b DataplaneResult) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// nodeLeases lists the node Leases from the Lease cache.
func (c *Controller) nodeLeases(ctx context.Context) ([]coordinationv1.Lease, error) {
	var list coordinationv1.LeaseList
	if err := c.leaseCache.List(ctx, &list, client.InNamespace(c.leaseNamespace)); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, l := range list.Items {
		if strings.HasPrefix(l.Name, NodeLeasePrefix) {
			out = append(out, l)
		}
	}
	return out, nil
}

// nodeNameServes reports whether the Node name exists, runs a dataplane and is
// Ready: a node that is not Ready is left out of the Gateway addresses, and its
// results are not folded into conditions.
func (c *Controller) nodeNameServes(ctx context.Context, name string) bool {
	var n corev1.Node
	if err := c.client.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		return false
	}
	return c.nodeSelected(&n) && nodeReady(&n)
}

// liveNodes returns which nodes have a dataplane that is connected by their fresh
// Lease (the local node by the Delivery), whether any node Lease exists at all, and
// the earliest expiry of a fresh Lease (zero if none).
func (c *Controller) liveNodes(ctx context.Context) (live map[string]bool, anyLease bool, nextExpiry time.Time, err error) {
	leases, err := c.nodeLeases(ctx)
	if err != nil {
		return nil, false, time.Time{}, fmt.Errorf("listing node leases: %w", err)
	}
	live = map[string]bool{}
	now := time.Now()
	for i := range leases {
		l := &leases[i]
		node := leaseNode(l)
		if !leaseFresh(l, now) {
			continue
		}
		// The local node counts by its Delivery, so its own Lease's expiry changes
		// nothing here.
		if exp, _ := leaseExpiry(l); node != c.opts.NodeName && (nextExpiry.IsZero() || exp.Before(nextExpiry)) {
			nextExpiry = exp
		}
		var rep nodeReport
		if json.Unmarshal([]byte(l.Annotations[NodeResultAnnotation]), &rep) == nil && rep.Connected {
			live[node] = true
		}
	}
	if c.opts.NodeName != "" {
		live[c.opts.NodeName] = c.Delivery.Result().Connected
	}
	return live, len(leases) > 0, nextExpiry, nil
}

// leaseChanged reports whether a Lease update matters: its result changed, or it
// came back from expiry.
func leaseChanged(o, n *coordinationv1.Lease) bool {
	now := time.Now()
	return o.Annotations[NodeResultAnnotation] != n.Annotations[NodeResultAnnotation] ||
		leaseFresh(o, now) != leaseFresh(n, now) || leaseNode(o) != leaseNode(n)
}
