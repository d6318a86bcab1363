package http2

import "errors"

// Role says which side of the connection a Conn is.
type Role uint8

// Roles. A server Conn reads the client preface and accepts streams the
// client opens (odd ids); a client Conn writes the preface and opens them.
const (
	RoleServer Role = iota
	RoleClient
)

// Defaults for Config fields left zero.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultInitialWindowSize    = 256 << 10
	DefaultConnWindowSize       = 1 << 20
	DefaultHeaderTableSize      = 4096
	DefaultMaxHeaderListSize    = 64 << 10
	DefaultMaxHeaderBlockBytes  = 64 << 10
	DefaultMaxContinuations     = 32
	DefaultMaxControlBytes      = 4096
	DefaultResetBudget          = 200
	DefaultEmptyFrameBudget     = 100
	// initialWindow is the window every stream and the connection start
	// with before SETTINGS and WINDOW_UPDATE (RFC 9113 section 6.9.2).
	initialWindow = 65535
)

// Config holds a Conn's limits. Zero fields take the defaults above.
type Config struct {
	// MaxConcurrentStreams is the SETTINGS_MAX_CONCURRENT_STREAMS this end
	// advertises (server) and the most streams it opens (client). Streams
	// past it are refused with REFUSED_STREAM.
	MaxConcurrentStreams uint32
	// InitialWindowSize is the receive window of each stream
	// (SETTINGS_INITIAL_WINDOW_SIZE); ConnWindowSize that of the connection.
	InitialWindowSize uint32
	ConnWindowSize    uint32
	// MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE this end advertises
	// (default and minimum 16384). The caller's input buffer must hold a
	// whole frame: MaxFrameSize plus FrameHeaderLen bytes.
	MaxFrameSize uint32
	// HeaderTableSize bounds the HPACK decoder's dynamic table
	// (SETTINGS_HEADER_TABLE_SIZE).
	HeaderTableSize uint32
	// MaxHeaderListSize bounds a decoded header list
	// (SETTINGS_MAX_HEADER_LIST_SIZE): names, values and 32 per field.
	MaxHeaderListSize uint32
	// MaxHeaderBlockBytes bounds an encoded header block split over
	// CONTINUATION frames, and MaxContinuations the number of those frames
	// (CVE-2024-27316); past either the connection ends with
	// ENHANCE_YOUR_CALM.
	MaxHeaderBlockBytes uint32
	MaxContinuations    int
	// MaxControlBytes bounds the control frames (SETTINGS and PING
	// acknowledgements, RST_STREAM) queued for sending because of what the
	// peer sent; a peer that sends them faster than it reads the answers
	// gets ENHANCE_YOUR_CALM.
	MaxControlBytes int
	// ResetBudget is how many streams the peer may reset (or make this end
	// reset with a stream error) beyond those that complete normally: each
	// such reset costs one, each completed stream gives one back, up to the
	// budget. Exhausting it ends the connection with ENHANCE_YOUR_CALM
	// (rapid reset, CVE-2023-44487 and CVE-2025-8671).
	ResetBudget int
	// EmptyFrameBudget bounds empty DATA frames without END_STREAM the same
	// way; a frame that carries data gives one back.
	EmptyFrameBudget int
}

