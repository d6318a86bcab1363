package balancer

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
)

// eps returns n ready endpoints 10.0.x.y:8080 with weight 1.
func eps(n int) []Endpoint {
	out := make([]Endpoint, n)
	for i := range out {
		out[i] = Endpoint{
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 8080),
			Weight: 1, Ready: true, Serving: true,
		}
	}
	return out
}

func mustGroup(t testing.TB, e []Endpoint, cfg Config) *Group {
	t.Helper()
	g, err := NewGroup(e, cfg)
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	return g
}

func mustPick(t testing.TB, p *Picker, key []byte, unhealthy Bitset) int {
	t.Helper()
	idx, ok := p.Pick(key, unhealthy)
	if !ok {
		t.Fatalf("Pick failed")
	}
	return idx
}

var allPolicies = []Policy{RoundRobin, WeightedRoundRobin, LeastRequest, Random, RingHash, Maglev}

func TestHashIsFixed(t *testing.T) {
	// These values are part of the contract: changing them remaps every
	// consistent-hashing key across the fleet.
	golden := []struct {
		in   string
		want uint64
	}{
		{"", 0xe220a8397b1dcdaf},
		{"a", 0x1c235c05490ed6ab},
		{"abc", 0x6983268c255da78a},
		{"12345678", 0x43846b27f17c9f14},
		{"123456789", 0x67738eb1dbe1abdf},
		{"10.0.0.1:8080", 0xf26d8de1a9213d97},
		{"session-7f3a9c", 0xf0ce01e5932d3a61},
	}
	for _, g := range golden {
		if got := Hash([]byte(g.in)); got != g.want {
			t.Errorf("Hash(%q) = %#016x, want %#016x", g.in, got, g.want)
		}
		if HashSeed([]byte(g.in), 1) == g.want {
			t.Errorf("HashSeed(%q, 1) equals the unseeded hash", g.in)
		}
	}
	// Trailing zero bytes must change the hash (length is mixed in).
	if Hash([]byte{1}) == Hash([]byte{1, 0}) {
		t.Error("Hash ignores trailing zero bytes")
	}
	if a := testing.AllocsPerRun(100, func() { Hash([]byte("some key value")) }); a != 0 {
		t.Errorf("Hash allocates %v", a)
	}
}

// Flipping one input bit flips about half of the output bits.
func TestHashAvalanche(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 4, 8, 13, 32} {
		total, flips := 0, 0
		for range 200 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			h := Hash(b)
			for bit := range n * 8 {
				b[bit/8] ^= 1 << (bit % 8)
				flips += bits.OnesCount64(h ^ Hash(b))
				total++
				b[bit/8] ^= 1 << (bit % 8)
			}
		}
		if avg := float64(flips) / float64(total); avg < 30 || avg > 34 {
			t.Errorf("len %d: %.2f output bits flip per input bit, want about 32", n, avg)
		}
	}
}

func TestBitset(t *testing.T) {
	b := NewBitset(130)
	b.Set(0)
	b.Set(64)
	b.Set(129)
	for i := range 130 {
		if want := i == 0 || i == 64 || i == 129; b.Has(i) != want {
			t.Errorf("Has(%d) = %v", i, !want)
		}
	}
	if b.Has(1000) {
		t.Error("Has beyond capacity")
	}
	var nilSet Bitset
	if nilSet.Has(3) {
		t.Error("nil set has members")
	}
}

func TestEligibility(t *testing.T) {
	e := eps(4)
	e[1].Ready = false                         // not ready: skipped
	e[2].Ready, e[2].Terminating = false, true // terminating: skipped while some are ready
	for _, pol := range allPolicies {
		g := mustGroup(t, e, Config{Policy: pol})
		if g.NumEligible() != 2 || g.TerminatingFallback() {
			t.Fatalf("%v: eligible %d fallback %v", pol, g.NumEligible(), g.TerminatingFallback())
		}
		p := g.NewPicker(0)
		for i := range 200 {
			idx := mustPick(t, p, []byte(strconv.Itoa(i)), nil)
			if idx != 0 && idx != 3 {
				t.Fatalf("%v: picked non-ready endpoint %d", pol, idx)
			}
			p.Done(idx)
		}
	}
}

