package nodes

import (
	"cmp"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/controllers/deliver"
)

// Node Lease defaults and names.
const (
	// LeasePrefix starts the name of every node's result Lease ("flax-node-<node>").
	LeasePrefix = "flax-node-"
	// DefaultLeaseDuration is the leaseDurationSeconds of a node's Lease.
	DefaultLeaseDuration = 40 * time.Second
	// DefaultRenewInterval is how often a node renews its Lease.
	DefaultRenewInterval = 10 * time.Second
	// DefaultNamespace is the namespace of the node Leases when none is set.
	DefaultNamespace = "default"
)

// Options configure Leases.
type Options struct {
	// Client writes this node's Lease and reads Nodes (from the manager's cache).
	Client client.Client
	// APIReader reads this node's Lease from the API server before each write.
	APIReader client.Reader
	// Cache lists the node Leases of Namespace.
	Cache client.Reader
	// Namespace holds the node Leases; empty means DefaultNamespace.
	Namespace string
	// Node is the local node; its Lease is written only while Start runs.
	Node string
	// Selector selects the nodes that run a dataplane; nil selects every node.
	Selector labels.Selector
	// LeaseDuration is the leaseDurationSeconds of this node's Lease (whole
	// seconds, at least one); zero means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// RenewInterval is how often this node renews its Lease; zero means
	// DefaultRenewInterval.
	RenewInterval time.Duration
	// Delivery is the local dataplane's delivery, and Configs the config hashes
	// of the snapshots this node published: together the local result.
	Delivery *deliver.Delivery
	Configs  *ConfigHistory
	// Log receives what the Lease writer does.
	Log logr.Logger
}

// Leases are the node Leases as one node sees them. Start maintains the local
// node's Lease in Namespace: holderIdentity is the node, it is renewed every
// RenewInterval with leaseDurationSeconds LeaseDuration, and the annotation
// ResultAnnotation holds a JSON summary of the local result (applied version and
// hash, connected, synced, rejection, unbound listeners, and the config hash of
// every Gateway it runs), rewritten when the result changes other than in version
// and hash (so not for endpoint updates, which the renewals carry). Nothing is
// deleted on shutdown: the Lease expires.
//
// Results and GatewayAddresses read every node's Lease from Cache: a node counts
// while its Lease has not expired and its Node is Ready and selected; the local
// node always counts, by its Delivery.
type Leases struct {
	opts Options
	wake chan struct{}

	mu sync.Mutex
	// lastReport is the report ResultChanged saw last, without version and hash.
	lastReport string
}

// NewLeases returns the Leases of opts; add them to the manager to write this
// node's Lease.
func NewLeases(opts Options) *Leases {
	opts.Namespace = cmp.Or(opts.Namespace, DefaultNamespace)
	opts.LeaseDuration = cmp.Or(opts.LeaseDuration, DefaultLeaseDuration)
	opts.RenewInterval = cmp.Or(opts.RenewInterval, DefaultRenewInterval)
	return &Leases{opts: opts, wake: make(chan struct{}, 1)}
}

// local returns the local dataplane's result with the config hashes of the
// configuration it runs. Once the dataplane is Synced they are never nil: a
// configuration this node cannot tell (not published recently) has none, so the
// node is waited for until it runs the current one.
func (l *Leases) local() deliver.Result {
	r := l.opts.Delivery.Result()
	if r.Synced {
		configs, ok := l.opts.Configs.Lookup(r.AppliedHash)
		if !ok {
			configs = map[types.NamespacedName]string{}
		}
		r.Configs = configs
	}
	return r
}

// IsNodeLease reports whether l is a node Lease, by its name.
func IsNodeLease(l *coordinationv1.Lease) bool { return strings.HasPrefix(l.Name, LeasePrefix) }

// LeaseChanged reports whether an update of a node Lease matters: its result
// changed, or it came back from expiry.
func LeaseChanged(o, n *coordinationv1.Lease) bool {
	now := time.Now()
	return o.Annotations[ResultAnnotation] != n.Annotations[ResultAnnotation] ||
		leaseFresh(o, now) != leaseFresh(n, now) || leaseNode(o) != leaseNode(n)
}

// leaseName returns the Lease name of node.
func leaseName(node string) string { return LeasePrefix + node }

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
	return ok && IsNodeLease(l) && now.Before(exp)
}

// leaseNode returns the node a node Lease reports for.
func leaseNode(l *coordinationv1.Lease) string {
	if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "" {
		return h
	}
	return strings.TrimPrefix(l.Name, LeasePrefix)
}
