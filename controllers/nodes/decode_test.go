package nodes

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/flaxlb/flax/controllers/deliver"
)

// TestLeaseResult checks that LeaseResult reads back what a node writes in its
// Lease, says whether it expired, and refuses Leases that carry no report.
func TestLeaseResult(t *testing.T) {
	in := deliver.Result{
		Connected: true, Synced: true, AppliedVersion: 3, AppliedHash: "h3",
		Listeners: []deliver.ListenerResult{{Port: 443, Error: "in use"}},
		Configs:   map[types.NamespacedName]string{{Namespace: "ns", Name: "web"}: "0123456789abcdef"},
	}
	raw, err := json.Marshal(reportOf(in))
	if err != nil {
		t.Fatal(err)
	}
	renew := metav1.NewMicroTime(time.Unix(1000, 0))
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName("n1"), Annotations: map[string]string{ResultAnnotation: string(raw)}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("n1"), RenewTime: &renew, LeaseDurationSeconds: ptr.To(int32(40))},
	}
	got, fresh, err := LeaseResult(lease, time.Unix(1039, 0))
	if err != nil || !fresh {
		t.Fatalf("LeaseResult = %v, %v; want a fresh result", fresh, err)
	}
	want := in
	want.Node = "n1"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LeaseResult = %+v\nwant %+v", got, want)
	}
	if _, fresh, _ := LeaseResult(lease, time.Unix(1040, 0)); fresh {
		t.Error("a lease renewed 40s ago with duration 40s is fresh")
	}
	lease.Annotations[ResultAnnotation] = "{"
	if _, _, err := LeaseResult(lease, time.Unix(1000, 0)); err == nil {
		t.Error("a malformed report gave no error")
	}
	delete(lease.Annotations, ResultAnnotation)
	if _, _, err := LeaseResult(lease, time.Unix(1000, 0)); err == nil {
		t.Error("a lease without the annotation gave no error")
	}
	other := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "flax-controller-leader"}}
	if _, _, err := LeaseResult(other, time.Unix(1000, 0)); err == nil {
		t.Error("the leader lease was read as a node lease")
	}
}