func (cfg *Config) normalize() {
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	def(&cfg.InitialWindowSize, DefaultInitialWindowSize)
	def(&cfg.ConnWindowSize, DefaultConnWindowSize)
	def(&cfg.MaxFrameSize, MinMaxFrameSize)
	def(&cfg.HeaderTableSize, DefaultHeaderTableSize)
	def(&cfg.MaxHeaderListSize, DefaultMaxHeaderListSize)
	def(&cfg.MaxHeaderBlockBytes, DefaultMaxHeaderBlockBytes)
	cfg.InitialWindowSize = min(cfg.InitialWindowSize, MaxWindowSize)
	cfg.ConnWindowSize = min(max(cfg.ConnWindowSize, initialWindow), MaxWindowSize)
	cfg.MaxFrameSize = min(max(cfg.MaxFrameSize, MinMaxFrameSize), MaxMaxFrameSize)
	if cfg.MaxContinuations <= 0 {
		cfg.MaxContinuations = DefaultMaxContinuations
	}
	if cfg.MaxControlBytes <= 0 {
		cfg.MaxControlBytes = DefaultMaxControlBytes
	}
	if cfg.ResetBudget <= 0 {
		cfg.ResetBudget = DefaultResetBudget
	}
	if cfg.EmptyFrameBudget <= 0 {
		cfg.EmptyFrameBudget = DefaultEmptyFrameBudget
	}
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventNone: the bytes consumed needed no action from the caller (or,
	// with n == 0, more bytes are needed).
	EventNone EventKind = iota
	// EventHeaders: a request opened a stream (server), or a response head
	// arrived (client; Status < 200 for an informational response, which
	// more follow). Header, the pseudo fields and EndStream are set.
	EventHeaders
	// EventData: DATA for StreamID. The caller must return the credit with
	// Consume(StreamID, len(Data)) once it has used or dropped the bytes.
	EventData
	// EventTrailers: the trailer section; EndStream is always set.
	EventTrailers
	// EventReset: the stream ended abnormally; Code says why. Local is set
	// when this end reset it (a stream error in what the peer sent).
	EventReset
	// EventSettings: the peer's settings changed (windows, frame size,
	// concurrency); a caller blocked on the peer may try again.
	EventSettings
	// EventWindowUpdate: the peer gave send credit on StreamID (0: the
	// connection); a caller with data waiting may write again.
	EventWindowUpdate
	// EventPingAck: the answer to a PING this end sent; Data is its payload.
	EventPingAck
	// EventGoAway: the peer is going away. Streams this end opened with ids
	// above LastStreamID were not processed and are closed (safe to retry);
	// no new streams may be opened. Code and Data (debug data) say why.
	EventGoAway
)

// Event is what Conn.Next reports. Slices alias the caller's input (Data)
// or the Conn's header list (Header, Method...): they are valid until the
// next call to Next.
type Event struct {
	Kind      EventKind
	StreamID  uint32
	EndStream bool
	Header    *HeaderList
	// Request pseudo-header fields (server role), nil when absent.
	Method, Scheme, Authority, Path, Protocol []byte
	// Status is the response status (client role).
	Status int
	// ContentLength is the content-length field's value, -1 when absent.
	ContentLength int64
	Data          []byte
	Code          ErrCode
	Local         bool
	LastStreamID  uint32
}

type stream struct {
	id         uint32
	localEnd   bool // this end sent END_STREAM (or reset)
	remoteEnd  bool // the peer sent END_STREAM
	gotHeaders bool // the request (server) or final response (client) arrived
	sentHead   bool // this end sent its HEADERS
	noBody     bool // client: a HEAD request, the response has no content
	sendWindow int64
	recvWindow int64 // credit the peer still has
	recvUnack  uint32
	// remaining is the content the peer still owes per content-length, -1
	// when it sent none.
	remaining int64
}

// Conn is the HTTP/2 connection state machine for one connection, server
// or client side. It is not safe for concurrent use: one worker drives it.
//
// The caller feeds received bytes to Next, which reports one Event per call
// and how many bytes it consumed; frames the Conn must send on its own
// (SETTINGS and PING acknowledgements, WINDOW_UPDATE, RST_STREAM, GOAWAY)
// are queued and appended to the caller's output buffer by AppendPending.
// Headers, data, trailers and resets are written by the Write methods into
// the caller's output buffer.
type Conn struct {
	role Role
	cfg  Config

	streams     []stream // slab; id 0 marks a free slot
	active      int
	lastPeerID  uint32 // highest stream id the peer opened
	nextLocalID uint32

	prefaceDone     bool
	gotSettings     bool
	settingsPending int // our SETTINGS frames not yet acknowledged

	peerMaxFrame      uint32
	peerInitWindow    int64
	peerMaxStreams    uint32
	peerMaxHeaderList uint32

	connSend  int64
	connRecv  int64
	connUnack uint32

	// Header block assembly across CONTINUATION frames.
	hbActive    bool
	hbStream    uint32
	hbEndStream bool
	hbCont      int
	hbBuf       []byte

	dec  Decoder
	hdrs HeaderList
	enc  Encoder
	blk  []byte // header block being written
	// The fields added since BeginHeaders: encoded only when the block is
	// written, so that a block never written (the stream was reset, the
	// connection is going away) leaves the HPACK table in step with the
	// peer's.
	rawBuf  []byte
	raw     []rawField
	rawSize uint64 // header list size of the fields (RFC 9113 section 6.5.2)
	head    bool   // blk holds :method HEAD

	ctl    []byte // control frames queued for sending
	ctlAck int    // bytes of ctl that are PING and SETTINGS acknowledgements

	goAwaySent   bool
	goAwayLastID uint32
	shutdownPing bool // Shutdown's PING is in flight
	goAwayRecv   bool
	peerLastID   uint32
	closed       bool

	resetBudget int
	emptyBudget int
	recentReset [8]uint32
	recentIdx   int
}

// NewConn returns a Conn for one connection.
func NewConn(role Role, cfg Config) *Conn {
	c := &Conn{}
	c.Init(role, cfg)
	return c
}

// Init (re)initializes c for a new connection, keeping its memory.
func (c *Conn) Init(role Role, cfg Config) {
	cfg.normalize()
	streams, hbBuf, ctl, blk, hdrs, dec, enc := c.streams[:0], c.hbBuf[:0], c.ctl[:0], c.blk[:0], c.hdrs, c.dec, c.enc
	rawBuf, raw := c.rawBuf[:0], c.raw[:0]
	*c = Conn{role: role, cfg: cfg, streams: streams, hbBuf: hbBuf, ctl: ctl, blk: blk, hdrs: hdrs, dec: dec, enc: enc, rawBuf: rawBuf, raw: raw}
	c.hdrs.Reset()
	c.dec.Init(max(cfg.HeaderTableSize, DefaultHeaderTableSize), cfg.MaxHeaderListSize)
	c.enc.Reset()
	c.peerMaxFrame = MinMaxFrameSize
	c.peerInitWindow = initialWindow
	c.peerMaxStreams = ^uint32(0)
	c.peerMaxHeaderList = ^uint32(0)
	c.connSend = initialWindow
	c.connRecv = initialWindow
	c.resetBudget = cfg.ResetBudget
	c.emptyBudget = cfg.EmptyFrameBudget
	c.nextLocalID = 1
	if role == RoleClient {
		c.prefaceDone = true
	}
}

// Start appends what this end sends first: the client preface (client), its
// SETTINGS and the connection window increment.
func (c *Conn) Start(dst []byte) []byte {
	if c.role == RoleClient {
		dst = append(dst, ClientPreface...)
	}
	var s [6]Setting
	n := 0
	add := func(id SettingID, v uint32) {
		s[n] = Setting{id, v}
		n++
	}
	if c.role == RoleClient {
		add(SettingEnablePush, 0)
	}
	add(SettingMaxConcurrentStreams, c.cfg.MaxConcurrentStreams)
	add(SettingInitialWindowSize, c.cfg.InitialWindowSize)
	if c.cfg.MaxFrameSize != MinMaxFrameSize {
		add(SettingMaxFrameSize, c.cfg.MaxFrameSize)
	}
	if c.cfg.HeaderTableSize != DefaultHeaderTableSize {
		add(SettingHeaderTableSize, c.cfg.HeaderTableSize)
	}
	add(SettingMaxHeaderListSize, c.cfg.MaxHeaderListSize)
	dst = AppendSettings(dst, s[:n])
	c.settingsPending++
	if d := c.cfg.ConnWindowSize - initialWindow; d > 0 {
		dst = AppendWindowUpdate(dst, 0, d)
		c.connRecv += int64(d)
	}
	return dst
}

// Next consumes the preface or one frame from in and reports what it means.
// n is the number of bytes consumed; n == 0 with a nil error means in holds
// no complete frame (receive more and call again with the unconsumed bytes
// first). A non-nil error is a connection error (*Error) or ErrConnClosed:
// a GOAWAY is queued; the caller writes AppendPending's output and closes.
// Stream errors are handled inside (RST_STREAM queued, EventReset with
// Local reported when the caller knew the stream).
func (c *Conn) Next(in []byte) (ev Event, n int, err error) {
	if c.closed {
		return Event{}, 0, ErrConnClosed
	}
	if !c.prefaceDone {
		switch MatchPreface(in) {
		case PrefaceNeedMore:
			return Event{}, 0, nil
		case PrefaceNo:
			return Event{}, 0, c.fail(errPreface)
		}
		c.prefaceDone = true
		return Event{}, len(ClientPreface), nil
	}
	f, n, rerr := ReadFrame(in, c.cfg.MaxFrameSize)
	if rerr != nil {
		if errors.Is(rerr, ErrNeedMore) {
			return Event{}, 0, nil
		}
		e := rerr.(*Error) //nolint:errorlint // ReadFrame returns *Error values unwrapped
		if !e.Stream || c.hbActive || !c.gotSettings {
			return Event{}, n, c.fail(e)
		}
		if f.Type != FramePriority && c.idle(f.StreamID) {
			return Event{}, n, c.fail(errIdleStream) // section 5.1, idle state
		}
		ev, e = c.streamError(f.StreamID, e)
		if e != nil {
			return Event{}, n, c.fail(e)
		}
		return ev, n, nil
	}
	ev, e := c.handle(&f)
	if e != nil {
		if !e.Stream {
			return Event{}, n, c.fail(e)
		}
		ev, e = c.streamError(f.StreamID, e)
		if e != nil {
			return Event{}, n, c.fail(e)
		}
	}
	return ev, n, nil
}

func (c *Conn) handle(f *Frame) (Event, *Error) {
	if !c.gotSettings {
		if f.Type != FrameSettings || f.Flags.Has(FlagAck) {
			return Event{}, errFirstNotSettings
		}
		c.gotSettings = true
	}
	if c.hbActive && (f.Type != FrameContinuation || f.StreamID != c.hbStream) {
		return Event{}, errExpectContinuation
	}
	switch f.Type {
	case FrameData:
		return c.onData(f)
	case FrameHeaders:
		endStream := f.Flags.Has(FlagEndStream)
		if f.Flags.Has(FlagEndHeaders) {
			return c.onHeaderBlock(f.StreamID, f.Data, endStream)
		}
		if uint32(len(f.Data)) > c.cfg.MaxHeaderBlockBytes {
			return Event{}, errHeaderBlockTooBig
		}
		c.hbActive, c.hbStream, c.hbEndStream, c.hbCont = true, f.StreamID, endStream, 0
		c.hbBuf = append(c.hbBuf[:0], f.Data...)
		return Event{}, nil
	case FrameContinuation:
		if !c.hbActive {
			return Event{}, errUnexpectedCont
		}
		c.hbCont++
		if c.hbCont > c.cfg.MaxContinuations {
			return Event{}, errTooManyCont
		}
		if uint32(len(c.hbBuf)+len(f.Data)) > c.cfg.MaxHeaderBlockBytes {
			return Event{}, errHeaderBlockTooBig
		}
		c.hbBuf = append(c.hbBuf, f.Data...)
		if !f.Flags.Has(FlagEndHeaders) {
			return Event{}, nil
		}
		c.hbActive = false
		return c.onHeaderBlock(c.hbStream, c.hbBuf, c.hbEndStream)
	case FramePriority:
		return Event{}, nil // deprecated signal, parsed and ignored
	case FrameRSTStream:
		return c.onRSTStream(f)
	case FrameSettings:
		return c.onSettings(f)
	case FramePushPromise:
		return Event{}, errPushPromise
	case FramePing:
		if f.Flags.Has(FlagAck) {
			if c.shutdownPing && f.PingData() == shutdownPingData {
				c.shutdownPing = false
				if !c.goAwaySent {
					c.ctl = c.GoAway(c.ctl, ErrCodeNo, nil)
				}
				return Event{}, nil
			}
			return Event{Kind: EventPingAck, Data: f.Data}, nil
		}
		if e := c.queueCtl(FrameHeaderLen + 8); e != nil {
			return Event{}, e
		}
		c.ctl = AppendPing(c.ctl, true, f.PingData())
		c.ctlAck += FrameHeaderLen + 8
		return Event{}, nil
	case FrameGoAway:
		return c.onGoAway(f), nil
	case FrameWindowUpdate:
		return c.onWindowUpdate(f)
	}
	return Event{}, nil // unknown frame types are ignored (section 5.5)
}

// isPeerID reports whether the peer opens streams with this id's parity.
func (c *Conn) isPeerID(id uint32) bool { return (id%2 == 1) == (c.role == RoleServer) }

// idle reports whether a stream id was never used.
func (c *Conn) idle(id uint32) bool {
	if c.isPeerID(id) {
		return id > c.lastPeerID
	}
	return id >= c.nextLocalID
}

func (c *Conn) find(id uint32) *stream {
	for i := range c.streams {
		if c.streams[i].id == id {
			return &c.streams[i]
		}
	}
	return nil
}

func (c *Conn) alloc(id uint32) *stream {
	if c.active == 0 {
		c.streams = c.streams[:0] // lookups scan only the slots in use
	}
	var st *stream
	for i := range c.streams {
		if c.streams[i].id == 0 {
			st = &c.streams[i]
			break
		}
	}
	if st == nil {
		c.streams = append(c.streams, stream{})
		st = &c.streams[len(c.streams)-1]
	}
	recv := int64(c.cfg.InitialWindowSize)
	if c.settingsPending > 0 {
		// Until our SETTINGS is acknowledged the peer may use the default.
		recv = max(recv, initialWindow)
	}
	*st = stream{id: id, sendWindow: c.peerInitWindow, recvWindow: recv, remaining: -1}
	c.active++
	return st
}

// release frees a stream's slot. A stream that ended on both sides gives
// one back to the reset budget.
func (c *Conn) release(st *stream, completed bool) {
	if completed && c.resetBudget < c.cfg.ResetBudget {
		c.resetBudget++
	}
	st.id = 0
	c.active--
}

func (c *Conn) maybeDone(st *stream) {
	if st.localEnd && st.remoteEnd {
		c.release(st, true)
	}
}

func (c *Conn) rememberReset(id uint32) {
	c.recentReset[c.recentIdx] = id
	c.recentIdx = (c.recentIdx + 1) % len(c.recentReset)
}

func (c *Conn) recentlyReset(id uint32) bool {
	for _, r := range c.recentReset {
		if r == id {
			return true
		}
	}
	return false
}

// queueCtl reserves room for a control frame the peer's behaviour makes us
// send; too many unsent ones is a flood.
func (c *Conn) queueCtl(n int) *Error {
	if len(c.ctl)+n > c.cfg.MaxControlBytes {
		return errControlFlood
	}
	return nil
}

// fail records a connection error and queues the GOAWAY.
func (c *Conn) fail(e *Error) error {
	c.closed = true
	c.hbActive = false
	c.ctl = AppendGoAway(c.ctl, c.lastPeerID, e.Code, stringBytes(e.Reason))
	c.goAwaySent = true
	c.goAwayLastID = c.lastPeerID
	return e
}

// streamError resets stream id because of a stream error e. It reports an
// EventReset when the stream was open, or a connection error when the
// reset budget runs out.
func (c *Conn) streamError(id uint32, e *Error) (Event, *Error) {
	if qe := c.queueCtl(FrameHeaderLen + 4); qe != nil {
		return Event{}, qe
	}
	c.ctl = AppendRSTStream(c.ctl, id, e.Code)
	c.rememberReset(id)
	if e.Code != ErrCodeRefusedStream {
		c.resetBudget--
		if c.resetBudget < 0 {
			return Event{}, errRapidReset
		}
	}
	st := c.find(id)
	if st == nil {
		return Event{}, nil
	}
	c.release(st, false)
	return Event{Kind: EventReset, StreamID: id, Code: e.Code, Local: true}, nil
}

func (c *Conn) onHeaderBlock(id uint32, block []byte, endStream bool) (Event, *Error) {
	st := c.find(id)
	newStream := false
	if st == nil {
		if c.idle(id) {
			if !c.isPeerID(id) || c.role == RoleClient {
				return Event{}, errIdleStream
			}
			newStream = true
		} else if !c.recentlyReset(id) {
			if c.isPeerID(id) && id < c.lastPeerID {
				// A new stream must have the highest id yet (section 5.1.1).
				return Event{}, errStreamIDDecreased
			}
			return Event{}, errClosedStreamConn
		}
	}
	derr := c.dec.Decode(block, &c.hdrs)
	if derr != nil {
		e := derr.(*Error) //nolint:errorlint // the decoder returns *Error values unwrapped
		if !e.Stream {
			return Event{}, e
		}
	}
	if st == nil && !newStream {
		return Event{}, nil // a stream this end reset: decoded for HPACK, ignored
	}
	if newStream {
		c.lastPeerID = id
		if c.goAwaySent {
			return Event{}, errRefusedGoAway
		}
		if derr != nil {
			return Event{}, errHeaderListTooLarge
		}
		if uint32(c.active) >= c.cfg.MaxConcurrentStreams {
			return Event{}, errRefused
		}
		var p pseudo
		if !checkBlock(&c.hdrs, blockRequest, &p) {
			return Event{}, errMalformed
		}
		st = c.alloc(id)
		st.gotHeaders = true
		st.remaining = p.contentLength
		if endStream && st.remaining > 0 {
			c.release(st, false)
			return Event{}, errContentLength
		}
		st.remoteEnd = endStream
		return Event{
			Kind: EventHeaders, StreamID: id, EndStream: endStream, Header: &c.hdrs,
			Method: p.method, Scheme: p.scheme, Authority: p.authority, Path: p.path, Protocol: p.protocol,
			ContentLength: p.contentLength,
		}, nil
	}
	if st.remoteEnd {
		return Event{}, errStreamClosed
	}
	if derr != nil {
		return Event{}, errHeaderListTooLarge
	}
	var p pseudo
	if !st.gotHeaders { // client: a response head
		if !checkBlock(&c.hdrs, blockResponse, &p) {
			return Event{}, errMalformed
		}
		ev := Event{Kind: EventHeaders, StreamID: id, EndStream: endStream, Header: &c.hdrs, Status: p.status, ContentLength: p.contentLength}
		if p.status < 200 {
			if endStream {
				return Event{}, errMalformed
			}
			return ev, nil
		}
		st.gotHeaders = true
		if !st.noBody && p.status != 204 && p.status != 304 {
			st.remaining = p.contentLength
		}
		if endStream {
			if st.remaining > 0 {
				return Event{}, errContentLength
			}
			st.remoteEnd = true
			c.maybeDone(st)
		}
		return ev, nil
	}
	if !endStream {
		return Event{}, errTrailersNoEnd
	}
	if !checkBlock(&c.hdrs, blockTrailers, &p) {
		return Event{}, errMalformed
	}
	if st.remaining > 0 {
		return Event{}, errContentLength
	}
	st.remoteEnd = true
	c.maybeDone(st)
	return Event{Kind: EventTrailers, StreamID: id, EndStream: true, Header: &c.hdrs, ContentLength: -1}, nil
}

func (c *Conn) onData(f *Frame) (Event, *Error) {
	length := int64(f.Length)
	if length > c.connRecv {
		return Event{}, errConnFlow
	}
	c.connRecv -= length
	// Padding is never delivered: its credit goes back at once.
	c.Consume(0, int(length)-len(f.Data))
	id := f.StreamID
	st := c.find(id)
	if st == nil {
		if c.idle(id) {
			return Event{}, errIdleStream
		}
		c.Consume(0, len(f.Data))
		if c.recentlyReset(id) {
			return Event{}, nil
		}
		return Event{}, errStreamClosed
	}
	if st.remoteEnd || !st.gotHeaders {
		c.Consume(0, len(f.Data))
		if st.remoteEnd {
			return Event{}, errStreamClosed
		}
		return Event{}, errMalformed
	}
	if length > st.recvWindow {
		c.Consume(0, len(f.Data))
		return Event{}, errStreamFlow
	}
	st.recvWindow -= length
	if pad := length - int64(len(f.Data)); pad > 0 {
		c.creditStream(st, uint32(pad))
	}
	endStream := f.Flags.Has(FlagEndStream)
	if st.remaining >= 0 {
		st.remaining -= int64(len(f.Data))
		if st.remaining < 0 || (endStream && st.remaining > 0) {
			c.Consume(0, len(f.Data))
			return Event{}, errContentLength
		}
	}
	if len(f.Data) == 0 && !endStream {
		c.emptyBudget--
		if c.emptyBudget < 0 {
			return Event{}, errEmptyFrameFlood
		}
	} else if c.emptyBudget < c.cfg.EmptyFrameBudget {
		c.emptyBudget++
	}
	if endStream {
		st.remoteEnd = true
		c.maybeDone(st)
	}
	return Event{Kind: EventData, StreamID: id, EndStream: endStream, Data: f.Data}, nil
}

func (c *Conn) onRSTStream(f *Frame) (Event, *Error) {
	st := c.find(f.StreamID)
	if st == nil {
		if c.idle(f.StreamID) {
			return Event{}, errIdleStream
		}
		return Event{}, nil
	}
	if !st.localEnd {
		c.resetBudget--
		if c.resetBudget < 0 {
			return Event{}, errRapidReset
		}
	}
	c.release(st, false)
	return Event{Kind: EventReset, StreamID: f.StreamID, Code: f.Code}, nil
}

func (c *Conn) onSettings(f *Frame) (Event, *Error) {
	if f.Flags.Has(FlagAck) {
		if c.settingsPending > 0 {
			c.settingsPending--
			if c.settingsPending == 0 {
				c.dec.SetAllowedTableSize(c.cfg.HeaderTableSize)
			}
		}
		return Event{}, nil
	}
	for i := range f.NumSettings() {
		s := f.Setting(i)
		switch s.ID {
		case SettingEnablePush:
			if c.role == RoleClient && s.Val == 1 {
				return Event{}, errEnablePushServer
			}
		case SettingHeaderTableSize:
			c.enc.SetPeerTableSize(s.Val)
		case SettingMaxConcurrentStreams:
			c.peerMaxStreams = s.Val
		case SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerInitWindow
			for j := range c.streams {
				if st := &c.streams[j]; st.id != 0 {
					st.sendWindow += delta
					if st.sendWindow > MaxWindowSize {
						return Event{}, errSettingsDelta
					}
				}
			}
			c.peerInitWindow = int64(s.Val)
		case SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		case SettingMaxHeaderListSize:
			c.peerMaxHeaderList = s.Val
		}
	}
	if e := c.queueCtl(FrameHeaderLen); e != nil {
		return Event{}, e
	}
	c.ctl = AppendSettingsAck(c.ctl)
	c.ctlAck += FrameHeaderLen
	return Event{Kind: EventSettings}, nil
}

func (c *Conn) onGoAway(f *Frame) Event {
	c.goAwayRecv = true
	c.peerLastID = f.LastStreamID
	for i := range c.streams {
		if st := &c.streams[i]; st.id != 0 && !c.isPeerID(st.id) && st.id > f.LastStreamID {
			c.release(st, false)
		}
	}
	return Event{Kind: EventGoAway, Code: f.Code, LastStreamID: f.LastStreamID, Data: f.Data}
}

func (c *Conn) onWindowUpdate(f *Frame) (Event, *Error) {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.connSend += inc
		if c.connSend > MaxWindowSize {
			return Event{}, errConnSendWindow
		}
		return Event{Kind: EventWindowUpdate}, nil
	}
	st := c.find(f.StreamID)
	if st == nil {
		if c.idle(f.StreamID) {
			return Event{}, errIdleStream
		}
		return Event{}, nil
	}
	st.sendWindow += inc
	if st.sendWindow > MaxWindowSize {
		return Event{}, errStreamSendWindow
	}
	return Event{Kind: EventWindowUpdate, StreamID: f.StreamID}, nil
}