func TestTerminatingFallback(t *testing.T) {
	e := eps(4)
	for i := range e {
		e[i].Ready = false
	}
	e[1].Terminating = true                      // serving and terminating: fallback
	e[2].Terminating, e[2].Serving = true, false // terminating, not serving: never
	e[3].Serving = true                          // serving, not terminating, not ready: never
	for _, pol := range allPolicies {
		g := mustGroup(t, e, Config{Policy: pol})
		if !g.TerminatingFallback() || g.NumEligible() != 1 {
			t.Fatalf("%v: fallback %v eligible %d", pol, g.TerminatingFallback(), g.NumEligible())
		}
		p := g.NewPicker(7)
		for i := range 50 {
			if idx := mustPick(t, p, []byte(strconv.Itoa(i)), nil); idx != 1 {
				t.Fatalf("%v: picked %d, want the serving terminating endpoint", pol, idx)
			}
		}
	}
}

func TestEmptyGroup(t *testing.T) {
	none := eps(3)
	for i := range none {
		none[i].Ready, none[i].Serving = false, false
	}
	for _, pol := range allPolicies {
		for _, e := range [][]Endpoint{nil, none} {
			g := mustGroup(t, e, Config{Policy: pol})
			if idx, ok := g.NewPicker(0).Pick([]byte("k"), nil); ok || idx != -1 {
				t.Errorf("%v with %d endpoints: Pick = %d, %v; want -1, false", pol, len(e), idx, ok)
			}
		}
	}
}

func TestUnhealthyAndPanicThreshold(t *testing.T) {
	const n = 10
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			g := mustGroup(t, eps(n), Config{Policy: pol})
			p := g.NewPicker(1)
			bad := NewBitset(n)
			for i := range 4 { // 60% healthy: health is honoured
				bad.Set(i * 2)
			}
			for i := range 2000 {
				idx := mustPick(t, p, []byte(strconv.Itoa(i)), bad)
				if bad.Has(idx) {
					t.Fatalf("picked unhealthy endpoint %d", idx)
				}
				p.Done(idx)
			}
			bad.Set(1)
			bad.Set(3) // 40% healthy: below 50%, panic mode uses everything
			seen := map[int]bool{}
			for i := range 2000 {
				idx := mustPick(t, p, []byte(strconv.Itoa(i)), bad)
				seen[idx] = true
				p.Done(idx)
			}
			if len(seen) != n {
				t.Fatalf("panic mode reached %d of %d endpoints", len(seen), n)
			}
			for i := range n {
				bad.Set(i) // all unhealthy: panic mode
			}
			if _, ok := p.Pick([]byte("k"), bad); !ok {
				t.Fatal("all unhealthy: Pick failed in panic mode")
			}
		})
	}
}

func TestPanicThresholdConfig(t *testing.T) {
	const n = 10
	bad := NewBitset(n)
	for i := range 3 {
		bad.Set(i) // 70% healthy
	}
	count := func(cfg Config) (unhealthyPicks int) {
		p := mustGroup(t, eps(n), cfg).NewPicker(0)
		for range 1000 {
			idx := mustPick(t, p, nil, bad)
			if bad.Has(idx) {
				unhealthyPicks++
			}
		}
		return unhealthyPicks
	}
	if c := count(Config{PanicThreshold: 60}); c != 0 {
		t.Errorf("threshold 60%%, 70%% healthy: %d unhealthy picks", c)
	}
	if c := count(Config{PanicThreshold: 80}); c == 0 {
		t.Error("threshold 80%, 70% healthy: panic mode not entered")
	}
	// Disabled: health always honoured, and no healthy endpoint fails.
	if c := count(Config{PanicThreshold: -1}); c != 0 {
		t.Errorf("panic disabled: %d unhealthy picks", c)
	}
	for i := range 9 {
		bad.Set(i)
	}
	p := mustGroup(t, eps(n), Config{PanicThreshold: -1}).NewPicker(0)
	for range 20 {
		if idx := mustPick(t, p, nil, bad); idx != 9 {
			t.Fatalf("panic disabled: picked %d, want the only healthy endpoint 9", idx)
		}
	}
	bad.Set(9)
	if _, ok := p.Pick(nil, bad); ok {
		t.Error("panic disabled, none healthy: Pick succeeded")
	}
}

