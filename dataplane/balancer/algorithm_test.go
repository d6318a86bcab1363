package balancer

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// firstUsable picks the first usable eligible endpoint, for registry tests.
type firstUsable struct{}

func (firstUsable) NewSelector(g *Group, _ uint64) Selector { return firstSel{g} }

type firstSel struct{ g *Group }

func (s firstSel) Pick(_ []byte, unhealthy Bitset) (int, bool) {
	skip, n := s.g.Usable(unhealthy)
	if n == 0 {
		return -1, false
	}
	for pos := range s.g.NumEligible() {
		if idx := s.g.EligibleEndpoint(pos); !skip.Has(idx) {
			return idx, true
		}
	}
	return -1, false
}

func (firstSel) Done(int) {}

func TestRegistry(t *testing.T) {
	for name, p := range builtinNames {
		a, ok := Lookup(name)
		if !ok || a != Algorithm(p) {
			t.Errorf("built-in %q: %v %v", name, a, ok)
		}
		if err := Register(name, firstUsable{}); err == nil || !strings.Contains(err.Error(), "already registered") {
			t.Errorf("re-registering %q: %v", name, err)
		}
	}
	if err := Register("", firstUsable{}); err == nil {
		t.Error("empty name accepted")
	}
	if err := Register("x-nil", nil); err == nil {
		t.Error("nil algorithm accepted")
	}
	name := "test-first-usable-" + strconv.FormatInt(time.Now().UnixNano(), 36) // -count=N safe
	if err := Register(name, firstUsable{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := Lookup(name); !ok {
		t.Fatal("registered algorithm not found")
	}
	if !slices.Contains(Registered(), name) || !slices.IsSorted(Registered()) {
		t.Errorf("Registered() = %v", Registered())
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("unknown name found")
	}
}

// A built-in policy's selector is the group's own Picker.
func TestPolicySelector(t *testing.T) {
	g := mustGroup(t, eps(3), Config{Policy: Maglev})
	sel := Maglev.NewSelector(g, 1)
	p, ok := sel.(*Picker)
	if !ok || p.Group() != g {
		t.Fatalf("selector %T", sel)
	}
	a, _ := sel.Pick([]byte("k"), nil)
	b, _ := g.NewPicker(9).Pick([]byte("k"), nil)
	if a != b {
		t.Errorf("same key, different endpoints: %d %d", a, b)
	}
}

// Usable applies the panic threshold as the built-in policies do.
func TestUsableAndCustomSelector(t *testing.T) {
	e := eps(4)
	e[0].Ready = false // not eligible
	g := mustGroup(t, e, Config{})
	sel := firstUsable{}.NewSelector(g, 0)
	bad := NewBitset(4)
	bad.Set(1)
	if idx, ok := sel.Pick(nil, bad); !ok || idx != 2 {
		t.Errorf("pick with 1 unhealthy = %d %v, want 2", idx, ok)
	}
	bad.Set(2) // 1 of 3 eligible healthy: below 50%, panic mode uses all
	skip, n := g.Usable(bad)
	if skip != nil || n != 3 {
		t.Errorf("Usable in panic = %v %d", skip, n)
	}
	if idx, ok := sel.Pick(nil, bad); !ok || idx != 1 {
		t.Errorf("pick in panic mode = %d %v, want 1", idx, ok)
	}
	strict := mustGroup(t, e, Config{PanicThreshold: -1})
	all := NewBitset(4)
	for i := 1; i < 4; i++ {
		all.Set(i)
	}
	if _, ok := (firstUsable{}).NewSelector(strict, 0).Pick(nil, all); ok {
		t.Error("picked with every endpoint unhealthy and panic mode off")
	}
}
