package proxy

import (
	"net/netip"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http2"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// HTTP/2 to clients.
//
// An H2Conn serves one client connection that speaks HTTP/2 (a Session
// that sees the connection preface hands the connection over with
// ActStartHTTP2). It runs the dataplane/http2 codec and maps every stream
// to an H2Stream, which is served by an ordinary Session opened with
// OpenStream: the stream's request is rewritten as an HTTP/1.1 request
// (http2.AppendRequestHTTP1, DATA as the body, chunked when the length is
// unknown) and fed to the session as if a client had sent it, and the
// session's client-bound bytes (an HTTP/1.1 response head, body and
// trailers, exactly what an HTTP/1.1 client would get) are parsed back with
// dataplane/http1 into HEADERS, DATA and trailing HEADERS frames. Routing,
// filters, retries, timeouts, mirrors, tracing, metrics and the access log
// are thus the HTTP/1.1 request path's, unchanged: there is one pipeline.
// WebSocket over HTTP/2 (RFC 8441) rides on it too: an extended CONNECT
// stream is fed as the HTTP/1.1 upgrade GET, the backend's 101 is framed
// as 200 and the tunnel's bytes as DATA both ways (h2stream.go).
//
// Each stream session has its own upstream connection and timer, which the
// engine provides as for any session (it is a session whose client is
// virtual): the engine takes new and woken streams from NextStream, gives a
// new one a Session (OpenStream) and performs its session's actions like a
// connection's, except that the session never asks to read from or write
// to the client. After handling any event of a stream session the engine
// calls Flush, so that the connection frames what the session queued.
//
// Flow control: a stream's receive window is streamWindow (128 KiB with
// the default buffers); DATA is kept in the stream's buffers until the
// session takes it, and its credit is returned only once the session no
// longer holds the bytes (they were forwarded upstream). Request trailers
// end a chunked request body as its trailer section. Response bytes are framed only as the send windows
// allow; a send of the session stays in flight meanwhile, so a stalled
// stream is ended by the session's send stall timeout while the other
// streams go on. Buffers come from the worker's BufferPool: three per
// connection (input, two output buffers written in turn) while it has
// streams or bytes in flight, none when idle, and one per stream while it
// lives (up to rxSegs while its request DATA waits for the session).

// H2Conn states.
const (
	h2Idle    uint8 = iota
	h2Open          // serving
	h2Closing       // ending the streams, then closing
	h2Closed        // ActCloseClient issued
)

// H2Conn is the sans-I/O state machine of one HTTP/2 client connection.
// The engine feeds it events (ClientData, ClientEOF, Sent, Timer, Drain)
// and performs the actions Next returns (ActSendClient, ActCloseClient,
// ActArmTimer) like a Session's; it also runs the stream sessions
// NextStream hands it. It is not safe for concurrent use.
type H2Conn struct {
	w      *Worker
	lref   *atomic.Pointer[compiled.Listener]
	lstats *metrics.ListenerCounters
	remote netip.AddrPort
	secure bool
	c      http2.Conn
	q      actionQueue

	in       []byte
	inR, inW int
	// out[cur] collects frames; out[cur^1] is in flight while sending.
	out     [2][]byte
	cur     uint8
	sending bool
	blocked bool // a stream waits for room in the output buffer
	// deferSends: sends start only from FlushSends, which the engine calls
	// once per batch of events, so that the frames of every stream that
	// progressed in the batch go out in one send.
	deferSends bool
	holding    bool

	state     uint8
	clientEOF bool
	fatal     bool // connection error: the GOAWAY goes out, then the connection closes
	dead      bool // a send failed or stalled: nothing more can be written
	draining  bool
	sni       uint16 // the connection's certificate domain (Session.sni)
	retry     bool   // windows opened or output room freed: look at every stream
	armed     int64
	idleSince int64 // when the last stream ended, 0 while streams are open
	moved     int64 // last progress of the send in flight
	drainBy   int64

	streams []*H2Stream // reused stream states
	nopen   int         // streams not yet recycled
	dirty   []*H2Stream // streams the connection must look at
	ready   []*H2Stream // streams whose session the engine must run (or open)
}

// OpenFrom starts serving the connection of s, whose session asked for
// HTTP/2 with ActStartHTTP2, with the bytes it received (pre): the listener,
// the peer, TLS and the certificate domain of the connection's server name
// (so that every stream answers misdirected requests 421) carry over. The
// engine closes s afterwards.
func (h *H2Conn) OpenFrom(s *Session, pre []byte) {
	h.Open(s.w, s.lref, s.remote, s.secure, pre)
	h.sni = s.sni
}

// Open starts serving a connection accepted on listener slot l whose
// client sent pre (the bytes a Session received before ActStartHTTP2,
// copied).
func (h *H2Conn) Open(w *Worker, l *atomic.Pointer[compiled.Listener], remote netip.AddrPort, secure bool, pre []byte) {
	streams, dirty, ready := h.streams, h.dirty[:0], h.ready[:0]
	*h = H2Conn{w: w, lref: l, remote: remote, secure: secure, state: h2Open, streams: streams, dirty: dirty, ready: ready}
	lst := l.Load()
	var maxStreams uint32
	if lst != nil {
		h.lstats = w.Metrics.Listener(lst.Stats)
		maxStreams = lst.MaxConcurrentStreams
	}
	size := w.opts.BufferSize
	// A stream's request bytes take up to rxSegs buffers: its HTTP/1.1
	// head (at most the header list limit plus the request line's few
	// bytes, in the first buffer), a window of DATA and the trailers.
	h.c.Init(http2.RoleServer, http2.Config{
		MaxConcurrentStreams: maxStreams,
		InitialWindowSize:    uint32(streamWindow(size)),
		MaxHeaderListSize:    uint32(min(w.requestLimits(lst).MaxHeaderBytes, size/2-256)),
		MaxHeaderBlockBytes:  uint32(size / 2),
		// WebSocket over HTTP/2 (RFC 8441): extended CONNECT streams
		// become HTTP/1.1 upgrades (h2stream.go).
		EnableConnectProtocol: true,
	})
	w.Metrics.ConnOpened()
	h.in = w.Buffers.GetBuffer()
	h.room()
	h.out[0] = h.c.Start(h.out[0])
	h.idleSince = w.Now()
	h.inW = copy(h.in, pre)
	h.w.Metrics.ClientBytes(h.lstats, len(pre), 0)
	h.process()
	h.run()
}

// Close releases the connection once the engine has closed it (after
// ActCloseClient, or on its own initiative, having closed the stream
// sessions first). It can then be opened again.
func (h *H2Conn) Close() {
	if h.state == h2Idle {
		return
	}
	for _, st := range h.streams {
		if st.used {
			if st.s != nil {
				st.s.h2 = nil
				st.s = nil
			}
			st.recycle()
		}
	}
	for _, b := range [...][]byte{h.in, h.out[0], h.out[1]} {
		if b != nil {
			h.w.Buffers.PutBuffer(b[:cap(b)])
		}
	}
	h.w.Metrics.ConnClosed()
	streams := h.streams
	*h = H2Conn{streams: streams, dirty: h.dirty[:0], ready: h.ready[:0]}
}

// Next returns the next action to perform, in order.
func (h *H2Conn) Next() (Action, bool) { return h.q.pop() }

// Deadline returns the armed timer deadline, 0 when none.
func (h *H2Conn) Deadline() int64 { return h.armed }

// WantClientData reports whether the engine should receive from the client.
func (h *H2Conn) WantClientData() bool {
	return h.state == h2Open && !h.clientEOF && !h.fatal && (h.in == nil || h.inW < len(h.in) || h.inR > 0)
}

// Actions reports whether actions are queued (Next would return one).
func (h *H2Conn) Actions() bool { return h.q.size > 0 }

// Sending reports whether a send to the client is in flight.
func (h *H2Conn) Sending() bool { return h.sending }

// DeferSends makes the connection hold its output until FlushSends (on)
// or send it as soon as it can (off, the default). An engine that handles
// events in batches turns it on and calls FlushSends after each batch for
// the connections whose SendReady is set: one send then carries the frames
// of all the streams that progressed in the batch.
func (h *H2Conn) DeferSends(on bool) {
	h.deferSends, h.holding = on, on
}

// SendReady reports whether output waits for FlushSends.
func (h *H2Conn) SendReady() bool {
	return h.holding && h.state != h2Idle && h.state != h2Closed && !h.dead && !h.sending &&
		(len(h.out[h.cur]) > 0 || h.c.Pending() > 0)
}

// FlushSends starts the send of the output held (DeferSends).
func (h *H2Conn) FlushSends() {
	if h.state == h2Idle {
		return
	}
	h.holding = false
	h.run()
	h.holding = h.deferSends
}

// Streams returns the number of streams not yet finished.
func (h *H2Conn) Streams() int { return h.nopen }

// NextStream returns a stream whose session the engine must run: one that
// has no session yet (Session returns nil: the engine opens one with
// OpenStream) or whose session got events from the connection and may
// have actions queued. It returns nil when there is none.
func (h *H2Conn) NextStream() *H2Stream {
	for len(h.ready) > 0 {
		st := h.ready[0]
		copy(h.ready, h.ready[1:])
		h.ready[len(h.ready)-1] = nil
		h.ready = h.ready[:len(h.ready)-1]
		st.inReady = false
		if !st.used {
			continue
		}
		if st.s == nil && !st.opened {
			if st.respEnd {
				// Reset before it got a session.
				st.recycle()
				h.run()
				continue
			}
			st.opened = true
		}
		return st
	}
	return nil
}

// Flush lets the connection act on what its stream sessions did since:
// frame their responses, feed them more of their requests, return credit.
// The engine calls it after handling events of stream sessions.
func (h *H2Conn) Flush() {
	if h.state != h2Idle {
		h.run()
	}
}

// ClientData hands the connection bytes received from the client, like
// Session.ClientData.
func (h *H2Conn) ClientData(p []byte) int {
	if h.state != h2Open || h.clientEOF || h.fatal {
		return len(p)
	}
	if h.in == nil {
		h.in = h.w.Buffers.GetBuffer()
	}
	if len(h.in)-h.inW < len(p) && h.inR > 0 {
		h.inW = copy(h.in, h.in[h.inR:h.inW])
		h.inR = 0
	}
	n := copy(h.in[h.inW:], p)
	h.inW += n
	h.w.Metrics.ClientBytes(h.lstats, n, 0)
	h.process()
	h.run()
	return n
}

// ClientEOF reports that the client closed its side of the connection (or
// that reading from it failed): the streams are ended.
func (h *H2Conn) ClientEOF() {
	if h.state != h2Open || h.clientEOF {
		return
	}
	h.clientEOF = true
	h.closeConn()
	h.run()
}

// Sent reports the completion of the connection's send in flight.
func (h *H2Conn) Sent(n int, err error) {
	if h.state == h2Idle || !h.sending {
		return
	}
	h.sending = false
	o := &h.out[h.cur^1]
	if err == nil && n < len(*o) {
		err = ErrShortSend
	}
	*o = (*o)[:0]
	if err != nil {
		h.dead = true
		h.closeConn()
		h.run()
		return
	}
	h.w.Metrics.ClientBytes(h.lstats, 0, n)
	h.moved = h.w.Now()
	h.retry = true
	h.run()
}

// SendProgress reports that the send in flight wrote part of its bytes.
func (h *H2Conn) SendProgress() {
	if h.sending {
		h.moved = h.w.Now()
	}
}

// Timer reports that the armed deadline has passed.
func (h *H2Conn) Timer(now int64) {
	if h.state == h2Idle {
		return
	}
	h.armed = 0
	switch {
	case h.state != h2Open:
	case h.sending && now >= h.moved+h.sendStall():
		h.w.Metrics.Timeout(metrics.TimeoutSendStall)
		h.dead = true
		h.closeConn()
	case h.drainBy != 0 && now >= h.drainBy:
		h.closeConn()
	case h.nopen == 0 && h.idleSince != 0 && now >= h.idleSince+h.keepAlive():
		h.w.Metrics.Timeout(metrics.TimeoutKeepAliveIdle)
		h.goAway()
		h.closeConn()
	}
	h.run()
}

// Drain asks the connection to finish (a configuration change, a
// shutdown): a graceful GOAWAY stops new streams, those in flight finish,
// then the connection closes.
func (h *H2Conn) Drain() {
	if h.state != h2Open || h.draining {
		return
	}
	h.draining = true
	h.drainBy = h.w.Now() + h.keepAlive()
	if h.room() >= 64 {
		o := &h.out[h.cur]
		*o = h.c.Shutdown(*o)
	} else {
		h.goAway()
	}
	h.run()
}

// Shed closes the connection if it is idle (no stream open, nothing
// buffered or in flight), as a worker over its memory budget does, with a
// GOAWAY, and reports whether it did.
func (h *H2Conn) Shed() bool {
	if h.state != h2Open || h.nopen != 0 || h.sending || h.inR != h.inW {
		return false
	}
	h.goAway()
	h.closeConn()
	h.run()
	return true
}

// goAway queues a GOAWAY (NO_ERROR) naming the last stream opened.
func (h *H2Conn) goAway() {
	if h.room() >= 32 {
		o := &h.out[h.cur]
		*o = h.c.GoAway(*o, http2.ErrCodeNo, nil)
	}
}

func (h *H2Conn) keepAlive() int64 {
	if l := h.lref.Load(); l != nil && l.Timeouts.KeepAliveIdle > 0 {
		return int64(l.Timeouts.KeepAliveIdle)
	}
	return int64(h.w.opts.IdleTimeout)
}

func (h *H2Conn) sendStall() int64 {
	if l := h.lref.Load(); l != nil && l.Timeouts.SendStall > 0 {
		return int64(l.Timeouts.SendStall)
	}
	return int64(h.w.opts.SendStallTimeout)
}

// process runs the codec over the buffered input.
func (h *H2Conn) process() {
	for h.state == h2Open && !h.fatal {
		ev, n, err := h.c.Next(h.in[h.inR:h.inW])
		h.inR += n
		if err != nil {
			// The codec queued the GOAWAY: send it, then close.
			h.fatal = true
			h.closeConn()
			break
		}
		if n == 0 {
			break
		}
		switch ev.Kind {
		case http2.EventHeaders:
			h.openStream(&ev)
		case http2.EventData:
			if st := h.find(ev.StreamID); st != nil {
				st.data(ev.Data, ev.EndStream)
			} else {
				h.c.Consume(ev.StreamID, len(ev.Data))
			}
		case http2.EventTrailers:
			if st := h.find(ev.StreamID); st != nil {
				st.trailers(&ev)
			}
		case http2.EventReset:
			if st := h.find(ev.StreamID); st != nil {
				st.peerReset()
			}
		case http2.EventWindowUpdate, http2.EventSettings:
			h.retry = true
		}
	}
	if h.inR == h.inW {
		h.inR, h.inW = 0, 0
	}
}

// find returns the open stream id, nil if none.
func (h *H2Conn) find(id uint32) *H2Stream {
	for _, st := range h.streams {
		if st.used && st.id == id && (!st.respEnd || st.halfOpen) {
			return st
		}
	}
	return nil
}

// openStream starts serving a request.
func (h *H2Conn) openStream(ev *http2.Event) {
	var st *H2Stream
	for _, c := range h.streams {
		if !c.used {
			st = c
			break
		}
	}
	if st == nil {
		st = &H2Stream{}
		h.streams = append(h.streams, st)
	}
	st.start(h, ev)
	h.nopen++
	h.idleSince = 0
	if st.respEnd {
		st.recycle()
		return
	}
	h.markReady(st)
}

func (h *H2Conn) markDirty(st *H2Stream) {
	if !st.inDirty {
		st.inDirty = true
		h.dirty = append(h.dirty, st)
	}
}

func (h *H2Conn) markReady(st *H2Stream) {
	if !st.inReady {
		st.inReady = true
		h.ready = append(h.ready, st)
	}
}

// room returns the free bytes of the output buffer being filled, taking
// one from the pool if the connection let go of its buffers.
func (h *H2Conn) room() int {
	o := &h.out[h.cur]
	if *o == nil {
		*o = h.w.Buffers.GetBuffer()[:0]
	}
	return cap(*o) - len(*o)
}

// releaseIdle gives the connection's buffers back to the pool while no
// stream is open and nothing is buffered or in flight: an idle HTTP/2
// connection, like an idle HTTP/1.1 one, holds no buffer.
func (h *H2Conn) releaseIdle() {
	if h.nopen != 0 || h.sending || h.inR != h.inW || h.c.Pending() != 0 || len(h.out[h.cur]) != 0 {
		return
	}
	if h.in != nil {
		h.w.Buffers.PutBuffer(h.in)
		h.in = nil
		h.inR, h.inW = 0, 0
	}
	for i := range h.out {
		if b := h.out[i]; b != nil {
			h.w.Buffers.PutBuffer(b[:cap(b)])
			h.out[i] = nil
		}
	}
}

// closeConn ends every stream and closes the connection once they are
// gone and the frames queued are out.
func (h *H2Conn) closeConn() {
	if h.state != h2Open {
		return
	}
	h.state = h2Closing
	for _, st := range h.streams {
		if st.used {
			st.abort()
		}
	}
}

// run services the streams that need it, sends what is ready, closes when
// done and arms the timer.
func (h *H2Conn) run() {
	for {
		if h.retry {
			h.retry = false
			h.blocked = false
			for _, st := range h.streams {
				if st.used {
					h.markDirty(st)
				}
			}
		}
		for len(h.dirty) > 0 {
			st := h.dirty[len(h.dirty)-1]
			h.dirty[len(h.dirty)-1] = nil
			h.dirty = h.dirty[:len(h.dirty)-1]
			st.inDirty = false
			if st.used {
				st.service()
			}
		}
		if !h.flushOut() {
			break
		}
	}
	if h.state == h2Open && h.draining && h.c.Done() && !h.sending && len(h.out[h.cur]) == 0 && h.c.Pending() == 0 {
		h.closeConn()
	}
	if h.state == h2Closing && h.nopen == 0 && (h.dead || !h.sending && len(h.out[h.cur]) == 0 && h.c.Pending() == 0) {
		h.state = h2Closed
		h.q.push(Action{Kind: ActCloseClient, Linger: h.fatal && !h.dead && !h.clientEOF})
	}
	if h.state == h2Open {
		h.releaseIdle()
	}
	h.syncTimer()
}

// flushOut appends the codec's control frames and starts a send when none
// is in flight; it reports whether the output buffer changed hands (so
// blocked streams may go on).
func (h *H2Conn) flushOut() bool {
	if h.state == h2Closed || h.dead {
		return false
	}
	o := &h.out[h.cur]
	if p := h.c.Pending(); p > 0 && h.room() >= p {
		*o = h.c.AppendPending(*o)
	}
	if h.sending || len(*o) == 0 || h.holding {
		return false
	}
	h.sending = true
	h.moved = h.w.Now()
	h.q.push(Action{Kind: ActSendClient, Data: *o})
	h.cur ^= 1
	if h.blocked {
		h.retry = true
		return true
	}
	return false
}

// syncTimer arms the timer on the earliest deadline.
func (h *H2Conn) syncTimer() {
	var d int64
	if h.state == h2Open {
		if h.sending {
			d = h.moved + h.sendStall()
		}
		if h.nopen == 0 && h.idleSince != 0 {
			d = earliest(d, h.idleSince+h.keepAlive())
		}
		d = earliest(d, h.drainBy)
	}
	if d == h.armed {
		return
	}
	h.armed = d
	h.q.push(Action{Kind: ActArmTimer})
}

// streamEnded is called when a stream is recycled.
func (h *H2Conn) streamEnded() {
	h.nopen--
	if h.nopen == 0 {
		// The codec keeps its buffers (http2.Conn.ReleaseMemory would
		// make the next stream allocate them again).
		h.idleSince = h.w.Now()
	}
}

// startHTTP2 checks a new connection's first bytes for the HTTP/2 preface
// (on a listener serving HTTP/2) and hands the connection over when they
// are; it reports whether stepHead should wait (for more bytes, or for the
// engine).
func (s *Session) startHTTP2() bool {
	l := s.lref.Load()
	if l == nil || !l.HTTP2 {
		return false
	}
	in := &s.x.in
	switch http2.MatchPreface(in.buf[in.r:in.w]) {
	case http2.PrefaceNeedMore:
		if s.clientEOF {
			s.closeClient(false)
		}
		return true
	case http2.PrefaceYes:
		s.state = sClosing
		s.q.push(Action{Kind: ActStartHTTP2, Data: in.buf[in.r:in.w]})
		return true
	}
	return false
}

// grpcReply reports whether a local reply with status goes to a gRPC
// client over HTTP/2, which reads the outcome from grpc-status.
func (s *Session) grpcReply(status int) bool {
	return s.h2 != nil && s.h2.grpc && status >= 300
}

// appendGRPCStatus appends the fields of a trailers-only gRPC response
// answering with HTTP status (the gRPC mapping of HTTP statuses).
func appendGRPCStatus(h []byte, status int) []byte {
	code := "2" // UNKNOWN
	switch status {
	case 400:
		code = "13" // INTERNAL
	case 401:
		code = "16" // UNAUTHENTICATED
	case 403:
		code = "7" // PERMISSION_DENIED
	case 404:
		code = "12" // UNIMPLEMENTED
	case 429, 502, 503, 504:
		code = "14" // UNAVAILABLE
	}
	h = append(h, "Content-Type: application/grpc\r\ngrpc-status: "...)
	h = append(h, code...)
	h = append(h, "\r\ngrpc-message: "...)
	h = append(h, statusText(status)...)
	return append(h, "\r\n"...)
}
