package nodes

import (
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/deliver"
)

// TestNodeReportRoundTrip checks that a node Lease carries what the status writer
// folds in: rejection and unbound listeners (bound ones are left out).
func TestNodeReportRoundTrip(t *testing.T) {
	in := deliver.Result{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &deliver.Rejection{Version: 8, Code: rpc.Nack_Code(1), Reason: "bad"},
		Listeners: []deliver.ListenerResult{
			{Name: "a", Address: "10.0.0.1", Port: 80, Bound: true},
			{Name: "b", Port: 443, Error: "in use"},
		},
		Configs: map[types.NamespacedName]string{{Namespace: "ns", Name: "web"}: "0123456789abcdef"},
	}
	raw, err := json.Marshal(reportOf(in))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	got := rep.result("n1")
	want := deliver.Result{
		Node: "n1", Connected: true, Synced: true, AppliedVersion: 7, AppliedHash: "h",
		Rejection: &deliver.Rejection{Version: 8, Code: rpc.Nack_Code(1), Reason: "bad"},
		Listeners: []deliver.ListenerResult{{Port: 443, Error: "in use"}},
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
	raw, err := json.Marshal(reportOf(deliver.Result{Synced: true, Configs: map[types.NamespacedName]string{}}))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.result("n1").Configs; c == nil || len(c) != 0 {
		t.Errorf("empty config hashes came back as %#v from %s, want an empty map", c, raw)
	}
	var old report
	if err := json.Unmarshal([]byte(`{"version":3,"hash":"h","connected":true,"synced":true}`), &old); err != nil {
		t.Fatal(err)
	}
	if c := old.result("n1").Configs; c != nil {
		t.Errorf("a report without configs gave config hashes %#v, want nil", c)
	}
}
