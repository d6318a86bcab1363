// Package health decides which endpoints of each backend group the workers should
// avoid: it runs the node's active health checks and its passive outlier detection,
// and publishes the result to the workers without locks on their path.
//
// # One checker per node
//
// A Manager runs one goroutine per backend group that has a health check or outlier
// detection configured, not one per worker: a node probes each endpoint once per
// interval whatever its core count. Manager.Apply is called with every new
// compiled.Config before the engine swaps it in; it starts the goroutines of groups that
// appeared, stops those of groups that went away, and publishes each group's health
// into the new config's groups at once, so the first request on the new config
// already avoids known-bad endpoints.
//
// # Publication
//
// For each group the Manager publishes a compiled.EndpointHealth through an atomic
// pointer of the compiled.Group: the endpoint set it was computed for, a
// balancer.Bitset of the endpoints to avoid (failing health checks, or ejected) and
// the outlier counters. A worker's picker passes the bitset to balancer.Picker.Pick
// only when the set it picks from is the one the bitset was computed for, so indexes
// never refer to the wrong endpoints; the balancer's panic threshold ignores health
// when too few endpoints are left. Endpoint-only updates
// (compiled.Config.UpdateEndpoints) call a hook that republishes for the new set
// before returning.
//
// # State survives swaps
//
// Health is keyed by endpoint address inside a group keyed by name, so it survives
// snapshot swaps and endpoint updates for the endpoints that stay. A new endpoint
// starts healthy: it is only in the set when its EndpointSlice says Ready, and the
// kubelet's readiness probe has just passed, so a scale-up takes traffic at once
// instead of after HealthyThreshold probe intervals. (Starting unhealthy would also
// put a freshly created group in the balancer's panic mode, where health is ignored
// anyway.) An endpoint that leaves the set forgets its state.
//
// # Active health checks
//
// Every Interval plus a random delay in [0, Jitter] the group's goroutine probes each
// endpoint concurrently with a raw HTTP/1.1 "GET Path" (Connection: close, its own
// connection, bounded by Timeout) and reads the status line; a group whose protocol
// is H2C is probed the same way over cleartext HTTP/2 (prior knowledge, one stream on
// its own connection, with dataplane/http2), as the proxy speaks to it. A status in one of the
// expected ranges is a success; anything else (refused, reset, timeout, another
// status) a failure. UnhealthyThreshold consecutive failures make a healthy endpoint
// unhealthy, HealthyThreshold consecutive successes make an unhealthy one healthy;
// each change is counted in flax_upstream_health_transitions_total.
//
// # Outlier detection
//
// Workers report every attempt's outcome through compiled.Group.Report into per
// endpoint atomic counters shared by all workers: a success resets them (reading
// first, so the common case writes nothing and the cache line stays shared), a 5xx,
// reset, timeout or malformed response counts a server error, a failed connect a
// connect failure. Shared counters were chosen over per-worker ones because the
// counts are consecutive failures of the endpoint, not of one worker's share of its
// traffic: with per-worker counting a node with many workers would need up to
// workers × threshold failures before anyone notices. The failure that reaches a
// threshold wakes the group's goroutine (a non-blocking channel send), which ejects
// the endpoint for BaseEjectionTime × the number of times it was ejected, capped at
// MaxEjectionTime, unless MaxEjectionPercent of the group's endpoints are ejected
// already (one endpoint may always be ejected). An ejected endpoint returns when its
// time is up; the multiplier then decreases by one for every BaseEjectionTime it
// stays un-ejected. Ejections are counted in flax_upstream_ejections_total and merge
// into the same bitset as health checks.
package health