func TestRoundRobin(t *testing.T) {
	g := mustGroup(t, eps(4), Config{Policy: RoundRobin})
	p := g.NewPicker(0)
	var got []int
	for range 12 {
		got = append(got, mustPick(t, p, nil, nil))
	}
	if want := []int{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("sequence %v, want %v", got, want)
	}
	// A seed shifts the start, not the cycle.
	p = g.NewPicker(2)
	if idx := mustPick(t, p, nil, nil); idx != 2 {
		t.Errorf("seed 2 starts at %d", idx)
	}
	// Unhealthy endpoints are skipped and the rest stay even.
	bad := NewBitset(4)
	bad.Set(1)
	counts := make([]int, 4)
	for range 300 {
		counts[mustPick(t, p, nil, bad)]++
	}
	if want := []int{100, 0, 100, 100}; !slices.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}

func weighted(ws ...uint32) []Endpoint {
	e := eps(len(ws))
	for i, w := range ws {
		e[i].Weight = w
	}
	return e
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	g := mustGroup(t, weighted(5, 1, 1), Config{Policy: WeightedRoundRobin})
	if g.sched == nil {
		t.Fatal("schedule not precomputed")
	}
	slow := *g
	slow.sched = nil // force the per-picker O(n) path
	for name, grp := range map[string]*Group{"precomputed": g, "per-picker": &slow} {
		p := grp.NewPicker(0)
		var seq []byte
		for range 14 {
			seq = append(seq, "abc"[mustPick(t, p, nil, nil)])
		}
		if string(seq) != "aabacaaaabacaa" {
			t.Errorf("%s: sequence %s, want aabacaa twice", name, seq)
		}
		counts := make([]int, 3)
		for range 7000 {
			counts[mustPick(t, p, nil, nil)]++
		}
		if want := []int{5000, 1000, 1000}; !slices.Equal(counts, want) {
			t.Errorf("%s: counts %v, want %v", name, counts, want)
		}
	}
}

func TestWeightedRoundRobinProportions(t *testing.T) {
	ws := []uint32{10, 20, 30, 40}
	for _, forceSlow := range []bool{false, true} {
		g := mustGroup(t, weighted(ws...), Config{Policy: WeightedRoundRobin})
		if forceSlow {
			g.sched = nil
		}
		p := g.NewPicker(0)
		counts := make([]int, len(ws))
		for range 1000 { // exactly ten periods of 100 (gcd 10 → 10)
			counts[mustPick(t, p, nil, nil)]++
		}
		if want := []int{100, 200, 300, 400}; !slices.Equal(counts, want) {
			t.Errorf("slow=%v: counts %v, want %v", forceSlow, counts, want)
		}
		// With endpoint 3 unhealthy the others keep a 1:2:3 ratio.
		bad := NewBitset(4)
		bad.Set(3)
		clear(counts)
		for range 6000 {
			counts[mustPick(t, p, nil, bad)]++
		}
		if counts[3] != 0 || math.Abs(float64(counts[1])/float64(counts[0])-2) > 0.05 ||
			math.Abs(float64(counts[2])/float64(counts[0])-3) > 0.05 {
			t.Errorf("slow=%v: counts with endpoint 3 unhealthy: %v", forceSlow, counts)
		}
	}
}

