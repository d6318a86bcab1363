package daemon

import (
	"testing"

	"github.com/flaxlb/flax/dataplane/engine"
)

// TestLimitsFor checks the defaults and the explicit values of the
// --max-connections and --memory-budget settings.
func TestLimitsFor(t *testing.T) {
	for _, tc := range []struct {
		name              string
		maxConns, budget  int64
		wantCap, wantBudg int64
	}{
		{name: "defaults", wantCap: engine.DefaultMaxConnections(), wantBudg: engine.DefaultMemoryBudget(2)},
		{name: "explicit", maxConns: 100, budget: 64 << 20, wantCap: 100, wantBudg: 64 << 20},
		{name: "none", maxConns: -1, budget: -1, wantCap: 0, wantBudg: 0},
	} {
		lim := limitsFor(Options{Workers: 2, MaxConnections: tc.maxConns, MemoryBudget: tc.budget})
		if lim.Connections == nil {
			t.Fatalf("%s: no connection counter (connections are counted even without a cap)", tc.name)
		}
		if got := lim.Connections.Max(); got != tc.wantCap {
			t.Errorf("%s: cap %d, want %d", tc.name, got, tc.wantCap)
		}
		if lim.MemoryBudget != tc.wantBudg {
			t.Errorf("%s: budget %d, want %d", tc.name, lim.MemoryBudget, tc.wantBudg)
		}
	}
	if engine.DefaultMaxConnections() <= 0 {
		t.Error("no default connection cap under a finite RLIMIT_NOFILE")
	}
}
