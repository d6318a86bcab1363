package nodes

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestLeaseFreshness checks expiry and which updates matter.
func TestLeaseFreshness(t *testing.T) {
	now := time.Now()
	lease := func(renew time.Time, ann string) *coordinationv1.Lease {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LeasePrefix + "n1", Annotations: map[string]string{ResultAnnotation: ann}},
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
	if LeaseChanged(fresh, lease(now, "x")) {
		t.Error("a renewal of a fresh lease counts as a change")
	}
	if !LeaseChanged(stale, lease(now, "x")) || !LeaseChanged(fresh, lease(now, "y")) {
		t.Error("a lease back from expiry or a new result does not count as a change")
	}
}
