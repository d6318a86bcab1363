package proxy

import (
	"bytes"

	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/http2"
)

// Response converter states (H2Stream.cv).
const (
	cvHead    uint8 = iota // parsing a response head
	cvLength               // body of known length
	cvChunked              // chunked body
	cvClose                // body delimited by the end of the session
	cvDone                 // END_STREAM sent
)

// Chunked decoder states (H2Stream.ck).
const (
	ckSize    uint8 = iota // chunk size digits
	ckExt                  // rest of the chunk-size line
	ckData                 // chunk data
	ckDataEnd              // CRLF after chunk data
	ckTrailer              // trailer section
)

// maxTrailerBytes bounds the trailer section a stream converts.
const maxTrailerBytes = 16 << 10

// rxSegs is how many pool buffers a stream's request bytes (the HTTP/1.1
// head, the DATA the session has not taken yet, the trailer section) may
// take at most; the stream receive window is sized so that they fit.
const rxSegs = 10

// maxStreamWindow is the stream receive window when the buffers allow it.
// Against the 10 KiB of half a buffer, 4 MiB uploads over h2c through one
// io_uring worker went 2-9x as fast for a third of the proxy CPU; 128 KiB
// doubled one stream's rate over 64 KiB. What all of a connection's
// streams hold is bounded by the connection window (1 MiB).
const maxStreamWindow = 128 << 10

// rxSeg is one buffer of a stream's request bytes: b[r:w] not fed yet.
type rxSeg struct {
	b    []byte
	r, w int
}

// H2Stream is one stream of an H2Conn, served by a Session opened with
// OpenStream (h2.go explains how). Tag is the engine's: the handle of
// the engine state that runs the stream's session.
type H2Stream struct {
	Tag int32

	h *H2Conn
	s *Session
	// Request: the HTTP/1.1 head, then the DATA not yet fed to the
	// session, then (chunked requests) the trailer section, in order in
	// rx[:nrx]; rx[0] is the oldest.
	rx         [rxSegs]rxSeg
	nrx        int
	headLeft   int
	trLeft     int   // bytes of the trailer section at the end of rx
	recv       int64 // DATA bytes received
	fed        int64 // DATA bytes fed to the session
	credited   int64 // DATA bytes whose credit went back
	id         uint32
	method     http1.Method
	chunked    bool // the request body is fed as chunks
	reqEnd     bool // END_STREAM received
	lastFed    bool // the last chunk was fed
	grpc       bool
	used       bool
	opened     bool // handed to the engine
	respEnd    bool // END_STREAM or RST_STREAM sent, or reset by the peer
	done       bool // the session closed its client: the stream ends
	inDirty    bool
	inReady    bool
	cv, ck     uint8
	off        int // bytes of the oldest client send converted
	remaining  int64
	res        http1.Response
	tr         []byte // trailer section being collected
	trLine     int    // start of the trailer line being collected
	wantEnding bool   // RST_STREAM NO_ERROR sent after a complete response
	rst        http2.ErrCode

	// ws: an extended CONNECT for WebSocket (RFC 8441), sent upstream as
	// an HTTP/1.1 upgrade; its DATA both ways are the tunnel's bytes
	// once the backend answered 101 (framed to the client as 200).
	ws bool
	// eofFed: the client's END_STREAM went to the session as ClientEOF
	// (ws only; the tunnel half-closes upstream).
	eofFed bool
	// upEnd: the session half-closed the client side of its tunnel (the
	// backend closed): END_STREAM goes out once the bytes before it did.
	upEnd bool
	// halfOpen: END_STREAM went out on a tunnel whose client side is
	// still open: its DATA keeps flowing upstream.
	halfOpen bool
	// tunnelErr: the tunnel ended other than by both sides closing (a
	// timeout, a failed send): RST_STREAM CONNECT_ERROR (RFC 9113
	// section 8.5).
	tunnelErr bool
}

// Session returns the session serving the stream, nil before the engine
// opened one.
func (st *H2Stream) Session() *Session { return st.s }

// Conn returns the stream's connection.
func (st *H2Stream) Conn() *H2Conn { return st.h }

