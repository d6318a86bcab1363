package proxy

import (
	"net/netip"
	"sync"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/router"
	"github.com/flaxlb/flax/dataplane/tlshello"
)

// stream is one direction's receive buffer. Bytes flow through four
// offsets: buf[r:ready] may be sent on, buf[ready:proc] were examined but
// are not sendable (chunk framing dropped while decoding), buf[proc:w] were
// received but not yet examined.
type stream struct {
	buf   []byte
	r     int
	ready int
	proc  int
	w     int
	// busy is set while a send of buf[r:sendEnd] is in flight; the bytes
	// from r on must then not move.
	busy    bool
	sendEnd int
}

func (st *stream) reset() {
	b := st.buf
	*st = stream{buf: b}
}

// hasRoom reports whether more bytes can be received now (a stream
// without a buffer takes one when bytes arrive).
func (st *stream) hasRoom() bool {
	return st.buf == nil || st.w < len(st.buf) || (st.r > 0 && !st.busy)
}

// compact moves buf[r:w] to the start of buf when no send is in flight and
// returns by how much the offsets moved.
func (st *stream) compact() int {
	if st.busy || st.r == 0 {
		return 0
	}
	shift := st.r
	copy(st.buf, st.buf[st.r:st.w])
	st.r = 0
	st.ready -= shift
	st.proc -= shift
	st.w -= shift
	return shift
}

// pending reports whether bytes are waiting to be sent.
func (st *stream) pending() bool { return st.ready > st.r }

// sendRec is one send in flight on a side.
type sendRec struct {
	data []byte
	// body marks a send of stream bytes; end is the stream offset it
	// reaches.
	body bool
	end  int
}

// sendFIFO holds a side's sends in flight, oldest first.
type sendFIFO struct {
	q    [4]sendRec
	head uint8
	n    uint8
}

func (f *sendFIFO) push(r sendRec) {
	if f.n == uint8(len(f.q)) {
		panic("proxy: too many sends in flight")
	}
	f.q[(f.head+f.n)%uint8(len(f.q))] = r
	f.n++
}

func (f *sendFIFO) pop() (sendRec, bool) {
	if f.n == 0 {
		return sendRec{}, false
	}
	r := f.q[f.head]
	f.q[f.head] = sendRec{}
	f.head = (f.head + 1) % uint8(len(f.q))
	f.n--
	return r, true
}

func (f *sendFIFO) empty() bool { return f.n == 0 }

func (f *sendFIFO) clear() { *f = sendFIFO{} }

// Exchange phases.
const (
	phHead      uint8 = iota // reading a request head
	phLocal                  // sending the proxy's own reply
	phProxy                  // forwarding to an upstream
	phTunnel                 // byte tunnel (after 101, or a TCP listener)
	phConnect                // TCP listener: connecting to the upstream
	phHello                  // TLS listener: reading the ClientHello
	phHandshake              // TLS listener, terminating route: the engine's TLS handshake
	phAuth                   // asking the route's external authorization service (extauth.go)
)

// Upstream connection states.
const (
	upNone       uint8 = iota // no upstream connection
	upConnecting              // ActConnectUpstream issued
	upConnected               // connected, exchange in progress
	upBackoff                 // waiting before a retry
	upPending                 // waiting for a connection slot (circuit breaker)
)

