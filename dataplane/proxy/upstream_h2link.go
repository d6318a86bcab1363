package proxy

import (
	"github.com/flaxlb/flax/dataplane/http2"
)

// Multiplexed HTTP/2 connections to upstreams (links).
//
// An engine whose sessions of one worker run on one thread may let them
// share h2c connections: an H2Link is one connection to an endpoint that
// carries a stream for each attached session, up to LinkMaxStreams and the
// peer's SETTINGS_MAX_CONCURRENT_STREAMS. The session side is the adapter
// of upstream_h2.go with the connection taken out of it: the Session still
// writes its request as frames (into the link's output buffer, at its end)
// and reads its response as HTTP/1.1 bytes in its upstream stream; the
// link owns the socket's bytes both ways, decodes every frame in order (as
// HPACK requires) and hands each stream's events to its session at once,
// so that one slow client never stops the others' streams:
//
//   - a response head and trailers are translated into the session's
//     upstream stream, DATA too as far as it has room; DATA beyond that is
//     copied into a buffer lent to the stream (the hold), whose capacity
//     bounds the stream's receive window, and moves on as the response path
//     makes room. Credit goes back as bytes enter the upstream stream, so
//     the windows follow each client;
//   - sends: the link's two output buffers take turns, one being written
//     while the other is in flight; every session writes into the current
//     one and the engine sends it once per batch of completions, so the
//     requests of many sessions leave in one send;
//   - failures: a stream's RST_STREAM or a GOAWAY that cuts it off end that
//     session's attempt as on a connection of its own (retry or 502); a
//     connection error or EOF ends every stream's; a session that ends its
//     exchange early resets its stream (CANCEL) and the link carries on.
//
// The engine creates links (NewH2Link), feeds them what their socket
// receives (Data), sends what they queue (TakeSend, Sent), runs the
// sessions they name (TakeReady, then Session.LinkNews) and closes them
// (Fail) on EOF or an error. Sessions attach with Session.AttachLink before
// UpstreamConnected and detach themselves when they release or close the
// upstream (the engine then forgets the link for that session).

// LinkMaxStreams bounds the streams a link carries at once.
const LinkMaxStreams = 100

// LinkSet collects the links of one worker that have frames to send; the
// engine takes them once per batch of completions (TakeDirty). It also
// keeps the worker's free links: a link never moves to another worker (a
// freed one may still be in its worker's lists).
type LinkSet struct {
	dirty []*H2Link
	free  []*H2Link
}

// TakeDirty returns the links with frames to send and empties the list.
// The slice is valid until the next call.
func (ls *LinkSet) TakeDirty(dst []*H2Link) []*H2Link {
	dst = append(dst[:0], ls.dirty...)
	for _, l := range ls.dirty {
		l.dirty = false
	}
	ls.dirty = ls.dirty[:0]
	return dst
}

// H2Link is one h2c connection shared by the sessions of a worker. It is
// not safe for concurrent use.
type H2Link struct {
	conn     http2.Conn
	in       []byte
	inR, inW int
	out      [2][]byte
	cur      int    // the buffer being written; the other may be in flight
	rst      []byte // RST_STREAM frames that found out[cur] full
	sending  bool   // out[cur^1] is in flight
	set      *LinkSet
	bp       BufferPool // where out came from, nil when allocated
	dirty    bool
	streams  []*Session // attached sessions (stream open or about to be)
	ready    []*Session // sessions with news since the last TakeReady
	orphan   bool       // the engine let go of it (Orphan)
	goAway   bool       // the peer sent GOAWAY: no new streams
	broken   bool       // a connection error, EOF: every stream failed
	idleFrom int64      // when the last stream detached (engine's clock)
	// Tag is the engine's handle of the connection.
	Tag int32
}

// linkConfig is the configuration of a link's Conn for sessions whose
// upstream streams have buffers of bufSize bytes: a stream's receive window
// is what its hold can take.
func linkConfig(bufSize int) http2.Config {
	w := uint32(bufSize)
	return http2.Config{MaxConcurrentStreams: LinkMaxStreams, InitialWindowSize: w, ConnWindowSize: w * LinkMaxStreams}
}

// NewH2Link returns a link for a new connection of the worker's sessions,
// which the engine knows as tag; Start writes its preface. The worker's
// Links collects it when it has frames to send.
func (w *Worker) NewH2Link(tag int32) *H2Link {
	return newH2Link(&w.Links, w.Buffers, w.opts.BufferSize, tag)
}

