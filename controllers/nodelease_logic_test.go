package controllers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/translate"
)

// TestNodeReportRoundTrip checks that a node Lease carries what the status writer
// folds in: rejection and unbound listeners (bound ones are left out).
func TestNodeReportRoundTrip(t *testing.T) {
	in := DataplaneResult{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &Rejection{Version: 8, Code: rpc.Nack_Code(1), Reason: "bad"},
		Listeners: []ListenerResult{
			{Name: "a", Address: "10.0.0.1", Port: 80, Bound: true},
			{Name: "b", Port: 443, Error: "in use"},
		},
		Configs: map[types.NamespacedName]string{{Namespace: "ns", Name: "web"}: "0123456789abcdef"},
	}
	raw, err := json.Marshal(reportOf(in))
	if err != nil {
		t.Fatal(err)
	}
	var rep nodeReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	got := rep.result("n1")
	want := DataplaneResult{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &Rejection{Version: 8, Code: rpc.Nack_Code(1), Reason: "bad"},
		Listeners: []ListenerResult{{Port: 443, Error: "in use"}},
		Configs:   map[types.NamespacedName]string{{Namespace: "ns", Name: "web"}: "0123456789abcdef"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, want)
	}
}

// TestNodeReportConfigs checks that "no config hashes known" (an empty map, the
// node is waited for) survives the Lease and stays apart from "not reported" (a
// controller that predates config hashes).
func TestNodeReportConfigs(t *testing.T) {
	raw, err := json.Marshal(reportOf(DataplaneResult{Synced: true, Configs: map[types.NamespacedName]string{}}))
	if err != nil {
		t.Fatal(err)
	}
	var rep nodeReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.result("n1").Configs; c == nil || len(c) != 0 {
		t.Errorf("empty config hashes came back as %#v from %s, want an empty map", c, raw)
	}
	var old nodeReport
	if err := json.Unmarshal([]byte(`{"version":3,"hash":"h","connected":true,"synced":true}`), &old); err != nil {
		t.Fatal(err)
	}
	if c := old.result("n1").Configs; c != nil {
		t.Errorf("a report without configs gave config hashes %#v, want nil", c)
	}
}

// TestConfigBook checks that the config hashes of an acknowledged snapshot are
// found while it is recent, and kept while the dataplane runs it.
func TestConfigBook(t *testing.T) {
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	output := func(i int) *translate.Output {
		return &translate.Output{
			Snapshot: &dataplanev1.Snapshot{Hash: fmt.Sprintf("snap-%d", i)},
			Gateways: []translate.GatewayStatus{{NamespacedName: web, ConfigHash: fmt.Sprintf("gw-%d", i)}, {NamespacedName: types.NamespacedName{Namespace: "ns", Name: "unserved"}}},
		}
	}
	var b configBook
	b.add(output(0))
	b.add(output(1))
	if c, ok := b.lookup("snap-0"); !ok || !reflect.DeepEqual(c, map[types.NamespacedName]string{web: "gw-0"}) {
		t.Errorf("lookup(snap-0) = %v, %v; want web's hash only", c, ok)
	}
	for i := 2; i < 2+maxRecentConfigs; i++ {
		b.add(output(i))
	}
	if c, ok := b.lookup("snap-0"); !ok || c[web] != "gw-0" {
		t.Errorf("the applied snapshot was forgotten: %v, %v", c, ok)
	}
	if _, ok := b.lookup("snap-1"); ok {
		t.Errorf("snap-1 is still held after %d newer snapshots", maxRecentConfigs)
	}
	if c, ok := b.lookup(fmt.Sprintf("snap-%d", 1+maxRecentConfigs)); !ok || c[web] != fmt.Sprintf("gw-%d", 1+maxRecentConfigs) {
		t.Errorf("latest snapshot not found: %v, %v", c, ok)
	}
	if _, ok := b.lookup("unknown"); ok {
		t.Error("an unknown snapshot was found")
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