// Weights whose period exceeds the precomputation limit use the per-picker
// algorithm and still produce exact proportions.
func TestWeightedRoundRobinLargePeriod(t *testing.T) {
	g := mustGroup(t, weighted(50000, 10001, 10000), Config{Policy: WeightedRoundRobin})
	if g.sched != nil {
		t.Fatal("expected no precomputed schedule")
	}
	p := g.NewPicker(0)
	counts := make([]int, 3)
	for range 70001 {
		counts[mustPick(t, p, nil, nil)]++
	}
	if want := []int{50000, 10001, 10000}; !slices.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	// Two endpoints: both are always the two choices, so the idle one wins.
	g := mustGroup(t, eps(2), Config{Policy: LeastRequest})
	p := g.NewPicker(3)
	p.inflight[0] = 5
	for range 100 {
		if idx := mustPick(t, p, nil, nil); idx != 1 {
			t.Fatalf("picked busy endpoint %d (in flight %d vs %d)", idx, p.inflight[0], p.inflight[1])
		}
		p.Done(1)
	}
	// Ties go to the first (random) choice: equally loaded endpoints share
	// the picks evenly.
	p.inflight[0] = 0
	tieCounts := make([]int, 2)
	for range 2000 {
		idx := mustPick(t, p, nil, nil)
		tieCounts[idx]++
		p.Done(idx)
	}
	if tieCounts[0] < 900 || tieCounts[1] < 900 {
		t.Errorf("idle endpoints picked %v times, want about even", tieCounts)
	}
	// Without Done the counts stay balanced.
	for range 100 {
		mustPick(t, p, nil, nil)
	}
	if p.InFlight(0) != 50 || p.InFlight(1) != 50 {
		t.Errorf("in flight %d/%d, want 50/50", p.InFlight(0), p.InFlight(1))
	}

	// Ten endpoints, one idle, nine busy: the idle one wins whenever it is
	// one of the two choices, 2/10 of the picks, against 1/10 if random.
	g = mustGroup(t, eps(10), Config{Policy: LeastRequest})
	p = g.NewPicker(4)
	for i := 1; i < 10; i++ {
		p.inflight[i] = 10
	}
	idle := 0
	const picks = 20000
	for range picks {
		idx := mustPick(t, p, nil, nil)
		if idx == 0 {
			idle++
		}
		p.Done(idx)
	}
	if share := float64(idle) / picks; share < 0.18 || share > 0.22 {
		t.Errorf("idle endpoint share %.3f, want about 0.2", share)
	}

	// Scripted: a busy endpoint is never chosen over a less busy one.
	p = g.NewPicker(5)
	for i := range 10 {
		p.inflight[i] = uint32(i)
	}
	for range 1000 {
		idx := mustPick(t, p, nil, nil)
		if idx == 9 {
			t.Fatal("picked the busiest endpoint")
		}
		p.Done(idx)
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	g := mustGroup(t, weighted(1, 3), Config{Policy: LeastRequest})
	p := g.NewPicker(0)
	for range 400 { // never Done: in-flight counts follow the weights
		mustPick(t, p, nil, nil)
	}
	if a, b := p.InFlight(0), p.InFlight(1); a < 95 || a > 105 || b < 295 || b > 305 {
		t.Errorf("in flight %d/%d, want about 100/300", a, b)
	}
}

func TestRandomDistribution(t *testing.T) {
	for _, ws := range [][]uint32{{1, 1, 1, 1}, {1, 2, 3, 4}} {
		g := mustGroup(t, weighted(ws...), Config{Policy: Random})
		p := g.NewPicker(9)
		counts := make([]int, len(ws))
		const picks = 100000
		for range picks {
			counts[mustPick(t, p, nil, nil)]++
		}
		var total uint32
		for _, w := range ws {
			total += w
		}
		for i, w := range ws {
			want := picks * float64(w) / float64(total)
			if math.Abs(float64(counts[i])-want) > 0.05*want {
				t.Errorf("weights %v: endpoint %d got %d, want about %.0f", ws, i, counts[i], want)
			}
		}
	}
}

func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("user-%d", i))
	}
	return out
}

