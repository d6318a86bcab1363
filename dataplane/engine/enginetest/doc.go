// Package enginetest runs the same scenarios on every engine (netpoll, and
// io_uring where the kernel allows it) over real loopback sockets: backends
// failing in scripted ways (refused connects, resets mid-response, hangs,
// slowness, 5xx) against health checks, outlier detection and retries; circuit
// breakers; request mirrors; local rate limits; retry budgets. Each test is a
// table over the engines, so a behaviour is asserted once and holds for both.
// The package has no code besides its tests.
package enginetest
