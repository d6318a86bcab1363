package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

func compile(t *testing.T, listeners ...string) *compiled.Config {
	t.Helper()
	y := "listeners:\n"
	for i, l := range listeners {
		y += fmt.Sprintf("- {name: l%d, address: 127.0.0.1, port: %s, protocol: HTTP, virtualHosts: [{name: v, routes: [{name: r, directResponse: {status: 200}}]}]}\n", i, l)
	}
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := compiled.Compile(snap, metrics.NewRegistry(1))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c
}

func addrs(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Slot.Addr.String())
	}
	return out
}

func TestPlanAndCommit(t *testing.T) {
	var set ListenerSet
	c1 := compile(t, "8001", "8002")
	p := set.Plan(c1)
	if got := addrs(p.Bind); len(got) != 2 || len(p.Keep) != 0 || len(p.Close) != 0 {
		t.Fatalf("first plan: bind %v keep %d close %d", got, len(p.Keep), len(p.Close))
	}
	// 8002 fails to bind: it is left out of the set and retried next time.
	failed := netip.MustParseAddrPort("127.0.0.1:8002")
	set.Commit(p, p.Bind[:1])
	st := Statuses(c1, p, map[netip.AddrPort]error{failed: errors.New("in use")})
	if !st[0].Bound || st[1].Bound || st[1].Err == nil {
		t.Fatalf("statuses %+v", st)
	}
	slot8001 := set.Slots()[0]
	if slot8001.Listener.Load() != c1.Listeners[0] {
		t.Fatal("bound slot does not serve its listener")
	}

	c2 := compile(t, "8001", "8002", "8003")
	p = set.Plan(c2)
	if got := addrs(p.Bind); len(got) != 2 || got[0] != "127.0.0.1:8002" || got[1] != "127.0.0.1:8003" {
		t.Fatalf("second plan binds %v", got)
	}
	if len(p.Keep) != 1 || p.Keep[0].Slot != slot8001 {
		t.Fatalf("second plan keeps %v", addrs(p.Keep))
	}
	set.Commit(p, p.Bind)
	if slot8001.Listener.Load() != c2.Listeners[0] {
		t.Fatal("kept slot did not get the new listener")
	}

	c3 := compile(t, "8003", "8003")
	p = set.Plan(c3)
	if len(p.Close) != 2 || len(p.Keep) != 1 || len(p.Rejected) != 1 || !errors.Is(p.Rejected[0].Err, ErrDuplicateAddress) {
		t.Fatalf("third plan: close %d keep %d rejected %+v", len(p.Close), len(p.Keep), p.Rejected)
	}
	set.Commit(p, nil)
	st = Statuses(c3, p, nil)
	if !st[0].Bound || st[1].Bound {
		t.Fatalf("statuses %+v", st)
	}
	if n := len(set.Slots()); n != 1 {
		t.Fatalf("%d slots left, want 1", n)
	}
	if st[1].Err == nil || st[0].Addr.Port() != 8003 {
		t.Fatalf("statuses %+v", st)
	}
}
