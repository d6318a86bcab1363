package tracing

import "net/netip"

// MaxTargetBytes is the longest request target (path and query) a Span keeps;
// longer targets are clipped.
const MaxTargetBytes = 256

// MaxMethodBytes is the longest request method a Span keeps.
const MaxMethodBytes = 16

// Span is one finished request as the proxy records it: fixed size, so that
// recording copies it into a queue slot and allocates nothing. The string
// fields name configuration objects (they refer to the compiled config, which
// outlives the span) or are constants.
type Span struct {
	Trace  TraceID
	ID     SpanID
	Parent SpanID // zero when the request started the trace
	// Start and End are Unix times in nanoseconds.
	Start, End int64
	// Status is the HTTP status answered (499 when the client went away).
	Status int
	// Attempts is the number of upstream attempts.
	Attempts int
	// RequestBytes and ResponseBytes are the bytes received from and sent to
	// the client for this request.
	RequestBytes, ResponseBytes int64
	// Client is the client's address; Upstream the endpoint of the last
	// attempt (invalid when there was none).
	Client, Upstream netip.AddrPort
	// Listener, Route and BackendGroup name the configuration that served
	// the request; Reason why the proxy answered itself, or "".
	Listener, Route, BackendGroup, Reason string

	method    [MaxMethodBytes]byte
	methodLen uint8
	target    [MaxTargetBytes]byte
	targetLen uint16
}

// SetRequest copies the request's method and target (path and query) into the
// span, clipped to MaxMethodBytes and MaxTargetBytes.
func (s *Span) SetRequest(method, target []byte) {
	s.methodLen = uint8(copy(s.method[:], method))
	s.targetLen = uint16(copy(s.target[:], target))
}

// Method returns the request method.
func (s *Span) Method() []byte { return s.method[:s.methodLen] }

// Target returns the request target (path and query), possibly clipped.
func (s *Span) Target() []byte { return s.target[:s.targetLen] }