// Consume returns n bytes of receive credit: the caller has used (or
// dropped) n bytes of DATA it got for stream id. The connection window is
// credited in any case, the stream's while the peer may still send on it.
// WINDOW_UPDATE frames are queued once half a window is owed.
func (c *Conn) Consume(id uint32, n int) {
	if n <= 0 || c.closed {
		return
	}
	c.connUnack += uint32(n)
	if c.connUnack >= c.cfg.ConnWindowSize/2 {
		c.ctl = AppendWindowUpdate(c.ctl, 0, c.connUnack)
		c.connRecv += int64(c.connUnack)
		c.connUnack = 0
	}
	if id == 0 {
		return
	}
	if st := c.find(id); st != nil && !st.remoteEnd {
		c.creditStream(st, uint32(n))
	}
}

func (c *Conn) creditStream(st *stream, n uint32) {
	st.recvUnack += n
	if st.recvUnack >= c.cfg.InitialWindowSize/2 {
		c.ctl = AppendWindowUpdate(c.ctl, st.id, st.recvUnack)
		st.recvWindow += int64(st.recvUnack)
		st.recvUnack = 0
	}
}

// AppendPending appends the control frames queued for sending and empties
// the queue. Call it after Next and Consume, before writing to the socket.
func (c *Conn) AppendPending(dst []byte) []byte {
	dst = append(dst, c.ctl...)
	c.ctl = c.ctl[:0]
	c.ctlAck = 0
	return dst
}

