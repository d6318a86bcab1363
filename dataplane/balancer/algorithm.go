package balancer

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// Selector is one worker's picking state for one [Group]: the interface
// every selection policy implements, the built-in ones ([*Picker]) and those
// a program registers. A Selector is used by one goroutine at a time and
// must neither lock nor allocate in Pick and Done.
type Selector interface {
	// Pick chooses an endpoint and returns its index in the group's
	// endpoint slice ([Group.Endpoint]). key is the request's pick key
	// (from the group's hash-on setting or the algorithm's [Keyer]; may be
	// empty). unhealthy, which may be nil, holds the indexes of endpoints
	// the caller wants avoided: failing health checks, ejected by outlier
	// detection, or failed earlier attempts of the same request.
	// [Group.Usable] turns it into the set to skip with the group's panic
	// threshold applied. ok=false means no endpoint can be used.
	Pick(key []byte, unhealthy Bitset) (idx int, ok bool)
	// Done reports the end of a request picked with Pick.
	Done(idx int)
}

// Algorithm is a selection policy: it makes a [Selector] per worker and
// group. Algorithms are registered by name ([Register]) and chosen by name
// in a snapshot's load-balancing settings; the built-in policies are
// Algorithms too ([Policy.NewSelector]).
type Algorithm interface {
	// NewSelector returns a selector over g for one worker. seed differs
	// per worker and group, so that workers need not move in lockstep. It
	// is called again whenever g's endpoints are replaced.
	NewSelector(g *Group, seed uint64) Selector
}

// Request is what an algorithm may read of the request it picks for. The
// returned bytes alias the request head: they are valid only during the
// call and must not be kept or modified.
type Request interface {
	Method() []byte
	Host() []byte
	Path() []byte
	Query() []byte
	// Header returns the first field with the given name (ASCII
	// case-insensitive).
	Header(name string) ([]byte, bool)
	// Client is the client address (after trusted forwarding hops).
	Client() netip.Addr
}

// Keyer is implemented by algorithms that compute the pick key from the
// request themselves, instead of the group's hash-on setting. AppendKey runs
// once per request, while its head is available, and appends the key to dst
// (which it may reuse: appending within dst's capacity does not allocate);
// every attempt of the request, retries included, is picked with that key.
type Keyer interface {
	AppendKey(dst []byte, r Request) []byte
}

// NewSelector implements [Algorithm] for the built-in policies: it returns
// g's own [Picker], whose policy is the one g was built with
// ([Config].Policy).
func (p Policy) NewSelector(g *Group, seed uint64) Selector { return g.NewPicker(seed) }

// Names of the built-in algorithms in the registry.
var builtinNames = map[string]Policy{
	"round_robin":          RoundRobin,
	"weighted_round_robin": WeightedRoundRobin,
	"least_request":        LeastRequest,
	"random":               Random,
	"ring_hash":            RingHash,
	"maglev":               Maglev,
}

var registry = struct {
	sync.RWMutex
	m map[string]Algorithm
}{m: map[string]Algorithm{}}

func init() {
	for name, p := range builtinNames {
		registry.m[name] = p
	}
}

// Register makes an algorithm available under name, for snapshots that name
// it in their load-balancing settings (loadBalancing.algorithm). It fails
// when the name is empty or taken (the built-in policies hold
// "round_robin", "weighted_round_robin", "least_request", "random",
// "ring_hash" and "maglev"). Register before applying a config that uses
// the name; configs compiled earlier keep the algorithm they resolved.
func Register(name string, a Algorithm) error {
	if name == "" || a == nil {
		return fmt.Errorf("balancer: register: empty name or nil algorithm")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		return fmt.Errorf("balancer: algorithm %q is already registered", name)
	}
	registry.m[name] = a
	return nil
}

// MustRegister is Register that panics on error, for init functions.
func MustRegister(name string, a Algorithm) {
	if err := Register(name, a); err != nil {
		panic(err)
	}
}

// Lookup returns the algorithm registered under name.
func Lookup(name string) (Algorithm, bool) {
	registry.RLock()
	defer registry.RUnlock()
	a, ok := registry.m[name]
	return a, ok
}

// Registered returns the names of the registered algorithms, sorted.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Usable applies g's panic threshold to the endpoints a caller wants
// avoided, for selectors of registered algorithms: it returns the set to
// skip (nil: none) and the number of eligible endpoints left to pick from
// (0: none, Pick should fail). When too few eligible endpoints are healthy
// the set is dropped and every eligible endpoint is usable, as for the
// built-in policies.
func (g *Group) Usable(unhealthy Bitset) (skip Bitset, n int) { return g.healthFilter(unhealthy) }

// EligibleEndpoint returns the endpoint index of the pos-th eligible
// endpoint, 0 <= pos < NumEligible(), in the order the endpoints were given
// to NewGroup.
func (g *Group) EligibleEndpoint(pos int) int { return int(g.eligible[pos]) }
