package http2

import "encoding/binary"

// FrameHeaderLen is the length of the fixed frame header (RFC 9113 section 4.1).
const FrameHeaderLen = 9

// Frame size limits (RFC 9113 section 4.2 and 6.5.2).
const (
	MinMaxFrameSize = 1 << 14   // initial and smallest SETTINGS_MAX_FRAME_SIZE
	MaxMaxFrameSize = 1<<24 - 1 // largest SETTINGS_MAX_FRAME_SIZE
	MaxWindowSize   = 1<<31 - 1 // largest flow-control window
	MaxStreamID     = 1<<31 - 1 // largest stream id
)

// FrameType is the type of a frame (RFC 9113 section 6).
type FrameType uint8

// Frame types defined by RFC 9113. Frames of any other type are parsed
// (their payload is in Frame.Data) and ignored by Conn (section 4.1).
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

var frameTypeNames = [...]string{
	"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
	"PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION",
}

// String returns the RFC name of the type, or "UNKNOWN".
func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return "UNKNOWN"
}

// Flags are the frame header's flag bits; their meaning depends on the type.
type Flags uint8

// Frame flags (RFC 9113 section 6).
const (
	FlagEndStream  Flags = 0x1  // DATA, HEADERS
	FlagAck        Flags = 0x1  // SETTINGS, PING
	FlagEndHeaders Flags = 0x4  // HEADERS, PUSH_PROMISE, CONTINUATION
	FlagPadded     Flags = 0x8  // DATA, HEADERS, PUSH_PROMISE
	FlagPriority   Flags = 0x20 // HEADERS
)

// Has reports whether all bits of v are set.
func (f Flags) Has(v Flags) bool { return f&v == v }

// FrameHeader is the fixed 9-byte frame header.
type FrameHeader struct {
	Length   uint32 // payload length (24 bits)
	Type     FrameType
	Flags    Flags
	StreamID uint32 // reserved bit cleared
}

// ParseFrameHeader decodes the frame header at the start of b, which must
// hold at least FrameHeaderLen bytes.
func ParseFrameHeader(b []byte) FrameHeader {
	_ = b[8]
	return FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    Flags(b[4]),
		StreamID: binary.BigEndian.Uint32(b[5:9]) & (1<<31 - 1),
	}
}

// Priority is the (deprecated, RFC 9113 section 5.3.2) priority signal of a
// PRIORITY frame or a HEADERS frame with the PRIORITY flag. Conn parses and
// validates it and otherwise ignores it.
type Priority struct {
	StreamDep uint32
	Exclusive bool
	Weight    uint8 // weight minus one, as sent
}

// SettingID identifies a setting (RFC 9113 section 6.5.2, RFC 8441).
type SettingID uint16

// Settings defined by RFC 9113 and RFC 8441. Unknown settings are ignored.
const (
	SettingHeaderTableSize       SettingID = 0x1
	SettingEnablePush            SettingID = 0x2
	SettingMaxConcurrentStreams  SettingID = 0x3
	SettingInitialWindowSize     SettingID = 0x4
	SettingMaxFrameSize          SettingID = 0x5
	SettingMaxHeaderListSize     SettingID = 0x6
	SettingEnableConnectProtocol SettingID = 0x8
)

// Setting is one entry of a SETTINGS frame.
type Setting struct {
	ID  SettingID
	Val uint32
}

// Frame is a parsed frame. Data aliases the parsed buffer: it holds the DATA
// payload, the header block fragment of HEADERS, PUSH_PROMISE and
// CONTINUATION, the SETTINGS entries, the PING opaque data, the GOAWAY debug
// data or the payload of an unknown frame type; padding and the fixed fields
// below are removed. Flow control counts Length, padding included.
type Frame struct {
	FrameHeader
	Data []byte
	// Priority is set for PRIORITY frames and HEADERS with FlagPriority.
	Priority Priority
	// Code is the error code of RST_STREAM and GOAWAY.
	Code ErrCode
	// LastStreamID is GOAWAY's last stream id; PromisedID PUSH_PROMISE's.
	LastStreamID uint32
	PromisedID   uint32
	// Increment is WINDOW_UPDATE's window size increment.
	Increment uint32
}

// NumSettings returns the number of entries of a SETTINGS frame.
func (f *Frame) NumSettings() int { return len(f.Data) / 6 }