// PeerMaxConcurrentStreams returns the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says).
func (c *Conn) PeerMaxConcurrentStreams() uint32 { return c.peerMaxStreams }

// Pending returns the number of queued control bytes.
func (c *Conn) Pending() int { return len(c.ctl) }

// PendingAcksOnly reports whether the queued control frames are all PING
// and SETTINGS acknowledgements: nothing the peer needs in order to go on
// sending (as it needs a WINDOW_UPDATE), so they may wait to ride along with
// the next frames this end writes. A client whose stream is complete on its
// side uses it to save a send per exchange.
func (c *Conn) PendingAcksOnly() bool { return len(c.ctl) == c.ctlAck }

// rawField is a field added to the block being built: name and value
// bytes in Conn.rawBuf from off.
type rawField struct {
	off, nameLen, valueLen uint32
	sensitive              bool
}

// BeginHeaders starts a header block for WriteHeaders (or
// WriteRequestHeaders): add the fields with AddHeader, pseudo-header
// fields first. The block is encoded when it is written.
func (c *Conn) BeginHeaders() {
	c.rawBuf, c.raw, c.rawSize = c.rawBuf[:0], c.raw[:0], 0
	c.head = false
}

// AddHeader adds a field to the block being built. Names are lowercased;
// connection-specific fields (connection, keep-alive, proxy-connection,
// transfer-encoding, upgrade), which HTTP/2 forbids, are dropped, and te is
// kept only as "trailers".
func (c *Conn) AddHeader(name, value []byte) { c.addHeader(name, value, false) }

