// Package proxy is Flax's HTTP/1.1 reverse-proxy state machine, free of
// I/O: one Session per client connection turns events into actions, and an
// engine (dataplane/engine/netpoll on Go's netpoller, or an io_uring
// engine) performs the actions on real sockets.
//
// # Events and actions
//
// The engine reports what happened:
//
//	ClientData(p) int         bytes from the client (copied; returns how many were taken)
//	ClientEOF()               the client closed or failed
//	UpstreamConnected(reused, err)
//	UpstreamData(p) int       bytes from the upstream (copied)
//	UpstreamEOF()             the upstream closed or failed
//	Sent(side, n, err)        the oldest send in flight to side completed
//	Timer(now)                the armed deadline passed
//	Drain()                   the engine is shutting down
//
// and after each event pops actions with Next until there are none:
// ActSendClient / ActSendUpstream (Data), ActConnectUpstream (see
// Session.Target), ActReleaseUpstream (back to the keep-alive pool),
// ActCloseUpstream, ActShutdownUpstream / ActShutdownClient (half-close in a
// tunnel), ActCloseClient (Linger), ActArmTimer (Deadline), ActStartTunnel.
// WantClientData and WantUpstreamData say from which side the engine should
// be receiving; an engine that cannot stop a receive in progress (multishot
// recv) offers the bytes anyway and keeps what ClientData or UpstreamData
// did not take for later.
//
// Sends refer to memory owned by the session's Exchange (or to immutable
// configuration) that stays untouched until the engine reports the send
// complete, so an io_uring engine can hand the slices to the kernel as
// they are. Sends to one side must complete in the order they were queued;
// an engine may gather consecutive sends into one writev. Received bytes
// are copied out of the engine's buffer before ClientData or UpstreamData
// returns, so provided-buffer rings can recycle their buffers at once.
//
// # Memory
//
// A Session holds only connection-level state (about 450 bytes). The
// buffers and the per-request state (parsed request and response, route,
// attempt) live in an Exchange that the session borrows from its Worker's
// ExchangePool when bytes arrive and returns when the connection is idle,
// so an idle keep-alive connection costs its Session alone. An Exchange
// holds four buffers of Options.BufferSize bytes: client input, upstream
// input, the rewritten request head and the client-bound heads. Bodies
// stream through the input buffers and are never buffered whole. In
// steady state nothing allocates.
//
// # Behaviour
//
// Requests are handled one at a time; pipelined requests wait in the
// client buffer. Heads are parsed strictly by dataplane/http1 and a
// malformed request gets the codec's status with Connection: close and
// never reaches a backend. Request paths are normalized (dot segments,
// encoded unreserved characters) before routing and forwarding. The route
// decides between a redirect, a direct response, and a backend group, whose
// endpoint is picked through the Worker's EndpointPicker (consistent-hash
// key, session affinity token). The head sent upstream has hop-by-hop
// fields removed, X-Forwarded-For/-Proto/-Host set, header modifiers and
// URL rewrites applied. Content-Length and chunked bodies stream both ways
// (chunked framing is validated and passed through, or decoded for an
// HTTP/1.0 client); interim responses are forwarded to HTTP/1.1 clients; a
// 101 to an Upgrade request turns the session into a byte tunnel, as does
// a TCP listener.
//
// Failures map to local replies, each counted by metrics.Reason: no route
// 404, no backend 500, no usable endpoint 503, connect failure 502,
// upstream reset before a complete response head 502, malformed response
// 502, backend or request timeout 504, no response head in time 504, slow
// request head or stalled request body 408 (the timeouts: timeout.go). Failed
// attempts are retried on another endpoint when the route's retry policy
// allows it and nothing was sent to the client yet; an idempotent request
// that fails on a pooled connection before any response byte is retried
// once, at once, on a fresh connection. Once part of a response has been
// sent, a failure closes the client connection.
//
// # Resilience
//
// Pickers skip the endpoints the node's health checker (dataplane/health)
// publishes as unhealthy for the endpoint set being picked from (failing
// active health checks, or ejected by outlier detection), unless the
// balancer's panic threshold says too few are left; session affinity gives
// way to the picker when its endpoint is unhealthy. Each attempt's outcome
// (success, server error, connect failure) is reported once to the group's
// outlier counters (compiled.Group.Report). Backend groups' circuit breakers
// (max connections, pending requests, requests, retries) are node-wide and
// answer 503 with metrics.ReasonOverflow and a body naming the limit. Every
// group has a node-wide retry budget: a retry is made only while the group's
// retries in flight stay within max(min, percent% of its requests in
// flight); otherwise the failed attempt's result is answered. A route's
// local rate limit (node-wide token buckets, optionally per client address)
// answers 429 with Retry-After, metrics.ReasonRateLimited, before the
// request reaches a backend. See resilience.go for the exact semantics.
// Routes' request mirrors send a copy
// of the request head (and of a small body that arrived with it; otherwise
// the copy is bodiless) through the group's compiled.MirrorSender without
// ever delaying or failing the primary. None of this allocates per request,
// and a group or route that configures none of it pays nothing for it.
//
// # Access log
//
// With Options.AccessLog set (one dataplane/accesslog Worker per engine
// worker), every request writes one JSON line when it ends: in
// finishExchange once its response is sent (proxied responses and local
// replies alike), in abort when it is cut short (status 499 when the client
// went away or a send to it failed), when a tunnel closes (101 upgrades,
// TCP listeners: one line per connection, 502 connect_failed or 503
// no_endpoint when it never connected), and in Close when the engine closed
// the connection mid-request (499). The session counts the request's bytes
// (head and body as framed, tunnel bytes included) and the bytes sent to
// the client, the upstream attempts (connects; the endpoint of the last one
// is logged) and the metrics.Reason of a local reply or failure, whatever
// the log setting (a few additions); the method and target are copied out
// of the request head, which does not outlive routing, only when the log is
// on. A line is built in the Worker's preallocated buffer without
// allocating; with the log off a request costs one nil check.
package proxy