func newH2Link(set *LinkSet, bp BufferPool, bufSize int, tag int32) *H2Link {
	var l *H2Link
	if n := len(set.free); n > 0 {
		l = set.free[n-1]
		set.free = set.free[:n-1]
	} else {
		l = new(H2Link)
	}
	l.conn.Init(http2.RoleClient, linkConfig(bufSize))
	if len(l.in) < 2*h2FrameRoom {
		l.in = make([]byte, 2*h2FrameRoom)
	}
	// The output buffers come from the worker's pool (the engine's send
	// memory) for the link's lifetime.
	l.bp = bp
	for i := range l.out {
		if bp != nil {
			l.out[i] = bp.GetBuffer()[:0]
		} else if cap(l.out[i]) < bufSize {
			l.out[i] = make([]byte, 0, bufSize)
		}
		l.out[i] = l.out[i][:0]
	}
	l.inR, l.inW, l.cur, l.sending, l.orphan = 0, 0, 0, false, false
	l.set, l.dirty, l.goAway, l.broken, l.idleFrom, l.Tag = set, false, false, false, 0, tag
	l.streams, l.ready, l.rst = l.streams[:0], l.ready[:0], l.rst[:0]
	return l
}

// Start queues the client preface and SETTINGS.
func (l *H2Link) Start() {
	l.out[l.cur] = l.conn.Start(l.out[l.cur])
	l.markDirty()
}

// Free recycles the link once the engine has closed its connection and no
// session is attached.
func (l *H2Link) Free() {
	for _, s := range l.streams {
		if st := l.stateOf(s); st != nil {
			st.link = nil
		}
	}
	l.streams, l.ready = l.streams[:0], l.ready[:0]
	if l.bp != nil {
		for i := range l.out {
			l.bp.PutBuffer(l.out[i][:cap(l.out[i])])
			l.out[i] = nil
		}
		l.bp = nil
	}
	if set := l.set; set != nil {
		l.set = nil
		set.free = append(set.free, l)
	}
}

// Orphan says that the engine closed the link's connection and forgot it:
// it is freed once the last session detached.
func (l *H2Link) Orphan() {
	l.orphan = true
	if len(l.streams) == 0 {
		l.Free()
	}
}

// HasRoom reports whether another session may attach.
func (l *H2Link) HasRoom() bool {
	return !l.goAway && !l.broken && len(l.streams) < int(min(LinkMaxStreams, l.conn.PeerMaxConcurrentStreams()))
}

// Streams returns the number of attached sessions.
func (l *H2Link) Streams() int { return len(l.streams) }

// IdleSince returns when the last session detached, 0 while one is
// attached.
func (l *H2Link) IdleSince() int64 {
	if len(l.streams) > 0 {
		return 0
	}
	return l.idleFrom
}

// Usable reports whether the connection may stay open for future streams.
func (l *H2Link) Usable() bool { return !l.goAway && !l.broken && !l.conn.Done() }

func (l *H2Link) markDirty() {
	if !l.dirty && l.set != nil {
		l.dirty = true
		l.set.dirty = append(l.set.dirty, l)
	}
}

// stateOf returns the stream state of an attached session that is connected
// to l, nil if it is still waiting for UpstreamConnected.
func (l *H2Link) stateOf(s *Session) *UpstreamState {
	if x := s.x; x != nil && x.h2 != nil && x.h2.link == l {
		return x.h2
	}
	return nil
}

func (l *H2Link) wake(s *Session) {
	st := s.x.h2
	if !st.queued {
		st.queued = true
		l.ready = append(l.ready, s)
	}
}

// TakeReady appends to dst the tags of the sessions with news (given to
// AttachLink) and forgets them; the engine then calls LinkNews on each.
func (l *H2Link) TakeReady(dst []int32) []int32 {
	for _, s := range l.ready {
		if st := l.stateOf(s); st != nil {
			st.queued = false
			dst = append(dst, s.x.h2Tag)
		}
	}
	l.ready = l.ready[:0]
	return dst
}

// Tags appends the tags of the attached sessions to dst.
func (l *H2Link) Tags(dst []int32) []int32 {
	for _, s := range l.streams {
		dst = append(dst, s.x.h2Tag)
	}
	return dst
}