// AddSensitiveHeader adds a field that intermediaries must never index.
func (c *Conn) AddSensitiveHeader(name, value []byte) { c.addHeader(name, value, true) }

// AddHeaderString is AddHeader for strings.
func (c *Conn) AddHeaderString(name, value string) {
	c.addHeader(stringBytes(name), stringBytes(value), false)
}

func (c *Conn) addHeader(name, value []byte, sensitive bool) {
	switch {
	case asciiEqualFold(name, []byte("connection")), asciiEqualFold(name, []byte("keep-alive")),
		asciiEqualFold(name, []byte("proxy-connection")), asciiEqualFold(name, []byte("transfer-encoding")),
		asciiEqualFold(name, []byte("upgrade")):
		return
	case asciiEqualFold(name, []byte("te")) && !asciiEqualFold(value, []byte("trailers")):
		return
	case string(name) == ":method" && string(value) == "HEAD":
		c.head = true
	}
	c.raw = append(c.raw, rawField{off: uint32(len(c.rawBuf)), nameLen: uint32(len(name)), valueLen: uint32(len(value)), sensitive: sensitive})
	c.rawBuf = append(c.rawBuf, name...)
	c.rawBuf = append(c.rawBuf, value...)
	c.rawSize += uint64(len(name)+len(value)) + entryOverhead
}

