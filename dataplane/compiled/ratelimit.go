package compiled

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// Local rate limits.
//
// A route's rate limit is a token bucket kept once per dataplane: every worker, and
// both engines when io_uring and netpoll serve side by side, take tokens from the
// same Limiter through atomics, like the circuit breakers' gauges. Routes of a
// snapshot naming the same bucket share one RateLimit (Validate makes sure their
// limits are equal). Config.KeepState hands a bucket's Limiter on to the next
// config when the bucket's name and limit are unchanged, so a config push does not
// refill the buckets.
//
// A bucket is kept in one int64: the instant at which it will be full again. With
// T = Interval/Requests (the time one token takes to come back) and capacity Burst,
// a bucket full again at F holds Burst - (F-now)/T tokens when F is in the future,
// and Burst otherwise. Taking a token moves F to max(F, now) + T, which is allowed
// while F-now stays within Burst*T; so at most Burst requests pass at once and then
// one every T. This is the token bucket arithmetic with the token count and the
// refill time folded into one word, so a compare-and-swap updates it without a
// lock. T is rounded up to the nanosecond (to the microsecond per client, see
// below), so the rate is never exceeded; limits faster than one request per
// nanosecond (per microsecond per client) act as that rate.
//
// Per client address (PerClientIP: the address of the connection's peer;
// X-Forwarded-For is not consulted), each address gets a bucket of its own in a
// fixed-size table of clientSlots atomic words, allocated when the limit is
// compiled and never grown. A word holds a tag (14 bits of the address's keyed
// hash) and the bucket's full-again instant in microseconds (50 bits, enough for
// 26 years of process uptime). An address hashes to one set of clientWays words,
// one cache line; its bucket is the word of the set with its tag. An address
// without a word
// takes an empty word, or one whose bucket is full again: such a word carries no
// state (a full bucket is what a new address gets), so reusing it loses nothing,
// and a client coming back later finds exactly the bucket it would have had. The
// failure modes are strict, never lenient:
//   - two addresses of one set with the same tag share a bucket (for a new
//     address, odds of at most clientWays in 2^14, about 1 in 2000);
//   - when every word of the set holds a bucket that is not full yet, the address
//     takes its tokens from the limit's overflow bucket, one bucket of the same
//     limit shared by every address in that situation. A flood of new addresses
//     thus gets one client's rate between them, and memory stays bounded.
//
// The hash is keyed with a random seed per table, so clients cannot choose
// addresses that land in one set. First requests of one new address racing each
// other while the set changes can, rarely, each create a word for it: each extra
// word gives the address one extra token, once (the word then sits unused until
// its bucket is full again and it is reused).

const (
	// clientSlots is the number of per-client buckets of a per-client limit.
	clientSlots = 4096
	// clientWays is the number of words of one set: one cache line.
	clientWays = 8
	clientSets = clientSlots / clientWays
	// tagBits + timeBits = 64.
	tagBits  = 14
	timeBits = 64 - tagBits
	timeMask = 1<<timeBits - 1
	// maxTolerance and maxClientTolerance bound Burst*T (in nanoseconds and in
	// microseconds), so that instants never overflow: a bucket whose refill
	// from empty takes longer than about 36 years (8.9 years per client) holds
	// the tokens that come back in that time.
	maxTolerance       = 1 << 60
	maxClientTolerance = 1 << 48
	cacheLine          = 64
)

// clockStart is the origin of Clock.
var clockStart = time.Now()

// Clock returns the rate limiters' clock: monotonic nanoseconds since the process
// started. It is the same for every worker and engine.
func Clock() int64 { return int64(time.Since(clockStart)) }

// RateLimit is a route's local rate limit as compiled. Routes naming the same
// bucket point to the same RateLimit.
type RateLimit struct {
	// Bucket names the limiter.
	Bucket string
	// Requests tokens come back every Interval, up to Burst.
	Requests uint32
	Interval time.Duration
	// Burst is the bucket's capacity (Requests when the snapshot leaves it 0).
	Burst uint32
	// PerClientIP keeps one bucket per client address.
	PerClientIP bool

	limiter *Limiter
}

