package proxy

import (
	"errors"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Session states.
const (
	sIdle    uint8 = iota // not opened, or closed and reusable
	sOpen                 // serving
	sClosing              // ActCloseClient issued, waiting for Close
)

// ErrShortSend is how a session treats a send reported complete with fewer
// bytes than it asked for and no error.
var ErrShortSend = errors.New("proxy: short send")

// Target describes the upstream connection an ActConnectUpstream asks for.
type Target struct {
	// Group is the backend group (connect timeout, idle pool settings,
	// metrics).
	Group *compiled.Group
	// Addr is the endpoint to connect to.
	Addr netip.AddrPort
	// Fresh forbids handing out an idle pooled connection: the previous
	// attempt failed on one that had gone stale.
	Fresh bool
	// Shared says that the exchange may run as a stream of a shared HTTP/2
	// connection (an H2C group without TLS): an engine that multiplexes
	// attaches an H2Link (AttachLink) instead of a connection of its own.
	Shared bool
}

// Session is the sans-I/O state machine of one client connection and the
// upstream connections it uses in turn. The engine feeds it events
// (ClientData, ClientEOF, UpstreamConnected, UpstreamData, UpstreamEOF,
// Sent, Timer, Drain), and after each event performs the actions Next
// returns, in order, until there are none. Between events it reads from
// the client while WantClientData and from the upstream while
// WantUpstreamData report true.
//
// A Session is meant to live in a per-worker slab and to be reused: Open
// starts serving a connection, Close releases everything once the engine
// has closed it. It is not safe for concurrent use.
type Session struct {
	w      *Worker
	lref   *atomic.Pointer[compiled.Listener]
	lstats *metrics.ListenerCounters // the listener's byte counters
	remote netip.AddrPort
	x      *Exchange
	q      actionQueue

	// Small fields first, then rng, so that they pack without padding.
	secure     bool
	state      uint8
	clientEOF  bool
	closeAfter bool
	linger     bool
	draining   bool
	idleWait   bool // between requests: the head timer is the idle timer
	armedProg  bool // the armed deadline is a wait for progress (see syncTimer)
	// requests counts the requests served, up to its maximum (only "none
	// yet" matters).
	requests uint16
	// sni is the certificate domain (compiled.Listener.CertificateDomain) of
	// the server name of the connection's TLS handshake; 0 when the
	// connection is not TLS, sent no server name, or its listener has one
	// certificate. Requests for a Host of another domain are misdirected.
	sni         uint16
	rng         uint32
	h2          *H2Stream // the HTTP/2 stream this session serves (h2.go), nil for a connection
	hdrDeadline int64
	armed       int64
}

// Open starts serving a connection accepted on the listener slot l (whose
// current listener is loaded at the start of every request, so that a new
// configuration applies from the next request on) from remote. secure
// tells whether the connection is TLS (X-Forwarded-Proto, redirects).
func (s *Session) Open(w *Worker, l *atomic.Pointer[compiled.Listener], remote netip.AddrPort, secure bool) {
	*s = Session{w: w, lref: l, remote: remote, secure: secure, state: sOpen}
	s.rng = w.Seed ^ uint32(remote.Port())<<16 ^ uint32(w.Now())
	if s.rng == 0 {
		s.rng = 0x9e3779b9
	}
	w.Metrics.ConnOpened()
	now := w.Now()
	lst := l.Load()
	if lst != nil {
		s.lstats = w.Metrics.Listener(lst.Stats)
	}
	s.hdrDeadline = now + s.headTimeout(lst)
	if lst != nil {
		switch lst.Protocol {
		case compiled.ProtocolTCP:
			s.openTCP(lst, now)
		case compiled.ProtocolTLS:
			s.openTLS(lst, now)
		}
	}
	s.syncTimer()
}

// Close releases the session once the engine has closed its connections
// (after ActCloseClient, or on its own initiative) and no send referring to
// its buffers is in flight any more. Any upstream connection still attached
// must be closed by the engine. The session can then be opened again.
func (s *Session) Close() {
	if s.state == sIdle {
		return
	}
	if x := s.x; x != nil {
		if x.began {
			// The engine closed the connection in the middle of a
			// request (a failed or timed-out write, a forced drain).
			status := 499
			if x.phase == phTunnel || x.respDone {
				status = x.status
			}
			s.logEnd(status)
		}
		s.h2Close()
		s.endAttempt()
		s.releaseExchange()
	}
	if s.h2 != nil {
		s.h2.detach()
	} else {
		s.w.Metrics.ConnClosed()
	}
	*s = Session{}
}

// Next returns the next action to perform, in order.
func (s *Session) Next() (Action, bool) { return s.q.pop() }

// Peek returns the next action without removing it, so that an engine can
// gather consecutive sends to one side into one writev.
func (s *Session) Peek() (Action, bool) {
	if s.q.size == 0 {
		return Action{}, false
	}
	return s.q.a[s.q.head], true
}

// Target returns the upstream connection asked for by the last
// ActConnectUpstream.
func (s *Session) Target() Target {
	if s.x == nil {
		return Target{}
	}
	x := s.x
	g := x.group
	return Target{Group: g, Addr: x.ep.Addr, Fresh: x.fresh, Shared: g != nil && g.H2C && g.TLS == nil && x.phase == phProxy}
}

// Deadline returns the armed timer deadline (as the last ActArmTimer), 0
// when none.
func (s *Session) Deadline() int64 { return s.armed }

// Idle reports whether the connection is between requests with nothing
// buffered, so that closing it loses nothing.
func (s *Session) Idle() bool {
	return s.state == sOpen && (s.x == nil || (s.x.phase == phHead && s.x.in.w == s.x.in.r && s.x.csends.empty()))
}

// Shed closes the connection if it is an idle keep-alive connection (it
// has served a request and is between requests with nothing buffered), as
// a worker over its memory budget does first, and reports whether it did.
func (s *Session) Shed() bool {
	if s.requests == 0 || !s.Idle() {
		return false
	}
	s.closeClient(false)
	s.run()
	return true
}

// Tunnel reports whether the session is a byte tunnel.
func (s *Session) Tunnel() bool { return s.x != nil && s.x.phase == phTunnel }

// WantClientData reports whether the engine should receive from the client.
func (s *Session) WantClientData() bool { return s.h2 == nil && s.wantClient() }

// wantClient reports whether the session takes client bytes now.
func (s *Session) wantClient() bool {
	if s.state != sOpen || s.clientEOF {
		return false
	}
	x := s.x
	if x == nil {
		return true
	}
	switch x.phase {
	case phHead, phTunnel, phConnect, phHello:
		return x.in.hasRoom()
	case phProxy, phAuth:
		return !x.reqBodyDone && x.in.hasRoom()
	}
	return false
}

// WantUpstreamData reports whether the engine should receive from the
// upstream connection.
func (s *Session) WantUpstreamData() bool {
	x := s.x
	if s.state != sOpen || x == nil || x.upState != upConnected || x.upEOF {
		return false
	}
	if x.h2 != nil {
		return x.h2.wantData()
	}
	switch x.phase {
	case phProxy, phAuth:
		return !x.respDone && x.up.hasRoom()
	case phTunnel:
		return x.up.hasRoom()
	}
	return false
}

// ClientData hands the session bytes received from the client. It copies
// what it can take and returns how many bytes of p it consumed; p can be
// recycled when ClientData returns. When it consumed less than len(p), the
// engine keeps the rest and offers it again once WantClientData reports
// true.
func (s *Session) ClientData(p []byte) int {
	if s.state != sOpen || s.clientEOF {
		return len(p)
	}
	if len(p) == 0 {
		return 0
	}
	x := s.exchange()
	if x.phase == phHead {
		if x.in.w == x.in.r {
			now := s.w.Now()
			if s.idleWait {
				s.idleWait = false
				s.hdrDeadline = now + s.headTimeout(s.lref.Load())
			}
			x.start = now
		}
	} else {
		x.moved = s.coarse()
	}
	n := s.appendClient(p)
	s.w.Metrics.ClientBytes(s.lstats, n, 0)
	s.run()
	return n
}

// ClientEOF reports that the client closed its side of the connection (or
// that reading from it failed).
func (s *Session) ClientEOF() {
	if s.state != sOpen || s.clientEOF {
		return
	}
	s.clientEOF = true
	x := s.x
	switch {
	case x == nil:
		s.closeClient(false)
	case (x.phase == phProxy || x.phase == phAuth) && !x.reqBodyDone:
		s.abort(499)
	}
	// Otherwise the requests already received are answered (a client may
	// half-close after sending them), and the connection closes once they
	// are.
	s.run()
}

// UpstreamConnected reports the outcome of ActConnectUpstream: err is nil
// when connected, and reused tells whether the connection came from the
// keep-alive pool.
func (s *Session) UpstreamConnected(reused bool, err error) {
	x := s.x
	if s.state != sOpen || x == nil || x.upState != upConnecting {
		return
	}
	gc := s.w.Metrics.Group(x.group.Stats)
	if err != nil {
		if x.h2Link != nil {
			s.h2LinkDetach() // the link's connect failed
		}
		if gc != nil {
			s.w.Metrics.ConnectError(gc)
		}
		s.report(compiled.OutcomeConnectFailure)
		x.group.ConnectFailed(x.ep.Set, x.ep.Index)
		x.upState = upNone
		s.failAttempt()
		if x.phase == phAuth {
			s.authFailed()
			s.run()
			return
		}
		if x.phase == phConnect && s.retryTunnel() {
			s.run()
			return
		}
		if x.phase == phConnect {
			x.setReason(metrics.ReasonConnectFailed)
			s.logEnd(502)
			s.closeClient(false)
		} else if !s.retry(causeConnect, 0) {
			s.fail(502, metrics.ReasonConnectFailed)
		}
		s.run()
		return
	}
	if !s.h2Connected(reused) {
		s.run()
		return
	}
	x.upState = upConnected
	x.upReused = reused
	if !reused {
		x.group.ConnectSucceeded(x.ep.Set, x.ep.Index)
	}
	if gc != nil {
		s.w.Metrics.UpstreamRequest(gc)
	}
	if x.phase == phConnect {
		s.startTunnel()
	}
	s.run()
}

// UpstreamData hands the session bytes received from the upstream, like
// ClientData.
func (s *Session) UpstreamData(p []byte) int {
	x := s.x
	if s.state != sOpen || x == nil || x.upState != upConnected || len(p) == 0 {
		return len(p)
	}
	if x.h2 != nil {
		return s.h2Data(p)
	}
	x.upGotBytes = true
	x.moved = s.coarse()
	if x.phase == phProxy && x.respDone {
		// Bytes after a complete response: the connection cannot be reused.
		x.upBroken = true
		return len(p)
	}
	st := &x.up
	if st.buf == nil {
		st.buf = s.buffer(&x.bufs.UpstreamIn, lentUpstreamIn)
	}
	if len(st.buf)-st.w < len(p) {
		st.compact()
	}
	n := copy(st.buf[st.w:], p)
	st.w += n
	s.run()
	return n
}

// UpstreamEOF reports that the upstream closed its side of the connection
// (or that reading from it failed).
func (s *Session) UpstreamEOF() {
	x := s.x
	if s.state != sOpen || x == nil || x.upState != upConnected || x.upEOF {
		return
	}
	x.upEOF = true
	x.upBroken = true
	s.run()
}

// Sent reports the completion of the oldest send in flight to side.
// Engines report every send, in the order the sends were queued, once all
// of its Data was written (n == len(Data), err nil) or once it failed (err
// set; a short count without an error counts as a failure, so engines
// finish short writes themselves). After a failure the session may abandon
// the other sends in flight to that side; their reports are then ignored.
func (s *Session) Sent(side Side, n int, err error) {
	x := s.x
	if s.state != sOpen || x == nil {
		return
	}
	f := &x.csends
	st := &x.up
	if side == Upstream {
		f = &x.usends
		st = &x.in
	}
	rec, ok := f.pop()
	if !ok {
		return
	}
	x.moved = s.coarse()
	if err == nil && n < len(rec.data) {
		err = ErrShortSend
	}
	if rec.body {
		st.busy = false
		if err == nil {
			st.r = rec.end
		}
	}
	if s.h2 != nil && side == Upstream {
		s.h2.wake() // room for more of the request body, credit to return
	}
	if err != nil {
		if side == Client || x.phase == phTunnel {
			s.abort(499)
		} else {
			s.upstreamWriteFailed()
		}
		s.run()
		return
	}
	if side == Client {
		x.respBytes += int64(n)
		s.w.Metrics.ClientBytes(s.lstats, 0, n)
		if f.empty() {
			x.cliUsed = 0
		}
	}
	s.run()
}

// SendProgress reports that the oldest send in flight to side has written
// some of its bytes but not all yet. Engines that see partial writes report
// them, so that a slow reader that keeps reading is not taken for one that
// stopped (see the "Timeouts" comment in timeout.go).
func (s *Session) SendProgress(side Side) {
	if s.state == sOpen && s.x != nil {
		s.x.moved = s.coarse()
	}
}

// Sending reports whether the session still waits for a send to side to
// complete. It turns false when the session gives up on that side (a
// timeout closed it, say): an engine that performs a send in several
// writes, reporting SendProgress and Timer in between, stops then.
func (s *Session) Sending(side Side) bool {
	x := s.x
	if s.state != sOpen || x == nil {
		return false
	}
	if side == Upstream {
		return !x.usends.empty()
	}
	return !x.csends.empty()
}

// Timer reports that the armed deadline has passed; now is the current
// time on the worker clock. A call before the deadline, or after events
// moved it, does nothing but arm the timer again.
func (s *Session) Timer(now int64) {
	if s.state != sOpen {
		return
	}
	s.armed = 0
	x := s.x
	switch {
	case x != nil && (x.phase == phHello || x.phase == phHandshake) && now >= s.hdrDeadline:
		s.helloTimeout()
	case (x == nil || x.phase == phHead) && now >= s.hdrDeadline:
		switch {
		case x != nil && x.in.w > x.in.r:
			s.w.Metrics.Timeout(metrics.TimeoutRequestHead)
			s.closeAfter = true
			s.linger = true
			x.began = true
			x.reqBytes = int64(x.in.w - x.in.r)
			s.localReply(408, metrics.ReasonHeaderTimeout)
		case s.idleWait:
			s.w.Metrics.Timeout(metrics.TimeoutKeepAliveIdle)
			s.closeClient(false)
		case s.draining && s.requests == 0:
			// Drain's grace for a first request ran out.
			s.closeClient(false)
		default:
			s.w.Metrics.Timeout(metrics.TimeoutRequestHead)
			s.closeClient(false)
		}
	case x == nil:
	case x.phase == phAuth && ((x.reqDeadline != 0 && now >= x.reqDeadline) || now >= x.authDeadline):
		s.authTimeout(now)
	case x.phase == phProxy && x.reqDeadline != 0 && now >= x.reqDeadline:
		if !x.respHeadDone {
			s.report(compiled.OutcomeServerError)
		}
		s.closeUpstream()
		s.fail(504, metrics.ReasonTimeout)
	case x.phase == phProxy && x.tryDeadline != 0 && now >= x.tryDeadline:
		x.tryDeadline = 0
		if !x.respHeadDone {
			s.report(compiled.OutcomeServerError)
			s.markAvoid()
		}
		s.closeUpstream()
		if x.respHeadDone || !s.retry(causeTimeout, 0) {
			s.fail(504, metrics.ReasonTimeout)
		}
	case x.phase == phProxy && x.upState == upBackoff && now >= x.backoffUntil:
		x.backoffUntil = 0
		x.upState = upNone
		s.connect()
	case x.phase == phProxy && x.upState == upPending && now >= x.pollAt:
		s.connect()
	default:
		if w, d := s.progressWait(); w != waitNone && now >= x.moved+d {
			s.progressTimeout(w)
		}
	}
	s.run()
}

// drainFreshGrace is how long a draining connection that has not sent its
// first request yet is given to send it: a client that connected just
// before the listener closed has its request on the way.
const drainFreshGrace = int64(time.Second)

// Drain asks the session to finish: an idle keep-alive connection is closed
// at once, a busy one after the response in progress (which says
// Connection: close if its head is not sent yet), and one that has served
// nothing yet after its first request, or when drainFreshGrace (or its head
// timeout) passes without one. Tunnels are left alone.
func (s *Session) Drain() {
	if s.state != sOpen {
		return
	}
	s.draining = true
	if s.x == nil || s.x.phase != phTunnel {
		s.closeAfter = true
	}
	if s.Idle() {
		if s.requests > 0 || s.h2 != nil {
			s.closeClient(false)
		} else {
			s.hdrDeadline = min(s.hdrDeadline, s.w.Now()+drainFreshGrace)
		}
	}
	s.run()
}

// exchange returns the session's Exchange, borrowing one (and its client
// buffer) if needed.
func (s *Session) exchange() *Exchange {
	if s.x == nil {
		x := s.w.Exchanges.Get()
		x.clear()
		s.x = x
		if x.in.buf == nil {
			x.in.buf = s.buffer(&x.bufs.ClientIn, lentClientIn)
		}
	}
	return s.x
}

// buffer returns the Exchange buffer *b, taking it from the worker's
// BufferPool the first time (bit names it in Exchange.lent).
func (s *Session) buffer(b *[]byte, bit uint8) []byte {
	return s.x.buffer(b, bit, s.w.Buffers, s.w.opts.BufferSize)
}

// releaseExchange gives the Exchange, and the buffers it borrowed, back to
// the pools.
func (s *Session) releaseExchange() {
	if x := s.x; x != nil {
		x.clear()
		x.giveBack(s.w.Buffers)
		s.x = nil
		s.w.Exchanges.Put(x)
	}
}

// appendClient copies client bytes into the client stream.
func (s *Session) appendClient(p []byte) int {
	x := s.x
	st := &x.in
	if len(st.buf)-st.w < len(p) {
		if shift := st.compact(); shift > 0 && x.replayOff >= 0 {
			x.replayOff -= shift
			if x.replayOff < 0 {
				x.replayOff = -1
			}
		}
	}
	n := copy(st.buf[st.w:], p)
	st.w += n
	return n
}

func (s *Session) push(a Action) {
	if s.h2 != nil {
		switch a.Kind {
		case ActSendClient:
			// The stream frames the sends from x.csends (h2stream.go).
			s.h2.wake()
			return
		case ActCloseClient:
			s.h2.sessionDone()
		}
	}
	s.q.push(a)
}

// sendClientHead queues a send of a head (in the client head buffer, or
// immutable) to the client.
func (s *Session) sendClientHead(b []byte) {
	s.x.csends.push(sendRec{data: b})
	s.push(Action{Kind: ActSendClient, Data: b})
}

// sendStream queues a send of a stream's ready bytes to side.
func (s *Session) sendStream(side Side, st *stream) {
	b := st.buf[st.r:st.ready]
	st.busy = true
	st.sendEnd = st.ready
	rec := sendRec{data: b, body: true, end: st.ready}
	if side == Client {
		s.x.csends.push(rec)
		s.push(Action{Kind: ActSendClient, Data: b})
	} else {
		s.x.usends.push(rec)
		s.push(Action{Kind: ActSendUpstream, Data: b})
	}
}

// headRoom returns the free part of the client head buffer, after the
// heads still in flight.
func (s *Session) headRoom() []byte {
	x := s.x
	if x.cliHead == nil {
		x.cliHead = s.buffer(&x.bufs.ClientHead, lentClientHead)
	}
	h := x.cliHead
	return h[x.cliUsed:x.cliUsed:cap(h)]
}

// commitHead queues h, built in headRoom, for sending; it reports false if
// h outgrew the buffer.
func (s *Session) commitHead(h []byte) bool {
	x := s.x
	if cap(h) != cap(x.cliHead)-x.cliUsed {
		return false
	}
	x.cliUsed += len(h)
	s.sendClientHead(h)
	return true
}

// closeClient asks the engine to close the client connection.
func (s *Session) closeClient(linger bool) {
	if s.state != sOpen {
		return
	}
	if x := s.x; x != nil && x.upState != upNone {
		s.closeUpstream()
	}
	s.state = sClosing
	s.push(Action{Kind: ActCloseClient, Linger: linger})
}

// abort ends the exchange at once: the upstream and the client are closed
// without a reply. status is recorded for the request.
func (s *Session) abort(status int) {
	x := s.x
	if x != nil && x.phase != phHead && x.route != nil {
		if x.status != 0 {
			status = x.status
		}
		s.observe(status)
	}
	if x != nil && x.began {
		if x.status != 0 && status != 499 {
			status = x.status
		}
		s.logEnd(status)
	}
	s.closeUpstream()
	s.closeClient(false)
}

// observe records the end of a request.
func (s *Session) observe(status int) {
	x := s.x
	if x.route == nil {
		return
	}
	m := s.w.Metrics
	m.ObserveRequest(m.Route(x.route.Stats), status, time.Duration(s.w.Now()-x.start))
}

// logEnd ends the record of the request in progress, once: its access log
// line when the log is on, its span when it is sampled. With neither it is
// a nil check and two tests.
func (s *Session) logEnd(status int) {
	x := s.x
	if x == nil || !x.began || (s.w.opts.AccessLog == nil && !x.trace.sampled) {
		return
	}
	x.began = false
	r := s.record(status)
	if x.trace.sampled {
		s.endSpan(&r)
	}
	if s.w.opts.AccessLog != nil {
		s.w.opts.AccessLog.Log(&r)
	}
}

// record describes the request in progress, ending now with status: what
// the access log writes and a sampled request's span carries.
func (s *Session) record(status int) accesslog.Record {
	x := s.x
	r := accesslog.Record{
		Start:         x.start,
		End:           s.w.Now(),
		Status:        status,
		ResponseBytes: x.respBytes,
		RequestBytes:  x.reqBytes,
		Attempts:      int(x.attempts),
		Client:        s.remote,
	}
	l := x.listener
	if l == nil {
		l = s.lref.Load()
	}
	if l != nil {
		r.Listener = l.Name
	}
	if x.route != nil {
		r.Route = x.route.Name
	}
	if x.group != nil {
		r.BackendGroup = x.group.Name
	}
	if x.attempts > 0 {
		r.Upstream = x.ep.Addr
	}
	if x.client.IsValid() && x.client != s.remote.Addr().Unmap() {
		// Taken from X-Forwarded-For (trusted hops): no port.
		r.Client = netip.AddrPortFrom(x.client, 0)
	}
	if x.logMethod > 0 {
		r.Method = x.logLine[:x.logMethod]
		r.Path = x.logLine[x.logMethod:]
		r.Protocol = x.version.String()
		if s.h2 != nil {
			r.Protocol = "HTTP/2.0"
		}
	}
	if x.hasReason {
		r.Reason = x.reason.String()
	}
	if x.trace.active {
		r.TraceID = x.trace.id
		r.Traced = true
	}
	return r
}

// setReason records why the proxy answers the request itself or fails it.
func (x *Exchange) setReason(r metrics.Reason) {
	x.reason = r
	x.hasReason = true
}

// run advances the session as far as it can, then syncs the timer.
func (s *Session) run() {
	for s.state == sOpen && s.x != nil && s.step() {
	}
	s.syncTimer()
}

// step makes progress in the current phase; it returns true when it
// changed phase and should be called again.
func (s *Session) step() bool {
	x := s.x
	switch x.phase {
	case phHead:
		return s.stepHead()
	case phLocal:
		return s.stepLocal()
	case phProxy:
		return s.stepProxy()
	case phAuth:
		return s.stepAuth()
	case phTunnel:
		s.stepTunnel()
	case phHello:
		s.stepHello()
	}
	return false
}

// syncTimer arms the session's timer on the earliest pending deadline.
//
// The deadline of a wait for progress moves with every byte, so it is
// armed lazily: while the armed deadline is such a wait's and not later
// than the current one, it is left alone, fires early, and Timer arms the
// current one. A connection moving bytes thus touches its timer about once
// per timeout rather than once per event.
func (s *Session) syncTimer() {
	var d int64
	prog := false
	if s.state == sOpen {
		x := s.x
		switch {
		case x == nil || x.phase == phHead || x.phase == phHello || x.phase == phHandshake:
			d = s.hdrDeadline
		case x.phase == phProxy:
			d = earliest(x.reqDeadline, x.tryDeadline)
			if x.upState == upBackoff {
				d = earliest(d, x.backoffUntil)
			}
			if x.upState == upPending {
				d = earliest(d, x.pollAt)
			}
		case x.phase == phAuth:
			d = earliest(x.reqDeadline, x.authDeadline)
		}
		if x != nil {
			w, t := s.progressWait()
			if w != x.wait {
				// A new wait starts now.
				x.wait = w
				x.moved = s.coarse()
			}
			if w != waitNone {
				if p := x.moved + t; d == 0 || p < d {
					d, prog = p, true
				}
			}
		}
	}
	if d == s.armed || (prog && s.armedProg && s.armed != 0 && s.armed < d) {
		return
	}
	s.armed = d
	s.armedProg = prog
	s.push(Action{Kind: ActArmTimer})
}

func earliest(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0 || a < b:
		return a
	}
	return b
}

