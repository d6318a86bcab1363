// Package integration tests the Flax controller and a real dataplane together, end
// to end: a real kube-apiserver and etcd (test/envtest), the controller manager
// in-process exactly as cmd/flax-controller wires it, and a real dataplane
// (dataplane/daemon with its snapshot server, as `flax-dataplane run --socket`
// wires it) on a unix socket in the test's temporary folder. Requests go to the
// dataplane's listener on 127.0.0.1 and are proxied to HTTP backends.
//
// The package holds no code besides this comment; the tests are in the _test.go
// files and run with the other tests:
//
//	KUBEBUILDER_ASSETS=$PWD/bin go test -ldflags=-checklinkname=0 -count=1 -v ./test/integration/
//
// # Backends in a network namespace
//
// The API server rejects EndpointSlices with loopback addresses, and tests must not
// send traffic anywhere but loopback and network namespaces they create. So the
// test creates a network namespace flax-it-<random> joined to the host by a veth
// pair: the host side has 10.251.N.1/24, the namespace side 10.251.N.2/24 and
// 10.251.N.3/24 (N random in 1..254, chosen among the /24s no interface uses), and
// the namespace has no default route, so nothing in it can reach beyond the veth.
// The backends are the test binary itself, re-executed inside the namespace with
// `ip netns exec` to run TestHelperBackend; each listens on one of the namespace's
// addresses and answers every request with its name. Everything is removed when the
// test ends, whether it passes or fails: the backends exit when their stdin closes
// (also when the test process dies), then the veth and the namespace are deleted.
// Only a test killed before its cleanups run (go test's -timeout panic) leaves them
// behind; `ip netns list | grep flax-it-` finds them and `ip netns del NAME`
// removes one with its veth.
//
// The test needs root (network namespaces) and the ip command; without either it
// skips, saying why.
//
// # What is covered
//
// For each engine (netpoll, and auto, which picks io_uring where the kernel
// allows it; the auto run is skipped when it picks netpoll too), on a fresh
// control plane:
//
//  1. A GatewayClass, a Gateway with an HTTP listener on 127.0.0.1, a Service,
//     its EndpointSlice and an HTTPRoute become Accepted, Programmed and
//     ResolvedRefs, and requests with the route's Host reach backend-a.
//  2. The EndpointSlice moves to backend-b: traffic follows with no failed
//     request in between, through the controller's endpoint fast path (an
//     EndpointUpdate, not a full snapshot). The time from the Update call to the
//     first answer of backend-b is logged; only a 10s bound is asserted.
//  3. An HTTPRoute for /broken referring to a missing Service reports
//     ResolvedRefs=False (BackendNotFound) and answers 500 on its path, while the
//     first route keeps serving.
//  4. The dataplane stops (its listener refuses connections) and a new one starts
//     on the same socket and port: the controller reconnects, sends the full
//     snapshot and traffic flows again (logged; asserted within 15s), and the
//     controller's delivery reports the new dataplane in sync.
//
// Before the objects are created the test waits until the controller is ready
// and the API server accepts writes of every kind used (the first write of a
// Gateway API kind takes about two seconds after the CRDs are installed), so
// the logged times measure Flax, not the control plane's start.
//
// When the test fails it logs the last lines the controller and the dataplanes
// logged and the dataplanes' non-zero metrics; FLAX_TEST_LOG=0 (or 1, more
// verbose) prints the logs as they come instead.
package integration