// Allow takes a token for a request of client (used when the limit is per
// client). It reports whether the request may go on and, when not, how long until
// a token is back. It does not allocate and takes no lock.
func (r *RateLimit) Allow(client netip.Addr) (bool, time.Duration) {
	return r.limiter.Take(client, Clock())
}

// Limiter returns the limit's token buckets.
func (r *RateLimit) Limiter() *Limiter { return r.limiter }

// sameLimit reports whether r and o limit alike (their buckets may be shared).
func (r *RateLimit) sameLimit(o *RateLimit) bool {
	return r.Requests == o.Requests && r.Interval == o.Interval && r.Burst == o.Burst && r.PerClientIP == o.PerClientIP
}

// String describes the limit, as in "10 requests per 1s, burst 20".
func (r *RateLimit) String() string {
	s := fmt.Sprintf("%d requests per %s, burst %d", r.Requests, r.Interval, r.Burst)
	if r.PerClientIP {
		s += ", per client IP"
	}
	return s
}

// compileRateLimit compiles a route's rate limit, sharing the RateLimit of an
// earlier route that names the same bucket.
func (c *Config) compileRateLimit(p *dataplanev1.LocalRateLimit) (*RateLimit, error) {
	r := &RateLimit{
		Bucket:      p.GetBucket(),
		Requests:    p.GetRequests(),
		Interval:    p.GetInterval().AsDuration(),
		Burst:       p.GetBurst(),
		PerClientIP: p.GetPerClientIp(),
	}
	if r.Burst == 0 {
		r.Burst = r.Requests
	}
	switch {
	case r.Bucket == "":
		return nil, errors.New("rateLimit.bucket: must not be empty")
	case r.Requests == 0:
		return nil, errors.New("rateLimit.requests: must be at least 1")
	case r.Interval < time.Millisecond || r.Interval > 24*time.Hour:
		return nil, fmt.Errorf("rateLimit.interval: must be between 1ms and 24h, got %s", r.Interval)
	}
	if prev := c.rateLimits[r.Bucket]; prev != nil {
		if !prev.sameLimit(r) {
			return nil, fmt.Errorf("rateLimit: bucket %q is also used with another limit (%s, here %s)", r.Bucket, prev, r)
		}
		return prev, nil
	}
	r.limiter = NewLimiter(r.Requests, r.Interval, r.Burst, r.PerClientIP)
	if c.rateLimits == nil {
		c.rateLimits = map[string]*RateLimit{}
	}
	c.rateLimits[r.Bucket] = r
	return r, nil
}

// RateLimit returns the rate limit of bucket, nil when no route names it.
func (c *Config) RateLimit(bucket string) *RateLimit { return c.rateLimits[bucket] }

// KeepState carries over from prev, the config c replaces, the state that must
// outlive a snapshot: the token buckets of every rate limit whose bucket name and
// limit are unchanged, so that applying a snapshot does not refill them. Buckets
// whose limit changed start full. Call it before c is applied; prev may be nil.
func (c *Config) KeepState(prev *Config) {
	if prev == nil {
		return
	}
	for name, r := range c.rateLimits {
		if p := prev.rateLimits[name]; p != nil && p.sameLimit(r) {
			r.limiter = p.limiter
		}
	}
}

// Limiter holds the token buckets of one rate limit: one shared by all clients, or
// one per client address plus the overflow bucket (see the comment at the top of
// this file).
type Limiter struct {
	_    [cacheLine]byte
	full atomic.Int64 // the shared (or overflow) bucket: clock time it is full again
	_    [cacheLine - 8]byte

	emission, tolerance int64 // T and Burst*T, in nanoseconds
	clients             *clientTable
}

