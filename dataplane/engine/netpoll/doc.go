// Package netpoll is Flax's portable dataplane engine, built on Go's net
// package and netpoller. It runs where io_uring is unavailable (old kernels,
// container seccomp profiles, kernel.io_uring_disabled) and terminates TLS
// with crypto/tls.
//
// Each of the N workers binds its own SO_REUSEPORT socket per listener
// address, so the kernel spreads connections over the workers, and owns its
// endpoint pickers and its upstream keep-alive pool. Every accepted
// connection is served by a goroutine driving a proxy.Session: it performs
// the session's actions with blocking calls (writes gathered with writev,
// connects through the worker's pool or a dial) and reads from whichever
// side the session wants. When the session wants both sides at once (a
// request body streaming while the response may start, a tunnel) two
// reader goroutines ("pumps") feed the driver through a channel; otherwise
// it reads directly. An idle plain-TCP connection waits for readability
// without holding a read buffer.
//
// HTTPS listeners terminate TLS with the listener's tls.Config (SNI picks
// the certificate). TCP listeners tunnel bytes to an endpoint picked from
// their route's backend groups.
package netpoll
