// Package http2 is Flax's sans-I/O HTTP/2 codec (RFC 9113, RFC 7541).
//
// The package never reads from or writes to a connection: the engines own
// the sockets and the buffers, hand the bytes received to this package and
// write out what it appends to their output buffers.
//
//   - ReadFrame and the Append* functions parse and write every frame type
//     (RFC 9113 sections 4 and 6); MatchPreface detects the client preface
//     on cleartext listeners (h2c with prior knowledge).
package http2