// NewLimiter returns a limiter of requests tokens per interval with capacity burst
// (at least 1), its buckets full.
func NewLimiter(requests uint32, interval time.Duration, burst uint32, perClient bool) *Limiter {
	requests, burst = max(requests, 1), max(burst, 1)
	l := &Limiter{}
	l.emission, l.tolerance = bucketParams(int64(max(interval, 1)), requests, burst, maxTolerance)
	if perClient {
		us := int64(max(interval/time.Microsecond, 1))
		t := &clientTable{seed0: rand.Uint64(), seed1: rand.Uint64()}
		t.emission, t.tolerance = bucketParams(us, requests, burst, maxClientTolerance)
		// Align the words so that each set is one cache line.
		raw := make([]atomic.Uint64, clientSlots+clientWays)
		off := 0
		if rem := uintptr(unsafe.Pointer(&raw[0])) % cacheLine; rem != 0 {
			off = int((cacheLine - rem) / 8)
		}
		t.slots = raw[off : off+clientSlots : off+clientSlots]
		l.clients = t
	}
	return l
}

// bucketParams returns T (interval/requests, rounded up) and Burst*T, at most
// limit.
func bucketParams(interval int64, requests, burst uint32, limit int64) (emission, tolerance int64) {
	emission = (interval + int64(requests) - 1) / int64(requests)
	hi, lo := bits.Mul64(uint64(emission), uint64(burst))
	if hi != 0 || lo > uint64(limit) {
		return min(emission, limit), limit
	}
	return emission, int64(lo)
}

// Take takes a token at clock time now (nanoseconds, Clock) for a request of
// client; client is used only by per-client limiters. It reports whether a token
// was taken and, when not, how long until one is back.
func (l *Limiter) Take(client netip.Addr, now int64) (bool, time.Duration) {
	if t := l.clients; t != nil {
		ok, wait, placed := t.take(client, now/int64(time.Microsecond))
		if placed {
			return ok, time.Duration(wait) * time.Microsecond
		}
	}
	ok, wait := take(&l.full, now, l.emission, l.tolerance)
	return ok, time.Duration(wait)
}

// take takes a token from the bucket full again at *b. On success it returns true;
// otherwise the time until a token is back.
func take(b *atomic.Int64, now, emission, tolerance int64) (bool, int64) {
	for {
		f := b.Load()
		next := max(f, now) + emission
		if next-now > tolerance {
			return false, next - now - tolerance
		}
		if b.CompareAndSwap(f, next) {
			return true, 0
		}
	}
}

// clientTable holds the per-client buckets of a limiter, in microseconds.
type clientTable struct {
	seed0, seed1        uint64
	emission, tolerance int64
	slots               []atomic.Uint64
}

// take takes a token from client's bucket at now (microseconds). placed is false
// when the client has no bucket in the table (its set is full of live buckets of
// other clients): the caller then uses the overflow bucket. A failed
// compare-and-swap means another request changed the set, so the loop is
// lock-free: some request always makes progress.
func (t *clientTable) take(client netip.Addr, now int64) (ok bool, wait int64, placed bool) {
	h := t.hash(client)
	tag := h >> timeBits
	if tag == 0 {
		tag = 1 // an empty word is 0
	}
	base := int(h%clientSets) * clientWays
	set := t.slots[base : base+clientWays : base+clientWays]
	for {
		free := -1
		var freeWord uint64
		found := false
		for i := range set {
			w := set[i].Load()
			if w>>timeBits == tag {
				found = true
				f := int64(w & timeMask)
				next := max(f, now) + t.emission
				if next-now > t.tolerance {
					return false, next - now - t.tolerance, true
				}
				if set[i].CompareAndSwap(w, tag<<timeBits|uint64(next)) {
					return true, 0, true
				}
				break // changed under us: look again
			}
			if free < 0 && (w == 0 || int64(w&timeMask) <= now) {
				free, freeWord = i, w
			}
		}
		if found {
			continue
		}
		if free < 0 {
			return false, 0, false
		}
		// A new bucket, full, minus the token of this request.
		if set[free].CompareAndSwap(freeWord, tag<<timeBits|uint64(now+t.emission)&timeMask) {
			return true, 0, true
		}
	}
}

// hash mixes the address with the table's seed.
func (t *clientTable) hash(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return mix64(mix64(hi^t.seed0) ^ lo ^ t.seed1)
}

// mix64 is a bijective mixer: xor-shifts and odd multiplications spread every
// input bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 31
	x *= 0x9e3779b97f4a7c15
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 32
	return x
}