// Setting returns entry i of a SETTINGS frame.
func (f *Frame) Setting(i int) Setting {
	b := f.Data[i*6:]
	return Setting{ID: SettingID(binary.BigEndian.Uint16(b)), Val: binary.BigEndian.Uint32(b[2:6])}
}

// PingData returns the opaque data of a PING frame.
func (f *Frame) PingData() (d [8]byte) {
	copy(d[:], f.Data)
	return d
}

// ReadFrame parses the frame at the start of b. maxFrameSize is the
// SETTINGS_MAX_FRAME_SIZE this endpoint advertised (at least
// MinMaxFrameSize). It returns the frame and the number of bytes it
// occupies; ErrNeedMore when b holds no complete frame yet; or an *Error.
// A stream error (Error.Stream) comes with the frame header and its length,
// so the caller can reset the stream and carry on after the frame; after a
// connection error the connection cannot continue.
//
// ReadFrame checks what each frame type requires of its own fields (RFC 9113
// section 6): stream id zero or not, payload sizes, padding, setting values.
// Rules that depend on connection state are Conn's.
func ReadFrame(b []byte, maxFrameSize uint32) (Frame, int, error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, 0, ErrNeedMore
	}
	f := Frame{FrameHeader: ParseFrameHeader(b)}
	if maxFrameSize < MinMaxFrameSize {
		maxFrameSize = MinMaxFrameSize
	}
	if f.Length > maxFrameSize {
		return f, 0, errFrameTooLarge
	}
	n := FrameHeaderLen + int(f.Length)
	if len(b) < n {
		return Frame{}, 0, ErrNeedMore
	}
	p := b[FrameHeaderLen:n:n]
	if err := parsePayload(&f, p); err != nil {
		return f, n, err
	}
	return f, n, nil
}

func parsePayload(f *Frame, p []byte) *Error {
	switch f.Type {
	case FrameData:
		if f.StreamID == 0 {
			return errStreamZero
		}
		d, err := unpad(f.Flags, p)
		f.Data = d
		return err
	case FrameHeaders:
		if f.StreamID == 0 {
			return errStreamZero
		}
		d, err := unpad(f.Flags, p)
		if err != nil {
			return err
		}
		if f.Flags.Has(FlagPriority) {
			if len(d) < 5 {
				return errHeadersPrioSize
			}
			f.Priority = parsePriority(d)
			d = d[5:]
			f.Data = d
			if f.Priority.StreamDep == f.StreamID {
				return errSelfDependencyHeaders
			}
		}
		f.Data = d
	case FramePriority:
		if f.StreamID == 0 {
			return errStreamZero
		}
		if len(p) != 5 {
			return errPrioritySize
		}
		f.Priority = parsePriority(p)
		if f.Priority.StreamDep == f.StreamID {
			return errSelfDependency
		}
	case FrameRSTStream:
		if f.StreamID == 0 {
			return errStreamZero
		}
		if len(p) != 4 {
			return errRSTStreamSize
		}
		f.Code = ErrCode(binary.BigEndian.Uint32(p))
	case FrameSettings:
		if f.StreamID != 0 {
			return errStreamNonZero
		}
		if f.Flags.Has(FlagAck) {
			if len(p) != 0 {
				return errSettingsAckSize
			}
			return nil
		}
		if len(p)%6 != 0 {
			return errSettingsSize
		}
		f.Data = p
		for i := range f.NumSettings() {
			if err := checkSetting(f.Setting(i)); err != nil {
				return err
			}
		}
	case FramePushPromise:
		if f.StreamID == 0 {
			return errStreamZero
		}
		d, err := unpad(f.Flags, p)
		if err != nil {
			return err
		}
		if len(d) < 4 {
			return errPushPromiseSize
		}
		f.PromisedID = binary.BigEndian.Uint32(d) & (1<<31 - 1)
		f.Data = d[4:]
	case FramePing:
		if f.StreamID != 0 {
			return errStreamNonZero
		}
		if len(p) != 8 {
			return errPingSize
		}
		f.Data = p
	case FrameGoAway:
		if f.StreamID != 0 {
			return errStreamNonZero
		}
		if len(p) < 8 {
			return errGoAwaySize
		}
		f.LastStreamID = binary.BigEndian.Uint32(p) & (1<<31 - 1)
		f.Code = ErrCode(binary.BigEndian.Uint32(p[4:]))
		f.Data = p[8:]
	case FrameWindowUpdate:
		if len(p) != 4 {
			return errWindowUpdateSize
		}
		f.Increment = binary.BigEndian.Uint32(p) & (1<<31 - 1)
		if f.Increment == 0 {
			if f.StreamID == 0 {
				return errWindowUpdateZero
			}
			return errStreamWindowZero
		}
	case FrameContinuation:
		if f.StreamID == 0 {
			return errStreamZero
		}
		f.Data = p
	default:
		f.Data = p
	}
	return nil
}