// OpenStream starts serving stream st (from H2Conn.NextStream) with s,
// which the engine drives from now on like a connection's session, but
// never reads from or writes to a client for it: the H2Conn does.
func (s *Session) OpenStream(st *H2Stream) {
	h := st.h
	// The connection counts the listener's bytes (lstats nil here).
	*s = Session{w: h.w, lref: h.lref, remote: h.remote, secure: h.secure, sni: h.sni, state: sOpen, h2: st, closeAfter: true}
	s.rng = h.w.Seed ^ st.id<<8 ^ uint32(h.w.Now())
	if s.rng == 0 {
		s.rng = 0x9e3779b9
	}
	s.hdrDeadline = h.w.Now() + s.headTimeout(h.lref.Load())
	st.s = s
	s.syncTimer()
	st.feed()
	h.markDirty(st)
}

// start sets the stream up for the request of ev.
func (st *H2Stream) start(h *H2Conn, ev *http2.Event) {
	tr := st.tr[:0]
	res := st.res
	res.Reset()
	*st = H2Stream{h: h, id: ev.StreamID, used: true, tr: tr, res: res, Tag: -1}
	st.reqEnd = ev.EndStream
	st.chunked = !ev.EndStream && ev.ContentLength < 0
	st.method = methodOf(ev.Method)
	if ev.WebSocket() {
		// The session sees the GET of an HTTP/1.1 upgrade: no body
		// framing, the DATA is the tunnel's (AppendRequestHTTP1).
		st.ws, st.chunked, st.method = true, false, http1.MethodGet
	}
	if ct, ok := ev.Header.Get("content-type"); ok && bytes.HasPrefix(ct, []byte("application/grpc")) {
		st.grpc = true
	}
	b := h.w.Buffers.GetBuffer()
	st.rx[0], st.nrx = rxSeg{b: b}, 1
	head := http2.AppendRequestHTTP1(b[:0], ev)
	if cap(head) != cap(b) || len(head) > len(b)/2+len(b)/4 {
		// Cannot happen with the codec's header list limit; refuse.
		st.reset(http2.ErrCodeRefusedStream)
		return
	}
	st.headLeft, st.rx[0].w = len(head), len(head)
}

// front returns the oldest request bytes not fed yet (those of one
// buffer), empty when there are none.
func (st *H2Stream) front() []byte {
	if st.nrx == 0 {
		return nil
	}
	f := &st.rx[0]
	return f.b[f.r:f.w]
}

// pending returns the request bytes not fed yet.
func (st *H2Stream) pending() int {
	n := 0
	for i := range st.nrx {
		n += st.rx[i].w - st.rx[i].r
	}
	return n
}

// advance drops the n oldest request bytes (fed to the session); a
// buffer emptied goes back to the pool unless it is the only one of a
// request (a WebSocket stream, which may idle for hours, keeps none).
func (st *H2Stream) advance(n int) {
	if st.nrx == 0 {
		return
	}
	f := &st.rx[0]
	f.r += n
	if f.r < f.w {
		return
	}
	if st.nrx == 1 && !st.ws {
		f.r, f.w = 0, 0
		return
	}
	st.h.w.Buffers.PutBuffer(f.b[:cap(f.b)])
	copy(st.rx[:], st.rx[1:st.nrx])
	st.nrx--
	st.rx[st.nrx] = rxSeg{}
}

// put appends p to the request bytes, taking pool buffers as needed; it
// reports false when they would exceed rxSegs buffers.
func (st *H2Stream) put(p []byte) bool {
	for len(p) > 0 {
		if st.nrx == 0 {
			st.rx[0], st.nrx = rxSeg{b: st.h.w.Buffers.GetBuffer()}, 1
		}
		t := &st.rx[st.nrx-1]
		if len(t.b)-t.w < len(p) && st.nrx == 1 && t.r > 0 {
			t.w = copy(t.b, t.b[t.r:t.w])
			t.r = 0
		}
		if t.w == len(t.b) {
			if st.nrx == rxSegs {
				return false
			}
			st.rx[st.nrx] = rxSeg{b: st.h.w.Buffers.GetBuffer()}
			st.nrx++
			continue
		}
		n := copy(t.b[t.w:], p)
		t.w += n
		p = p[n:]
	}
	return true
}

// streamWindow returns the stream receive window for buffers of size
// bytes: what rxSegs buffers hold besides a head (at most 3/4 of one, see
// start), a trailer section (at most half of one, the header list limit)
// and the fed part of the oldest buffer (less than one), up to
// maxStreamWindow. It is at least the initial window of RFC 9113 (65,535),
// which a client may use before it has the connection's SETTINGS, unless
// the buffers are too small for it.
func streamWindow(size int) int {
	return max(min(maxStreamWindow, (rxSegs-1)*size-size*5/4), size/2)
}

