package balancer_test

import (
	"fmt"
	"net/netip"

	"github.com/flaxlb/flax/dataplane/balancer"
)

// shard sends each request to the endpoint its X-Shard header names
// ("0", "1", ...; modulo the number of eligible endpoints), and requests
// without one round robin. An unusable endpoint passes its shard on to the
// next usable one, so health checks and retries keep working.
type shard struct{}

// AppendKey makes the shard number the request's pick key.
func (shard) AppendKey(dst []byte, r balancer.Request) []byte {
	v, _ := r.Header("x-shard")
	return append(dst, v...)
}

func (shard) NewSelector(g *balancer.Group, _ uint64) balancer.Selector {
	return &shardSelector{g: g}
}

type shardSelector struct {
	g    *balancer.Group
	next int
}

func (s *shardSelector) Pick(key []byte, unhealthy balancer.Bitset) (int, bool) {
	skip, usable := s.g.Usable(unhealthy)
	n := s.g.NumEligible()
	if usable == 0 {
		return -1, false
	}
	pos := s.next
	if num, ok := parseShard(key); ok {
		pos = num % n
	} else {
		s.next = (s.next + 1) % n
	}
	for range n {
		if idx := s.g.EligibleEndpoint(pos); !skip.Has(idx) {
			return idx, true
		}
		pos = (pos + 1) % n
	}
	return -1, false
}

func (s *shardSelector) Done(int) {}

func parseShard(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' || n > 1<<20 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// Register a header-sharded algorithm; a snapshot's backend group selects
// it with loadBalancing: {algorithm: shard}. Here it is driven by hand.
func Example_customAlgorithm() {
	balancer.MustRegister("shard", shard{})

	var eps []balancer.Endpoint
	for _, a := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		eps = append(eps, balancer.Endpoint{Addr: netip.MustParseAddrPort(a), Ready: true})
	}
	g, _ := balancer.NewGroup(eps, balancer.Config{})
	alg, _ := balancer.Lookup("shard")
	sel := alg.NewSelector(g, 0)

	down := balancer.NewBitset(g.Len())
	down.Set(1) // 10.0.0.2 fails its health checks
	for _, key := range []string{"0", "1", "2", "5"} {
		idx, _ := sel.Pick([]byte(key), down)
		fmt.Println("shard", key, "->", g.Endpoint(idx).Addr)
		sel.Done(idx)
	}
	// Output:
	// shard 0 -> 10.0.0.1:80
	// shard 1 -> 10.0.0.3:80
	// shard 2 -> 10.0.0.3:80
	// shard 5 -> 10.0.0.3:80
}
