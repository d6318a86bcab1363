package compiled

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

var anyClient = netip.MustParseAddr("192.0.2.1")

// takeN takes n tokens at now and returns how many were granted.
func takeN(l *Limiter, client netip.Addr, now int64, n int) int {
	ok := 0
	for range n {
		if granted, _ := l.Take(client, now); granted {
			ok++
		}
	}
	return ok
}

func TestBucketBurstAndRefill(t *testing.T) {
	// 2 tokens per second (one every 500ms), capacity 5.
	l := NewLimiter(2, time.Second, 5, false)
	start := int64(time.Hour) // any clock time
	if got := takeN(l, anyClient, start, 8); got != 5 {
		t.Fatalf("a full bucket granted %d of 8, want its burst of 5", got)
	}
	ok, wait := l.Take(anyClient, start)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: ok %v, wait %v; want false, 500ms", ok, wait)
	}
	if ok, wait := l.Take(anyClient, start+int64(499*time.Millisecond)); ok || wait != time.Millisecond {
		t.Fatalf("1ms before a token is back: ok %v, wait %v", ok, wait)
	}
	if got := takeN(l, anyClient, start+int64(500*time.Millisecond), 3); got != 1 {
		t.Fatalf("one token back after 500ms, granted %d", got)
	}
	// 2.5s later (3s after start) five tokens are back: the bucket is full,
	// and stays capped at the burst however long it waits.
	if got := takeN(l, anyClient, start+int64(3*time.Second), 8); got != 5 {
		t.Fatalf("after 2.5s granted %d, want 5", got)
	}
	if got := takeN(l, anyClient, start+int64(time.Hour), 8); got != 5 {
		t.Fatalf("after an hour granted %d, want the burst of 5", got)
	}
	// A steady stream at the rate is served entirely.
	now := start + int64(2*time.Hour)
	takeN(l, anyClient, now, 5)
	for i := range 20 {
		now += int64(500 * time.Millisecond)
		if ok, _ := l.Take(anyClient, now); !ok {
			t.Fatalf("request %d at the configured rate denied", i)
		}
	}
}

// Burst zero means Requests; the emission interval is rounded up, so the rate is
// never exceeded.
func TestBucketRounding(t *testing.T) {
	l := NewLimiter(3, time.Second, 3, false)
	if got := takeN(l, anyClient, 0, 5); got != 3 {
		t.Fatalf("granted %d, want 3", got)
	}
	// 333333334ns per token: after exactly 1s only 2 are back, 2ns later 3.
	if got := takeN(l, anyClient, int64(time.Second), 5); got != 2 {
		t.Fatalf("after 1s granted %d, want 2", got)
	}
	l = NewLimiter(3, time.Second, 3, false)
	takeN(l, anyClient, 0, 3)
	if got := takeN(l, anyClient, int64(time.Second)+2, 5); got != 3 {
		t.Fatalf("after 1s+2ns granted %d, want 3", got)
	}
	// Faster than a token per nanosecond: one per nanosecond.
	l = NewLimiter(4_000_000_000, time.Second, 1, false)
	if l.emission != 1 {
		t.Fatalf("emission %d, want 1", l.emission)
	}
	// A refill time beyond the cap holds what comes back within it.
	l = NewLimiter(1, 24*time.Hour, 4_000_000_000, false)
	if l.tolerance != maxTolerance {
		t.Fatalf("tolerance %d, want the cap", l.tolerance)
	}
}

// Workers racing on one bucket never grant more than it holds.
func TestBucketConcurrent(t *testing.T) {
	for _, perClient := range []bool{false, true} {
		l := NewLimiter(1, time.Hour, 1000, perClient)
		now := int64(time.Minute)
		// The client's bucket exists before the race (see clientTable.take).
		if ok, _ := l.Take(anyClient, now); !ok {
			t.Fatal("first request denied")
		}
		var granted atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				granted.Add(int64(takeN(l, anyClient, now, 500)))
			}()
		}
		wg.Wait()
		if g := granted.Load(); g != 999 {
			t.Fatalf("per client %v: %d granted of 4000, want 999", perClient, g)
		}
	}
}

func TestPerClientIsolationAndRefill(t *testing.T) {
	l := NewLimiter(1, time.Second, 2, true)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	now := int64(time.Hour)
	if got := takeN(l, a, now, 5); got != 2 {
		t.Fatalf("client a granted %d, want 2", got)
	}
	if ok, _ := l.Take(mapped, now); ok {
		t.Fatal("the IPv4-mapped form of a has a bucket of its own")
	}
	if got := takeN(l, b, now, 5); got != 2 {
		t.Fatalf("client b granted %d after a used its bucket, want 2", got)
	}
	ok, wait := l.Take(a, now)
	if ok || wait != time.Second {
		t.Fatalf("client a: ok %v, wait %v; want false, 1s", ok, wait)
	}
	if got := takeN(l, a, now+int64(time.Second), 5); got != 1 {
		t.Fatalf("a second later a was granted %d, want 1", got)
	}
	if got := takeN(l, b, now+int64(time.Minute), 5); got != 2 {
		t.Fatalf("a minute later b was granted %d, want its burst of 2", got)
	}
	if l.full.Load() != 0 {
		t.Fatal("the overflow bucket was used with an empty table")
	}
}