// WriteRequestHeaders opens a new stream (client role) and writes the
// header block built since BeginHeaders as its request head.
func (c *Conn) WriteRequestHeaders(dst []byte, endStream bool) (uint32, []byte, error) {
	switch {
	case c.closed:
		return 0, dst, ErrConnClosed
	case c.role != RoleClient:
		return 0, dst, errServerOpen
	case c.goAwayRecv || c.goAwaySent:
		return 0, dst, ErrGoingAway
	case uint32(c.active) >= min(c.peerMaxStreams, c.cfg.MaxConcurrentStreams):
		return 0, dst, ErrTooManyStreams
	case c.nextLocalID > MaxStreamID:
		return 0, dst, ErrStreamIDsUsedUp
	}
	id := c.nextLocalID
	c.nextLocalID += 2
	st := c.alloc(id)
	st.noBody = c.head
	dst, err := c.writeBlock(dst, st, endStream)
	return id, dst, err
}

// WriteHeaders writes the header block built since BeginHeaders on stream
// id: a response head (server; an informational 1xx head leaves the stream
// open for the next), or trailers (endStream set, no pseudo-header fields).
// The block is split into HEADERS and CONTINUATION frames of the peer's
// maximum frame size.
func (c *Conn) WriteHeaders(dst []byte, id uint32, endStream bool) ([]byte, error) {
	if c.closed {
		return dst, ErrConnClosed
	}
	st := c.find(id)
	if st == nil {
		return dst, ErrStreamNotFound
	}
	if st.localEnd {
		return dst, ErrStreamEnded
	}
	return c.writeBlock(dst, st, endStream)
}