func unpad(fl Flags, p []byte) ([]byte, *Error) {
	if !fl.Has(FlagPadded) {
		return p, nil
	}
	if len(p) == 0 {
		return nil, errPadding
	}
	pad := int(p[0])
	if pad >= len(p) {
		return nil, errPadding
	}
	return p[1 : len(p)-pad], nil
}

func parsePriority(p []byte) Priority {
	v := binary.BigEndian.Uint32(p)
	return Priority{StreamDep: v & (1<<31 - 1), Exclusive: v>>31 == 1, Weight: p[4]}
}

func checkSetting(s Setting) *Error {
	switch s.ID {
	case SettingEnablePush:
		if s.Val > 1 {
			return errSettingsEnablePush
		}
	case SettingInitialWindowSize:
		if s.Val > MaxWindowSize {
			return errSettingsWindow
		}
	case SettingMaxFrameSize:
		if s.Val < MinMaxFrameSize || s.Val > MaxMaxFrameSize {
			return errSettingsFrameSize
		}
	case SettingEnableConnectProtocol:
		if s.Val > 1 {
			return errSettingsConnectProt
		}
	}
	return nil
}

// AppendFrameHeader appends a frame header. The payload length must be at
// most MaxMaxFrameSize and streamID below 2^31.
func AppendFrameHeader(dst []byte, length int, t FrameType, fl Flags, streamID uint32) []byte {
	return append(dst, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(fl),
		byte(streamID>>24)&0x7f, byte(streamID>>16), byte(streamID>>8), byte(streamID))
}

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendPadding(dst []byte, pad int) []byte {
	for range pad {
		dst = append(dst, 0)
	}
	return dst
}

// AppendData appends a DATA frame carrying data (at most the peer's
// SETTINGS_MAX_FRAME_SIZE bytes).
func AppendData(dst []byte, streamID uint32, endStream bool, data []byte) []byte {
	var fl Flags
	if endStream {
		fl |= FlagEndStream
	}
	dst = AppendFrameHeader(dst, len(data), FrameData, fl, streamID)
	return append(dst, data...)
}

// AppendDataPadded appends a DATA frame with the PADDED flag and pad bytes
// of padding.
func AppendDataPadded(dst []byte, streamID uint32, endStream bool, data []byte, pad uint8) []byte {
	fl := FlagPadded
	if endStream {
		fl |= FlagEndStream
	}
	dst = AppendFrameHeader(dst, 1+len(data)+int(pad), FrameData, fl, streamID)
	dst = append(dst, pad)
	dst = append(dst, data...)
	return appendPadding(dst, int(pad))
}

// HeadersParams are the optional parts of a HEADERS frame.
type HeadersParams struct {
	EndStream  bool
	EndHeaders bool
	// Pad, when non-zero, sets the PADDED flag with that many padding bytes.
	Pad uint8
	// Priority, when HasPriority, sets the PRIORITY flag.
	HasPriority bool
	Priority    Priority
}

// AppendHeaders appends a HEADERS frame carrying a header block fragment.
func AppendHeaders(dst []byte, streamID uint32, p HeadersParams, fragment []byte) []byte {
	var fl Flags
	n := len(fragment)
	if p.EndStream {
		fl |= FlagEndStream
	}
	if p.EndHeaders {
		fl |= FlagEndHeaders
	}
	if p.Pad > 0 {
		fl |= FlagPadded
		n += 1 + int(p.Pad)
	}
	if p.HasPriority {
		fl |= FlagPriority
		n += 5
	}
	dst = AppendFrameHeader(dst, n, FrameHeaders, fl, streamID)
	if p.Pad > 0 {
		dst = append(dst, p.Pad)
	}
	if p.HasPriority {
		dst = appendPriority(dst, p.Priority)
	}
	dst = append(dst, fragment...)
	return appendPadding(dst, int(p.Pad))
}

func appendPriority(dst []byte, p Priority) []byte {
	v := p.StreamDep & (1<<31 - 1)
	if p.Exclusive {
		v |= 1 << 31
	}
	return append(appendU32(dst, v), p.Weight)
}

