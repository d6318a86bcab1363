package http1

// Span locates bytes in the caller's buffer: buf[Off : Off+Len]. Heads are
// at most 65535 bytes long (see Limits), so 16 bits suffice.
type Span struct {
	Off uint16
	Len uint16
}

// mkSpan returns the span covering b[start:end].
func mkSpan(start, end int) Span { return Span{Off: uint16(start), Len: uint16(end - start)} }

// Bytes returns the bytes the span covers in buf, the buffer that was parsed.
func (s Span) Bytes(buf []byte) []byte { return buf[int(s.Off) : int(s.Off)+int(s.Len)] }

// End returns the offset just past the span.
func (s Span) End() int { return int(s.Off) + int(s.Len) }

// HeaderID classifies the header fields the codec acts on. Every other field
// is HeaderOther.
type HeaderID uint8

// Header fields known to the codec.
const (
	HeaderOther HeaderID = iota
	HeaderHost
	HeaderContentLength
	HeaderTransferEncoding
	HeaderConnection
	HeaderKeepAlive
	HeaderProxyConnection
	HeaderTE
	HeaderTrailer
	HeaderUpgrade
	HeaderExpect
	HeaderXForwardedFor
	HeaderXForwardedProto
	HeaderXForwardedHost
	HeaderForwarded
)

// Field is one header field line: its name and its value with surrounding
// whitespace removed, as spans into the parsed buffer.
type Field struct {
	Name  Span
	Value Span
	// ID classifies the field name.
	ID HeaderID
	// ConnListed is set when the field's name appears as an option of a
	// Connection field, which makes it hop-by-hop (RFC 9110 §7.6.1).
	ConnListed bool
}

// Method is a request method. Common methods have their own value; any other
// valid method token is MethodOther (look at Request.MethodSpan for its bytes).
type Method uint8

// Request methods. Method names are case-sensitive: "get" is MethodOther.
const (
	MethodOther Method = iota
	MethodGet
	MethodHead
	MethodPost
	MethodPut
	MethodDelete
	MethodConnect
	MethodOptions
	MethodTrace
	MethodPatch
)

var methodNames = [...]string{
	MethodOther:   "OTHER",
	MethodGet:     "GET",
	MethodHead:    "HEAD",
	MethodPost:    "POST",
	MethodPut:     "PUT",
	MethodDelete:  "DELETE",
	MethodConnect: "CONNECT",
	MethodOptions: "OPTIONS",
	MethodTrace:   "TRACE",
	MethodPatch:   "PATCH",
}

// String returns the method name, or "OTHER" for MethodOther.
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "OTHER"
}

func lookupMethod(b []byte) Method {
	switch string(b) {
	case "GET":
		return MethodGet
	case "HEAD":
		return MethodHead
	case "POST":
		return MethodPost
	case "PUT":
		return MethodPut
	case "DELETE":
		return MethodDelete
	case "CONNECT":
		return MethodConnect
	case "OPTIONS":
		return MethodOptions
	case "TRACE":
		return MethodTrace
	case "PATCH":
		return MethodPatch
	}
	return MethodOther
}

// Version is an HTTP/1.x protocol version.
type Version uint8

// Supported protocol versions.
const (
	HTTP10 Version = 10
	HTTP11 Version = 11
)