// Exchange is the state a connection needs while a request is in progress:
// the four buffers, the parsed request and response, the route and the
// upstream attempt. Sessions borrow one from their Worker's ExchangePool
// when bytes arrive and give it back when the connection is idle again.
type Exchange struct {
	bufs Buffers
	lent uint8 // the buffers of bufs taken from the Worker's BufferPool (lent* bits)

	in, up     stream
	upHead     []byte         // rewritten request head (in bufs.UpstreamHead)
	h2         *UpstreamState // the upstream connection's HTTP/2 state (H2C groups)
	teTrailers bool           // the request says "TE: trailers" (forwarded to HTTP/2 upstreams)
	h2Spare    []byte         // a closed HTTP/2 connection's frame buffer, lent until the Exchange goes back
	// h2Handoff is the state of an HTTP/2 upstream connection moving between
	// the session and the engine's pool (upstream_h2.go): released by the
	// last ActReleaseUpstream until DetachUpstream, or attached by
	// AttachUpstream for the next UpstreamConnected. The engine performs the
	// release before the next connect, so one field serves both. It lives
	// here, not in the Session, so that idle connections do not pay for it.
	h2Handoff      *UpstreamState
	h2Link         *H2Link // the link AttachLink named, until UpstreamConnected
	h2Tag          int32   // the engine's handle of the session on its link
	cliHead        []byte  // where client-bound heads are built: bufs.ClientHead, or large.head
	cliUsed        int     // bytes of cliHead referenced by client sends in flight
	large          *largeBuffers
	usends, csends sendFIFO

	req              http1.Request
	res              http1.Response
	reqBody, resBody http1.BodyReader
	view             router.RequestView
	hbuf             []byte // the parsed request head, valid during routing only

	phase uint8

	// Request.
	start        int64
	method       http1.Method
	version      http1.Version
	upgrade      bool
	reqBodyDone  bool
	replayOff    int        // offset in in.buf of the request body for a replay, -1 when lost
	client       netip.Addr // the client address: the peer's, or taken from X-Forwarded-For
	expect       bool       // the client waits for 100 (Continue) before sending the body
	sentContinue bool       // the proxy sent its own 100 (Continue)

	// Route.
	listener *compiled.Listener
	route    *compiled.Route
	prefix   string
	backend  *compiled.Backend
	group    *compiled.Group

	// Session affinity.
	reqToken    uint64
	hasToken    bool
	affinityHit bool

	// Upstream attempt.
	upState      uint8
	ep           Endpoint
	hasEP        bool
	avoid        [2]uint64
	pickSkip     [2]uint64 // avoid plus an endpoint pick passes over
	retries      int
	staleRetried bool
	fresh        bool
	freshNext    bool
	upReused     bool
	upGotBytes   bool
	upEOF        bool
	upBroken     bool // not reusable (write failed, extra bytes)
	headSent     bool
	sentAt       int64 // when the attempt's request head was queued (Worker.Now)
	reqDeadline  int64
	tryDeadline  int64
	backoffUntil int64
	reported     bool // the attempt's outcome went to outlier detection

	// Circuit breaker slots held, by metrics.Limit, in shared. The retries
	// slot is also the request's place in its group's retry budget.
	held         [4]bool
	shared       *metrics.Shared
	inflight     *metrics.GroupCounters // the worker's counters of group, while counted in flight
	pollAt       int64                  // pending: next look for a free connection slot
	pendingUntil int64                  // pending: give up (503) at this time

	// Response.
	respHeadDone bool
	respStarted  bool // a final response head was queued to the client
	respDone     bool
	dechunk      bool
	status       int

	// Local reply body still to send (immutable configuration memory).
	replyRest []byte

	// Access log: bytes received for the request and sent to the client,
	// upstream attempts, why the proxy answered itself, and the request
	// line copied (logLine[:logMethod] the method, the rest the path)
	// while the head was parsed, only when the log is on.
	reqBytes, respBytes int64
	attempts            int32
	reason              metrics.Reason
	hasReason           bool
	began               bool // a request is in progress and not yet logged
	logMethod           int
	logLine             []byte
	trace               traceState

	// Tunnel.
	shutUp, shutCli bool
	// hello reads a TLS listener's ClientHello (phHello).
	hello tlshello.Reader

	// Waits for progress (timeout.go): what the exchange waits on, and when
	// a byte last moved (or the wait began) on the worker's coarse clock.
	wait  uint8
	moved int64

	// Rewrite options of the upstream head, kept for mirrors while routing.
	rwo http1.RewriteOptions

	// Extension filters (filter.go): the handle hooks get, the request
	// hooks' header edits, a hook's local answer (Respond's status and body;
	// a rejected TCP connection sets fStatus only), the backend a hook chose.
	fcall    filterCall
	fRemove  [][]byte
	fAdd     []http1.HeaderField
	fStatus  int
	fBody    string
	fBackend compiled.Backend

	// External authorization (extauth.go): the route's group while the
	// upstream slot serves the check, when the check ends, whether it
	// carries the request body, whether it was retried on a fresh
	// connection after a stale pooled one.
	authSaved    *compiled.Group
	authDeadline int64
	authBody     bool
	authRetried  bool

	// CORS (cors.go): the request's Origin, copied when the route's policy
	// allows it.
	corsOrigin  []byte // grown on first use: only routes with a policy use it
	corsAllowed bool

	// Scratch, reused across requests.
	mirrorHead []byte // grown on first use: only routes with mirrors use it
	authHead   []byte // grown on first use: only routes with external authorization use it
	key        []byte
	path       []byte
	target     []byte
	addr       []byte
	token      []byte
	remove     [][]byte
	add        []http1.HeaderField
}

