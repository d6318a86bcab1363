package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/translate"
)

// Results returns the local dataplane's result and the result of every other node
// whose Lease has not expired and whose Node is Ready and selected, in node order
// after the local one. It is the status writer's status.ResultSource.
func (l *Leases) Results() []deliver.Result {
	out := []deliver.Result{l.local()}
	leases, _ := l.list(context.Background())
	now := time.Now()
	for i := range leases {
		lease := &leases[i]
		node := leaseNode(lease)
		if node == l.opts.Node || !leaseFresh(lease, now) || !l.nodeServes(context.Background(), node) {
			continue
		}
		var rep report
		if err := json.Unmarshal([]byte(lease.Annotations[ResultAnnotation]), &rep); err != nil {
			continue
		}
		out = append(out, rep.result(node))
	}
	slices.SortStableFunc(out[1:], func(a, b deliver.Result) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// GatewayAddresses returns the addresses of the Ready selected nodes whose
// dataplane is connected by their fresh Lease (the local node: by its Delivery),
// for the Gateways without spec.addresses, and those nodes by name with their
// addresses, sorted by name. Until some node has published a Lease (a fresh
// install, or an older controller version), every Ready selected node counts. It
// also returns the earliest expiry of another node's fresh Lease (zero if none):
// its node's address and results drop out then, unless it is renewed.
func (l *Leases) GatewayAddresses(ctx context.Context) ([]string, []translate.DataplaneNode, time.Time, error) {
	live, anyLease, nextExpiry, err := l.live(ctx)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var nodes corev1.NodeList
	if err := l.opts.Client.List(ctx, &nodes); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("listing nodes: %w", err)
	}
	var addresses []string
	var serving []translate.DataplaneNode
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !Selected(l.opts.Selector, n) || !Ready(n) {
			continue
		}
		if anyLease && !live[n.Name] {
			continue
		}
		serving = append(serving, translate.DataplaneNode{Name: n.Name, Addresses: Addresses(n)})
		for _, a := range Addresses(n) {
			if !slices.Contains(addresses, a) {
				addresses = append(addresses, a)
			}
		}
	}
	slices.SortFunc(serving, func(a, b translate.DataplaneNode) int { return strings.Compare(a.Name, b.Name) })
	return addresses, serving, nextExpiry, nil
}

// list lists the node Leases from the Lease cache.
func (l *Leases) list(ctx context.Context) ([]coordinationv1.Lease, error) {
	var list coordinationv1.LeaseList
	if err := l.opts.Cache.List(ctx, &list, client.InNamespace(l.opts.Namespace)); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, lease := range list.Items {
		if IsNodeLease(&lease) {
			out = append(out, lease)
		}
	}
	return out, nil
}

// nodeServes reports whether the Node name exists, runs a dataplane and is Ready:
// a node that is not Ready is left out of the Gateway addresses, and its results
// are not folded into conditions.
func (l *Leases) nodeServes(ctx context.Context, name string) bool {
	var n corev1.Node
	if err := l.opts.Client.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		return false
	}
	return Selected(l.opts.Selector, &n) && Ready(&n)
}

// live returns which nodes have a dataplane that is connected by their fresh Lease
// (the local node by the Delivery), whether any node Lease exists at all, and the
// earliest expiry of a fresh Lease of another node (zero if none).
func (l *Leases) live(ctx context.Context) (live map[string]bool, anyLease bool, nextExpiry time.Time, err error) {
	leases, err := l.list(ctx)
	if err != nil {
		return nil, false, time.Time{}, fmt.Errorf("listing node leases: %w", err)
	}
	live = map[string]bool{}
	now := time.Now()
	for i := range leases {
		lease := &leases[i]
		node := leaseNode(lease)
		if !leaseFresh(lease, now) {
			continue
		}
		// The local node counts by its Delivery, so its own Lease's expiry changes
		// nothing here.
		if exp, _ := leaseExpiry(lease); node != l.opts.Node && (nextExpiry.IsZero() || exp.Before(nextExpiry)) {
			nextExpiry = exp
		}
		var rep report
		if json.Unmarshal([]byte(lease.Annotations[ResultAnnotation]), &rep) == nil && rep.Connected {
			live[node] = true
		}
	}
	if l.opts.Node != "" {
		live[l.opts.Node] = l.opts.Delivery.Result().Connected
	}
	return live, len(leases) > 0, nextExpiry, nil
}