// rand returns a pseudo-random number (xorshift32).
func (s *Session) rand() uint32 {
	r := s.rng
	r ^= r << 13
	r ^= r >> 17
	r ^= r << 5
	s.rng = r
	return r
}

// finishExchange ends the current request once its response is sent, and
// moves on to the next pipelined request or to idle.
func (s *Session) finishExchange() {
	x := s.x
	s.observe(x.status)
	s.logEnd(x.status)
	if s.requests < math.MaxUint16 {
		s.requests++
	}
	if s.closeAfter || !x.reqBodyDone {
		s.closeClient(s.linger || !x.reqBodyDone)
		return
	}
	// Keep the bytes after the request (pipelined requests) at the start
	// of the client buffer.
	in := &x.in
	in.r = in.proc
	in.ready = in.proc
	in.compact()
	x.resetRequest()
	now := s.w.Now()
	lst := s.lref.Load()
	if in.w > 0 {
		x.start = now
		s.idleWait = false
		s.hdrDeadline = now + s.headTimeout(lst)
	} else {
		s.idleWait = true
		s.hdrDeadline = now + s.keepAliveTimeout(lst)
		if s.clientEOF {
			s.closeClient(false)
		}
	}
}

// stepHead parses the request head buffered so far.
func (s *Session) stepHead() bool {
	x := s.x
	in := &x.in
	if in.w == in.r {
		if s.clientEOF {
			s.closeClient(false)
		} else if x.csends.empty() && x.h2Handoff == nil {
			// (An HTTP/2 upstream state waiting for DetachUpstream keeps
			// the exchange until the engine takes it.)
			s.releaseExchange()
		}
		return false
	}
	if s.requests == 0 && s.h2 == nil && in.buf[in.r] == 'P' && s.startHTTP2() {
		return false
	}
	n, err := http1.ParseRequest(in.buf[in.r:in.w], &x.req, s.w.requestLimits(s.lref.Load()))
	if errors.Is(err, http1.ErrNeedMore) {
		if s.clientEOF {
			s.closeClient(false)
		}
		return false
	}
	if err != nil {
		status := http1.StatusOf(err)
		if status == 0 {
			status = 400
		}
		x.method = http1.MethodGet
		x.version = http1.HTTP11
		x.began = true
		x.reqBytes = int64(in.w - in.r)
		s.closeAfter = true
		s.linger = true
		s.localReply(status, metrics.ReasonBadRequest)
		return true
	}
	s.beginRequest(n)
	return true
}

