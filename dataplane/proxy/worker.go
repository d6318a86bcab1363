package proxy

import (
	"net/netip"
	"time"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Defaults for zero Options fields.
const (
	DefaultBufferSize       = 20 << 10
	DefaultHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultRetryBackoffBase = 25 * time.Millisecond
	DefaultRetryBackoffMax  = 250 * time.Millisecond
)

// Options tune the sessions of a worker. Zero fields take their defaults.
type Options struct {
	// Limits bound request and response heads and chunked framing.
	Limits http1.Limits
	// BufferSize is the capacity of each of an Exchange's four buffers. It
	// is raised to hold a whole head (Limits.MaxHeaderBytes) plus 4 KiB.
	BufferSize int
	// HeaderTimeout bounds the time from a connection's acceptance, or from
	// the first byte of a later request, to the end of the request head;
	// a client that has sent part of a head by then gets 408.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has been idle that
	// long between requests.
	IdleTimeout time.Duration
	// TrustForwarded appends to received X-Forwarded-For values and keeps
	// received X-Forwarded-Proto and -Host, for a dataplane behind a
	// trusted proxy. Otherwise they are replaced.
	TrustForwarded bool
	// RetryBackoffBase and RetryBackoffMax are used for routes whose retry
	// policy leaves them unset.
	RetryBackoffBase, RetryBackoffMax time.Duration
	// AccessLog, when set, receives a line per finished request (see
	// dataplane/accesslog). Each worker needs its own.
	AccessLog *accesslog.Worker
}

// Normalized returns o with defaults applied.
func (o Options) Normalized() Options {
	def := http1.DefaultLimits()
	if o.Limits.MaxHeaderBytes <= 0 {
		o.Limits.MaxHeaderBytes = def.MaxHeaderBytes
	}
	if o.Limits.MaxHeaderBytes > http1.MaxHeaderBytesLimit {
		o.Limits.MaxHeaderBytes = http1.MaxHeaderBytesLimit
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BufferSize < o.Limits.MaxHeaderBytes+4096 {
		o.BufferSize = o.Limits.MaxHeaderBytes + 4096
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.RetryBackoffBase <= 0 {
		o.RetryBackoffBase = DefaultRetryBackoffBase
	}
	if o.RetryBackoffMax < o.RetryBackoffBase {
		o.RetryBackoffMax = max(DefaultRetryBackoffMax, o.RetryBackoffBase)
	}
	return o
}

// Endpoint is an endpoint chosen for one attempt.
type Endpoint struct {
	// Addr is the address to connect to.
	Addr netip.AddrPort
	// Index is the endpoint's index in the group's balancer.Group.
	Index int
	// Picker is the picker that chose it, to which Done is reported; nil
	// when the endpoint was chosen without a picker.
	Picker *balancer.Picker
	// Set is the endpoint set Index refers to, to which outlier detection
	// outcomes are reported; nil when unknown.
	Set *balancer.Group
}

// EndpointPicker chooses endpoints of backend groups for a worker's
// sessions.
type EndpointPicker interface {
	// Pick chooses an endpoint of g. key is the consistent-hash key (may be
	// empty) and avoid the endpoint indexes to skip if possible (endpoints
	// that failed earlier attempts of the same request; may be nil). It
	// returns false when g has no usable endpoint.
	Pick(g *compiled.Group, key []byte, avoid balancer.Bitset) (Endpoint, bool)
	// Done reports the end of an attempt on an endpoint returned by Pick.
	Done(e Endpoint)
}

// Pickers is the EndpointPicker of a worker whose sessions all run on one
// goroutine (the io_uring engine). It is not safe for concurrent use; wrap
// it in a lock otherwise.
//
// Pick skips the endpoints the node's health checker published as
// unhealthy for the set it picks from (compiled.Group.Unhealthy), merged with
// the endpoints the request asks to avoid, unless too few are left (the
// balancer's panic threshold).
type Pickers struct {
	cache   *compiled.PickerCache
	scratch balancer.Bitset
}

// NewPickers returns an EndpointPicker over a fresh compiled.PickerCache.
func NewPickers(seed uint64) *Pickers {
	return &Pickers{cache: compiled.NewPickerCache(seed)}
}

// Pick implements EndpointPicker.
func (p *Pickers) Pick(g *compiled.Group, key []byte, avoid balancer.Bitset) (Endpoint, bool) {
	pk := p.cache.Picker(g)
	eps := pk.Group()
	skip := avoid
	if bad := g.Unhealthy(eps); bad != nil {
		skip = p.merge(bad, avoid)
	}
	idx, ok := pk.Pick(key, skip)
	if !ok {
		return Endpoint{}, false
	}
	return Endpoint{Addr: eps.Endpoint(idx).Addr, Index: idx, Picker: pk, Set: eps}, true
}

// merge returns the union of a and b in the picker's scratch set; it
// allocates only when the scratch set must grow.
func (p *Pickers) merge(a, b balancer.Bitset) balancer.Bitset {
	if isEmpty(b) {
		return a
	}
	n := max(len(a), len(b))
	if cap(p.scratch) < n {
		p.scratch = make(balancer.Bitset, n)
	}
	m := p.scratch[:n]
	for i := range m {
		var v uint64
		if i < len(a) {
			v = a[i]
		}
		if i < len(b) {
			v |= b[i]
		}
		m[i] = v
	}
	return m
}

func isEmpty(b balancer.Bitset) bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// Done implements EndpointPicker.
func (p *Pickers) Done(e Endpoint) {
	if e.Picker != nil {
		e.Picker.Done(e.Index)
	}
}

// Buffers are the four buffers of an Exchange. An engine may carve them out
// of memory the kernel can safely read and write asynchronously (an mmap'd
// arena); NewBuffers allocates them on the Go heap. Each must have the
// worker's Options.BufferSize capacity.
type Buffers struct {
	// ClientIn receives client bytes: request heads and bodies, tunnel bytes.
	ClientIn []byte
	// UpstreamIn receives upstream bytes: response heads and bodies.
	UpstreamIn []byte
	// UpstreamHead holds the request head rewritten for the upstream.
	UpstreamHead []byte
	// ClientHead holds response heads rewritten for the client and the
	// proxy's own replies.
	ClientHead []byte
}

// NewBuffers allocates Buffers of the given size on the Go heap.
func NewBuffers(size int) Buffers {
	b := make([]byte, 4*size)
	return Buffers{
		ClientIn:     b[0:size:size],
		UpstreamIn:   b[size : 2*size : 2*size],
		UpstreamHead: b[2*size : 3*size : 3*size],
		ClientHead:   b[3*size : 4*size : 4*size],
	}
}

// ExchangePool lends Exchanges to a worker's sessions. A session holds one
// only while a request is in progress or bytes are buffered, so an idle
// keep-alive connection costs only its Session.
type ExchangePool interface {
	Get() *Exchange
	Put(*Exchange)
}

// FreeList is an ExchangePool for a single goroutine: a stack of released
// Exchanges, refilled by New.
type FreeList struct {
	// New makes an Exchange when the list is empty.
	New  func() *Exchange
	free []*Exchange
}

// Get implements ExchangePool.
func (f *FreeList) Get() *Exchange {
	if n := len(f.free); n > 0 {
		x := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		return x
	}
	return f.New()
}

// Put implements ExchangePool.
func (f *FreeList) Put(x *Exchange) { f.free = append(f.free, x) }

// Worker is what the sessions of one engine worker share: counters,
// endpoint pickers, the Exchange pool, the clock and the options. The
// io_uring engine uses it from its worker thread only; the netpoll engine
// shares it between goroutines and supplies goroutine-safe Endpoints and
// Exchanges (metrics counters are atomic).
type Worker struct {
	// Metrics are the worker's counters.
	Metrics *metrics.Worker
	// Endpoints picks upstream endpoints.
	Endpoints EndpointPicker
	// Exchanges lends per-request state and buffers.
	Exchanges ExchangePool
	// Now returns the current time in nanoseconds of a monotonic clock;
	// timer deadlines are expressed in it.
	Now func() int64
	// Seed varies each session's random draws (backend weights, jitter).
	Seed uint32

	opts Options
}

// NewWorker returns a Worker with normalized options. Exchanges may be nil:
// a FreeList of heap-allocated Exchanges is then used (single goroutine).
func NewWorker(m *metrics.Worker, ep EndpointPicker, xp ExchangePool, now func() int64, opts Options) *Worker {
	w := &Worker{Metrics: m, Endpoints: ep, Exchanges: xp, Now: now, opts: opts.Normalized()}
	if w.Exchanges == nil {
		size := w.opts.BufferSize
		w.Exchanges = &FreeList{New: func() *Exchange { return NewExchange(NewBuffers(size)) }}
	}
	return w
}
