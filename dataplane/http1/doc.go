// Package http1 is Flax's sans-I/O HTTP/1.1 codec (RFC 9110, RFC 9112).
//
// The package never reads from or writes to a connection. The dataplane
// engines (io_uring and the Go netpoller) own the sockets and the buffers;
// they hand the bytes received so far to this package and act on what it
// reports:
//
//   - ParseRequest and ParseResponse parse a message head. They return the
//     length of the head once it is complete, ErrNeedMore while it is not, or
//     an *Error carrying the HTTP status the proxy should answer with.
//   - BodyReader frames a message body as a streaming state machine: it is fed
//     whatever bytes arrive and reports how many of them belong to the body and
//     whether the body is complete. Chunked bodies are validated in place so
//     the proxy can forward the raw chunked bytes unchanged.
//   - AppendRequestHead and AppendResponseHead write the head to send to the
//     other side, with hop-by-hop fields removed, framing fields written in a
//     canonical form and X-Forwarded-* and Forwarded fields added.
//
// # Design
//
// Parsed values are not copied. A Request or Response records the method,
// target, status reason and every header field as a Span: a 16-bit offset
// and length into the caller's buffer (heads are limited to 64 KiB, see
// Limits). The caller keeps the buffer alive and unchanged while it uses the
// parsed head. Request and Response are reusable: a connection owns one of
// each, typically in a slab, and calls Reset between messages, so parsing
// allocates nothing once the field slice has grown to its working size. Errors
// are pre-allocated values, so rejecting a message allocates nothing either.
//
// Parsing is strict, because the proxy sits in front of backends that may
// interpret ambiguous messages differently (request smuggling): bare LF line
// endings, obs-fold, whitespace before a field colon, invalid bytes, both
// Content-Length and Transfer-Encoding, conflicting Content-Length values and
// any transfer coding other than chunked in a request are rejected, and a
// rejected message never yields a request the proxy could forward.
//
// Head parsing is incremental: when ParseRequest or ParseResponse reports
// ErrNeedMore, the caller appends more bytes and calls it again with the same
// head bytes at the start of the buffer; the parser resumes after the last
// complete line instead of starting over.
package http1
