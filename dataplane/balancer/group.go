package balancer

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Endpoint is one upstream address with its Kubernetes EndpointSlice
// conditions.
type Endpoint struct {
	// Addr is the address and port to connect to.
	Addr netip.AddrPort
	// Weight is the relative share of traffic; 0 counts as 1.
	Weight uint32
	// Zone is the topology zone, kept for zone-aware routing.
	Zone string
	// Ready, Serving and Terminating are the EndpointSlice conditions.
	Ready, Serving, Terminating bool
}

// Policy is a load-balancing algorithm.
type Policy uint8

const (
	// RoundRobin cycles through the endpoints, ignoring weights.
	RoundRobin Policy = iota
	// WeightedRoundRobin is nginx's smooth weighted round robin.
	WeightedRoundRobin
	// LeastRequest picks the less loaded of two random endpoints.
	LeastRequest
	// Random picks a random endpoint in proportion to its weight.
	Random
	// RingHash is a ketama-style consistent hash ring.
	RingHash
	// Maglev is Google's Maglev consistent hashing.
	Maglev
)

// String returns the name of p.
func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "RoundRobin"
	case WeightedRoundRobin:
		return "WeightedRoundRobin"
	case LeastRequest:
		return "LeastRequest"
	case Random:
		return "Random"
	case RingHash:
		return "RingHash"
	case Maglev:
		return "Maglev"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// Defaults for the zero fields of [Config].
const (
	// DefaultPanicThreshold is the default panic threshold, in percent.
	DefaultPanicThreshold = 50
	// DefaultMinRingSize is the default minimum number of ring points.
	DefaultMinRingSize = 1024
	// DefaultMaxRingSize is the default maximum number of ring points.
	DefaultMaxRingSize = 1 << 23
	// DefaultMaglevTableSize is the default Maglev table size (a prime).
	DefaultMaglevTableSize = 65537
)

// maxRingLimit bounds MaxRingSize (16 bytes per point).
const maxRingLimit = 1 << 27

// maxSchedule bounds the precomputed weighted round-robin schedule, in
// entries, and maxScheduleWork the build work (entries × endpoints).
const (
	maxSchedule     = 1 << 16
	maxScheduleWork = 1 << 24
)

// Config selects and tunes the policy of a [Group]. Zero fields take their
// defaults.
type Config struct {
	// Policy is the algorithm; the zero value is RoundRobin.
	Policy Policy
	// PanicThreshold is the percentage of healthy eligible endpoints below
	// which health is ignored. 0 means DefaultPanicThreshold; a negative
	// value disables panic mode, so that Pick fails when no eligible
	// endpoint is healthy.
	PanicThreshold int
	// MinRingSize and MaxRingSize bound the number of RingHash points
	// (defaults DefaultMinRingSize and DefaultMaxRingSize). The ring is at
	// least MinRingSize points long unless that would exceed MaxRingSize,
	// and below twice MinRingSize unless the weights need more.
	MinRingSize, MaxRingSize int
	// MaglevTableSize is the Maglev table size; it must be a prime not
	// smaller than the number of endpoints (ideally 100 times larger).
	MaglevTableSize int
}

// Group is a compiled, immutable set of endpoints with their policy. It is
// safe for concurrent use; per-worker state lives in a [Picker].
type Group struct {
	endpoints []Endpoint
	policy    Policy
	panicPct  int  // -1 when panic mode is disabled
	fallback  bool // eligible endpoints are Serving&&Terminating ones

	// Eligible endpoints: positions index these slices.
	eligible []int32  // endpoint index per position
	weights  []uint32 // weight per position, at least 1
	mask     Bitset   // eligible endpoint indexes
	uniform  bool     // all weights equal

	sched []int32  // WeightedRoundRobin: precomputed positions, or nil
	cum   []uint64 // Random: cumulative weights per position
	total uint64   // sum of weights

	ringHash  []uint64 // RingHash: sorted point hashes
	ringOwner []int32  // RingHash: position owning each point

	table []int32 // Maglev: position per slot
}