func methodOf(m []byte) http1.Method {
	switch string(m) {
	case "GET":
		return http1.MethodGet
	case "HEAD":
		return http1.MethodHead
	case "POST":
		return http1.MethodPost
	case "CONNECT":
		return http1.MethodConnect
	}
	return http1.MethodOther
}

// data takes DATA received for the stream.
func (st *H2Stream) data(p []byte, end bool) {
	st.recv += int64(len(p))
	if st.trLeft > 0 || !st.put(p) {
		// More than the window (the codec enforces it), or DATA after
		// trailers (the codec rejects it): never.
		st.reset(http2.ErrCodeFlowControl)
		return
	}
	if end {
		st.reqEnd = true
	}
	st.feed()
	st.h.markDirty(st)
}

// wake marks the stream for the connection's attention (a session hook).
func (st *H2Stream) wake() { st.h.markDirty(st) }

// sessionDone records that the session ended the stream (ActCloseClient).
func (st *H2Stream) sessionDone() {
	if s := st.s; st.ws && s != nil && s.x != nil && s.x.phase == phTunnel && !(s.x.shutUp && s.x.shutCli) {
		st.tunnelErr = true
	}
	st.done = true
	st.h.markDirty(st)
}

// shutdown records that the session half-closed the client side of its
// tunnel (ActShutdownClient): the backend closed its side.
func (st *H2Stream) shutdown() {
	st.upEnd = true
	st.h.markDirty(st)
}

// detach forgets the session, which the engine closed.
func (st *H2Stream) detach() {
	st.s = nil
	if !st.respEnd {
		st.done = true
	}
	st.h.markDirty(st)
}

// peerReset handles RST_STREAM from the client.
func (st *H2Stream) peerReset() {
	st.respEnd, st.halfOpen = true, false
	st.cv = cvDone
	st.abort()
	st.h.markDirty(st)
	if !st.opened {
		st.h.markReady(st)
	}
}

// abort ends the stream's exchange (the client went away).
func (st *H2Stream) abort() {
	if s := st.s; s != nil && s.state == sOpen {
		s.abort(499)
		s.run()
		st.h.markReady(st)
	} else if !st.opened && !st.respEnd {
		st.respEnd = true
		st.h.markReady(st)
	}
	st.done = true
	st.h.markDirty(st)
}

// reset ends the stream with RST_STREAM code.
func (st *H2Stream) reset(code http2.ErrCode) {
	if !st.respEnd || st.halfOpen {
		if st.h.room() < 2*http2.FrameHeaderLen {
			// Written once the output buffer has room.
			st.h.blocked = true
			st.rst = code
			st.done = true
			return
		}
		o := &st.h.out[st.h.cur]
		*o = st.h.c.WriteReset(*o, st.id, code)
		st.respEnd, st.halfOpen = true, false
		st.cv = cvDone
	}
	if s := st.s; s != nil && s.state == sOpen {
		s.abort(499)
		s.run()
		st.h.markReady(st)
	}
	st.done = true
}

// service does what the stream needs from the connection: feed the
// session, return credit, frame the response, end the stream.
func (st *H2Stream) service() {
	h := st.h
	st.feed()
	st.credit()
	st.frame()
	if st.rst != 0 && !st.respEnd {
		st.reset(st.rst)
	}
	if st.upEnd && !st.respEnd && st.cv == cvClose && (st.s == nil || st.s.x == nil || st.s.x.csends.empty()) && h.room() >= 64 {
		// The backend closed the tunnel: END_STREAM, as a TCP FIN (RFC
		// 9113 section 8.5); the client may go on sending.
		st.writeData(nil, true)
		st.halfOpen = st.respEnd && !st.reqEnd
	}
	if st.done && (!st.respEnd || st.halfOpen && st.tunnelErr) && h.room() >= 64 {
		s := st.s
		switch {
		case st.tunnelErr:
			st.reset(http2.ErrCodeConnect)
		case st.cv == cvClose && (s == nil || s.x == nil || s.x.csends.empty()):
			st.writeData(nil, true)
		case st.cv != cvDone:
			st.reset(http2.ErrCodeInternal)
		}
	}
	if st.respEnd && st.done && !st.reqEnd && !st.wantEnding && st.cv == cvDone && h.room() >= 16 {
		// The response is complete but the request body is not: tell the
		// client to stop sending it (RFC 9113 section 8.1).
		st.wantEnding = true
		o := &h.out[h.cur]
		*o = h.c.WriteReset(*o, st.id, http2.ErrCodeNo)
	}
	if st.s == nil && st.opened && st.respEnd && st.done && !st.inReady {
		st.recycle()
	}
}