// sameSet returns n addresses of t that hash to one set, and two addresses that
// share a set and a tag.
func sameSet(t *testing.T, tb *clientTable, n int) (set []netip.Addr, twins [2]netip.Addr) {
	t.Helper()
	bySet := map[uint64][]netip.Addr{}
	byKey := map[uint64]netip.Addr{}
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	for i := uint32(0); (len(set) < n || !twins[0].IsValid()) && i < 1<<24; i++ {
		b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		a := netip.AddrFrom16(b)
		h := tb.hash(a)
		s := h % clientSets
		if len(set) < n {
			bySet[s] = append(bySet[s], a)
			if len(bySet[s]) == n {
				set = bySet[s]
			}
		}
		key := s | (h>>timeBits)<<32
		if other, ok := byKey[key]; ok && !twins[0].IsValid() && h>>timeBits != 0 {
			twins = [2]netip.Addr{other, a}
		}
		byKey[key] = a
	}
	if len(set) < n || !twins[0].IsValid() {
		t.Fatal("no addresses found")
	}
	return set, twins
}

// A set full of live buckets sends newcomers to the overflow bucket; full-again
// buckets are reused; addresses whose tags collide share a bucket.
func TestPerClientTableBounds(t *testing.T) {
	l := NewLimiter(1, time.Minute, 1, true)
	addrs, _ := sameSet(t, l.clients, clientWays+3)
	now := int64(time.Hour)
	for i, a := range addrs[:clientWays] {
		if ok, _ := l.Take(a, now); !ok {
			t.Fatalf("client %d of the set denied its first request", i)
		}
	}
	// The set is full: the next clients share the overflow bucket (one token).
	extra := addrs[clientWays:]
	if ok, _ := l.Take(extra[0], now); !ok {
		t.Fatal("first client beyond the set denied: the overflow bucket is full")
	}
	for _, a := range extra {
		if ok, _ := l.Take(a, now); ok {
			t.Fatalf("client %v beyond the set granted a second token", a)
		}
	}
	// Every client of the set is still limited on its own bucket.
	for i, a := range addrs[:clientWays] {
		if ok, _ := l.Take(a, now); ok {
			t.Fatalf("client %d granted a second token", i)
		}
	}
	// A minute later the buckets are full again: their words are free for
	// newcomers, and nothing is lost for the clients that held them.
	later := now + int64(time.Minute)
	for i, a := range extra {
		if ok, _ := l.Take(a, later); !ok {
			t.Fatalf("newcomer %d denied once the set's buckets were full again", i)
		}
	}
	for i, a := range addrs[:clientWays-len(extra)] {
		if ok, _ := l.Take(a, later); !ok {
			t.Fatalf("client %d denied a minute later", i)
		}
	}
	// Memory never grows: the table has its fixed number of words.
	if len(l.clients.slots) != clientSlots {
		t.Fatalf("%d words", len(l.clients.slots))
	}

	// Colliding tags share a bucket: strict, never more than one client's rate.
	l = NewLimiter(1, time.Minute, 1, true)
	l.clients.seed0, l.clients.seed1 = 0, 0
	_, twins := sameSet(t, l.clients, 1)
	if ok, _ := l.Take(twins[0], now); !ok {
		t.Fatal("first twin denied")
	}
	if ok, _ := l.Take(twins[1], now); ok {
		t.Fatal("second twin granted: colliding tags must share a bucket")
	}
}

// Sets are cache lines: the table's words start on a 64-byte boundary.
func TestPerClientTableAligned(t *testing.T) {
	for range 10 {
		l := NewLimiter(1, time.Second, 1, true)
		if p := uintptrOf(&l.clients.slots[0]); p%cacheLine != 0 {
			t.Fatalf("table at %#x", p)
		}
	}
}

func compileRateLimits(t *testing.T, limits ...*dataplanev1.LocalRateLimit) (*Config, error) {
	t.Helper()
	vh := &dataplanev1.VirtualHost{Name: "v"}
	for i, l := range limits {
		vh.Routes = append(vh.Routes, &dataplanev1.Route{
			Name:           "r" + string(rune('0'+i)),
			Matches:        []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: "/" + string(rune('a'+i))}}},
			DirectResponse: &dataplanev1.DirectResponse{Status: 200},
			RateLimit:      l,
		})
	}
	return Compile(&dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{{
		Name: "l", Port: 80, Protocol: dataplanev1.Listener_HTTP, VirtualHosts: []*dataplanev1.VirtualHost{vh},
	}}}, metrics.NewRegistry(1))
}

func limit(bucket string, requests uint32, interval time.Duration, burst uint32) *dataplanev1.LocalRateLimit {
	return &dataplanev1.LocalRateLimit{Bucket: bucket, Requests: requests, Interval: durationpb.New(interval), Burst: burst}
}