// Buffers of an Exchange lent by a BufferPool (Exchange.lent).
const (
	lentClientIn uint8 = 1 << iota
	lentUpstreamIn
	lentUpstreamHead
	lentClientHead
)

// NewExchange returns an Exchange over the given buffers. Buffers left nil
// are taken from the Worker's BufferPool when first needed and given back
// when the Exchange is.
func NewExchange(b Buffers) *Exchange {
	x := &Exchange{bufs: b, cliHead: b.ClientHead}
	if b.ClientIn != nil {
		x.in.buf = b.ClientIn[:cap(b.ClientIn)]
	}
	if b.UpstreamIn != nil {
		x.up.buf = b.UpstreamIn[:cap(b.UpstreamIn)]
	}
	x.key = make([]byte, 0, 256)
	x.path = make([]byte, 0, 1024)
	x.target = make([]byte, 0, 1024)
	x.addr = make([]byte, 0, 64)
	x.token = make([]byte, 0, 128)
	x.remove = make([][]byte, 0, 8)
	x.add = make([]http1.HeaderField, 0, 8)
	x.req.Reset()
	x.res.Reset()
	return x
}

// buffer returns *b, taking it from p (or the Go heap when p is nil) the
// first time; bit marks it lent.
func (x *Exchange) buffer(b *[]byte, bit uint8, p BufferPool, size int) []byte {
	if *b == nil {
		if p != nil {
			*b = p.GetBuffer()
			x.lent |= bit
		} else {
			*b = make([]byte, size)
		}
	}
	return *b
}

// giveBack returns the buffers lent by p; the Exchange holds none of them
// any more.
func (x *Exchange) giveBack(p BufferPool) {
	if x.h2Spare != nil {
		p.PutBuffer(x.h2Spare)
		x.h2Spare = nil
	}
	if x.lent == 0 {
		return
	}
	if x.lent&lentClientIn != 0 {
		p.PutBuffer(x.bufs.ClientIn)
		x.bufs.ClientIn, x.in.buf = nil, nil
	}
	if x.lent&lentUpstreamIn != 0 {
		p.PutBuffer(x.bufs.UpstreamIn)
		x.bufs.UpstreamIn, x.up.buf = nil, nil
	}
	if x.lent&lentUpstreamHead != 0 {
		p.PutBuffer(x.bufs.UpstreamHead)
		x.bufs.UpstreamHead = nil
	}
	if x.lent&lentClientHead != 0 {
		p.PutBuffer(x.bufs.ClientHead)
		x.bufs.ClientHead, x.cliHead = nil, nil
	}
	x.lent = 0
}

// Header implements router.Headers over the request being routed.
func (x *Exchange) Header(name string) ([]byte, bool) { return x.req.Lookup(x.hbuf, name) }

