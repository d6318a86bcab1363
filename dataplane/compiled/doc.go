// Package compiled compiles a dataplane snapshot (api/dataplane/v1) into the immutable
// structures the proxy's workers read: per listener a router.Table and the routes its
// actions point to, and per backend group its settings and a balancer.Group of endpoints.
//
// A Config is built once per snapshot, off the hot path, and published to workers by an
// atomic pointer swap; workers never see a partly built Config. Endpoint-only updates take
// a fast path: UpdateEndpoints replaces one group's balancer.Group through that group's
// own atomic pointer, without recompiling any route. Requests in flight keep the
// balancer.Group they picked from.
//
// Groups also carry their resilience settings (HealthCheck, Outlier, Breakers) and
// the node-level state attached to them at run time: the EndpointHealth published by
// the node's health checker (dataplane/health), the outlier counters workers report
// into, and the MirrorSender of mirrored requests. Breaker gauges and resilience
// counters live in the group's metrics.Shared, which is keyed by group name and so
// survives config swaps. Groups also carry their RetryBudget.
//
// Routes carry their RateLimit: token buckets shared by every worker (a Limiter,
// lock-free, with a fixed-size table of per-client buckets when limited per client
// address; see ratelimit.go). Routes naming the same bucket share one. Unlike the
// rest of a Config, buckets are state: Config.KeepState hands them from the running
// config to the next one when their limit is unchanged, so that a snapshot push does
// not refill them.
//
// Routes and TCP listeners carry the hooks of their extension filters (package
// dataplane/filter), resolved by name in a filter.Registry when the snapshot
// compiles (CompileWith; Compile uses filter.Default): a route's Filters hold the
// listener's hooks, then its own, as typed lists, so that the proxy calls them
// without type assertions. A name the registry lacks fails the compile.
//
// Compile assumes the snapshot passed dataplane/dataplanev1.Validate; it still returns an
// error instead of panicking on anything it cannot compile.
package compiled
