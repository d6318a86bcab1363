// Package enginetest is the shared test support of the data path, and the engine
// suite that uses it.
//
// Its exported helpers (FreePort, Dial, ReadResponse, Get, WaitFor, CompileYAML,
// HTTPSnapshot, SelfSigned, StartBackend) serve every test that drives the dataplane over real
// loopback sockets: the engines' own tests, the daemon, health checks, the access
// log and test/integration. They import no engine, so any of those tests may
// import this package.
//
// Its tests run the same scenarios on every engine (netpoll, and io_uring where
// the kernel allows it): backends failing in scripted ways (refused connects,
// resets mid-response, hangs, slowness, 5xx) against health checks, outlier
// detection and retries; circuit breakers; request mirrors; local rate limits;
// retry budgets. Each test is a table over the engines, so a behaviour is
// asserted once and holds for both.
package enginetest