// recycle releases the stream's resources.
func (st *H2Stream) recycle() {
	h := st.h
	h.c.Consume(st.id, int(st.recv-st.credited))
	for i := range st.nrx {
		h.w.Buffers.PutBuffer(st.rx[i].b[:cap(st.rx[i].b)])
		st.rx[i] = rxSeg{}
	}
	st.nrx = 0
	st.used = false
	h.streamEnded()
}

// room returns the free part of the session's client input buffer.
func (s *Session) clientRoom() int {
	x := s.x
	if x == nil || x.in.buf == nil {
		return s.w.opts.BufferSize
	}
	// Compact now, as ClientData would: the pieces fed next must fit
	// without another compaction (a send may start in between).
	in := &x.in
	if shift := in.compact(); shift > 0 && x.replayOff >= 0 {
		x.replayOff -= shift
		if x.replayOff < 0 {
			x.replayOff = -1
		}
	}
	return len(in.buf) - in.w
}

var (
	lastChunk     = []byte("0\r\n\r\n")
	lastChunkLine = []byte("0\r\n")
	crlf          = []byte("\r\n")
	colonSpace    = []byte(": ")
)

// feed hands the session as much of the request as it takes, and then the
// end of a WebSocket stream's request side (END_STREAM) as a client EOF.
func (st *H2Stream) feed() {
	st.feedBytes()
	if s := st.s; st.ws && st.reqEnd && !st.eofFed && s != nil && st.headLeft == 0 && st.pending() == 0 {
		st.eofFed = true
		s.ClientEOF()
		st.h.markReady(st)
	}
}

func (st *H2Stream) feedBytes() {
	if st.s != nil && st.s.wantClient() && (st.headLeft > 0 || st.pending() > st.trLeft || st.reqEnd && st.chunked && !st.lastFed) {
		// The session acts on what it gets: the engine must run it.
		st.h.markReady(st)
	}
	for {
		s := st.s
		if s == nil || !s.wantClient() {
			return
		}
		if st.headLeft > 0 {
			n := s.ClientData(st.front()[:st.headLeft])
			st.advance(n)
			st.headLeft -= n
			if n == 0 {
				return
			}
			continue
		}
		pend := st.pending() - st.trLeft
		if !st.chunked {
			if pend == 0 {
				return
			}
			n := s.ClientData(st.front())
			st.advance(n)
			st.fed += int64(n)
			if n == 0 {
				return
			}
			continue
		}
		room := s.clientRoom()
		if pend > 0 {
			if room <= 24 {
				return
			}
			f := st.front()
			k := min(len(f), pend, room-24)
			var hdr [20]byte
			b := appendHex(hdr[:0], k)
			b = append(b, '\r', '\n')
			s.ClientData(b)
			s.ClientData(f[:k])
			s.ClientData(crlf)
			st.advance(k)
			st.fed += int64(k)
			continue
		}
		if !st.reqEnd || st.lastFed {
			return
		}
		if st.trLeft == 0 {
			if room >= len(lastChunk) {
				st.lastFed = true
				s.ClientData(lastChunk)
			}
			return
		}
		// The last chunk with the trailer section (its final CRLF included).
		if room < len(lastChunkLine)+st.trLeft {
			return
		}
		st.lastFed = true
		s.ClientData(lastChunkLine)
		for st.trLeft > 0 {
			f := st.front()
			s.ClientData(f)
			st.advance(len(f))
			st.trLeft -= len(f)
		}
		return
	}
}

// trailers takes the request trailers of a stream: a chunked request
// forwards them as the trailer section of its body (to an HTTP/1.1 upstream
// as they are, to an HTTP/2 one as a trailing HEADERS frame); a request
// whose DATA has a content-length cannot carry them in HTTP/1.1 and loses
// them.
func (st *H2Stream) trailers(ev *http2.Event) {
	st.reqEnd = true
	if !st.chunked || st.trLeft > 0 {
		st.feed()
		st.h.markDirty(st)
		return
	}
	n := 0
	for i := range ev.Header.Len() {
		name, value := ev.Header.Field(i)
		if len(name) == 0 || name[0] == ':' {
			continue
		}
		if !st.put(name) || !st.put(colonSpace) || !st.put(value) || !st.put(crlf) {
			st.reset(http2.ErrCodeInternal)
			return
		}
		n += len(name) + len(value) + 4
	}
	if !st.put(crlf) {
		st.reset(http2.ErrCodeInternal)
		return
	}
	st.trLeft = n + len(crlf)
	st.feed()
	st.h.markDirty(st)
}

