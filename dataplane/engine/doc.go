// Package engine defines the interface between the dataplane runtime and its
// I/O engines, and the parts every engine shares.
//
// An Engine serves the listeners of the running compiled.Config with N
// workers. The runtime compiles a snapshot and calls Apply, which binds the
// listeners that are new, keeps the sockets of addresses that stay (their
// listener, routes and TLS settings are swapped through an atomic pointer),
// closes the ones that went away, and reports one ListenerStatus per
// listener. Requests in flight finish on the configuration they started
// with; each connection picks up the new one at its next request. Drain
// stops accepting, closes idle connections and waits for requests in
// flight.
//
// The shared parts are ListenerSet, which diffs a configuration's listeners
// against the bound addresses (Plan), and Slot, the per-address atomic
// pointer that sessions load their listener from.
//
// Implementations: engine/netpoll (Go's netpoller, portable, TLS) and an
// io_uring engine. engine/enginetest runs the scenarios both must pass
// (failing backends, circuit breakers, mirrors, rate limits, retry budgets)
// on each of them.
package engine