// AppendPriority appends a PRIORITY frame.
func AppendPriority(dst []byte, streamID uint32, p Priority) []byte {
	dst = AppendFrameHeader(dst, 5, FramePriority, 0, streamID)
	return appendPriority(dst, p)
}

// AppendRSTStream appends a RST_STREAM frame.
func AppendRSTStream(dst []byte, streamID uint32, code ErrCode) []byte {
	dst = AppendFrameHeader(dst, 4, FrameRSTStream, 0, streamID)
	return appendU32(dst, uint32(code))
}

// AppendSettings appends a SETTINGS frame with the given entries.
func AppendSettings(dst []byte, settings []Setting) []byte {
	dst = AppendFrameHeader(dst, 6*len(settings), FrameSettings, 0, 0)
	for _, s := range settings {
		dst = append(dst, byte(s.ID>>8), byte(s.ID))
		dst = appendU32(dst, s.Val)
	}
	return dst
}

// AppendSettingsAck appends a SETTINGS frame with the ACK flag.
func AppendSettingsAck(dst []byte) []byte {
	return AppendFrameHeader(dst, 0, FrameSettings, FlagAck, 0)
}

// AppendPushPromise appends a PUSH_PROMISE frame (Flax never pushes; this
// exists for tests and completeness).
func AppendPushPromise(dst []byte, streamID, promisedID uint32, endHeaders bool, pad uint8, fragment []byte) []byte {
	var fl Flags
	n := 4 + len(fragment)
	if endHeaders {
		fl |= FlagEndHeaders
	}
	if pad > 0 {
		fl |= FlagPadded
		n += 1 + int(pad)
	}
	dst = AppendFrameHeader(dst, n, FramePushPromise, fl, streamID)
	if pad > 0 {
		dst = append(dst, pad)
	}
	dst = appendU32(dst, promisedID&(1<<31-1))
	dst = append(dst, fragment...)
	return appendPadding(dst, int(pad))
}

// AppendPing appends a PING frame.
func AppendPing(dst []byte, ack bool, data [8]byte) []byte {
	var fl Flags
	if ack {
		fl = FlagAck
	}
	dst = AppendFrameHeader(dst, 8, FramePing, fl, 0)
	return append(dst, data[:]...)
}

// AppendGoAway appends a GOAWAY frame.
func AppendGoAway(dst []byte, lastStreamID uint32, code ErrCode, debug []byte) []byte {
	dst = AppendFrameHeader(dst, 8+len(debug), FrameGoAway, 0, 0)
	dst = appendU32(dst, lastStreamID&(1<<31-1))
	dst = appendU32(dst, uint32(code))
	return append(dst, debug...)
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame; incr must be 1..2^31-1.
func AppendWindowUpdate(dst []byte, streamID, incr uint32) []byte {
	dst = AppendFrameHeader(dst, 4, FrameWindowUpdate, 0, streamID)
	return appendU32(dst, incr&(1<<31-1))
}

// AppendContinuation appends a CONTINUATION frame.
func AppendContinuation(dst []byte, streamID uint32, endHeaders bool, fragment []byte) []byte {
	var fl Flags
	if endHeaders {
		fl = FlagEndHeaders
	}
	dst = AppendFrameHeader(dst, len(fragment), FrameContinuation, fl, streamID)
	return append(dst, fragment...)
}

// ClientPreface is the connection preface a client sends before its first
// SETTINGS frame (RFC 9113 section 3.4).
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// PrefaceMatch is the result of MatchPreface.
type PrefaceMatch uint8

// Results of MatchPreface.
const (
	// PrefaceNeedMore: the bytes so far are a prefix of the preface.
	PrefaceNeedMore PrefaceMatch = iota
	// PrefaceYes: b starts with the complete client preface.
	PrefaceYes
	// PrefaceNo: b cannot be the start of the preface (HTTP/1.x or other).
	PrefaceNo
)

// MatchPreface tells a cleartext listener whether a new connection speaks
// HTTP/2 with prior knowledge (h2c): it compares the first bytes received
// with the client preface. "PRI * HTTP/2.0" is not a valid HTTP/1.1 request
// for the http1 parser, so a listener can peek with MatchPreface first and
// hand PrefaceNo connections to the HTTP/1.1 codec.
func MatchPreface(b []byte) PrefaceMatch {
	n := min(len(b), len(ClientPreface))
	if string(b[:n]) != ClientPreface[:n] {
		return PrefaceNo
	}
	if n < len(ClientPreface) {
		return PrefaceNeedMore
	}
	return PrefaceYes
}
