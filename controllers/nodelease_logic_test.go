package controllers

import (
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// TestNodeReportRoundTrip checks that a node Lease carries what the status writer
// folds in: rejection and unbound listeners (bound ones are left out).
func TestNodeReportRoundTrip(t *testing.T) {
	in := DataplaneResult{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &Rejection{Version: 8, Code: dataplanev1.Nack_Code(1), Reason: "bad"},
		Listeners: []ListenerResult{
			{Name: "a", Address: "10.0.0.1", Port: 80, Bound: true},
			{Name: "b", Port: 443, Error: "in use"},
		},
	}
	got := reportOf(in).result("n1")
	want := DataplaneResult{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &Rejection{Version: 8, Code: dataplanev1.Nack_Code(1), Reason: "bad"},
		Listeners: []ListenerResult{{Port: 443, Error: "in use"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, want)
	}
}

// TestLeaseFreshness checks expiry and which updates matter.
func TestLeaseFreshness(t *testing.T) {
	now := time.Now()
	lease := func(renew time.Time, ann string) *coordinationv1.Lease {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: NodeLeasePrefix + "n1", Annotations: map[string]string{NodeResultAnnotation: ann}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To("n1"), LeaseDurationSeconds: ptr.To[int32](40),
				RenewTime: &metav1.MicroTime{Time: renew},
			},
		}
	}
	fresh, stale := lease(now.Add(-10*time.Second), "x"), lease(now.Add(-41*time.Second), "x")
	if !leaseFresh(fresh, now) || leaseFresh(stale, now) {
		t.Errorf("fresh %v, stale %v", leaseFresh(fresh, now), leaseFresh(stale, now))
	}
	if leaseNode(fresh) != "n1" {
		t.Errorf("node %q", leaseNode(fresh))
	}
	if leaseChanged(fresh, lease(now, "x")) {
		t.Error("a renewal of a fresh lease counts as a change")
	}
	if !leaseChanged(stale, lease(now, "x")) || !leaseChanged(fresh, lease(now, "y")) {
		t.Error("a lease back from expiry or a new result does not count as a change")
	}
}
