package proxy

import (
	"net/netip"
	"sync"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Defaults for zero Options fields.
const (
	DefaultBufferSize       = 20 << 10
	DefaultHeaderTimeout    = dataplanev1.DefaultRequestHeadTimeout
	DefaultIdleTimeout      = dataplanev1.DefaultKeepAliveIdleTimeout
	DefaultRetryBackoffBase = 25 * time.Millisecond
	DefaultRetryBackoffMax  = 250 * time.Millisecond

	DefaultRequestBodyIdleTimeout  = dataplanev1.DefaultRequestBodyIdleTimeout
	DefaultSendStallTimeout        = dataplanev1.DefaultSendStallTimeout
	DefaultResponseHeaderTimeout   = dataplanev1.DefaultResponseHeaderTimeout
	DefaultResponseBodyIdleTimeout = dataplanev1.DefaultResponseBodyIdleTimeout
	DefaultTunnelIdleTimeout       = dataplanev1.DefaultTunnelIdleTimeout
)

// Options tune the sessions of a worker. Zero fields take their defaults.
type Options struct {
	// Limits bound request heads and chunked request bodies; zero fields
	// take http1.DefaultLimits (16 KiB heads, 100 field lines).
	Limits http1.Limits
	// ResponseLimits bound response heads and chunked response bodies;
	// zero fields take http1.DefaultResponseLimits (64 KiB heads, 500
	// field lines).
	ResponseLimits http1.Limits
	// BufferSize is the capacity of each of an Exchange's four buffers. It
	// is raised to hold a whole request head (Limits.MaxHeaderBytes) plus
	// 4 KiB. A response head that fills its buffer before it is complete
	// (it may be up to ResponseLimits.MaxHeaderBytes long) moves, with the
	// heads sent to the client, into two larger buffers of
	// ResponseLimits.MaxHeaderBytes plus 4 KiB each, lent by the worker for
	// the rest of that request only: a connection pays for big response
	// heads only while it receives one.
	BufferSize int
	// HeaderTimeout bounds the time from a connection's acceptance, or from
	// the first byte of a later request, to the end of the request head;
	// a client that has sent part of a head by then gets 408.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has been idle that
	// long between requests.
	IdleTimeout time.Duration
	// TrustedHops is the number of proxies in front of the dataplane whose
	// forwarding headers are trusted, for listeners that do not set their
	// own (compiled.Listener.TrustedHops). With 0 the X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host and Forwarded fields a client
	// sends are replaced by the dataplane's own. With N > 0 the received
	// X-Forwarded-For and Forwarded lists are kept and the dataplane's
	// entry appended, received X-Forwarded-Proto and -Host are kept, and
	// the client address (per-client rate limits, source-IP hashing, the
	// access log) is the N-th address from the end of X-Forwarded-For: the
	// one the outermost trusted proxy saw connecting (the connection's
	// peer when the list is shorter or that entry is not an IP address).
	TrustedHops int
	// RequestBodyIdleTimeout bounds the wait for the next byte of a request
	// body; SendStallTimeout the time a send to the client (in a tunnel, to
	// either side) may go without progress. See the "Timeouts" comment in
	// timeout.go.
	RequestBodyIdleTimeout, SendStallTimeout time.Duration
	// ResponseHeaderTimeout and ResponseBodyIdleTimeout bound the waits on
	// an upstream for a response head and for the next byte of a response
	// body.
	ResponseHeaderTimeout, ResponseBodyIdleTimeout time.Duration
	// TunnelIdleTimeout closes a tunnel (101 upgrade, TCP listener) in which
	// no byte moved either way for this long.
	TunnelIdleTimeout time.Duration
	// The seven timeouts above are the defaults of listeners and backend
	// groups that do not set their own (compiled.ListenerTimeouts,
	// compiled.Group.ResponseHeaderTimeout and ResponseBodyIdleTimeout).
	// RetryBackoffBase and RetryBackoffMax are used for routes whose retry
	// policy leaves them unset.
	RetryBackoffBase, RetryBackoffMax time.Duration
	// AccessLog, when set, receives a line per finished request (see
	// dataplane/accesslog). Each worker needs its own.
	AccessLog *accesslog.Worker
}

// Normalized returns o with defaults applied.
func (o Options) Normalized() Options {
	o.Limits = o.Limits.Normalized()
	o.ResponseLimits = o.ResponseLimits.NormalizedResponse()
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BufferSize < o.Limits.MaxHeaderBytes+headSlack {
		o.BufferSize = o.Limits.MaxHeaderBytes + headSlack
	}
	for _, t := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.HeaderTimeout, DefaultHeaderTimeout},
		{&o.IdleTimeout, DefaultIdleTimeout},
		{&o.RequestBodyIdleTimeout, DefaultRequestBodyIdleTimeout},
		{&o.SendStallTimeout, DefaultSendStallTimeout},
		{&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout},
		{&o.ResponseBodyIdleTimeout, DefaultResponseBodyIdleTimeout},
		{&o.TunnelIdleTimeout, DefaultTunnelIdleTimeout},
	} {
		if *t.v <= 0 {
			*t.v = t.def
		}
	}
	if o.TrustedHops < 0 {
		o.TrustedHops = 0
	}
	if o.RetryBackoffBase <= 0 {
		o.RetryBackoffBase = DefaultRetryBackoffBase
	}
	if o.RetryBackoffMax < o.RetryBackoffBase {
		o.RetryBackoffMax = max(DefaultRetryBackoffMax, o.RetryBackoffBase)
	}
	return o
}