var hashPolicies = []Config{
	{Policy: RingHash, MinRingSize: 4096},
	{Policy: Maglev},
}

// The same key maps to the same endpoint in independently built groups,
// whatever the order of the endpoints and the picker seed.
func TestConsistentHashAcrossGroups(t *testing.T) {
	for _, cfg := range hashPolicies {
		e := eps(20)
		shuffled := slices.Clone(e)
		rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		p1 := mustGroup(t, e, cfg).NewPicker(1)
		p2 := mustGroup(t, shuffled, cfg).NewPicker(99)
		for _, k := range keys(10000) {
			a := e[mustPick(t, p1, k, nil)].Addr
			b := shuffled[mustPick(t, p2, k, nil)].Addr
			if a != b {
				t.Fatalf("%v: key %s maps to %v and %v", cfg.Policy, k, a, b)
			}
		}
	}
}

// Removing one of N endpoints moves only about 1/N of the keys.
func TestConsistentHashRemoval(t *testing.T) {
	const n = 10
	for _, cfg := range hashPolicies {
		e := eps(n)
		removed := e[4].Addr
		fewer := slices.Delete(slices.Clone(e), 4, 5)
		p1 := mustGroup(t, e, cfg).NewPicker(0)
		p2 := mustGroup(t, fewer, cfg).NewPicker(0)
		ks := keys(10000)
		moved, movedOthers := 0, 0
		for _, k := range ks {
			a := e[mustPick(t, p1, k, nil)].Addr
			b := fewer[mustPick(t, p2, k, nil)].Addr
			if a != b {
				moved++
				if a != removed {
					movedOthers++
				}
			}
		}
		share := float64(moved) / float64(len(ks))
		t.Logf("%v: %.3f of keys moved (%d not from the removed endpoint)", cfg.Policy, share, movedOthers)
		if share > 1.5/n {
			t.Errorf("%v: %.3f of keys moved, want about %.2f", cfg.Policy, share, 1.0/n)
		}
		if float64(movedOthers) > 0.03*float64(len(ks)) {
			t.Errorf("%v: %d keys moved between surviving endpoints", cfg.Policy, movedOthers)
		}
	}
}

// Keys spread evenly: ±30% of the mean for the ring, ±5% for Maglev.
func TestConsistentHashDistribution(t *testing.T) {
	const n = 10
	tolerance := map[Policy]float64{RingHash: 0.30, Maglev: 0.05}
	for _, cfg := range hashPolicies {
		p := mustGroup(t, eps(n), cfg).NewPicker(0)
		counts := make([]int, n)
		ks := keys(100000)
		for _, k := range ks {
			counts[mustPick(t, p, k, nil)]++
		}
		mean := float64(len(ks)) / n
		worst := 0.0
		for _, c := range counts {
			worst = max(worst, math.Abs(float64(c)-mean)/mean)
		}
		t.Logf("%v: counts %v, worst deviation %.3f", cfg.Policy, counts, worst)
		if worst > tolerance[cfg.Policy] {
			t.Errorf("%v: worst deviation %.3f above %.2f", cfg.Policy, worst, tolerance[cfg.Policy])
		}
	}
}

// A double-weight endpoint receives about twice the keys.
func TestConsistentHashWeights(t *testing.T) {
	for _, cfg := range hashPolicies {
		p := mustGroup(t, weighted(1, 2, 1, 1), cfg).NewPicker(0)
		counts := make([]int, 4)
		for _, k := range keys(50000) {
			counts[mustPick(t, p, k, nil)]++
		}
		ratio := float64(counts[1]) / (float64(counts[0]+counts[2]+counts[3]) / 3)
		if ratio < 1.6 || ratio > 2.4 {
			t.Errorf("%v: counts %v, weight-2 ratio %.2f", cfg.Policy, counts, ratio)
		}
	}
}