func TestCompileRateLimits(t *testing.T) {
	c, err := compileRateLimits(t, limit("a", 10, time.Second, 0), limit("a", 10, time.Second, 10), limit("b", 1, time.Minute, 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.RateLimit("a"), c.RateLimit("b")
	if a == nil || b == nil || a == b || a.Burst != 10 || b.Burst != 3 || a.Limiter() == nil {
		t.Fatalf("rate limits a %+v, b %+v", a, b)
	}
	routes := c.Listeners[0].matched
	if routes[0].Route.RateLimit != a || routes[1].Route.RateLimit != a || routes[2].Route.RateLimit != b || routes[3].Route.RateLimit != nil {
		t.Fatal("routes naming a bucket do not share its rate limit")
	}

	for _, tc := range []struct {
		name   string
		limits []*dataplanev1.LocalRateLimit
		want   string
	}{
		{"unequal limits", []*dataplanev1.LocalRateLimit{limit("a", 10, time.Second, 0), limit("a", 10, time.Second, 20)}, `bucket "a" is also used with another limit`},
		{"per client differs", []*dataplanev1.LocalRateLimit{limit("a", 10, time.Second, 0), {Bucket: "a", Requests: 10, Interval: durationpb.New(time.Second), PerClientIp: true}}, "another limit"},
		{"no bucket", []*dataplanev1.LocalRateLimit{limit("", 1, time.Second, 0)}, "rateLimit.bucket"},
		{"no requests", []*dataplanev1.LocalRateLimit{limit("a", 0, time.Second, 0)}, "rateLimit.requests"},
		{"interval too short", []*dataplanev1.LocalRateLimit{limit("a", 1, time.Microsecond, 0)}, "rateLimit.interval"},
		{"interval too long", []*dataplanev1.LocalRateLimit{limit("a", 1, 25*time.Hour, 0)}, "rateLimit.interval"},
	} {
		if _, err := compileRateLimits(t, tc.limits...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// KeepState hands unchanged buckets to the next config, with their tokens.
func TestKeepStateCarriesBuckets(t *testing.T) {
	c1, err := compileRateLimits(t, limit("same", 1, time.Minute, 2), limit("changed", 1, time.Minute, 2), limit("gone", 1, time.Minute, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"same", "changed"} {
		if got := takeN(c1.RateLimit(name).Limiter(), anyClient, Clock(), 3); got != 2 {
			t.Fatalf("%s granted %d, want 2", name, got)
		}
	}
	c2, err := compileRateLimits(t, limit("same", 1, time.Minute, 2), limit("changed", 1, time.Minute, 3), limit("new", 1, time.Minute, 2))
	if err != nil {
		t.Fatal(err)
	}
	c2.KeepState(c1)
	c2.KeepState(nil)
	if c2.RateLimit("same").Limiter() != c1.RateLimit("same").Limiter() {
		t.Fatal("unchanged bucket not carried over")
	}
	if ok, _ := c2.RateLimit("same").Allow(anyClient); ok {
		t.Fatal("carried-over bucket was refilled")
	}
	if got := takeN(c2.RateLimit("changed").Limiter(), anyClient, Clock(), 5); got != 3 {
		t.Fatalf("bucket with a new limit granted %d, want its new burst of 3", got)
	}
}

func TestRetryBudgetArithmetic(t *testing.T) {
	for _, tc := range []struct {
		b        RetryBudget
		inFlight int64
		want     int64
	}{
		{DefaultRetryBudget, 0, 3},
		{DefaultRetryBudget, 10, 3},
		{DefaultRetryBudget, 19, 3},
		{DefaultRetryBudget, 20, 4},
		{DefaultRetryBudget, 1000, 200},
		{RetryBudget{Percent: 100}, 7, 7},
		{RetryBudget{Percent: 50, MinConcurrency: 1}, 1, 1},
		{RetryBudget{Percent: 50, MinConcurrency: 1}, 9, 4},
		{RetryBudget{}, 1000, 0},
	} {
		if got := tc.b.Allowance(tc.inFlight); got != tc.want {
			t.Errorf("%+v with %d in flight: %d, want %d", tc.b, tc.inFlight, got, tc.want)
		}
	}
}

func TestCompileRetryBudget(t *testing.T) {
	snap := &dataplanev1.Snapshot{BackendGroups: []*dataplanev1.BackendGroup{
		{Name: "default"},
		{Name: "set", RetryBudget: &dataplanev1.RetryBudget{Percent: 50, MinRetryConcurrency: 1}},
		{Name: "off", RetryBudget: &dataplanev1.RetryBudget{}},
	}}
	c, err := Compile(snap, metrics.NewRegistry(1))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]RetryBudget{"default": DefaultRetryBudget, "set": {50, 1}, "off": {}} {
		if got := c.Group(name).RetryBudget; got != want {
			t.Errorf("group %s budget %+v, want %+v", name, got, want)
		}
	}
	snap.BackendGroups[1].RetryBudget.Percent = 101
	if _, err := Compile(snap, metrics.NewRegistry(1)); err == nil || !strings.Contains(err.Error(), "retryBudget.percent") {
		t.Fatalf("percent 101: %v", err)
	}
}

func uintptrOf(p *atomic.Uint64) uintptr { return uintptr(unsafe.Pointer(p)) }
