package http2

import "errors"

// ErrCode is an HTTP/2 error code carried by RST_STREAM and GOAWAY frames
// (RFC 9113 section 7).
type ErrCode uint32

// Error codes defined by RFC 9113 section 7.
const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
	"CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
	"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
}

// String returns the RFC name of the code, or "UNKNOWN" for codes outside
// the registry (which the codec treats as INTERNAL_ERROR, RFC 9113 section 7).
func (c ErrCode) String() string {
	if int(c) < len(errCodeNames) {
		return errCodeNames[c]
	}
	return "UNKNOWN"
}

// ErrNeedMore reports that the bytes given hold no complete frame (or
// preface): the caller should receive more bytes and try again.
var ErrNeedMore = errors.New("http2: need more data")

// Error is a protocol error found in what the peer sent. A connection error
// (Stream false) ends the connection with a GOAWAY carrying Code; a stream
// error (Stream true) ends one stream with a RST_STREAM carrying Code
// (RFC 9113 section 5.4). All values are pre-allocated, so reporting an
// error allocates nothing; compare them by Code and Stream.
type Error struct {
	Code   ErrCode
	Stream bool
	Reason string
	msg    string
}

// Error returns the reason prefixed with the package name and the code.
func (e *Error) Error() string { return e.msg }

func connErr(code ErrCode, reason string) *Error {
	return &Error{Code: code, Reason: reason, msg: "http2: connection error " + code.String() + ": " + reason}
}

func streamErr(code ErrCode, reason string) *Error {
	return &Error{Code: code, Stream: true, Reason: reason, msg: "http2: stream error " + code.String() + ": " + reason}
}

// Errors found while parsing frames (RFC 9113 sections 4 and 6).
var (
	errFrameTooLarge  = connErr(ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE")
	errStreamZero     = connErr(ErrCodeProtocol, "frame type needs a stream id")
	errStreamNonZero  = connErr(ErrCodeProtocol, "frame type must be on stream 0")
	errPadding        = connErr(ErrCodeProtocol, "padding length exceeds payload")
	errPrioritySize   = streamErr(ErrCodeFrameSize, "PRIORITY payload not 5 bytes")
	errSelfDependency = streamErr(ErrCodeProtocol, "stream depends on itself")
	// On HEADERS the stream error is raised to a connection error: the
	// header block would have to be decoded anyway to keep HPACK in step.
	errSelfDependencyHeaders = connErr(ErrCodeProtocol, "HEADERS: stream depends on itself")
	errRSTStreamSize         = connErr(ErrCodeFrameSize, "RST_STREAM payload not 4 bytes")
	errSettingsAckSize       = connErr(ErrCodeFrameSize, "SETTINGS ack with payload")
	errSettingsSize          = connErr(ErrCodeFrameSize, "SETTINGS payload not a multiple of 6")
	errSettingsEnablePush    = connErr(ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1")
	errSettingsWindow        = connErr(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
	errSettingsFrameSize     = connErr(ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE out of range")
	errSettingsConnectProt   = connErr(ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")
	errPushPromiseSize       = connErr(ErrCodeFrameSize, "PUSH_PROMISE payload too short")
	errPingSize              = connErr(ErrCodeFrameSize, "PING payload not 8 bytes")
	errGoAwaySize            = connErr(ErrCodeFrameSize, "GOAWAY payload shorter than 8 bytes")
	errWindowUpdateSize      = connErr(ErrCodeFrameSize, "WINDOW_UPDATE payload not 4 bytes")
	errWindowUpdateZero      = connErr(ErrCodeProtocol, "WINDOW_UPDATE increment 0 on the connection")
	errStreamWindowZero      = streamErr(ErrCodeProtocol, "WINDOW_UPDATE increment 0")
	errHeadersPrioSize       = connErr(ErrCodeFrameSize, "HEADERS payload too short for priority")
)

// Errors found by the connection state machine (RFC 9113 sections 5, 6 and 8).
var (
	errPreface            = connErr(ErrCodeProtocol, "invalid connection preface")
	errFirstNotSettings   = connErr(ErrCodeProtocol, "first frame is not SETTINGS")
	errExpectContinuation = connErr(ErrCodeProtocol, "expected CONTINUATION")
	errUnexpectedCont     = connErr(ErrCodeProtocol, "CONTINUATION without an open header block")
	errStreamIDDecreased  = connErr(ErrCodeProtocol, "new stream id not above the previous one")
	errIdleStream         = connErr(ErrCodeProtocol, "frame on an idle stream")
	errClosedStreamConn   = connErr(ErrCodeStreamClosed, "HEADERS on a closed stream")
	errPushPromise        = connErr(ErrCodeProtocol, "PUSH_PROMISE received (push is disabled)")
	errEnablePushServer   = connErr(ErrCodeProtocol, "server sent SETTINGS_ENABLE_PUSH 1")
	errConnFlow           = connErr(ErrCodeFlowControl, "connection receive window exceeded")
	errConnSendWindow     = connErr(ErrCodeFlowControl, "connection send window above 2^31-1")
	errSettingsDelta      = connErr(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
	errHeaderBlockTooBig  = connErr(ErrCodeEnhanceYourCalm, "header block too large")
	errTooManyCont        = connErr(ErrCodeEnhanceYourCalm, "too many CONTINUATION frames")
	errControlFlood       = connErr(ErrCodeEnhanceYourCalm, "too many control frames queued for sending")
	errRapidReset         = connErr(ErrCodeEnhanceYourCalm, "too many streams reset")
	errEmptyFrameFlood    = connErr(ErrCodeEnhanceYourCalm, "too many empty frames")
	errStreamFlow         = streamErr(ErrCodeFlowControl, "stream receive window exceeded")
	errStreamSendWindow   = streamErr(ErrCodeFlowControl, "stream send window above 2^31-1")
	errStreamClosed       = streamErr(ErrCodeStreamClosed, "frame on a half-closed or closed stream")
	errRefused            = streamErr(ErrCodeRefusedStream, "too many concurrent streams")
	errRefusedGoAway      = streamErr(ErrCodeRefusedStream, "stream opened after GOAWAY")
	errTrailersNoEnd      = streamErr(ErrCodeProtocol, "trailers without END_STREAM")
	errContentLength      = streamErr(ErrCodeProtocol, "DATA length does not match content-length")
	errHeaderListTooLarge = streamErr(ErrCodeProtocol, "header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")
	errMalformed          = streamErr(ErrCodeProtocol, "malformed message")
)

// Errors returned to the caller of the Write methods: misuse of the API or
// a state in which the frame cannot be sent. They are not sent to the peer.
var (
	ErrStreamNotFound  = errors.New("http2: no such open stream")
	ErrStreamEnded     = errors.New("http2: stream already ended by this side")
	ErrTooManyStreams  = errors.New("http2: peer's SETTINGS_MAX_CONCURRENT_STREAMS reached")
	ErrGoingAway       = errors.New("http2: connection is going away")
	ErrStreamIDsUsedUp = errors.New("http2: stream ids exhausted")
	ErrConnClosed      = errors.New("http2: connection closed after a connection error")
	ErrHeadersTooLarge = errors.New("http2: encoded header block exceeds peer's SETTINGS_MAX_HEADER_LIST_SIZE")
)