func (c *Conn) writeBlock(dst []byte, st *stream, endStream bool) ([]byte, error) {
	if c.rawSize > uint64(c.peerMaxHeaderList) {
		return dst, ErrHeadersTooLarge
	}
	c.blk = c.enc.BeginBlock(c.blk[:0])
	for i := range c.raw {
		f := &c.raw[i]
		v := f.off + f.nameLen
		c.blk = c.enc.AppendField(c.blk, c.rawBuf[f.off:v], c.rawBuf[v:v+f.valueLen], f.sensitive)
	}
	blk := c.blk
	max := int(c.peerMaxFrame)
	first := true
	for first || len(blk) > 0 {
		n := min(len(blk), max)
		end := n == len(blk)
		if first {
			dst = AppendHeaders(dst, st.id, HeadersParams{EndStream: endStream, EndHeaders: end}, blk[:n])
			first = false
		} else {
			dst = AppendContinuation(dst, st.id, end, blk[:n])
		}
		blk = blk[n:]
	}
	st.sentHead = true
	if endStream {
		st.localEnd = true
		c.maybeDone(st)
	}
	return dst, nil
}

// WriteData writes as much of data on stream id as the connection and
// stream send windows allow, in frames of the peer's maximum frame size,
// and returns how many bytes it wrote. END_STREAM is set only when all of
// data was written. With n < len(data) the caller waits for
// EventWindowUpdate (or EventSettings) and writes the rest; SendWindow
// tells an engine how long a stream has been stalled.
func (c *Conn) WriteData(dst []byte, id uint32, data []byte, endStream bool) ([]byte, int, error) {
	if c.closed {
		return dst, 0, ErrConnClosed
	}
	st := c.find(id)
	if st == nil {
		return dst, 0, ErrStreamNotFound
	}
	if st.localEnd {
		return dst, 0, ErrStreamEnded
	}
	if !st.sentHead {
		return dst, 0, errDataBeforeHeaders
	}
	allowed := max(min(c.connSend, st.sendWindow), 0)
	n := int(min(int64(len(data)), allowed))
	end := endStream && n == len(data)
	rest := data[:n]
	for {
		k := min(len(rest), int(c.peerMaxFrame))
		last := k == len(rest)
		dst = AppendData(dst, id, end && last, rest[:k])
		rest = rest[k:]
		if last {
			break
		}
	}
	if n == 0 && !end {
		dst = dst[:len(dst)-FrameHeaderLen] // nothing to say
	}
	c.connSend -= int64(n)
	st.sendWindow -= int64(n)
	if end {
		st.localEnd = true
		c.maybeDone(st)
	}
	return dst, n, nil
}