// resetRequest clears the per-request state, keeping the client stream.
func (x *Exchange) resetRequest() {
	x.dropLarge()
	x.up.reset()
	x.upHead = x.upHead[:0]
	x.cliUsed = 0
	x.usends.clear()
	x.csends.clear()
	x.req.Reset()
	x.res.Reset()
	x.reqBody = http1.BodyReader{}
	x.resBody = http1.BodyReader{}
	x.view = router.RequestView{}
	x.hbuf = nil
	x.phase = phHead
	x.start = 0
	x.method = 0
	x.version = 0
	x.upgrade = false
	x.teTrailers = false
	x.reqBodyDone = false
	x.replayOff = -1
	x.client = netip.Addr{}
	x.expect, x.sentContinue = false, false
	x.listener, x.route, x.prefix, x.backend, x.group = nil, nil, "", nil, nil
	x.upState = upNone
	x.ep = Endpoint{}
	x.hasEP = false
	x.avoid = [2]uint64{}
	x.retries = 0
	x.staleRetried, x.fresh, x.freshNext = false, false, false
	x.reqToken, x.hasToken, x.affinityHit = 0, false, false
	x.resetAttempt()
	x.reqDeadline = 0
	if x.inflight != nil {
		x.inflight.AddInFlight(-1)
		x.inflight = nil
	}
	x.releaseBreakers()
	x.pollAt, x.pendingUntil = 0, 0
	x.respStarted = false
	x.status = 0
	x.shutUp, x.shutCli = false, false
	x.wait, x.moved = waitNone, 0
	x.replyRest = nil
	x.reqBytes, x.respBytes, x.attempts = 0, 0, 0
	x.reason, x.hasReason, x.began = 0, false, false
	x.logMethod = 0
	x.logLine = x.logLine[:0]
	x.trace.active, x.trace.sampled = false, false
	x.corsOrigin, x.corsAllowed = x.corsOrigin[:0], false
	x.authSaved, x.authDeadline, x.authBody, x.authRetried = nil, 0, false, false
	x.resetFilters()
}

// resetFilters clears the extension filters' state of a request.
func (x *Exchange) resetFilters() {
	x.fcall = filterCall{}
	if len(x.fRemove) > 0 {
		clear(x.fRemove)
		x.fRemove = x.fRemove[:0]
	}
	if len(x.fAdd) > 0 {
		clear(x.fAdd)
		x.fAdd = x.fAdd[:0]
	}
	x.fStatus, x.fBody = 0, ""
	if x.fBackend.Group != nil {
		x.fBackend = compiled.Backend{}
	}
}

// largeBuffers are the two buffers an Exchange borrows from its Worker
// while it receives a response head that does not fit its own buffers: up
// replaces the upstream stream's buffer, head the client-bound head buffer.
type largeBuffers struct {
	up, head []byte
	pool     *sync.Pool
}

// useLarge moves the upstream stream's bytes (a response head not yet
// complete, so no send refers to them) into l.up and builds the next
// client-bound heads in l.head. Heads still being sent from the Exchange's
// own head buffer stay where they are; nothing writes there any more until
// the request ends.
func (x *Exchange) useLarge(l *largeBuffers) {
	up := &x.up
	shift := up.r
	n := copy(l.up, up.buf[up.r:up.w])
	up.buf = l.up
	up.r, up.ready, up.proc, up.w = 0, up.ready-shift, up.proc-shift, n
	x.cliHead = l.head
	x.cliUsed = 0
	x.large = l
}

// dropLarge gives borrowed large buffers back, once no send refers to them
// (the request is over), and returns to the Exchange's own buffers.
func (x *Exchange) dropLarge() {
	l := x.large
	if l == nil {
		return
	}
	x.large = nil
	x.up.buf = x.bufs.UpstreamIn[:cap(x.bufs.UpstreamIn)]
	x.cliHead = x.bufs.ClientHead
	x.cliUsed = 0
	l.pool.Put(l)
}

// resetAttempt clears the state of one upstream attempt.
func (x *Exchange) resetAttempt() {
	x.up.reset()
	x.usends.clear()
	x.res.Reset()
	x.resBody = http1.BodyReader{}
	x.upReused, x.upGotBytes, x.upEOF, x.upBroken, x.headSent = false, false, false, false, false
	x.tryDeadline, x.backoffUntil = 0, 0
	x.reported = false
	x.respHeadDone, x.respDone, x.dechunk = false, false, false
}

// release gives back a circuit breaker slot if held.
func (x *Exchange) release(l metrics.Limit) {
	if x.held[l] {
		x.held[l] = false
		x.shared.Release(l)
	}
}

// releaseBreakers gives back every circuit breaker slot held.
func (x *Exchange) releaseBreakers() {
	for l := range x.held {
		x.release(metrics.Limit(l))
	}
	x.shared = nil
}

// clear drops every reference before the Exchange goes back to its pool.
func (x *Exchange) clear() {
	x.h2Handoff.Free()
	x.h2Handoff = nil
	x.in.reset()
	x.resetRequest()
}
