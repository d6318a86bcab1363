package balancer

// randomTries is how many random draws look for a healthy endpoint before
// falling back to a scan.
const randomTries = 8

// Picker is the per-worker state for picking from one [Group]. It must be
// used by one goroutine at a time; create one per worker with
// [Group.NewPicker].
type Picker struct {
	g        *Group
	cursor   int      // RoundRobin and precomputed WeightedRoundRobin
	rand     rng      // LeastRequest, Random, hash policies without key
	inflight []uint32 // per endpoint index
	cur      []int64  // WeightedRoundRobin counters when not precomputed
	wrrW     []int64  // WeightedRoundRobin weights when not precomputed
}

// NewPicker returns a picker for g. The seed varies the starting point of
// the round-robin policies and the random sequence, so that workers do not
// move in lockstep; seed 0 starts at the beginning of the canonical
// sequence. Hash policies do not depend on the seed.
func (g *Group) NewPicker(seed uint64) *Picker {
	p := &Picker{
		g:        g,
		rand:     rng{state: seed ^ 0x5eed5eed5eed5eed},
		inflight: make([]uint32, len(g.endpoints)),
	}
	if n := len(g.eligible); n > 0 {
		p.cursor = int(seed % uint64(n))
	}
	if g.policy == WeightedRoundRobin {
		if g.sched != nil {
			p.cursor = int(seed % uint64(len(g.sched)))
		} else if n := len(g.eligible); n > 0 {
			p.cur = make([]int64, n)
			p.wrrW = make([]int64, n)
			for i, w := range g.weights {
				p.wrrW[i] = int64(w)
			}
		}
	}
	return p
}

// Group returns the group p picks from.
func (p *Picker) Group() *Group { return p.g }

// Pick chooses an endpoint and returns its index in the slice given to
// NewGroup. key is the hash key for RingHash and Maglev (ignored by the
// other policies; empty means pick at random). unhealthy, which may be nil,
// holds the indexes of endpoints to avoid unless panic mode applies. It
// returns ok=false when the group has no eligible endpoint, or when panic
// mode is disabled and no eligible endpoint is healthy.
//
// Every successful Pick counts one in-flight request on the endpoint; call
// [Picker.Done] when the request finishes.
func (p *Picker) Pick(key []byte, unhealthy Bitset) (idx int, ok bool) {
	g := p.g
	n := len(g.eligible)
	if n == 0 {
		return -1, false
	}
	skip, healthy := g.healthFilter(unhealthy)
	if healthy == 0 {
		return -1, false
	}
	var pos int
	switch g.policy {
	case RoundRobin:
		pos = p.pickRoundRobin(skip)
	case WeightedRoundRobin:
		pos = p.pickWeighted(skip)
	case LeastRequest:
		pos = p.pickLeastRequest(skip, healthy)
	case Random:
		pos = p.pickRandom(skip)
	case RingHash:
		if len(key) == 0 {
			pos = p.pickRandom(skip)
		} else {
			pos = p.pickRing(Hash(key), skip)
		}
	case Maglev:
		if len(key) == 0 {
			pos = p.pickRandom(skip)
		} else {
			pos = p.pickMaglev(Hash(key), skip)
		}
	}
	idx = int(g.eligible[pos])
	p.inflight[idx]++
	return idx, true
}

// Done records the end of a request picked with Pick.
func (p *Picker) Done(idx int) {
	if uint(idx) < uint(len(p.inflight)) && p.inflight[idx] > 0 {
		p.inflight[idx]--
	}
}

// InFlight returns the number of requests picked by p for endpoint idx
// and not yet done.
func (p *Picker) InFlight(idx int) uint32 { return p.inflight[idx] }

// healthFilter returns the set of endpoints to skip (nil: none) and the
// number of eligible endpoints Pick may choose from (0: none).
func (g *Group) healthFilter(unhealthy Bitset) (Bitset, int) {
	n := len(g.eligible)
	if unhealthy == nil {
		return nil, n
	}
	bad := unhealthy.countAnd(g.mask)
	if bad == 0 {
		return nil, n
	}
	healthy := n - bad
	if g.panicPct < 0 {
		if healthy == 0 {
			return nil, 0
		}
		return unhealthy, healthy
	}
	if healthy == 0 || healthy*100 < g.panicPct*n {
		return nil, n // panic mode: use every eligible endpoint
	}
	return unhealthy, healthy
}

// ok reports whether position pos may be picked.
func (g *Group) ok(pos int, skip Bitset) bool {
	return skip == nil || !skip.Has(int(g.eligible[pos]))
}

