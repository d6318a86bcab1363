package nodes

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers/translate"
)

// TestConfigHistory checks that the config hashes of an acknowledged snapshot are
// found while it is recent, and kept while the dataplane runs it.
func TestConfigHistory(t *testing.T) {
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	output := func(i int) *translate.Output {
		return &translate.Output{
			Snapshot: &dataplanev1.Snapshot{Hash: fmt.Sprintf("snap-%d", i)},
			Gateways: []translate.GatewayStatus{{NamespacedName: web, ConfigHash: fmt.Sprintf("gw-%d", i)}, {NamespacedName: types.NamespacedName{Namespace: "ns", Name: "unserved"}}},
		}
	}
	var h ConfigHistory
	h.Add(output(0))
	h.Add(output(1))
	if c, ok := h.Lookup("snap-0"); !ok || !reflect.DeepEqual(c, map[types.NamespacedName]string{web: "gw-0"}) {
		t.Errorf("lookup(snap-0) = %v, %v; want web's hash only", c, ok)
	}
	for i := 2; i < 2+maxRecentConfigs; i++ {
		h.Add(output(i))
	}
	if c, ok := h.Lookup("snap-0"); !ok || c[web] != "gw-0" {
		t.Errorf("the applied snapshot was forgotten: %v, %v", c, ok)
	}
	if _, ok := h.Lookup("snap-1"); ok {
		t.Errorf("snap-1 is still held after %d newer snapshots", maxRecentConfigs)
	}
	if c, ok := h.Lookup(fmt.Sprintf("snap-%d", 1+maxRecentConfigs)); !ok || c[web] != fmt.Sprintf("gw-%d", 1+maxRecentConfigs) {
		t.Errorf("latest snapshot not found: %v, %v", c, ok)
	}
	if _, ok := h.Lookup("unknown"); ok {
		t.Error("an unknown snapshot was found")
	}
}