// TakeSend returns the frames to send now, with the control frames the
// connection owes, and marks them in flight until Sent; nil when nothing
// is to go or a send is in flight.
func (l *H2Link) TakeSend() []byte {
	if l.sending {
		return nil
	}
	if n := len(l.rst); n > 0 && cap(l.out[l.cur])-len(l.out[l.cur]) >= n {
		l.out[l.cur] = append(l.out[l.cur], l.rst...)
		l.rst = l.rst[:0]
	}
	if n := l.conn.Pending(); n > 0 && cap(l.out[l.cur])-len(l.out[l.cur]) >= n {
		l.out[l.cur] = l.conn.AppendPending(l.out[l.cur])
	}
	b := l.out[l.cur]
	if len(b) == 0 {
		return nil
	}
	l.sending = true
	l.cur ^= 1
	l.out[l.cur] = l.out[l.cur][:0]
	return b
}

// Sent reports the completion of the send TakeSend returned. The sessions
// waiting for room are woken; an error fails the connection.
func (l *H2Link) Sent(err error) {
	l.sending = false
	l.out[l.cur^1] = l.out[l.cur^1][:0]
	if err != nil {
		l.Fail()
		return
	}
	for _, s := range l.streams {
		if st := l.stateOf(s); st != nil && st.wantRoom {
			st.wantRoom = false
			l.wake(s)
		}
	}
	if len(l.out[l.cur]) > 0 || len(l.rst) > 0 || l.conn.Pending() > 0 {
		l.markDirty()
	}
}

// Fail ends the connection for every attached session (EOF, a receive or
// send error): each attempt fails as on a connection of its own.
func (l *H2Link) Fail() {
	if l.broken {
		return
	}
	l.broken = true
	for _, s := range l.streams {
		st := l.stateOf(s)
		if st == nil {
			continue // not connected yet: it finds the link broken
		}
		if !s.x.headSent {
			st.linkRes = h2Refused // nothing was sent: retried like a failed connect
		} else {
			st.linkRes = h2Failed
		}
		l.wake(s)
	}
}

// Data takes bytes the connection received: every complete frame is
// decoded and its event handed to its stream's session. It consumes all of
// p (the link keeps a partial frame).
func (l *H2Link) Data(p []byte) {
	for len(p) > 0 && !l.broken {
		if l.inR == l.inW {
			l.inR, l.inW = 0, 0
		} else if l.inR > 0 {
			l.inW = copy(l.in, l.in[l.inR:l.inW])
			l.inR = 0
		}
		n := copy(l.in[l.inW:], p)
		l.inW += n
		p = p[n:]
		for !l.broken {
			ev, k, err := l.conn.Next(l.in[l.inR:l.inW])
			if err != nil {
				l.Fail()
				break
			}
			if k == 0 {
				break
			}
			l.inR += k
			l.event(&ev)
		}
	}
	if l.conn.Pending() > 0 {
		// Acknowledgements too: a PING left unanswered while a quiet
		// stream stays open would let a backend's keepalive close the
		// connection. They still share the batch's one send.
		l.markDirty()
	}
}

// event routes one event of the connection.
func (l *H2Link) event(ev *http2.Event) {
	switch ev.Kind {
	case http2.EventGoAway:
		l.goAway = true
		for _, s := range l.streams {
			st := l.stateOf(s)
			if st != nil && st.streamOpen && st.id > ev.LastStreamID {
				// Not processed by the peer (RFC 9113 §6.8): safe to retry.
				st.streamOpen = false
				st.linkRes = h2Failed
				if !s.x.upGotBytes {
					st.linkRes = h2Refused
				}
				l.wake(s)
			}
		}
		return
	case http2.EventWindowUpdate, http2.EventSettings:
		// Room to send more request body, on one stream or all (a new
		// SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window).
		for _, s := range l.streams {
			if st := l.stateOf(s); st != nil && st.streamOpen && !st.reqEnd && (ev.StreamID == 0 || ev.StreamID == st.id) {
				l.wake(s)
			}
		}
		return
	case http2.EventHeaders, http2.EventData, http2.EventTrailers, http2.EventReset:
	default:
		return
	}
	for _, s := range l.streams {
		if st := l.stateOf(s); st != nil && st.streamOpen && st.id == ev.StreamID {
			s.h2LinkEvent(ev)
			l.wake(s)
			return
		}
	}
	if ev.Kind == http2.EventData {
		l.conn.Consume(ev.StreamID, len(ev.Data)) // a stream this end let go of
	}
}