// String returns "HTTP/1.0" or "HTTP/1.1".
func (v Version) String() string {
	if v == HTTP10 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// ConnFlags records the options found in Connection fields.
type ConnFlags uint8

// Connection options. ConnOther means at least one option names another
// header field, which the codec then marks as Field.ConnListed.
const (
	ConnClose ConnFlags = 1 << iota
	ConnKeepAlive
	ConnUpgrade
	ConnOther
)

// Framing is how the length of a message body is determined (RFC 9112 §6.3).
type Framing uint8

// Body framings.
const (
	// FramingNone: the message has no body.
	FramingNone Framing = iota
	// FramingLength: the body is Content-Length bytes long.
	FramingLength
	// FramingChunked: the body uses the chunked transfer coding.
	FramingChunked
	// FramingClose: the body extends until the connection closes (responses only).
	FramingClose
)

// TargetForm is the form of a request target (RFC 9112 §3.2).
type TargetForm uint8

// Request target forms.
const (
	// FormOrigin is "/path?query".
	FormOrigin TargetForm = iota
	// FormAbsolute is "http://authority/path?query".
	FormAbsolute
	// FormAuthority is "host:port", for CONNECT only.
	FormAuthority
	// FormAsterisk is "*", for OPTIONS only.
	FormAsterisk
)

// Default limits, used for any Limits field left at zero. Requests and
// responses have their own head limits: a request head comes from a client
// the proxy does not trust and should be small; a response head comes from a
// backend the operator runs, and some send many fields (one Set-Cookie per
// cookie).
const (
	DefaultMaxHeaderBytes   = 16 << 10
	DefaultMaxHeaderCount   = 100
	DefaultMaxURIBytes      = 8 << 10
	DefaultMaxChunkExtBytes = 1 << 10
	DefaultMaxTrailerBytes  = 8 << 10

	// DefaultMaxResponseHeaderBytes and DefaultMaxResponseHeaderCount are
	// the head limits of ParseResponse for zero Limits fields: the largest
	// head a span can address (64 KiB less one byte) and 500 field lines.
	DefaultMaxResponseHeaderBytes = MaxHeaderBytesLimit
	DefaultMaxResponseHeaderCount = 500

	// MaxHeaderBytesLimit is the largest accepted MaxHeaderBytes: spans
	// are 16-bit. Larger values are clamped to it.
	MaxHeaderBytesLimit = 1<<16 - 1
)

// Limits bounds what the codec accepts. A zero field selects its default,
// which for the head limits differs between ParseRequest (DefaultLimits)
// and ParseResponse (DefaultResponseLimits).
type Limits struct {
	// MaxHeaderBytes bounds a whole head: start line, field lines and the
	// final empty line (431 when exceeded by a request, 502 by a response).
	MaxHeaderBytes int
	// MaxHeaderCount bounds the number of field lines (431, or 502).
	MaxHeaderCount int
	// MaxURIBytes bounds the request target (414). It is checked as the
	// request line arrives; a target that first overflows MaxHeaderBytes
	// is reported as 431.
	MaxURIBytes int
	// MaxChunkExtBytes bounds the extensions of one chunk-size line.
	MaxChunkExtBytes int
	// MaxTrailerBytes bounds the trailer section of a chunked body,
	// including its final CRLF.
	MaxTrailerBytes int
}

// DefaultLimits returns the limits ParseRequest uses for zero Limits
// fields.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderBytes:   DefaultMaxHeaderBytes,
		MaxHeaderCount:   DefaultMaxHeaderCount,
		MaxURIBytes:      DefaultMaxURIBytes,
		MaxChunkExtBytes: DefaultMaxChunkExtBytes,
		MaxTrailerBytes:  DefaultMaxTrailerBytes,
	}
}

// DefaultResponseLimits returns the limits ParseResponse uses for zero
// Limits fields.
func DefaultResponseLimits() Limits {
	l := DefaultLimits()
	l.MaxHeaderBytes = DefaultMaxResponseHeaderBytes
	l.MaxHeaderCount = DefaultMaxResponseHeaderCount
	return l
}

// Normalized returns l with the request defaults in its zero fields and the head
// size clamped to MaxHeaderBytesLimit.
func (l Limits) Normalized() Limits {
	return l.withDefaults(DefaultMaxHeaderBytes, DefaultMaxHeaderCount)
}

// NormalizedResponse is Normalized with the response defaults.
func (l Limits) NormalizedResponse() Limits {
	return l.withDefaults(DefaultMaxResponseHeaderBytes, DefaultMaxResponseHeaderCount)
}

func (l Limits) withDefaults(headerBytes, headerCount int) Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = headerBytes
	} else if l.MaxHeaderBytes > MaxHeaderBytesLimit {
		l.MaxHeaderBytes = MaxHeaderBytesLimit
	}
	if l.MaxHeaderCount <= 0 {
		l.MaxHeaderCount = headerCount
	}
	if l.MaxURIBytes <= 0 {
		l.MaxURIBytes = DefaultMaxURIBytes
	}
	if l.MaxChunkExtBytes <= 0 {
		l.MaxChunkExtBytes = DefaultMaxChunkExtBytes
	}
	if l.MaxTrailerBytes <= 0 {
		l.MaxTrailerBytes = DefaultMaxTrailerBytes
	}
	return l
}
