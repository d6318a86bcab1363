package http1

import "errors"

// Status codes the codec asks the proxy to reply with.
const (
	StatusBadRequest                  = 400
	StatusURITooLong                  = 414
	StatusRequestHeaderFieldsTooLarge = 431
	StatusNotImplemented              = 501
	StatusBadGateway                  = 502
	StatusHTTPVersionNotSupported     = 505
)

// ErrNeedMore reports that the bytes seen so far hold an incomplete message
// head: the caller should receive more bytes and parse again.
var ErrNeedMore = errors.New("http1: need more data")

// Error is a protocol error. Status is the HTTP status code the proxy should
// answer with: a 4xx or 5xx for a bad request or request body, 502 for a bad
// upstream response or response body. Reason is a short lowercase description.
// All values are pre-allocated; compare them by Status, not by identity.
type Error struct {
	Status int
	Reason string
	msg    string
}

// Error returns the reason prefixed with the package name.
func (e *Error) Error() string { return e.msg }

// StatusOf returns the HTTP status carried by an error returned by this
// package, or 0 when err is nil, ErrNeedMore or not an *Error.
func StatusOf(err error) int {
	// A type assertion, not errors.As: this package never wraps its errors, and
	// errors.As would allocate on the rejection path.
	if e, ok := err.(*Error); ok { //nolint:errorlint // see above
		return e.Status
	}
	return 0
}

// errCode identifies a protocol error independently of the side (request or
// response) it occurred on; the tables below map it to a pre-allocated *Error.
type errCode uint8

const (
	errNone errCode = iota
	errRequestLine
	errMethod
	errTarget
	errURITooLong
	errVersion
	errStatusLine
	errStatusCode
	errBareLF
	errObsFold
	errSpaceBeforeColon
	errFieldName
	errFieldLine
	errFieldValue
	errHeaderTooLarge
	errTooManyFields
	errContentLength
	errContentLengthConflict
	errContentLengthAndTE
	errTENotChunked
	errTransferEncoding
	errTEUnsupported
	errMissingHost
	errDuplicateHost
	errHost
	errConnection
	errChunkSize
	errChunkSizeOverflow
	errChunkLine
	errChunkExt
	errChunkExtTooLong
	errChunkDataCRLF
	errTrailer
	errTrailerTooLarge
	numErrCodes
)

var errInfo = [numErrCodes]struct {
	status int
	reason string
}{
	errNone:                  {0, ""},
	errRequestLine:           {StatusBadRequest, "malformed request line"},
	errMethod:                {StatusBadRequest, "invalid method"},
	errTarget:                {StatusBadRequest, "invalid request target"},
	errURITooLong:            {StatusURITooLong, "request target too long"},
	errVersion:               {StatusHTTPVersionNotSupported, "unsupported http version"},
	errStatusLine:            {StatusBadGateway, "malformed status line"},
	errStatusCode:            {StatusBadGateway, "invalid status code"},
	errBareLF:                {StatusBadRequest, "bare lf line terminator"},
	errObsFold:               {StatusBadRequest, "obsolete line folding"},
	errSpaceBeforeColon:      {StatusBadRequest, "whitespace before colon"},
	errFieldName:             {StatusBadRequest, "invalid field name"},
	errFieldLine:             {StatusBadRequest, "malformed field line"},
	errFieldValue:            {StatusBadRequest, "invalid field value"},
	errHeaderTooLarge:        {StatusRequestHeaderFieldsTooLarge, "header section too large"},
	errTooManyFields:         {StatusRequestHeaderFieldsTooLarge, "too many header fields"},
	errContentLength:         {StatusBadRequest, "invalid content-length"},
	errContentLengthConflict: {StatusBadRequest, "conflicting content-length"},
	errContentLengthAndTE:    {StatusBadRequest, "content-length with transfer-encoding"},
	errTENotChunked:          {StatusBadRequest, "final transfer-coding is not chunked"},
	errTransferEncoding:      {StatusBadRequest, "invalid transfer-encoding"},
	errTEUnsupported:         {StatusNotImplemented, "unsupported transfer-coding"},
	errMissingHost:           {StatusBadRequest, "missing host"},
	errDuplicateHost:         {StatusBadRequest, "multiple host fields"},
	errHost:                  {StatusBadRequest, "invalid host"},
	errConnection:            {StatusBadRequest, "invalid connection field"},
	errChunkSize:             {StatusBadRequest, "invalid chunk size"},
	errChunkSizeOverflow:     {StatusBadRequest, "chunk size too large"},
	errChunkLine:             {StatusBadRequest, "malformed chunk line"},
	errChunkExt:              {StatusBadRequest, "invalid chunk extension"},
	errChunkExtTooLong:       {StatusBadRequest, "chunk extension too long"},
	errChunkDataCRLF:         {StatusBadRequest, "missing crlf after chunk data"},
	errTrailer:               {StatusBadRequest, "invalid trailer field"},
	errTrailerTooLarge:       {StatusBadRequest, "trailer section too large"},
}

// requestErrors holds the errors reported for requests and request bodies;
// responseErrors those for upstream responses and response bodies, which all
// map to 502 Bad Gateway.
var requestErrors, responseErrors = buildErrors()

func buildErrors() (req, resp [numErrCodes]*Error) {
	for c := errCode(1); c < numErrCodes; c++ {
		in := errInfo[c]
		req[c] = &Error{Status: in.status, Reason: in.reason, msg: "http1: " + in.reason}
		resp[c] = &Error{Status: StatusBadGateway, Reason: in.reason, msg: "http1: upstream response: " + in.reason}
	}
	return req, resp
}