func (p *Picker) pickRoundRobin(skip Bitset) int {
	g := p.g
	n := len(g.eligible)
	for range n {
		pos := p.cursor
		if p.cursor++; p.cursor == n {
			p.cursor = 0
		}
		if g.ok(pos, skip) {
			return pos
		}
	}
	return p.scan(0, skip) // unreachable while some endpoint is healthy
}

func (p *Picker) pickWeighted(skip Bitset) int {
	g := p.g
	if g.sched == nil {
		return smoothStep(p.cur, p.wrrW, int64(g.total), skip, g.eligible)
	}
	// Skipping unhealthy entries of the precomputed schedule hands their
	// turns to the next healthy entries, which keeps the healthy
	// endpoints' shares proportional to their weights.
	n := len(g.sched)
	for range n {
		pos := int(g.sched[p.cursor])
		if p.cursor++; p.cursor == n {
			p.cursor = 0
		}
		if g.ok(pos, skip) {
			return pos
		}
	}
	return p.scan(0, skip)
}

// pickLeastRequest is power of two choices: two distinct random healthy
// endpoints, the one with the lower (in-flight+1)/weight wins. A tie goes
// to the first choice, which is itself uniformly random: breaking ties by
// endpoint index instead would starve the highest index whenever the
// endpoints are equally loaded (with n idle endpoints, index i would get
// 2(n-1-i)/(n(n-1)) of the picks).
func (p *Picker) pickLeastRequest(skip Bitset, healthy int) int {
	g := p.g
	a := p.randomHealthy(skip, -1)
	if healthy < 2 {
		return a
	}
	b := p.randomHealthy(skip, a)
	ia, ib := g.eligible[a], g.eligible[b]
	la := uint64(p.inflight[ia]+1) * uint64(g.weights[b])
	lb := uint64(p.inflight[ib]+1) * uint64(g.weights[a])
	if lb < la {
		return b
	}
	return a
}

// randomHealthy returns a uniformly random position that is healthy and
// not except (-1: no exception). Some such position must exist.
func (p *Picker) randomHealthy(skip Bitset, except int) int {
	n := len(p.g.eligible)
	m := n
	if except >= 0 {
		m--
	}
	for range randomTries {
		pos := p.rand.intn(m)
		if except >= 0 && pos >= except {
			pos++
		}
		if p.g.ok(pos, skip) {
			return pos
		}
	}
	start := p.rand.intn(n)
	for i := range n {
		pos := start + i
		if pos >= n {
			pos -= n
		}
		if pos != except && p.g.ok(pos, skip) {
			return pos
		}
	}
	return start
}

// pickRandom returns a random healthy position, weighted by weight.
func (p *Picker) pickRandom(skip Bitset) int {
	g := p.g
	if g.cum == nil {
		return p.randomHealthy(skip, -1)
	}
	for range randomTries {
		r := p.rand.uint64n(g.total)
		// First position whose cumulative weight exceeds r.
		lo, hi := 0, len(g.cum)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if g.cum[mid] <= r {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if g.ok(lo, skip) {
			return lo
		}
	}
	return p.scan(p.rand.intn(len(g.eligible)), skip)
}

// pickRing returns the owner of the first ring point at or after h
// (wrapping), moving on along the ring past unhealthy owners.
func (p *Picker) pickRing(h uint64, skip Bitset) int {
	g := p.g
	lo, hi := 0, len(g.ringHash)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if g.ringHash[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	n := len(g.ringHash)
	for range n {
		if lo == n {
			lo = 0
		}
		if pos := int(g.ringOwner[lo]); g.ok(pos, skip) {
			return pos
		}
		lo++
	}
	return p.scan(0, skip)
}

// pickMaglev returns the owner of slot h mod M, moving on to the following
// slots past unhealthy owners.
func (p *Picker) pickMaglev(h uint64, skip Bitset) int {
	g := p.g
	m := len(g.table)
	slot := int(h % uint64(m))
	for range m {
		if pos := int(g.table[slot]); g.ok(pos, skip) {
			return pos
		}
		if slot++; slot == m {
			slot = 0
		}
	}
	return p.scan(0, skip)
}

// scan returns the first healthy position from start on, wrapping.
func (p *Picker) scan(start int, skip Bitset) int {
	n := len(p.g.eligible)
	for i := range n {
		pos := start + i
		if pos >= n {
			pos -= n
		}
		if p.g.ok(pos, skip) {
			return pos
		}
	}
	return start
}