// AttachLink makes link l the upstream connection the next
// UpstreamConnected reports (a link's connection is established or being
// established); tag is the engine's handle of the session, returned by
// TakeReady. The session counts against the link's streams at once.
func (s *Session) AttachLink(l *H2Link, tag int32) {
	x := s.x
	if x == nil {
		return
	}
	s.h2LinkDetach()
	x.h2Link, x.h2Tag = l, tag
	l.streams = append(l.streams, s)
}

// LinkNews runs the session after its link handed it events (TakeReady).
func (s *Session) LinkNews() {
	if s.state == sOpen && s.x != nil {
		s.run()
	}
}

// h2LinkConnected sets up the exchange's stream on its link.
func (s *Session) h2LinkConnected() {
	x := s.x
	l := x.h2Link
	x.h2Link = nil
	st := s.w.linkState()
	st.resetStream()
	st.goAway, st.broken, st.linkRes, st.queued, st.wantRoom = false, false, h2OK, false, false
	st.link = l
	st.in, st.out, st.inLent, st.outLent = nil, nil, false, false
	st.hold, st.holdR, st.holdW, st.holdEnd, st.trailHeld = nil, 0, 0, false, false
	x.h2 = st
	if l.broken {
		st.linkRes = h2Refused
	}
}

// h2LinkDetach takes the session off its link (the exchange released or
// closed the upstream): an open stream is reset (CANCEL) unless it ended
// both ways, the hold goes back.
func (s *Session) h2LinkDetach() {
	x := s.x
	l := x.h2Link
	if st := x.h2; st != nil && st.link != nil {
		l = st.link
		if st.streamOpen && !(st.reqEnd && st.respEnd) && !l.broken {
			c := &l.conn
			if cap(l.out[l.cur])-len(l.out[l.cur]) >= http2.FrameHeaderLen+4 {
				l.out[l.cur] = c.WriteReset(l.out[l.cur], st.id, http2.ErrCodeCancel)
			} else {
				l.rst = c.WriteReset(l.rst, st.id, http2.ErrCodeCancel) // with the next send
			}
			l.markDirty()
		}
		st.streamOpen = false
		s.h2Unhold()
		st.link = nil
	}
	x.h2Link = nil
	if l == nil {
		return
	}
	for i, t := range l.streams {
		if t == s {
			l.streams = append(l.streams[:i], l.streams[i+1:]...)
			break
		}
	}
	for i, t := range l.ready {
		if t == s {
			l.ready = append(l.ready[:i], l.ready[i+1:]...)
			break
		}
	}
	if len(l.streams) == 0 {
		if l.orphan {
			l.Free()
			return
		}
		l.idleFrom = s.w.Now()
		if l.conn.Pending() > 0 {
			l.markDirty()
		}
	}
}

// h2LinkEvent takes an event of the session's stream while the link
// decodes the connection's frames: what it can translate goes into the
// upstream stream now, DATA beyond its room into the hold.
func (s *Session) h2LinkEvent(ev *http2.Event) {
	x := s.x
	st := x.h2
	if st.linkRes != h2OK {
		if ev.Kind == http2.EventData {
			st.link.conn.Consume(st.id, len(ev.Data))
		}
		return
	}
	x.moved = s.coarse()
	up := &x.up
	if up.buf == nil {
		up.buf = s.buffer(&x.bufs.UpstreamIn, lentUpstreamIn)
	}
	switch ev.Kind {
	case http2.EventHeaders:
		x.upGotBytes = true
		if ev.EndStream {
			st.respEnd = true
		}
		if st.held() {
			st.linkRes = h2BadResponse // a head after body bytes
			return
		}
		if up.r == up.w && !up.busy {
			up.r, up.ready, up.proc, up.w = 0, 0, 0, 0
		}
		if !s.h2Head(ev) {
			st.linkRes = h2BadResponse
		}
	case http2.EventData:
		if ev.EndStream {
			st.respEnd = true
		}
		if !st.held() {
			st.rest, st.restEnd = ev.Data, ev.EndStream
			if s.h2Body() {
				return
			}
			ev.Data, ev.EndStream = st.rest, st.restEnd
			st.rest, st.restEnd = nil, false
		}
		if !s.h2Hold(ev.Data) {
			st.linkRes = h2Failed
			return
		}
		st.holdEnd = st.holdEnd || ev.EndStream
	case http2.EventTrailers:
		st.respEnd = true
		if !st.chunked || st.noBody {
			return
		}
		if !st.held() && s.h2Trailers(ev.Header) {
			return
		}
		// Kept as their chunked form until the body before them is in.
		st.rtrail = append(st.rtrail[:0], "0\r\n"...)
		st.rtrail = appendH2Fields(st.rtrail, ev.Header, false)
		st.rtrail = append(st.rtrail, "\r\n"...)
		st.trailHeld = true
	case http2.EventReset:
		st.streamOpen = false
		st.linkRes = h2Failed
		if ev.Code == http2.ErrCodeRefusedStream && !x.upGotBytes {
			st.linkRes = h2Refused
		}
	}
}