// headSlack is the room a buffer keeps beyond the longest head it must
// hold: the start of a body, or the fields the proxy adds to a head.
const headSlack = 4 << 10

// requestLimits returns the limits of listener l's request heads: its own
// where set, else the dataplane's.
func (w *Worker) requestLimits(l *compiled.Listener) http1.Limits {
	if l == nil {
		return w.opts.Limits
	}
	return narrowed(w.opts.Limits, l.MaxRequestHeaderBytes, l.MaxRequestHeaders)
}

// responseLimits returns the limits of listener l's response heads, as
// requestLimits does for requests.
func (w *Worker) responseLimits(l *compiled.Listener) http1.Limits {
	if l == nil {
		return w.opts.ResponseLimits
	}
	return narrowed(w.opts.ResponseLimits, l.MaxResponseHeaderBytes, l.MaxResponseHeaders)
}

// narrowed applies a listener's head limits (zero: unset) to the dataplane's
// lim: the field count replaces lim's, the byte limit may only lower lim's,
// which sized the buffers.
func narrowed(lim http1.Limits, headBytes, fields int) http1.Limits {
	if headBytes > 0 && headBytes < lim.MaxHeaderBytes {
		lim.MaxHeaderBytes = headBytes
	}
	if fields > 0 {
		lim.MaxHeaderCount = fields
	}
	return lim
}

// Endpoint is an endpoint chosen for one attempt.
type Endpoint struct {
	// Addr is the address to connect to.
	Addr netip.AddrPort
	// Index is the endpoint's index in the group's balancer.Group.
	Index int
	// Picker is the selector that chose it, to which Done is reported; nil
	// when the endpoint was chosen without one.
	Picker balancer.Selector
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
	pk, eps := p.cache.Picker(g)
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

// BufferPool lends the buffers of Exchanges, one at a time. An Exchange
// made without buffers (NewExchange(Buffers{})) takes each of its four
// buffers from its Worker's BufferPool when it first needs it (the client
// buffer when bytes arrive, the upstream head when a request is forwarded,
// the upstream buffer when the response arrives, the client head when a
// reply is written) and gives them back with the Exchange, so a connection
// holds only the buffers its traffic has used.
type BufferPool interface {
	// GetBuffer returns a buffer of the worker's Options.BufferSize (length
	// and capacity).
	GetBuffer() []byte
	// PutBuffer takes back a buffer from GetBuffer; the caller no longer
	// refers to it.
	PutBuffer([]byte)
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

// BufferFreeList is a BufferPool for a single goroutine: a stack of
// returned buffers of Size bytes, refilled from the Go heap.
type BufferFreeList struct {
	Size int
	free [][]byte
	lent int
}

// GetBuffer implements BufferPool.
func (f *BufferFreeList) GetBuffer() []byte {
	f.lent++
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		return b
	}
	return make([]byte, f.Size)
}

// PutBuffer implements BufferPool.
func (f *BufferFreeList) PutBuffer(b []byte) {
	f.lent--
	f.free = append(f.free, b)
}

// Lent returns the number of buffers lent and not yet returned.
func (f *BufferFreeList) Lent() int { return f.lent }

// Worker is what the sessions of one engine worker share: counters (and
// the memory budget, whose pressure level sessions read at the start of
// every request: see metrics.Worker.Pressure), endpoint pickers, the
// Exchange and buffer pools, the clock and the options. The
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
	// Buffers lends the buffers of Exchanges made without them; nil
	// allocates them on the Go heap (and never takes them back).
	Buffers BufferPool
	// Now returns the current time in nanoseconds of a monotonic clock;
	// timer deadlines are expressed in it.
	Now func() int64
	// Coarse, when set, returns the time of the same clock more cheaply and
	// possibly a little behind (the io_uring engine gives the time its
	// current batch of completions arrived). Sessions read it whenever bytes
	// move, to time the waits for progress. Nil uses Now.
	Coarse func() int64
	// Seed varies each session's random draws (backend weights, jitter).
	Seed uint32
	// Links collects the worker's HTTP/2 upstream links with frames to
	// send (engines that multiplex, upstream_h2link.go).
	Links LinkSet
	// linkStates are free stream states of links.
	linkStates []*UpstreamState

	opts Options
	// large lends the buffers of response heads that outgrow an Exchange's
	// own (largeBuffers); largeSize is the size of each of the two, 0 when
	// the Exchange buffers hold any response head already.
	large     sync.Pool
	largeSize int
}

// NewWorker returns a Worker with normalized options. Exchanges may be nil:
// a FreeList of Exchanges without buffers, which borrow them from a
// BufferFreeList, is then used (single goroutine).
func NewWorker(m *metrics.Worker, ep EndpointPicker, xp ExchangePool, now func() int64, opts Options) *Worker {
	w := &Worker{Metrics: m, Endpoints: ep, Exchanges: xp, Now: now, opts: opts.Normalized()}
	if n := w.opts.ResponseLimits.MaxHeaderBytes + headSlack; n > w.opts.BufferSize {
		w.largeSize = n
		w.large.New = func() any {
			b := make([]byte, 2*n)
			return &largeBuffers{up: b[:n:n], head: b[n:], pool: &w.large}
		}
	}
	if w.Exchanges == nil {
		w.Exchanges = &FreeList{New: func() *Exchange { return NewExchange(Buffers{}) }}
		w.Buffers = &BufferFreeList{Size: w.opts.BufferSize}
	}
	return w
}
