// Package proxy is Flax's HTTP/1.1 and HTTP/2 reverse proxy as a state machine free of
// I/O: one [Session] per client connection turns events into actions, and an engine
// (dataplane/engine/uring or dataplane/engine/netpoll) performs them on real sockets.
// Both engines drive the same Session, so proxy behaviour lives here and only here.
//
// Main types and entry points:
//
//   - [Worker] ([NewWorker], [Options]) is what one engine worker shares between its
//     sessions: metrics, the [EndpointPicker], the [ExchangePool], the clock, options.
//   - [Session]: [Session.Open] on accept, then events (ClientData, ClientEOF,
//     UpstreamConnected, UpstreamData, UpstreamEOF, Sent, Timer, Drain), each followed by
//     [Session.Next] until it returns no [Action]; [Session.Close] once the engine has
//     closed the connection. WantClientData and WantUpstreamData say which side to read.
//   - [Exchange]: the buffers and per-request state a session borrows while bytes are in
//     flight and returns when the connection goes idle.
//   - [H2Conn] and [H2Stream] (h2.go, h2stream.go): HTTP/2 to clients. A session that
//     sees the connection preface asks its engine (ActStartHTTP2) to hand the connection
//     to an H2Conn, which runs the dataplane/http2 codec; each stream is served by an
//     ordinary Session opened with [Session.OpenStream], whose client is the stream: its
//     request is fed as HTTP/1.1 bytes and its HTTP/1.1 response is framed back
//     (trailers included, both ways). Engines give a stream session its own upstream
//     connection and timer as for a connection's session ([H2Conn.NextStream],
//     [H2Conn.Flush]) and may batch the connection's sends ([H2Conn.DeferSends]). So
//     HTTP/2 requests take the one request pipeline below.
//
// A request is parsed by dataplane/http1, its path normalised, routed through the
// listener's compiled config (loaded afresh for every request, so a new config applies
// from the next request on), then answered locally (redirect, direct response, or an
// error counted by a metrics.Reason) or forwarded to an endpoint of its backend group,
// with retries, timeouts, circuit breakers, rate limits and mirrors as resilience.go
// describes. A route with external authorization first asks its authorization service
// on the same upstream slot (extauth.go). Extension filters (dataplane/filter) hook in after routing, when the
// upstream head is built, when the response head is rewritten, and when a TCP
// listener's connection opens; filter.go says where exactly. Bodies stream through the buffers and are never held whole; a 101 upgrade
// or a TCP listener turns the session into a byte tunnel, and so does a TLS listener
// once the server name of the ClientHello chose its route (tls.go: passthrough, or TLS
// terminated by the engine on ActTerminateTLS). Requests are served one at a
// time: pipelined requests wait in the client buffer. Every wait on a peer is bounded by
// a timeout that restarts on progress (timeout.go lists them with their defaults).
//
// A backend group whose protocol is H2C gets its requests as HTTP/2 streams
// (upstream_h2.go): the HTTP/1.1 head and body the Session produces become
// HEADERS and DATA frames, the response frames come back as HTTP/1.1 bytes
// into the same response path; the HTTP/2 state of a pooled connection
// (UpstreamState) travels with it through the engine (DetachUpstream,
// AttachUpstream).
//
// Invariants that matter:
//
//   - Memory handed to the engine is stable: a send refers to the Exchange's buffers (or
//     immutable config) untouched until Sent reports it complete, and sends to one side
//     complete in the order they were queued, so io_uring can pass the slices to the
//     kernel as they are. Received bytes are copied before ClientData or UpstreamData
//     returns (the engine keeps what they did not take), so buffer rings recycle at once.
//   - Nothing allocates per request in steady state, and an idle keep-alive connection
//     holds its Session alone (no buffers; size_test.go keeps it under 512 bytes). A Session is not safe for
//     concurrent use; features a route or group does not configure cost nothing.
package proxy