// held reports whether response bytes wait in the hold.
func (st *UpstreamState) held() bool {
	return st.holdW > st.holdR || st.holdEnd || st.trailHeld
}

// h2Hold appends DATA bytes to the stream's hold, borrowing its buffer. It
// reports false when they do not fit (the peer overran the window).
func (s *Session) h2Hold(p []byte) bool {
	st := s.x.h2
	if len(p) == 0 {
		return true
	}
	if st.hold == nil {
		if s.w.Buffers != nil {
			st.hold = s.w.Buffers.GetBuffer()
		} else {
			st.hold = make([]byte, s.w.opts.BufferSize)
		}
		st.hold = st.hold[:cap(st.hold)]
		st.holdR, st.holdW = 0, 0
	}
	if st.holdR > 0 {
		st.holdW = copy(st.hold, st.hold[st.holdR:st.holdW])
		st.holdR = 0
	}
	if len(st.hold)-st.holdW < len(p) {
		return false
	}
	st.holdW += copy(st.hold[st.holdW:], p)
	return true
}

// h2Unhold gives the hold back.
func (s *Session) h2Unhold() {
	st := s.x.h2
	s.h2PutHold(st)
	st.holdR, st.holdW, st.holdEnd, st.trailHeld = 0, 0, false, false
}

// h2LinkDrain moves what the hold keeps into the upstream stream, as far as
// it has room.
func (s *Session) h2LinkDrain() {
	x := s.x
	st := x.h2
	if !st.held() {
		return
	}
	if st.holdW > st.holdR || st.holdEnd {
		st.rest, st.restEnd = st.hold[st.holdR:st.holdW], st.holdEnd
		done := s.h2Body()
		st.holdR = st.holdW - len(st.rest)
		if !done {
			st.rest, st.restEnd = nil, false
			return
		}
		st.rest, st.restEnd = nil, false
		st.holdR, st.holdW, st.holdEnd = 0, 0, false
	}
	if st.trailHeld {
		up := &x.up
		if len(up.buf)-up.w < len(st.rtrail) {
			up.compact()
			if len(up.buf)-up.w < len(st.rtrail) {
				return
			}
		}
		up.w += copy(up.buf[up.w:], st.rtrail)
		st.trailHeld = false
	}
	if !st.held() {
		s.h2PutHold(st)
	}
}

// h2LinkOut points the state's frame buffer at the link's current output
// buffer for h2Send; h2Queue gives it back.
func (st *UpstreamState) h2LinkOut() {
	l := st.link
	b := l.out[l.cur]
	st.out = b[:cap(b)]
	st.outQ, st.outW = len(b), len(b)
}

func (s *Session) h2PutHold(st *UpstreamState) {
	if st.hold != nil {
		if s.w.Buffers != nil {
			s.w.Buffers.PutBuffer(st.hold)
		}
		st.hold = nil
	}
}

// linkState takes a stream state from the worker's free list: links run on
// one goroutine, so a plain stack keeps the states (and the capacity of
// their parsed request) from one stream to the next, which a sync.Pool,
// emptied by every collection, does not.
func (w *Worker) linkState() *UpstreamState {
	if n := len(w.linkStates); n > 0 {
		st := w.linkStates[n-1]
		w.linkStates = w.linkStates[:n-1]
		return st
	}
	return new(UpstreamState)
}

// putLinkState gives a link stream's state back (its hold is back already).
func (w *Worker) putLinkState(st *UpstreamState) {
	st.rest, st.link, st.hold = nil, nil, nil
	w.linkStates = append(w.linkStates, st)
}