// NewGroup compiles endpoints with cfg. The endpoint slice is copied; the
// indexes returned by [Picker.Pick] index it.
func NewGroup(endpoints []Endpoint, cfg Config) (*Group, error) {
	g := &Group{
		endpoints: slices.Clone(endpoints),
		policy:    cfg.Policy,
		panicPct:  cfg.PanicThreshold,
	}
	switch {
	case cfg.Policy > Maglev:
		return nil, fmt.Errorf("balancer: unknown policy %d", cfg.Policy)
	case cfg.PanicThreshold > 100:
		return nil, fmt.Errorf("balancer: panic threshold %d%% is above 100%%", cfg.PanicThreshold)
	case cfg.PanicThreshold == 0:
		g.panicPct = DefaultPanicThreshold
	case cfg.PanicThreshold < 0:
		g.panicPct = -1
	}
	for i, ep := range endpoints {
		if !ep.Addr.IsValid() {
			return nil, fmt.Errorf("balancer: endpoint %d: invalid address", i)
		}
	}

	for i, ep := range endpoints {
		if ep.Ready {
			g.eligible = append(g.eligible, int32(i))
		}
	}
	if len(g.eligible) == 0 {
		for i, ep := range endpoints {
			if ep.Serving && ep.Terminating {
				g.eligible = append(g.eligible, int32(i))
			}
		}
		g.fallback = len(g.eligible) > 0
	}
	g.mask = NewBitset(len(endpoints))
	g.uniform = true
	for _, idx := range g.eligible {
		g.mask.Set(int(idx))
		w := max(endpoints[idx].Weight, 1)
		g.weights = append(g.weights, w)
		g.total += uint64(w)
		if w != g.weights[0] {
			g.uniform = false
		}
	}

	var err error
	switch cfg.Policy {
	case WeightedRoundRobin:
		g.buildSchedule()
	case Random:
		if !g.uniform {
			g.cum = make([]uint64, len(g.weights))
			var sum uint64
			for i, w := range g.weights {
				sum += uint64(w)
				g.cum[i] = sum
			}
		}
	case RingHash:
		err = g.buildRing(cfg.MinRingSize, cfg.MaxRingSize)
	case Maglev:
		err = g.buildMaglev(cfg.MaglevTableSize)
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Len returns the number of endpoints the group was built from.
func (g *Group) Len() int { return len(g.endpoints) }

// Endpoint returns endpoint i as given to NewGroup.
func (g *Group) Endpoint(i int) Endpoint { return g.endpoints[i] }

// Policy returns the group's policy.
func (g *Group) Policy() Policy { return g.policy }

// NumEligible returns the number of endpoints Pick chooses from.
func (g *Group) NumEligible() int { return len(g.eligible) }

// TerminatingFallback reports whether no endpoint is Ready and the group
// therefore uses the Serving and Terminating endpoints.
func (g *Group) TerminatingFallback() bool { return g.fallback }

// buildSchedule precomputes one period of the smooth weighted round-robin
// sequence, when it is short enough. Starting from all-zero counters, after
// sum(weights) picks every endpoint has been chosen weight times and the
// counters are all zero again, so the sequence repeats with that period.
func (g *Group) buildSchedule() {
	n := len(g.weights)
	if n == 0 {
		return
	}
	d := uint32(0)
	for _, w := range g.weights {
		d = gcd(d, w)
	}
	period := g.total / uint64(d)
	if period > maxSchedule || period*uint64(n) > maxScheduleWork {
		return // pickers run the algorithm themselves
	}
	w := make([]int64, n)
	for i := range w {
		w[i] = int64(g.weights[i] / d)
	}
	cur := make([]int64, n)
	g.sched = make([]int32, period)
	for s := range g.sched {
		g.sched[s] = int32(smoothStep(cur, w, int64(period), nil, nil))
	}
}

// smoothStep runs one step of smooth weighted round robin over the
// counters cur: add each weight, choose the largest counter (the first on
// ties) and subtract the total from it. Positions whose endpoint is in
// skip are left out. It returns the chosen position, or -1.
func smoothStep(cur, w []int64, total int64, skip Bitset, eligible []int32) int {
	best := -1
	if skip != nil {
		total = 0
	}
	for i := range cur {
		if skip != nil {
			if skip.Has(int(eligible[i])) {
				continue
			}
			total += w[i]
		}
		cur[i] += w[i]
		if best < 0 || cur[i] > cur[best] {
			best = i
		}
	}
	if best >= 0 {
		cur[best] -= total
	}
	return best
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// byAddress returns the positions ordered by endpoint address (ties by
// position), the order in which hash structures are built so that they do
// not depend on the order of the input.
func (g *Group) byAddress() ([]int, []string) {
	ids := make([]string, len(g.eligible))
	order := make([]int, len(g.eligible))
	for i, idx := range g.eligible {
		ids[i] = g.endpoints[idx].Addr.String()
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ids[a], ids[b]) })
	return order, ids
}

// buildRing builds the hash ring. Weights are first divided by their
// greatest common divisor; each endpoint then gets weight × scale points,
// scale being the smallest power of two that makes the ring at least
// minSize points long. Because the scale only changes when the total weight
// crosses a power-of-two boundary, adding or removing an endpoint usually
// leaves every other endpoint's points in place and remaps only the keys
// of the endpoint concerned. When even scale 1 would exceed maxSize, points
// are scaled down proportionally (at least one per endpoint). Point j of an
// endpoint sits at Hash("ip:port_j").
func (g *Group) buildRing(minSize, maxSize int) error {
	if minSize == 0 {
		minSize = DefaultMinRingSize
	}
	if maxSize == 0 {
		maxSize = DefaultMaxRingSize
	}
	if minSize < 0 || maxSize < 1 || minSize > maxSize || maxSize > maxRingLimit {
		return fmt.Errorf("balancer: invalid ring size bounds [%d, %d]", minSize, maxSize)
	}
	n := len(g.eligible)
	if n == 0 {
		return nil
	}
	d := uint32(0)
	for _, w := range g.weights {
		d = gcd(d, w)
	}
	units := g.total / uint64(d) // ring points at scale 1
	scale := uint64(1)
	for units*scale < uint64(minSize) && units*scale*2 <= uint64(maxSize) {
		scale *= 2
	}
	points := func(w uint32) int {
		if units > uint64(maxSize) {
			return max(1, int(uint64(w/d)*uint64(maxSize)/units))
		}
		return int(uint64(w/d) * scale)
	}
	type point struct {
		hash uint64
		pos  int32
	}
	order, ids := g.byAddress()
	var ring []point
	for _, pos := range order {
		base := ids[pos] + "_"
		for j := range points(g.weights[pos]) {
			ring = append(ring, point{hashString(base+strconv.Itoa(j), 0), int32(pos)})
		}
	}
	// Stable: equal hashes keep address order, independent of input order.
	slices.SortStableFunc(ring, func(a, b point) int { return cmp.Compare(a.hash, b.hash) })
	g.ringHash = make([]uint64, len(ring))
	g.ringOwner = make([]int32, len(ring))
	for i, p := range ring {
		g.ringHash[i], g.ringOwner[i] = p.hash, p.pos
	}
	return nil
}

// Seeds of the two Maglev permutation hashes.
const (
	maglevOffsetSeed = 0x6d61676c65762d6f // "maglev-o"
	maglevSkipSeed   = 0x6d61676c65762d73 // "maglev-s"
)

// buildMaglev fills the Maglev table. Endpoint i, visited in address
// order, walks its own permutation of the slots, (offset + k×skip) mod M,
// and claims the next free one on its turn. To weight the table, every
// round each endpoint earns its weight in credit and takes a turn only
// when its credit reaches the largest weight, so an endpoint with half the
// largest weight claims a slot every other round.
func (g *Group) buildMaglev(size int) error {
	if size == 0 {
		size = DefaultMaglevTableSize
	}
	if size < 2 || !isPrime(size) {
		return fmt.Errorf("balancer: maglev table size %d is not a prime", size)
	}
	n := len(g.eligible)
	if size < n {
		return fmt.Errorf("balancer: maglev table size %d is smaller than the %d endpoints", size, n)
	}
	if n == 0 {
		return nil
	}
	m := uint64(size)
	order, ids := g.byAddress()
	type perm struct {
		pos          int32
		next, skip   uint64
		credit, want uint64
	}
	var maxW uint64
	for _, w := range g.weights {
		maxW = max(maxW, uint64(w))
	}
	perms := make([]perm, n)
	for i, pos := range order {
		perms[i] = perm{
			pos:  int32(pos),
			next: hashString(ids[pos], maglevOffsetSeed) % m,
			skip: hashString(ids[pos], maglevSkipSeed)%(m-1) + 1,
			want: uint64(g.weights[pos]),
		}
	}
	g.table = make([]int32, size)
	for i := range g.table {
		g.table[i] = -1
	}
	for filled := 0; filled < size; {
		for i := range perms {
			p := &perms[i]
			p.credit += p.want
			if p.credit < maxW {
				continue
			}
			p.credit -= maxW
			for g.table[p.next] >= 0 {
				p.next = (p.next + p.skip) % m
			}
			g.table[p.next] = p.pos
			p.next = (p.next + p.skip) % m
			if filled++; filled == size {
				break
			}
		}
	}
	return nil
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
