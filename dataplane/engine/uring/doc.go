// Package uring is Flax's io_uring dataplane engine: N workers, each one
// goroutine locked to an OS thread pinned to one CPU, with its own ring
// (SINGLE_ISSUER|DEFER_TASKRUN), its own SO_REUSEPORT listening socket per
// bound address, its own sessions, endpoint pickers and upstream
// keep-alive pool. Workers share nothing on the hot path; the
// configuration reaches them by atomic pointer swaps (a per-address
// engine.Slot that sessions load their listener from at every request, so
// requests in flight finish on the configuration they started with).
// Engine implements engine.Engine. It serves HTTP, TCP and TLS listeners,
// and HTTPS listeners and TLS listeners with a terminating route with
// Options.HTTPS (TLS by dataplane/tlsconn: see "TLS" below); without it
// those are reported as not bound with ErrHTTPS and left to the netpoll
// engine (engine.Split). The workers also originate TLS to backend groups
// with TLS (see "TLS to backends" below).
//
// # Worker loop
//
// Each iteration first acts on the engine's requests (listener changes,
// drain, forced close, stop), which other goroutines signal through the
// worker's Waker; then it publishes the recycled receive buffers and makes
// one SubmitAndWait call, submitting every SQE queued since the last one
// and waiting at most until the earliest session deadline (or a second);
// then it handles the whole batch of completions: each is routed by its
// user_data to a listener, a session or an upstream connection and becomes
// one proxy.Session event, after which the session's actions are performed
// at once, which only queues SQEs. After the batch come the timers (a
// binary min-heap of sessions ordered by deadline, not one kernel timeout
// per session), the idle pool sweep (once a second) and re-arming receives
// that ran out of buffers.
//
// Receiving: every socket has one multishot receive armed on the worker's
// provided buffer ring. The bytes are copied into the session (ClientData
// or UpstreamData copy) and the buffer is recycled at once. What a session
// does not take (its buffer is full) stays in a stash, a chain of the
// provided buffers themselves linked through a per-buffer next index; the
// receive is then cancelled, and re-armed once the stash is drained and
// the session wants data again. A receive that ended with ENOBUFS waits
// until a share of the buffers is back. An idle pooled upstream connection
// keeps its receive armed, so a server close removes it from the pool.
//
// Sending: each socket has at most one send in flight (sends complete in
// order); the queue behind it is gathered into one sendmsg when it holds
// several segments. Sends do not use MSG_WAITALL: a short send completes,
// is reported to the session as progress (Session.SendProgress, which
// restarts the send stall timeout) and the rest is sent next. A session
// that gives up on a stalled send closes the socket; closeSock shuts it
// down first so the kernel lets go of the Exchange's memory.
// A session's sends refer to its Exchange buffers, which the worker's
// ExchangePool carves out of ring arenas, so they go to the kernel without
// a copy. Data outside ring memory is copied into a scratch buffer piece by
// piece (a fallback: the proxy sends only Exchange memory).
//
// Upstream connections are sockets created with socket(2) and TCP_NODELAY
// and connected by the ring, with the group's connect timeout as a linked
// timeout. A released connection without leftover bytes goes to the
// per-endpoint (and group TLS) pool (most recently used first, at most
// Group.MaxIdlePerEndpoint, closed after Group.IdleTimeout). Closing a
// socket cancels its operations and queues a close; a socket with a send in
// flight is shut down first, so the kernel cannot copy from an Exchange the
// session is about to reuse. A client slot is released, and its Session
// closed (which returns its Exchange), only when the last completion for
// it has arrived.
//
// # Memory layout
//
// Per worker: the ring; a provided buffer ring of 1024 buffers of 8 KiB;
// ring arenas, grown by chunks, for the Exchange buffers (four buffers of
// proxy.Options.BufferSize each, only while a connection is active) and
// for small kernel-visible structures (a sockaddr and a timespec per
// upstream slot, a msghdr per send queue, scratch buffers). Sessions live
// in a slab of slot structs (a proxy.Session plus the client socket's
// state, about 480 bytes) in chunks of 256 that never move; upstream
// connections in a second slab. An idle keep-alive connection costs its
// slot and a heap entry; its Exchange is back in the pool. Send queues are
// taken from a pool only while a socket has sends queued. Nothing is
// allocated per request once the pools are warm.
//
// # TLS
//
// A connection accepted on an HTTPS listener has a TLS state (tls.go)
// between its socket and its Session, which is opened at accept so that its
// request head timeout covers the handshake; a TLS listener's connection gets
// one when its ClientHello chose a terminating route (ActTerminateTLS), fed
// the bytes the session read the hello from. The handshake runs on
// crypto/tls in a short-lived goroutine (tlsconn), fed the received bytes;
// it reports progress through a queue and the worker's Waker, and the worker
// sends its output. At most Options.MaxHandshakes (default 256) run at once per worker; one more
// closes the oldest in progress. Afterwards received ciphertext is copied into a
// receive buffer lent by the exchange pool and opened in place, record by
// record, plaintext going to Session.ClientData; the session's sends queue
// as plaintext and are sealed in order into one send buffer from the same
// pool, one send in flight per connection, whose completion reports Sent for
// the sends it carried. Both buffers go back to the pool when empty. A
// failed record or handshake sends its alert, when nothing else is in
// flight, with a non-blocking send and closes; a session's close with linger
// or its half-close seals close_notify after its last data.
//
// # TLS to backends
//
// A connection to an endpoint of a group with TLS (uptls.go) starts a
// tlsconn client handshake once its TCP connect completes, and stays
// connecting until it ends: handshake goroutine, Waker and queued output
// as for clients, bounded by the group's connect timeout; the session
// hears UpstreamConnected then, and a failed handshake is a failed connect.
// The connection then has a tlsState of its own: received ciphertext is
// opened into a pooled receive buffer before UpstreamData, the session's
// sends are sealed into a pooled send buffer, its half-close seals
// close_notify first. Records start on crypto/tls (driven synchronously by
// the worker) so that it reads the server's first session ticket into the
// worker's session cache for the group's TLS (compiled.Group.TLSKey), from
// which new connections to the same endpoint resume; then the connection
// moves to tlsconn's record layer, which does not allocate. Pooled
// connections keep their TLS state and are keyed by endpoint and TLSKey.
//
// # user_data
//
// Every SQE carries iouring.Pack(op, generation, index): op names the
// operation (accept, client receive/send/close, upstream
// receive/send/connect/linked timeout/close, wake, cancel; half-closes are
// shutdown(2) calls, see shutdownNow), index
// the listener, session slot or upstream slot, and generation the
// occupant of that slot, bumped whenever the slot is reused. A completion
// whose generation is not the slot's current one is dropped, after its
// provided buffer, if any, is recycled. Each slot also counts its
// operations in flight and is reused only when that count is back to zero,
// so stale completions are a defence in depth rather than a normal case.
// Cancellations carry their own op and are ignored.
//
// # Building
//
// The package links giouring through dataplane/iouring, so builds and tests
// need -ldflags=-checklinkname=0.
package uring