// Keys of an unhealthy endpoint move elsewhere; other keys do not move.
func TestConsistentHashUnhealthy(t *testing.T) {
	for _, cfg := range hashPolicies {
		p := mustGroup(t, eps(10), cfg).NewPicker(0)
		bad := NewBitset(10)
		bad.Set(3)
		moved := map[int]int{}
		for _, k := range keys(5000) {
			a := mustPick(t, p, k, nil)
			b := mustPick(t, p, k, bad)
			if b == 3 {
				t.Fatalf("%v: picked unhealthy endpoint", cfg.Policy)
			}
			if a != 3 && a != b {
				t.Fatalf("%v: healthy endpoint's key moved from %d to %d", cfg.Policy, a, b)
			}
			if a == 3 {
				moved[b]++
				if c := mustPick(t, p, k, bad); c != b {
					t.Fatalf("%v: failover not deterministic", cfg.Policy)
				}
			}
		}
		if len(moved) < 3 {
			t.Errorf("%v: failover concentrated on %d endpoints: %v", cfg.Policy, len(moved), moved)
		}
	}
}

func TestHashEmptyKeyIsRandom(t *testing.T) {
	for _, cfg := range hashPolicies {
		p := mustGroup(t, eps(10), cfg).NewPicker(0)
		seen := map[int]bool{}
		for range 500 {
			seen[mustPick(t, p, nil, nil)] = true
		}
		if len(seen) != 10 {
			t.Errorf("%v: empty key reached %d endpoints", cfg.Policy, len(seen))
		}
	}
}