func appendHex(b []byte, n int) []byte {
	const digits = "0123456789abcdef"
	var t [16]byte
	i := len(t)
	for {
		i--
		t[i] = digits[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(b, t[i:]...)
}

// credit returns the credit of the DATA bytes the session no longer holds.
func (st *H2Stream) credit() {
	c := st.fed
	if s := st.s; s != nil && s.x != nil && s.state == sOpen {
		c -= int64(s.x.in.w - s.x.in.r)
	}
	if c > st.credited {
		st.h.c.Consume(st.id, int(c-st.credited))
		st.credited = c
	}
}

// frame converts the session's client sends into frames, as far as the
// windows and the output buffer allow.
func (st *H2Stream) frame() {
	for {
		s := st.s
		if s == nil || s.x == nil || s.x.csends.empty() {
			return
		}
		f := &s.x.csends
		data := f.q[f.head].data
		moved := false
		for st.off < len(data) {
			n := len(data) - st.off
			if !st.respEnd {
				var ok bool
				n, ok = st.convert(data[st.off:])
				if !ok {
					st.reset(http2.ErrCodeInternal)
					return
				}
			}
			if n == 0 {
				break
			}
			st.off += n
			moved = true
		}
		if st.off < len(data) {
			if moved {
				s.SendProgress(Client)
			}
			return
		}
		st.off = 0
		s.Sent(Client, len(data), nil)
		st.h.markReady(st)
	}
}

// convert frames the HTTP/1.1 response bytes p: it returns how many it
// consumed (fewer when a window or the output buffer is full), and false
// when they cannot be converted.
func (st *H2Stream) convert(p []byte) (int, bool) {
	h := st.h
	switch st.cv {
	case cvHead:
		st.res.Reset()
		n, err := http1.ParseResponse(p, &st.res, st.method, st.s.w.opts.ResponseLimits)
		if err != nil || n == 0 {
			return 0, false
		}
		need := n + 64
		if h.room() < need {
			if need > cap(h.out[h.cur]) {
				return 0, false
			}
			h.blocked = true
			return 0, true
		}
		r := &st.res
		if r.Status == 101 {
			if !st.ws {
				return 0, false
			}
			return st.tunnelHead(p, n)
		}
		h.c.BeginHeaders()
		h.c.AddStatus(r.Status)
		for i := range r.Fields {
			f := &r.Fields[i]
			h.c.AddHeader(f.Name.Bytes(p), f.Value.Bytes(p))
		}
		end := false
		if !r.Interim() {
			switch r.Framing {
			case http1.FramingNone:
				end = true
			case http1.FramingLength:
				end = r.ContentLength <= 0
				st.remaining = r.ContentLength
				st.cv = cvLength
			case http1.FramingChunked:
				st.cv = cvChunked
				st.ck = ckSize
				st.remaining = 0
			default:
				st.cv = cvClose
			}
		}
		o := &h.out[h.cur]
		var werr error
		*o, werr = h.c.WriteHeaders(*o, st.id, end)
		if werr != nil {
			return 0, false
		}
		if end {
			st.ended()
			return len(p), true
		}
		return n, true
	case cvLength:
		k := int(min(int64(len(p)), st.remaining))
		n := st.writeData(p[:k], int64(k) == st.remaining)
		st.remaining -= int64(n)
		if n == k && k < len(p) {
			n = len(p) // bytes past the body: not for the client
		}
		return n, true
	case cvClose:
		return st.writeData(p, false), true
	case cvChunked:
		return st.chunk(p)
	}
	return len(p), true
}

// tunnelHead answers a WebSocket stream whose backend switched protocols
// (the 101 head, n bytes of p) with 200 and the response's fields (RFC 8441
// section 5: sec-websocket-protocol, -extensions; the codec drops the
// connection-specific ones and sec-websocket-accept answers a key the
// client never sent); the stream's DATA is the tunnel's from now on.
func (st *H2Stream) tunnelHead(p []byte, n int) (int, bool) {
	h := st.h
	r := &st.res
	h.c.BeginHeaders()
	h.c.AddStatus(200)
	for i := range r.Fields {
		f := &r.Fields[i]
		if name := f.Name.Bytes(p); !equalFold(name, "sec-websocket-accept") {
			h.c.AddHeader(name, f.Value.Bytes(p))
		}
	}
	o := &h.out[h.cur]
	var err error
	if *o, err = h.c.WriteHeaders(*o, st.id, false); err != nil {
		return 0, false
	}
	st.cv = cvClose
	return n, true
}

// ended records that END_STREAM went out.
func (st *H2Stream) ended() {
	st.respEnd = true
	st.cv = cvDone
}

// writeData frames data as far as the windows and the output buffer
// allow, with END_STREAM when end is set and all of it went; it returns
// how many bytes it framed.
func (st *H2Stream) writeData(data []byte, end bool) int {
	h := st.h
	room := h.room() - 2*http2.FrameHeaderLen
	mf := int(h.c.PeerMaxFrameSize())
	room -= room / mf * http2.FrameHeaderLen
	if room < 0 || (room == 0 && len(data) > 0) {
		h.blocked = true
		return 0
	}
	k := min(len(data), room)
	o := &h.out[h.cur]
	var n int
	var err error
	*o, n, err = h.c.WriteData(*o, st.id, data[:k], end && k == len(data))
	if err != nil {
		return 0
	}
	if k < len(data) && n == k {
		h.blocked = true
	}
	if end && n == len(data) {
		st.ended()
	}
	return n
}

// chunk decodes a chunked body, framing the data and the trailers.
func (st *H2Stream) chunk(p []byte) (int, bool) {
	i := 0
	for i < len(p) {
		c := p[i]
		switch st.ck {
		case ckSize:
			switch {
			case c >= '0' && c <= '9':
				st.remaining = st.remaining<<4 | int64(c-'0')
			case c >= 'a' && c <= 'f':
				st.remaining = st.remaining<<4 | int64(c-'a'+10)
			case c >= 'A' && c <= 'F':
				st.remaining = st.remaining<<4 | int64(c-'A'+10)
			case c == '\n':
				st.sizeDone()
			default:
				st.ck = ckExt
			}
			i++
		case ckExt:
			if c == '\n' {
				st.sizeDone()
			}
			i++
		case ckData:
			k := int(min(st.remaining, int64(len(p)-i)))
			n := st.writeData(p[i:i+k], false)
			i += n
			st.remaining -= int64(n)
			if n < k {
				return i, true
			}
			if st.remaining == 0 {
				st.ck = ckDataEnd
			}
		case ckDataEnd:
			if c == '\n' {
				st.ck = ckSize
				st.remaining = 0
			}
			i++
		case ckTrailer:
			if c != '\n' {
				if len(st.tr) >= maxTrailerBytes {
					return i, false
				}
				st.tr = append(st.tr, c)
				i++
				continue
			}
			line := st.tr[st.trLine:]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if len(line) > 0 {
				st.tr = append(st.tr, c)
				st.trLine = len(st.tr)
				i++
				continue
			}
			// The end of the message.
			if !st.endTrailers() {
				return i, true
			}
			return len(p), true
		}
	}
	return i, true
}

// sizeDone handles the end of a chunk-size line.
func (st *H2Stream) sizeDone() {
	if st.remaining == 0 {
		st.ck = ckTrailer
		st.tr = st.tr[:0]
		st.trLine = 0
		return
	}
	st.ck = ckData
}

// endTrailers ends the stream: with a trailing HEADERS frame when the
// body had trailers. It reports false when the output buffer is full.
func (st *H2Stream) endTrailers() bool {
	h := st.h
	tr := st.tr[:st.trLine]
	if len(tr) == 0 {
		if st.writeData(nil, true) == 0 && !st.respEnd {
			return false
		}
		return true
	}
	if h.room() < len(tr)+64 {
		h.blocked = true
		return false
	}
	h.c.BeginHeaders()
	for len(tr) > 0 {
		j := bytes.IndexByte(tr, '\n')
		line := tr[:j]
		tr = tr[j+1:]
		line = bytes.TrimRight(line, "\r")
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		h.c.AddHeader(line[:c], bytes.TrimSpace(line[c+1:]))
	}
	o := &h.out[h.cur]
	var err error
	if *o, err = h.c.WriteHeaders(*o, st.id, true); err != nil {
		return true
	}
	st.ended()
	return true
}