// WriteReset resets stream id with code (for instance CANCEL when the
// downstream went away, or NO_ERROR after a complete response when the
// request body is no longer wanted).
func (c *Conn) WriteReset(dst []byte, id uint32, code ErrCode) []byte {
	st := c.find(id)
	if st == nil {
		return dst
	}
	c.rememberReset(id)
	c.release(st, false)
	return AppendRSTStream(dst, id, code)
}

// GoAway starts a graceful shutdown (code NO_ERROR) or reports an error:
// it writes a GOAWAY naming the last stream the peer opened; those streams
// run to completion, new ones are refused. Done reports when the
// connection can be closed.
func (c *Conn) GoAway(dst []byte, code ErrCode, debug []byte) []byte {
	c.goAwaySent = true
	c.goAwayLastID = c.lastPeerID
	return AppendGoAway(dst, c.lastPeerID, code, debug)
}

// shutdownPingData marks the PING of Shutdown.
var shutdownPingData = [8]byte{'f', 'l', 'a', 'x', 'd', 'o', 'w', 'n'}

// Shutdown starts a graceful shutdown in two steps (RFC 9113 section
// 6.8): a GOAWAY with the largest stream id tells the peer to open no more
// streams while those already in flight are still accepted, and a PING
// measures when they have arrived: its acknowledgement makes the Conn queue
// the final GOAWAY naming the last stream it accepted. Done then reports
// when the remaining streams have finished; the engine bounds the wait.
func (c *Conn) Shutdown(dst []byte) []byte {
	if c.goAwaySent || c.shutdownPing {
		return dst
	}
	c.shutdownPing = true
	dst = AppendGoAway(dst, MaxStreamID, ErrCodeNo, nil)
	return AppendPing(dst, false, shutdownPingData)
}

// Ping writes a PING; the answer arrives as EventPingAck.
func (c *Conn) Ping(dst []byte, data [8]byte) []byte { return AppendPing(dst, false, data) }

// Done reports whether the connection has nothing left to do: a GOAWAY
// was sent or received (or a connection error happened) and no stream is
// open.
func (c *Conn) Done() bool {
	return c.closed || ((c.goAwaySent || c.goAwayRecv) && c.active == 0)
}

// ActiveStreams returns the number of open streams.
func (c *Conn) ActiveStreams() int { return c.active }

// SendWindow returns the send credit of the connection and of stream id
// (ok false when the stream is not open). An engine times a stream whose
// data is waiting while min(conn, stream) <= 0 to end zero-window stalls.
func (c *Conn) SendWindow(id uint32) (conn, stream int64, ok bool) {
	st := c.find(id)
	if st == nil {
		return c.connSend, 0, false
	}
	return c.connSend, st.sendWindow, true
}

// PeerMaxFrameSize returns the peer's SETTINGS_MAX_FRAME_SIZE.
func (c *Conn) PeerMaxFrameSize() uint32 { return c.peerMaxFrame }

// ReleaseMemory drops the buffers a connection with no stream open does
// not need (header assembly, decoded fields, header block scratch, stream
// slab); engines call it when a connection goes idle. The HPACK dynamic
// table is kept: the peer's encoder still references it.
func (c *Conn) ReleaseMemory() {
	if c.active != 0 || c.hbActive {
		return
	}
	c.hbBuf, c.blk, c.streams, c.rawBuf, c.raw = nil, nil, nil, nil, nil
	c.hdrs = HeaderList{}
	c.enc.lower = nil
}

var (
	errServerOpen        = errors.New("http2: a server Conn does not open streams")
	errDataBeforeHeaders = errors.New("http2: DATA before HEADERS on the stream")
)
