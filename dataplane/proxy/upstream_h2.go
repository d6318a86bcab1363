package proxy

import (
	"errors"
	"strconv"
	"sync"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/http2"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// HTTP/2 to upstreams (h2c with prior knowledge).
//
// A backend group with protocol H2C (compiled.Group.H2C) gets its requests
// as HTTP/2 streams, and nothing above the upstream boundary knows: the
// Session builds the HTTP/1.1 request head and reads the request body as it
// does for any upstream, and parses an HTTP/1.1 response. The adapter here
// sits in between:
//
//   - sends: the upstream head (Exchange.upHead) becomes a HEADERS block
//     (:method, :scheme http, :authority from Host, :path; the fields that
//     are connection-specific in HTTP/2 dropped, te kept only as
//     "trailers"), the request body DATA frames within the flow-control
//     windows (a chunked body is de-chunked, its trailer section becomes
//     trailing HEADERS), END_STREAM at the end. The frames are written into
//     a buffer lent by the worker's BufferPool, which the sends refer to
//     until Sent; request body bytes are copied there, so the client stream
//     moves on as soon as they are framed;
//   - receives: the upstream bytes go into a second lent buffer and through
//     http2.Conn; the response HEADERS become an HTTP/1.1 head in the
//     upstream stream (a body of unknown length framed chunked), DATA its
//     body, trailing HEADERS chunked trailers, and the Session's response
//     path takes over. Body credit goes back to the peer (Consume) once the
//     bytes are in the upstream stream, so the windows follow the client;
//   - failures: RST_STREAM, a connection error or a GOAWAY that cuts the
//     stream off after it was processed end the attempt like an upstream
//     reset (retry or 502, or the client closed mid-response). A stream the
//     peer refused (REFUSED_STREAM, or above a GOAWAY's last stream id) was
//     not processed: it is retried like a failed connect, whatever its
//     method, as the route's policy allows;
//   - connections: a new connection starts with the client preface and
//     SETTINGS; one stream at a time runs on a connection, and once it has
//     ended both ways the connection goes back to the engine's keep-alive
//     pool with its HPACK and flow-control state (UpstreamState), unless
//     the peer sent GOAWAY or bytes are left over. A response complete by
//     its content-length whose END_STREAM has not arrived yet is reset
//     (CANCEL) so that the connection can be reused.
//
// The lent buffers go back when the connection is released or closed: a
// pooled connection holds its UpstreamState only (the http2.Conn and its
// HPACK tables). Nothing allocates per request once the pools are warm.

// h2Config is the configuration of upstream HTTP/2 connections.
var h2Config = http2.Config{MaxConcurrentStreams: 1}

// h2FrameRoom is what the receive buffer must hold: a whole frame of the
// size this end advertises.
const h2FrameRoom = http2.FrameHeaderLen + http2.MinMaxFrameSize

// UpstreamState is the protocol state of an upstream connection that
// outlives the session using it: for an H2C group's connection the HTTP/2
// connection state (HPACK tables, windows, stream ids). Engines keep it
// with a pooled connection: they take it with Session.DetachUpstream when
// they perform ActReleaseUpstream, give it back with Session.AttachUpstream
// before reporting UpstreamConnected(true, nil) for that connection, and
// call Free when they close the connection while it is pooled. HTTP/1.1
// connections have none (nil).
type UpstreamState struct {
	conn http2.Conn

	// Buffers lent by the worker while a session uses the connection: in
	// receives frames (in[inR:inW] not processed yet), out holds the frames
	// written (out[:outQ] queued for sending, out[outQ:outW] not yet).
	in, out    []byte
	inLent     bool // in came from the BufferPool (else it is kept here)
	outLent    bool
	inR, inW   int
	outQ, outW int

	// The stream in progress.
	id         uint32
	streamOpen bool // the stream exists (until it ends both ways or fails)
	reqEnd     bool // END_STREAM sent
	respEnd    bool // END_STREAM received (or the stream was reset by this end)
	gotHead    bool // the final response head was translated
	chunked    bool // the response body is written to the client stream chunked
	noBody     bool // the response has no body (HEAD, 204, 304): DATA is dropped
	rest       []byte
	restEnd    bool // rest ends the stream
	refused    bool // the stream could not be opened (GOAWAY received)
	headWait   bool // a head waits for the upstream stream to empty
	goAway     bool // the peer sent GOAWAY: no new streams
	broken     bool // a connection error: the connection must be closed
	req        http1.Request
	dec        chunkDecoder
	trail      []byte // the request's chunked trailer section

	// On a link (upstream_h2link.go): the connection is link's, the rest
	// is the stream's.
	link      *H2Link
	linkRes   uint8 // an outcome the link found (h2Refused, h2Failed, h2BadResponse)
	queued    bool  // in link.ready
	wantRoom  bool  // waits for room in the link's output buffer
	hold      []byte
	holdR     int
	holdW     int
	holdEnd   bool   // END_STREAM follows the held DATA
	trailHeld bool   // rtrail waits for the held DATA
	rtrail    []byte // held response trailers, chunked form
}

// c returns the connection state of the stream: its link's or its own.
func (st *UpstreamState) c() *http2.Conn {
	if st.link != nil {
		return &st.link.conn
	}
	return &st.conn
}

var upstreamStates = sync.Pool{New: func() any { return new(UpstreamState) }}

// Free releases a pooled connection's state when the engine closes the
// connection. It is nil-safe.
func (st *UpstreamState) Free() {
	if st == nil {
		return
	}
	st.rest, st.link, st.hold = nil, nil, nil
	upstreamStates.Put(st)
}

// IdleData hands the state the bytes its connection received while
// pooled. Control frames (SETTINGS, PING, WINDOW_UPDATE) are taken in and
// the connection stays usable (true): the acknowledgements they call for
// go out with the next request. Anything else (GOAWAY, a partial frame, a
// connection error) means the connection must be closed (false).
func (st *UpstreamState) IdleData(p []byte) bool {
	if st == nil || st.broken || st.goAway {
		return false
	}
	for len(p) > 0 {
		ev, n, err := st.conn.Next(p)
		if err != nil || n == 0 {
			return false
		}
		p = p[n:]
		switch ev.Kind {
		case http2.EventNone, http2.EventSettings, http2.EventWindowUpdate, http2.EventPingAck:
		default:
			return false
		}
	}
	return true
}

// DetachUpstream returns the state of the upstream connection the last
// ActReleaseUpstream handed back (nil for an HTTP/1.1 connection); the
// session forgets it. See UpstreamState.
func (s *Session) DetachUpstream() *UpstreamState {
	x := s.x
	if x == nil || x.h2Handoff == nil {
		return nil
	}
	st := x.h2Handoff
	x.h2Handoff = nil
	if s.state == sOpen && x.phase == phHead && x.in.w == x.in.r && x.csends.empty() && !s.clientEOF {
		// The connection went idle while the state waited for the engine.
		s.releaseExchange()
	}
	return st
}

// AttachUpstream hands the session the state of the pooled connection the
// engine is about to report with UpstreamConnected(true, nil). See
// UpstreamState.
func (s *Session) AttachUpstream(st *UpstreamState) {
	x := s.x
	if x == nil {
		st.Free()
		return
	}
	x.h2Handoff.Free()
	x.h2Handoff = st
}

// h2Connected sets up the HTTP/2 side of a connection for the exchange:
// the pooled state st, or a new connection (st nil). It reports false when
// a pooled connection does not speak the group's protocol: the session
// then asks for a new one.
func (s *Session) h2Connected(reused bool) bool {
	x := s.x
	if x.h2Link != nil {
		s.h2LinkConnected()
		return true
	}
	st := x.h2Handoff
	x.h2Handoff = nil
	want := x.phase == phProxy && x.group != nil && x.group.H2C
	if !reused && st != nil {
		st.Free()
		st = nil
	}
	if reused && (st != nil) != want {
		// A pooled connection of the other protocol (the group's protocol
		// changed, or another group shares the endpoint): use a new one.
		st.Free()
		s.push(Action{Kind: ActCloseUpstream})
		x.fresh = true
		s.push(Action{Kind: ActConnectUpstream})
		return false
	}
	if !want {
		return true
	}
	fresh := st == nil
	if fresh {
		st = upstreamStates.Get().(*UpstreamState)
		st.conn.Init(http2.RoleClient, h2Config)
		st.goAway, st.broken = false, false
	}
	x.h2 = st
	s.h2Buffer(&st.out, &st.outLent, s.w.opts.BufferSize)
	s.h2Buffer(&st.in, &st.inLent, h2FrameRoom)
	st.inR, st.inW, st.outQ, st.outW = 0, 0, 0, 0
	st.resetStream()
	if fresh {
		st.outW = len(st.conn.Start(st.out[:0]))
	}
	return true
}

// h2Buffer sets *b to a buffer of at least size bytes: one from the
// worker's BufferPool when its buffers are large enough (*lent set), else
// one of the state's own, kept from one use to the next.
func (s *Session) h2Buffer(b *[]byte, lent *bool, size int) {
	if p := s.w.Buffers; p != nil && s.w.opts.BufferSize >= size {
		buf := p.GetBuffer()
		*b, *lent = buf[:cap(buf)], true
		return
	}
	*lent = false
	if len(*b) < size {
		*b = make([]byte, max(size, s.w.opts.BufferSize))
	}
}

func (st *UpstreamState) resetStream() {
	st.id, st.streamOpen, st.reqEnd, st.respEnd = 0, false, false, false
	st.gotHead, st.chunked, st.noBody, st.refused = false, false, false, false
	st.rest, st.restEnd = nil, false
	st.dec = chunkDecoder{}
	st.trail = st.trail[:0]
}

// h2Drop gives back the buffers the exchange lent the connection's state.
func (s *Session) h2Drop(st *UpstreamState) {
	if p := s.w.Buffers; p != nil {
		if st.outLent {
			p.PutBuffer(st.out)
			st.out, st.outLent = nil, false
		}
		if st.inLent {
			p.PutBuffer(st.in)
			st.in, st.inLent = nil, false
		}
	}
	st.rest = nil
	st.inR, st.inW, st.outQ, st.outW = 0, 0, 0, 0
}

// h2Close forgets the connection's state when the connection is closed.
// A frame buffer that sends in flight may still refer to stays with the
// exchange until it goes back to the pool (the engine may still be
// reading it).
func (s *Session) h2Close() {
	x := s.x
	if x.h2Link != nil || x.h2 != nil && x.h2.link != nil {
		s.h2LinkDetach()
		if st := x.h2; st != nil {
			x.h2 = nil
			s.w.putLinkState(st)
		}
		return
	}
	if st := x.h2; st != nil {
		x.h2 = nil
		if !x.usends.empty() && st.outLent && x.h2Spare == nil {
			x.h2Spare, st.out, st.outLent = st.out, nil, false
		}
		s.h2Drop(st)
		st.Free()
	}
}

// h2Data takes bytes received on an H2C connection.
func (s *Session) h2Data(p []byte) int {
	x := s.x
	st := x.h2
	x.moved = s.coarse()
	if st.inR == st.inW {
		st.inR, st.inW = 0, 0
	} else if len(st.in)-st.inW < len(p) && st.rest == nil && st.inR > 0 {
		st.inW = copy(st.in, st.in[st.inR:st.inW])
		st.inR = 0
	}
	n := copy(st.in[st.inW:], p)
	st.inW += n
	s.run()
	return n
}

// wantData reports whether an H2C connection should be read.
func (st *UpstreamState) wantData() bool {
	if st.link != nil {
		return false // the link reads the connection
	}
	if st.broken || (st.respEnd && st.rest == nil && !st.restEnd) {
		return false // nothing more to read for this exchange
	}
	return st.inW < len(st.in) || (st.inR > 0 && st.rest == nil)
}

// Outcomes of h2Read.
const (
	h2OK uint8 = iota
	h2Refused
	h2Failed
	h2BadResponse
)

// h2Step runs the HTTP/2 side of the exchange: frames received become
// response bytes, the request becomes frames. It reports true when the
// attempt ended (a refused stream retried or failed).
func (s *Session) h2Step() bool {
	x := s.x
	st := x.h2
	var r uint8
	if st.link != nil {
		r, st.linkRes = st.linkRes, h2OK
		if r == h2OK {
			s.h2LinkDrain()
		}
		if l := st.link; l.conn.Pending() > 0 {
			l.markDirty() // credit given back as the hold drained
		}
	} else {
		r = s.h2Read()
	}
	switch r {
	case h2Refused:
		s.h2Refused()
		return true
	case h2Failed:
		st.broken = true
		x.upEOF = true
		x.upBroken = true
	case h2BadResponse:
		s.report(compiled.OutcomeServerError)
		s.markAvoid()
		s.closeUpstream()
		s.fail(502, metrics.ReasonBadResponse)
		return true
	}
	if !x.upBroken {
		if !s.h2Send() {
			s.closeUpstream()
			s.fail(502, metrics.ReasonBadRequest)
			return true
		}
		if st.refused {
			s.h2Refused()
			return true
		}
	}
	return false
}

// h2Refused ends an attempt whose stream the upstream did not process
// (REFUSED_STREAM, or GOAWAY below its id): nothing reached the backend's
// application, so the request is retried as after a failed connect, on
// the same endpoint if need be (refusals are transient), whatever its
// method.
func (s *Session) h2Refused() {
	s.closeUpstream()
	if !s.retry(causeConnect, 0) {
		s.fail(502, metrics.ReasonUpstreamReset)
	}
}

// h2Read processes the frames received, as far as the upstream stream has
// room for what they become.
func (s *Session) h2Read() uint8 {
	x := s.x
	st := x.h2
	up := &x.up
	if up.buf == nil {
		up.buf = s.buffer(&x.bufs.UpstreamIn, lentUpstreamIn)
	}
	st.headWait = false
	for !st.broken {
		if st.rest != nil || st.restEnd {
			if !s.h2Body() {
				return h2OK
			}
			continue
		}
		in := st.in[st.inR:st.inW]
		if len(in) == 0 {
			break
		}
		if len(in) >= http2.FrameHeaderLen {
			if t := http2.FrameType(in[3]); (t == http2.FrameHeaders || t == http2.FrameContinuation) && !s.h2HeadRoom() {
				// A head is written into an empty upstream stream: wait
				// until the response path took the bytes before it.
				st.headWait = true
				return h2OK
			}
		}
		ev, n, err := st.conn.Next(in)
		st.inR += n
		if err != nil {
			return h2Failed
		}
		if n == 0 {
			break
		}
		if r := s.h2Event(&ev); r != h2OK {
			return r
		}
	}
	if st.inR == st.inW {
		st.inR, st.inW = 0, 0
	}
	return h2OK
}

// h2Again reports whether the response path made room for a head that
// waits (an interim response parsed, say), so that the exchange steps
// again.
func (s *Session) h2Again() bool {
	x := s.x
	return x.h2 != nil && x.h2.headWait && x.upState == upConnected && x.up.r == x.up.w
}

// h2HeadRoom reports whether a head may be written into the upstream
// stream: only when it is empty, so that the whole buffer is free.
func (s *Session) h2HeadRoom() bool {
	up := &s.x.up
	if up.r != up.w {
		return false
	}
	if !up.busy {
		up.r, up.ready, up.proc, up.w = 0, 0, 0, 0
	}
	return true
}

// h2Event acts on one event of the upstream connection.
func (s *Session) h2Event(ev *http2.Event) uint8 {
	x := s.x
	st := x.h2
	ours := st.streamOpen && ev.StreamID == st.id
	switch ev.Kind {
	case http2.EventHeaders:
		if !ours {
			return h2OK
		}
		x.upGotBytes = true
		if ev.EndStream {
			st.respEnd = true
		}
		if !s.h2Head(ev) {
			return h2BadResponse
		}
	case http2.EventData:
		if !ours {
			st.conn.Consume(ev.StreamID, len(ev.Data))
			return h2OK
		}
		st.rest, st.restEnd = ev.Data, ev.EndStream
	case http2.EventTrailers:
		if !ours {
			return h2OK
		}
		st.respEnd = true
		if st.chunked && !st.noBody {
			if !s.h2Trailers(ev.Header) {
				return h2BadResponse
			}
		}
	case http2.EventReset:
		if !ours {
			return h2OK
		}
		st.streamOpen = false
		if ev.Code == http2.ErrCodeRefusedStream && !x.upGotBytes {
			return h2Refused
		}
		return h2Failed
	case http2.EventGoAway:
		st.goAway = true
		if st.streamOpen && st.id > ev.LastStreamID {
			// Not processed by the peer (RFC 9113 §6.8): safe to retry.
			st.streamOpen = false
			if !x.upGotBytes {
				return h2Refused
			}
			return h2Failed
		}
	}
	return h2OK
}

// h2Head writes the HTTP/1.1 equivalent of a response HEADERS into the
// (empty) upstream stream. It reports false when it does not fit.
func (s *Session) h2Head(ev *http2.Event) bool {
	x := s.x
	st := x.h2
	up := &x.up
	if ev.Status == 101 {
		return false // no upgrades over HTTP/2 (RFC 9113 §8.6)
	}
	dst := up.buf[up.w:up.w:len(up.buf)]
	room := cap(dst)
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(ev.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, statusText(ev.Status)...)
	dst = append(dst, "\r\n"...)
	if ev.Status >= 200 {
		st.gotHead = true
		st.noBody = x.method == http1.MethodHead || ev.Status == 204 || ev.Status == 304
		// A body of unknown length, or one announcing trailers (which
		// HTTP/1.1 carries only after chunks), is framed chunked.
		_, trailers := ev.Header.Get("trailer")
		st.chunked = !st.noBody && !ev.EndStream && (ev.ContentLength < 0 || trailers)
	}
	dst = appendH2Fields(dst, ev.Header, st.chunked)
	switch {
	case st.chunked:
		dst = append(dst, "transfer-encoding: chunked\r\n"...)
	case st.gotHead && !st.noBody && ev.EndStream && ev.ContentLength < 0:
		dst = append(dst, "content-length: 0\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if cap(dst) != room {
		if x.large == nil && s.w.largeSize > len(up.buf) {
			// A head larger than the buffer: the worker's large buffers,
			// as for an HTTP/1.1 response head (the limits apply when it
			// is parsed).
			s.growForResponseHead()
			return s.h2Head(ev)
		}
		return false
	}
	up.w += len(dst)
	return true
}

// appendH2Fields appends a header list's regular fields as field lines,
// without content-length when the body is framed chunked.
func appendH2Fields(dst []byte, h *http2.HeaderList, chunked bool) []byte {
	for i := range h.Len() {
		name, value := h.Field(i)
		if len(name) > 0 && name[0] == ':' || chunked && string(name) == "content-length" {
			continue
		}
		dst = append(dst, name...)
		dst = append(dst, ": "...)
		dst = append(dst, value...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// h2Trailers writes the last chunk and the trailer section.
func (s *Session) h2Trailers(h *http2.HeaderList) bool {
	up := &s.x.up
	dst := up.buf[up.w:up.w:len(up.buf)]
	room := cap(dst)
	dst = append(dst, "0\r\n"...)
	dst = appendH2Fields(dst, h, false)
	dst = append(dst, "\r\n"...)
	if cap(dst) != room {
		return false
	}
	up.w += len(dst)
	return true
}

// chunkOverhead bounds the framing of one chunk: a 16-digit size, CRLF,
// CRLF.
const chunkOverhead = 20

// h2Body moves response DATA (st.rest) into the upstream stream, framed as
// chunks when the response is. It reports false when the stream is full.
func (s *Session) h2Body() bool {
	x := s.x
	st := x.h2
	up := &x.up
	if len(st.rest) > 0 {
		k := len(st.rest)
		if !st.noBody {
			free := len(up.buf) - up.w
			if free < chunkOverhead+1 {
				up.compact()
				free = len(up.buf) - up.w
			}
			if st.chunked {
				free -= chunkOverhead
			}
			if free <= 0 {
				return false
			}
			k = min(k, free)
			b := up.buf[:up.w]
			if st.chunked {
				b = strconv.AppendInt(b, int64(k), 16)
				b = append(b, "\r\n"...)
			}
			b = append(b, st.rest[:k]...)
			if st.chunked {
				b = append(b, "\r\n"...)
			}
			up.w = len(b)
		}
		st.c().Consume(st.id, k)
		st.rest = st.rest[k:]
		if len(st.rest) > 0 {
			return false
		}
	}
	st.rest = nil
	if st.restEnd {
		if st.chunked && !st.noBody {
			if len(up.buf)-up.w < 5 {
				up.compact()
				if len(up.buf)-up.w < 5 {
					return false
				}
			}
			up.w += copy(up.buf[up.w:], "0\r\n\r\n")
		}
		st.restEnd = false
		st.respEnd = true
	}
	return true
}

// h2Send writes what the request has ready as frames and queues them: the
// head, body bytes within the windows, the end of the stream, the control
// frames the connection owes. It reports false when the head does not fit
// the frame buffer.
func (s *Session) h2Send() bool {
	x := s.x
	st := x.h2
	if st.link != nil {
		if st.link.broken || x.headSent && st.reqEnd {
			return true
		}
		st.h2LinkOut()
		if !x.headSent && len(st.out)-st.outW < len(x.upHead)+64 {
			// The head may not fit behind the other streams' frames:
			// wait for the send in flight, unless the buffer is empty.
			if st.outW == 0 {
				return false
			}
			st.wantRoom = true
			return true
		}
		return s.h2SendFrames()
	}
	if x.usends.empty() && st.outQ == st.outW {
		st.outQ, st.outW = 0, 0
	}
	if x.usends.n == uint8(len(x.usends.q)) {
		return true
	}
	if x.headSent && st.reqEnd && (st.respEnd || st.headWait && st.conn.PendingAcksOnly()) {
		// The request is all sent and the exchange is over, or frames
		// received wait to be read (a trailing HEADERS waits for the
		// response path) and all the connection owes is acknowledgements:
		// they wait for the next frames this end writes, the next
		// request's at the latest (see h2Release). grpc-go sends a PING
		// with every reply, which cost a send of its own per call.
		return true
	}
	out := st.out[:st.outW]
	if n := st.conn.Pending(); n > 0 && len(st.out)-len(out) >= n {
		out = st.conn.AppendPending(out)
	}
	st.outW = len(out)
	return s.h2SendFrames()
}

// h2SendFrames writes the request's frames after st.out[:st.outW].
func (s *Session) h2SendFrames() bool {
	x := s.x
	st := x.h2
	out := st.out[:st.outW]
	if !x.headSent {
		var ok bool
		if out, ok = s.h2Headers(out); !ok {
			return false
		}
		if !st.streamOpen {
			s.h2Queue(out)
			return true // refused before it started: handled by h2Step next
		}
	}
	if st.streamOpen && !st.reqEnd {
		r := x.in.r
		out = s.h2ReqBody(out)
		if st.link != nil && x.in.r != r && s.h2 != nil {
			// The client stream's bytes are framed (copied): on a link no
			// upstream Sent follows, so the stream hears of the room now.
			s.h2.wake()
		}
	}
	if n := st.conn.Pending(); st.link == nil && n > 0 && len(st.out)-len(out) >= n {
		out = st.conn.AppendPending(out)
	}
	s.h2Queue(out)
	if l := st.link; l != nil && st.streamOpen && !st.reqEnd && x.in.pending() {
		st.wantRoom = true // more body than room or window: woken by a send or WINDOW_UPDATE
	}
	return true
}

// h2Queue queues the frames written since the last send.
func (s *Session) h2Queue(out []byte) {
	x := s.x
	st := x.h2
	if l := st.link; l != nil {
		if len(out) > len(l.out[l.cur]) {
			l.out[l.cur] = out
			l.markDirty()
		}
		st.out, st.outQ, st.outW = nil, 0, 0
		return
	}
	st.outW = len(out)
	if st.outW > st.outQ {
		b := st.out[st.outQ:st.outW]
		st.outQ = st.outW
		x.usends.push(sendRec{data: b})
		s.push(Action{Kind: ActSendUpstream, Data: b})
	}
}

// h2Headers opens the stream with the request head.
func (s *Session) h2Headers(out []byte) ([]byte, bool) {
	x := s.x
	st := x.h2
	in := &x.in
	st.req.Reset()
	lim := http1.Limits{MaxHeaderBytes: len(x.upHead), MaxHeaderCount: len(x.upHead), MaxURIBytes: len(x.upHead)}
	if _, err := http1.ParseRequest(x.upHead, &st.req, lim); err != nil {
		return out, false
	}
	r := &st.req
	b := x.upHead
	c := st.c()
	c.BeginHeaders()
	c.AddHeader(bytesOf(":method"), r.MethodSpan.Bytes(b))
	c.AddHeader(bytesOf(":scheme"), bytesOf("http"))
	c.AddHeader(bytesOf(":authority"), r.Authority.Bytes(b))
	switch r.Form {
	case http1.FormAbsolute:
		p := r.Path.Bytes(b)
		if len(p) == 0 {
			p = bytesOf("/")
		}
		if r.HasQuery {
			// The query follows the path in the target.
			p = b[r.Path.Off:r.Query.End():r.Query.End()]
		}
		c.AddHeader(bytesOf(":path"), p)
	default:
		c.AddHeader(bytesOf(":path"), r.Target.Bytes(b))
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.ID == http1.HeaderHost || f.ConnListed {
			continue
		}
		c.AddHeader(f.Name.Bytes(b), f.Value.Bytes(b))
	}
	if x.teTrailers {
		// The client accepts trailers (gRPC requires saying so); the
		// HTTP/1.1 head dropped te as a hop-by-hop field.
		c.AddHeader(bytesOf("te"), bytesOf("trailers"))
	}
	end := x.reqBodyDone && !in.pending()
	room := cap(st.out)
	id, o, err := c.WriteRequestHeaders(out, end)
	if cap(o) != room {
		// The head outgrew the frame buffer (and the append copied it).
		return out, false
	}
	x.headSent = true
	x.sentAt = s.w.Now()
	if err != nil {
		switch {
		case errors.Is(err, http2.ErrGoingAway), errors.Is(err, http2.ErrTooManyStreams), errors.Is(err, http2.ErrStreamIDsUsedUp):
			// Nothing was sent: the request goes elsewhere.
			st.goAway = true
			st.refused = true
			if st.link != nil && !errors.Is(err, http2.ErrTooManyStreams) {
				st.link.goAway = true // the link takes no more streams
			}
			return o, true
		}
		st.broken = true
		x.upBroken = true
		x.upEOF = true
		return o, true
	}
	st.id, st.streamOpen, st.reqEnd = id, true, end
	if end {
		in.r = in.ready
	}
	if x.expect {
		// An upstream took the request: let the client send the body.
		x.expect = false
		x.sentContinue = true
		s.sendClientHead(bytesOf(continueHead))
	}
	return o, true
}

// h2ReqBody frames the request body bytes ready in the client stream, within
// the flow-control windows and the room of the frame buffer, and ends the
// stream once the body is complete.
func (s *Session) h2ReqBody(out []byte) []byte {
	x := s.x
	st := x.h2
	in := &x.in
	c := st.c()
	chunked := st.req.Chunked
	for in.pending() {
		room := len(st.out) - len(out) - http2.FrameHeaderLen
		conn, strm, ok := c.SendWindow(st.id)
		if !ok {
			return out
		}
		maxData := int(min(int64(room), conn, strm, int64(c.PeerMaxFrameSize())))
		if maxData <= 0 {
			return out
		}
		var data []byte
		if chunked {
			n, d := st.dec.next(in.buf[in.r:in.ready], maxData, &st.trail)
			in.r += n
			if len(d) == 0 {
				if n == 0 {
					break
				}
				continue
			}
			data = d
		} else {
			data = in.buf[in.r:min(in.ready, in.r+maxData)]
			in.r += len(data)
		}
		end := !chunked && x.reqBodyDone && !in.pending()
		var err error
		out, _, err = c.WriteData(out, st.id, data, end)
		if err != nil {
			return out
		}
		st.reqEnd = end
	}
	if st.reqEnd || !x.reqBodyDone || in.pending() {
		return out
	}
	// The body is complete: end the stream, with the trailer section.
	if len(st.trail) > 0 {
		c.BeginHeaders()
		addTrailerFields(c, st.trail)
		room := cap(st.out)
		o, err := c.WriteHeaders(out, st.id, true)
		if cap(o) != room || err != nil {
			st.broken = true
			x.upBroken, x.upEOF = true, true
			return out
		}
		out = o
	} else {
		if len(st.out)-len(out) < http2.FrameHeaderLen {
			return out
		}
		out, _, _ = c.WriteData(out, st.id, nil, true)
	}
	st.reqEnd = true
	return out
}

// addTrailerFields adds the field lines of a chunked trailer section
// (validated by the request's body reader) to the header block.
func addTrailerFields(c *http2.Conn, t []byte) {
	for len(t) > 0 {
		i := 0
		for i < len(t) && t[i] != '\n' {
			i++
		}
		line := t[:i]
		if i < len(t) {
			t = t[i+1:]
		} else {
			t = nil
		}
		line = trimOWS(line)
		colon := 0
		for colon < len(line) && line[colon] != ':' {
			colon++
		}
		if colon == 0 || colon == len(line) {
			continue
		}
		c.AddHeader(line[:colon], trimOWS(line[colon+1:]))
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// h2Release prepares the connection of a complete exchange for the pool.
// It reports true when the session may release it (its state is then in
// Exchange.h2Handoff for DetachUpstream), false when it closed the connection or
// must wait for frames to be sent first.
func (s *Session) h2Release() bool {
	x := s.x
	st := x.h2
	if st.link != nil {
		// The stream ends (reset if the response ended first); the
		// connection stays with the link.
		s.h2LinkDetach()
		x.h2 = nil
		s.w.putLinkState(st)
		return true
	}
	if st.broken || st.goAway || st.inR != st.inW || st.rest != nil || !st.reqEnd || st.conn.Done() {
		s.closeUpstream()
		return false
	}
	if !st.respEnd {
		// Complete by its length, but END_STREAM has not come: reset the
		// stream so that the connection can carry the next one.
		out := st.conn.WriteReset(st.out[:st.outW], st.id, http2.ErrCodeCancel)
		st.respEnd = true
		st.streamOpen = false
		s.h2Queue(out)
		return false
	}
	// Control frames still owed (the PING acknowledgement and window
	// updates that came with the response: grpc-go pings with every reply
	// it sends) stay queued in the Conn and go out ahead of the next
	// request's HEADERS, in the same send, as those of a pooled connection
	// do (IdleData): a separate send per exchange cost one more syscall and
	// one more wakeup of the backend for every request.
	if !x.usends.empty() {
		return false
	}
	x.h2 = nil
	s.h2Drop(st)
	st.resetStream()
	x.h2Handoff.Free()
	x.h2Handoff = st
	return true
}

// chunkDecoder decodes a chunked request body that the request's body
// reader has validated already, keeping the trailer section.
type chunkDecoder struct {
	state     uint8
	remaining int64
	line      int // start of the trailer line being collected
}

// chunkDecoder states.
const (
	cdSize uint8 = iota
	cdExt
	cdData
	cdDataEnd
	cdTrailer
	cdDone
)

// next consumes bytes of p and returns how many, with the chunk data among
// them (at most maxData bytes, a sub-slice of p); it stops after each piece
// of data. Trailer section lines are appended to *trail.
func (d *chunkDecoder) next(p []byte, maxData int, trail *[]byte) (int, []byte) {
	i := 0
	for i < len(p) {
		ch := p[i]
		switch d.state {
		case cdSize:
			switch {
			case ch >= '0' && ch <= '9':
				d.remaining = d.remaining<<4 | int64(ch-'0')
			case ch >= 'a' && ch <= 'f':
				d.remaining = d.remaining<<4 | int64(ch-'a'+10)
			case ch >= 'A' && ch <= 'F':
				d.remaining = d.remaining<<4 | int64(ch-'A'+10)
			case ch == '\n':
				d.endSizeLine(trail)
			case ch == '\r':
			default:
				d.state = cdExt
			}
		case cdExt:
			if ch == '\n' {
				d.endSizeLine(trail)
			}
		case cdData:
			k := int(min(d.remaining, int64(len(p)-i), int64(maxData)))
			d.remaining -= int64(k)
			if d.remaining == 0 {
				d.state = cdDataEnd
			}
			return i + k, p[i : i+k]
		case cdDataEnd:
			if ch == '\n' {
				d.state = cdSize
			}
		case cdTrailer:
			*trail = append(*trail, ch)
			if ch == '\n' {
				if len(*trail)-d.line <= 2 {
					// The empty line: the end of the body.
					*trail = (*trail)[:d.line]
					d.state = cdDone
					return i + 1, nil
				}
				d.line = len(*trail)
			}
		case cdDone:
			return i, nil
		}
		i++
	}
	return i, nil
}

func (d *chunkDecoder) endSizeLine(trail *[]byte) {
	if d.remaining == 0 {
		d.state = cdTrailer
		d.line = len(*trail)
		return
	}
	d.state = cdData
}
