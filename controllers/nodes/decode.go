package nodes

import (
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/flaxlb/flax/controllers/deliver"
)

// LeaseResult returns what the node Lease l reports, for readers outside the
// controller (flaxctl status): the dataplane result of its node (Node set; of the
// listeners only the unbound ones, as Results gives them), and whether the Lease
// has not expired at now. It fails when l is not a node Lease or its
// ResultAnnotation is missing or not a report.
func LeaseResult(l *coordinationv1.Lease, now time.Time) (deliver.Result, bool, error) {
	if !IsNodeLease(l) {
		return deliver.Result{}, false, fmt.Errorf("lease %s is not a node lease (%s<node>)", l.Name, LeasePrefix)
	}
	raw, ok := l.Annotations[ResultAnnotation]
	if !ok {
		return deliver.Result{}, false, fmt.Errorf("lease %s has no %s annotation", l.Name, ResultAnnotation)
	}
	var rep report
	if err := json.Unmarshal([]byte(raw), &rep); err != nil {
		return deliver.Result{}, false, fmt.Errorf("lease %s: annotation %s: %w", l.Name, ResultAnnotation, err)
	}
	return rep.result(leaseNode(l)), leaseFresh(l, now), nil
}