func TestRingSize(t *testing.T) {
	cases := []struct {
		weights            []uint32
		min, max, wantSize int
	}{
		{[]uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 1280}, // 10 × 128 ≥ 1024
		{[]uint32{1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 1152},    // 9 × 128: same scale
		{[]uint32{1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 1024},       // 8 × 128
		{[]uint32{1, 1, 1, 1, 1, 1, 1}, 0, 0, 1792},          // 7 × 256
		{[]uint32{3, 6, 3}, 0, 0, 1024},                      // gcd 3: units 1,2,1 × 256
		{[]uint32{1, 1, 1}, 100, 200, 192},                   // 3 × 64 ≥ 100
		{[]uint32{1, 1, 1}, 1000, 200, 0},                    // invalid bounds
		{[]uint32{1, 2, 3, 4}, 4, 20, 10},                    // units above min: scale 1
		{[]uint32{1, 2, 3, 4}, 4, 5, 1 + 1 + 1 + 2},          // units above max: scaled down
		{[]uint32{1, 1000, 1000, 1000}, 8, 8, 1 + 2 + 2 + 2}, // scaled down, at least one point
	}
	for _, c := range cases {
		g, err := NewGroup(weighted(c.weights...), Config{Policy: RingHash, MinRingSize: c.min, MaxRingSize: c.max})
		if c.wantSize == 0 {
			if err == nil {
				t.Errorf("%v [%d,%d]: no error", c.weights, c.min, c.max)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.weights, err)
		}
		if len(g.ringHash) != c.wantSize {
			t.Errorf("%v [%d,%d]: ring has %d points, want %d", c.weights, c.min, c.max, len(g.ringHash), c.wantSize)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		e    []Endpoint
		cfg  Config
	}{
		{"unknown policy", eps(2), Config{Policy: 42}},
		{"panic above 100", eps(2), Config{PanicThreshold: 101}},
		{"invalid address", []Endpoint{{Ready: true}}, Config{}},
		{"ring bounds", eps(2), Config{Policy: RingHash, MinRingSize: 10, MaxRingSize: 5}},
		{"negative ring", eps(2), Config{Policy: RingHash, MinRingSize: -1}},
		{"maglev not prime", eps(2), Config{Policy: Maglev, MaglevTableSize: 65536}},
		{"maglev too small", eps(20), Config{Policy: Maglev, MaglevTableSize: 13}},
	}
	for _, c := range cases {
		_, err := NewGroup(c.e, c.cfg)
		if err == nil {
			t.Errorf("%s: no error", c.name)
		} else if msg := err.Error(); msg[:10] != "balancer: " {
			t.Errorf("%s: error %q lacks the package prefix", c.name, msg)
		}
	}
}

func TestDoneAndInFlight(t *testing.T) {
	p := mustGroup(t, eps(3), Config{}).NewPicker(0)
	idx := mustPick(t, p, nil, nil)
	if p.InFlight(idx) != 1 {
		t.Fatalf("in flight %d after Pick", p.InFlight(idx))
	}
	p.Done(idx)
	p.Done(idx) // extra Done does not underflow
	p.Done(-1)  // out of range is ignored
	p.Done(99)
	if p.InFlight(idx) != 0 {
		t.Fatalf("in flight %d after Done", p.InFlight(idx))
	}
	if p.Group().Len() != 3 || p.Group().Endpoint(2).Addr != eps(3)[2].Addr || p.Group().Policy() != RoundRobin {
		t.Error("group accessors")
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, n := range []int{10, 1000} {
		e := eps(n)
		for i := range e {
			e[i].Weight = uint32(1 + i%5)
		}
		bad := NewBitset(n)
		for i := 0; i < n; i += 4 {
			bad.Set(i)
		}
		ks := keys(64)
		for _, pol := range allPolicies {
			p := mustGroup(t, e, Config{Policy: pol}).NewPicker(1)
			for _, unhealthy := range []Bitset{nil, bad} {
				i := 0
				allocs := testing.AllocsPerRun(1000, func() {
					idx, _ := p.Pick(ks[i%len(ks)], unhealthy)
					p.Done(idx)
					i++
				})
				if allocs != 0 {
					t.Errorf("%v, %d endpoints, unhealthy=%v: %v allocations per Pick", pol, n, unhealthy != nil, allocs)
				}
			}
		}
	}
	// The per-picker weighted round robin does not allocate either.
	g := mustGroup(t, weighted(50000, 10001, 10000), Config{Policy: WeightedRoundRobin})
	p := g.NewPicker(0)
	if a := testing.AllocsPerRun(1000, func() { p.Pick(nil, nil) }); a != 0 {
		t.Errorf("per-picker WRR: %v allocations", a)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, pol := range allPolicies {
		for _, n := range []int{10, 1000} {
			e := eps(n)
			for i := range e {
				e[i].Weight = uint32(1 + i%3)
			}
			g := mustGroup(b, e, Config{Policy: pol})
			ks := keys(1024)
			b.Run(fmt.Sprintf("%v/%d", pol, n), func(b *testing.B) {
				p := g.NewPicker(1)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					idx, _ := p.Pick(ks[i&1023], nil)
					p.Done(idx)
					i++
				}
			})
		}
	}
}

// BenchmarkPickUnhealthy measures the health filter with a quarter of the
// endpoints unhealthy.
func BenchmarkPickUnhealthy(b *testing.B) {
	for _, pol := range allPolicies {
		const n = 1000
		g := mustGroup(b, eps(n), Config{Policy: pol})
		bad := NewBitset(n)
		for i := 0; i < n; i += 4 {
			bad.Set(i)
		}
		ks := keys(1024)
		b.Run(fmt.Sprintf("%v/%d", pol, n), func(b *testing.B) {
			p := g.NewPicker(1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				idx, _ := p.Pick(ks[i&1023], bad)
				p.Done(idx)
				i++
			}
		})
	}
}

// TestConcurrentPickers shares one Group between four goroutines, each with its
// own Picker, as workers do. Every pick must be a healthy endpoint, each
// goroutine's sequence must equal the one a picker with the same seed gives
// when run alone (so pickers share no mutable state, and under -race, which
// make test-race runs, the Group is read without data races), and the counts
// over all picks must follow the policy: round robin spreads picks evenly,
// weighted round robin and random in proportion to the weights, least request
// (with no request left in flight) toward the heavier of two random draws.
func TestConcurrentPickers(t *testing.T) {
	const (
		workers = 4
		picks   = 20000
		bad     = 7
	)
	e := eps(50)
	for i := range e {
		e[i].Weight = uint32(1 + i%3)
	}
	unhealthy := NewBitset(len(e))
	unhealthy.Set(bad)
	keys := make([][]byte, picks)
	for i := range keys {
		keys[i] = []byte(strconv.Itoa(i))
	}
	run := func(g *Group, seed uint64) []int {
		p := g.NewPicker(seed)
		out := make([]int, picks)
		for i := range out {
			idx, ok := p.Pick(keys[i], unhealthy)
			if !ok {
				idx = -1
			} else {
				p.Done(idx)
			}
			out[i] = idx
		}
		return out
	}
	for _, pol := range allPolicies {
		g := mustGroup(t, e, Config{Policy: pol})
		want := make([][]int, workers)
		for w := range workers {
			want[w] = run(g, uint64(w))
		}
		got := make([][]int, workers)
		done := make(chan bool)
		for w := range workers {
			go func() {
				got[w] = run(g, uint64(w))
				done <- true
			}()
		}
		for range workers {
			<-done
		}
		counts := make([]int, len(e))
		for w := range workers {
			for i, idx := range got[w] {
				if idx < 0 || idx >= len(e) || idx == bad {
					t.Fatalf("%v: worker %d pick %d: endpoint %d, want a healthy one of %d", pol, w, i, idx, len(e))
				}
				if idx != want[w][i] {
					t.Fatalf("%v: worker %d pick %d: %d, but a picker with the same seed alone picks %d", pol, w, i, idx, want[w][i])
				}
				counts[idx]++
			}
		}
		share, tolerance := expectedShares(pol, e, bad)
		for idx, c := range counts {
			if idx == bad {
				continue
			}
			if c == 0 {
				t.Errorf("%v: endpoint %d never picked in %d picks", pol, idx, workers*picks)
			}
			if share == nil {
				continue
			}
			if exp := share[idx] * workers * picks; math.Abs(float64(c)-exp) > tolerance*exp {
				t.Errorf("%v: endpoint %d (weight %d) picked %d times, want %.0f ± %.0f%%", pol, idx, e[idx].Weight, c, exp, 100*tolerance)
			}
		}
	}
}

// expectedShares returns each endpoint's expected share of the picks under pol
// when endpoint bad is unhealthy and no request stays in flight, and the
// relative tolerance of a count; nil for the hash policies, whose shares
// depend on the keys.
func expectedShares(pol Policy, e []Endpoint, bad int) ([]float64, float64) {
	share := make([]float64, len(e))
	var healthy, total float64
	for i := range e {
		if i != bad {
			healthy++
			total += float64(e[i].Weight)
		}
	}
	for i := range e {
		if i == bad {
			continue
		}
		switch pol {
		case RoundRobin:
			share[i] = 1 / healthy
		case WeightedRoundRobin, Random:
			share[i] = float64(e[i].Weight) / total
		case LeastRequest:
			// Two distinct uniform draws a, b; b wins only when strictly
			// heavier. i wins as a against every b not heavier, as b against
			// every a strictly lighter.
			var wins float64
			for j := range e {
				if j == i || j == bad {
					continue
				}
				if e[j].Weight <= e[i].Weight {
					wins++
				}
				if e[j].Weight < e[i].Weight {
					wins++
				}
			}
			share[i] = wins / (healthy * (healthy - 1))
		default:
			return nil, 0
		}
	}
	switch pol {
	case RoundRobin, WeightedRoundRobin:
		return share, 0.02 // a schedule: each picker is off by at most a turn
	default:
		return share, 0.15 // random draws: 3.5 standard deviations of the smallest count
	}
}
