// Package http2 is Flax's sans-I/O HTTP/2 codec (RFC 9113, RFC 7541).
//
// The package never reads from or writes to a connection: the engines own
// the sockets and the buffers, hand the bytes received to this package and
// write out what it appends to their output buffers.
//
//   - ReadFrame and the Append* functions parse and write every frame type
//     (RFC 9113 sections 4 and 6), with the frame size limit and padding;
//     MatchPreface tells a cleartext listener whether a connection starts
//     with the client preface (h2c with prior knowledge).
//   - Decoder and Encoder are HPACK (RFC 7541). The decoder has a bounded
//     dynamic table and stops storing fields past a header list limit while
//     still decoding the block, which defuses HPACK bombs. The encoder uses
//     the static table and literals without indexing only, so it keeps no
//     table for the peer.
//   - Conn is the connection state machine, server or client role: preface
//     and SETTINGS exchange, PING, GOAWAY with graceful drain, connection
//     and stream flow control, stream states (section 5.1), RST_STREAM,
//     header blocks across CONTINUATION frames, trailers, message
//     validation (section 8) and concurrency limits. Every violation the
//     RFC names becomes a connection error (GOAWAY) or a stream error
//     (RST_STREAM) with the RFC's code.
//
// # Driving a Conn
//
// One Conn serves one connection and multiplexes its streams; the proxy
// maps each stream to one request exchange. The caller:
//
//   - calls Start once and sends what it appends;
//   - appends received bytes to its input buffer (which holds at least one
//     whole frame: Config.MaxFrameSize plus FrameHeaderLen) and calls Next
//     until it consumes nothing, acting on each Event: EventHeaders opens a
//     stream (server) or answers one (client), EventData carries body bytes
//     (aliasing the input) whose credit the caller returns with Consume
//     once it has forwarded them, EventTrailers ends a message,
//     EventReset ends a stream abnormally, EventWindowUpdate and
//     EventSettings say blocked writes may proceed, EventGoAway stops new
//     streams;
//   - builds header blocks with BeginHeaders and AddHeader and writes them
//     with WriteRequestHeaders (client) or WriteHeaders (responses,
//     trailers); writes bodies with WriteData, which writes what the
//     windows allow and says how much; ends streams early with WriteReset;
//   - appends AppendPending's control frames (acknowledgements, window
//     updates, resets, GOAWAY) to its output before each send.
//
// AppendRequestHTTP1 rewrites a request as an HTTP/1.1 head, so the
// proxy's HTTP/1.1 request path (dataplane/http1, routing, filters) can
// serve HTTP/2 streams unchanged; a WebSocket extended CONNECT (RFC 8441,
// Config.EnableConnectProtocol) becomes the HTTP/1.1 upgrade request.
//
// A connection error from Next queues a GOAWAY; the caller sends it and
// closes. Stream errors are handled inside Next: the RST_STREAM is queued
// and an EventReset with Local set is reported.
//
// # Limits
//
// Config bounds everything a peer can make a Conn hold or do: concurrent
// streams (REFUSED_STREAM past it), decoded header list size, encoded
// header block size and CONTINUATION count (CVE-2024-27316), HPACK table
// size, receive windows, control frames queued for sending (SETTINGS and
// PING floods), streams reset or provoked into resets beyond those that
// complete (rapid reset, CVE-2023-44487 and CVE-2025-8671) and empty DATA
// frames. The last three end the connection with ENHANCE_YOUR_CALM.
// Memory per connection is the Conn (about 0.5 KB), a stream slab of 48
// bytes per concurrent stream, the HPACK table once the peer indexes
// (2×HeaderTableSize plus 12 bytes per 32), and buffers bounded by the
// header limits, which ReleaseMemory drops on an idle connection.
//
// Nothing allocates per stream or per frame in steady state: streams live
// in a reused slab, fields are decoded into one reused buffer, errors are
// pre-allocated values.
package http2