// endAttempt reports the end of an attempt to the endpoint picker.
func (s *Session) endAttempt() {
	x := s.x
	if x == nil {
		return
	}
	x.release(metrics.LimitConnections)
	if x.hasEP {
		x.hasEP = false
		s.w.Endpoints.Done(x.ep)
	}
}

// failAttempt ends an attempt that failed and remembers the endpoint to
// avoid it on a retry.
func (s *Session) failAttempt() {
	s.markAvoid()
	s.endAttempt()
}

// closeUpstream closes the upstream connection, abandoning its sends.
func (s *Session) closeUpstream() {
	x := s.x
	if x == nil {
		return
	}
	switch x.upState {
	case upConnecting, upConnected:
		s.push(Action{Kind: ActCloseUpstream})
	}
	if x.upState != upNone {
		x.upState = upNone
		s.endAttempt()
	}
	s.h2Close()
	x.usends.clear()
	x.in.busy = false
}

// releaseUpstream returns the upstream connection to the pool or closes it.
func (s *Session) releaseUpstream() {
	x := s.x
	if x.upState != upConnected {
		return
	}
	if x.upBroken || x.upEOF || !x.res.KeepAlive || !x.reqBodyDone || x.up.proc < x.up.w || !x.usends.empty() {
		s.closeUpstream()
		return
	}
	if x.h2 != nil && !s.h2Release() {
		return
	}
	s.push(Action{Kind: ActReleaseUpstream})
	x.upState = upNone
	s.endAttempt()
}
