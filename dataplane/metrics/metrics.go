// Package metrics holds the dataplane's counters and exports them to Prometheus.
//
// Workers count on the hot path without locks or allocation: each worker owns a Worker
// whose counters only it writes (atomic adds on cache lines no other core writes), and a
// scrape sums every worker's counters. Routes and backend groups are interned to small
// integer ids that stay stable across snapshots, so a route keeps its series when the
// config is swapped. Counter storage grows in fixed-size chunks that never move, so a
// worker can hold a pointer to a route's counters while the registry grows.
//
// Series (all prefixed flax_):
//   - per route: requests_total{route,code}, request_duration_seconds{route},
//     rate_limited_requests_total{route} (429s of the route's local rate limit);
//   - per reason: local_replies_total{reason} (Reason: rate_limited, overflow, ...);
//   - per kind: timeouts_total{kind} (TimeoutKind: request_head, send_stall, ...);
//   - per backend group: upstream_requests_total,
//     upstream_response_duration_seconds (request head sent to response head, per
//     attempt), upstream_connect_errors_total,
//     upstream_connections_active, upstream_requests_active (requests in flight,
//     the base of the retry budget), upstream_retries_total{reason} (retry
//     attempts started, by RetryReason), upstream_retry_budget_denied_total (retries the budget refused),
//     upstream_health_transitions_total{to}, upstream_ejections_total,
//     upstream_endpoints_unhealthy, circuit_breaker_active{limit} (the retries
//     gauge counts requests being retried, limit or not),
//     circuit_breaker_overflows_total{limit}, mirror_requests_total{result};
//   - the process: downstream_connections_active, downstream_connections_total,
//     downstream_connections_overflow_total{listener,reason} (connections closed at
//     once over a connection cap, and accepts that failed for lack of descriptors),
//     downstream_bytes_received_total{listener}, downstream_bytes_sent_total{listener},
//     tls_handshakes_total{listener,result} (listeners that had handshakes),
//     buffer_bytes{state} (connection buffers lent and kept free),
//     memory_budget_bytes, memory_used_bytes (what the budget counts),
//     overload_actions_total{action} (load shed over the memory budget),
//     engine_info{engine,reason}, config_version, config_applied_total,
//     config_apply_errors_total;
//   - registered by dataplane/accesslog: access_log_dropped_total,
//     access_log_write_errors_total.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	chunkSize = 256  // ids per storage chunk
	maxChunks = 1024 // at most 262,144 routes or backend groups
)

// DurationBuckets are the upper bounds, in seconds, of the request duration histogram.
var DurationBuckets = [numBuckets]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Reason says why the proxy answered a request itself or dropped an upstream attempt.
type Reason uint8

// Reasons, each exported as a value of the `reason` label of flax_local_replies_total.
const (
	ReasonBadRequest     Reason = iota // malformed request (400, 414, 431, 501, 505)
	ReasonNoRoute                      // no route matched (404)
	ReasonDirectResponse               // the route answers itself (redirect, direct response)
	ReasonNoEndpoint                   // backend group has no usable endpoint (503)
	ReasonConnectFailed                // upstream connect failed (502)
	ReasonUpstreamReset                // upstream closed or reset mid-exchange (502)
	ReasonBadResponse                  // upstream sent a malformed response (502)
	ReasonTimeout                      // upstream timeout (504)
	ReasonHeaderTimeout                // client too slow to send its request head (408)
	ReasonOverflow                     // circuit breaker limit reached (503)
	ReasonRateLimited                  // the route's local rate limit is exceeded (429)
	// Timeouts after the request head (TimeoutKind says which fired). Those that close
	// the connection instead of replying are only the access log's reason.
	ReasonRequestBodyTimeout    // the request body stopped arriving (408, or close)
	ReasonUpstreamHeaderTimeout // no response head from the backend in time (504)
	ReasonUpstreamBodyTimeout   // the response body stopped arriving (close)
	ReasonSendStall             // the client stopped reading (close)
	ReasonOverload              // the worker's memory budget is used up (503)
	ReasonTunnelIdle            // nothing moved in a tunnel (close)
	ReasonFilter                // an extension filter answered the request or rejected the connection
	ReasonCORSPreflight         // the route's CORS policy answered a preflight request (204)
	ReasonMisdirected           // the Host belongs to another certificate than the TLS server name (421)
	ReasonExtAuthDenied         // the route's external authorization service denied the request (its status)
	ReasonExtAuthError          // the route's external authorization service gave no usable answer (403)
	numReasons
)

var reasonNames = [numReasons]string{
	"bad_request", "no_route", "direct_response", "no_endpoint", "connect_failed",
	"upstream_reset", "bad_response", "timeout", "header_timeout", "overflow",
	"rate_limited", "request_body_timeout", "upstream_header_timeout", "upstream_body_timeout",
	"send_stall", "overload", "tunnel_idle", "filter", "cors_preflight", "misdirected",
	"ext_auth_denied", "ext_auth_error",
}

// String returns the label value of r.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// TimeoutKind names one of the waits every connection bounds, each exported as a
// value of the `kind` label of flax_timeouts_total.
type TimeoutKind uint8

// Timeout kinds.
const (
	TimeoutRequestHead            TimeoutKind = iota // a request head not received in time (408, or close when nothing came)
	TimeoutKeepAliveIdle                             // a keep-alive connection idle between requests (close)
	TimeoutRequestBodyIdle                           // a request body that stopped arriving (408, or close)
	TimeoutSendStall                                 // a send to the client (or, in a tunnel, either side) that stopped progressing (close)
	TimeoutUpstreamResponseHeader                    // no response head from the backend (504)
	TimeoutUpstreamBodyIdle                          // a response body that stopped arriving (close)
	TimeoutTunnelIdle                                // a tunnel where nothing moved either way (close)
	TimeoutExtAuth                                   // a route's external authorization check not answered in time (403)
	numTimeoutKinds
)

var timeoutNames = [numTimeoutKinds]string{
	"request_head", "keepalive_idle", "request_body_idle", "send_stall", "upstream_response_header", "upstream_body_idle",
	"tunnel_idle", "ext_auth",
}

// String returns the label value of k.
func (k TimeoutKind) String() string {
	if k < numTimeoutKinds {
		return timeoutNames[k]
	}
	return "unknown"
}

// RouteCounters are one worker's counters for one route.
type RouteCounters struct {
	codes       [5]atomic.Uint64 // 1xx..5xx
	duration    histogram
	rateLimited atomic.Uint64 // requests answered 429 by the route's rate limit
}

const numBuckets = 14

// histogram is one worker's share of a duration histogram over DurationBuckets.
type histogram struct {
	buckets  [numBuckets]atomic.Uint64
	overflow atomic.Uint64 // observations above the last bucket
	sumNanos atomic.Uint64
}

// observe counts one duration.
func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < numBuckets && s > DurationBuckets[i] {
		i++
	}
	if i < numBuckets {
		h.buckets[i].Add(1)
	} else {
		h.overflow.Add(1)
	}
	h.sumNanos.Add(uint64(d))
}

// histogramSum adds workers' shares of one histogram up for export.
type histogramSum struct {
	buckets  [numBuckets]uint64
	overflow uint64
	sumNanos uint64
}

func (t *histogramSum) add(h *histogram) {
	for i := range t.buckets {
		t.buckets[i] += h.buckets[i].Load()
	}
	t.overflow += h.overflow.Load()
	t.sumNanos += h.sumNanos.Load()
}

// metric returns the Prometheus histogram of the sum.
func (t *histogramSum) metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	cum := make(map[float64]uint64, numBuckets)
	var count uint64
	for i, v := range t.buckets {
		count += v
		cum[DurationBuckets[i]] = count
	}
	return prometheus.MustNewConstHistogram(d, count+t.overflow, float64(t.sumNanos)/1e9, cum, labels...)
}

// GroupCounters are one worker's counters for one backend group.
type GroupCounters struct {
	requests      atomic.Uint64
	connectErrors atomic.Uint64
	connections   atomic.Int64 // open upstream connections
	// inFlight counts the worker's requests routed to the group and not yet
	// ended. The group's retry budget is a share of their sum over every
	// worker (Shared.RequestsInFlight), read only when a request wants to
	// retry, so that counting costs a request two adds on a cache line of its
	// own worker instead of two on a line every core writes.
	inFlight atomic.Int64
	// response times the group's backends: from an attempt's request head
	// sent to its response head received.
	response histogram
}

// AddInFlight adds delta (+1 when a request is routed to the group, -1 when it
// ends) to the worker's requests in flight to the group.
func (g *GroupCounters) AddInFlight(delta int64) { g.inFlight.Add(delta) }

type chunk[T any] [chunkSize]T

// table is a grow-only array of T split in chunks that never move.
type table[T any] struct {
	chunks [maxChunks]atomic.Pointer[chunk[T]]
}

func (t *table[T]) at(id uint32) *T {
	c := t.chunks[id/chunkSize].Load()
	if c == nil {
		return nil
	}
	return &c[id%chunkSize]
}

func (t *table[T]) ensure(id uint32) {
	if t.chunks[id/chunkSize].Load() == nil {
		t.chunks[id/chunkSize].CompareAndSwap(nil, new(chunk[T]))
	}
}

// Circuit breaker limits, each exported as a value of the `limit` label of
// flax_circuit_breaker_overflows_total.
const (
	LimitConnections Limit = iota // connections in use to the group's endpoints
	LimitPending                  // requests waiting for a connection
	LimitRequests                 // requests in flight to the group
	LimitRetries                  // retries in flight to the group
	numLimits
)

// Limit names one of a backend group's circuit breaker limits.
type Limit uint8

var limitNames = [numLimits]string{"connections", "pending_requests", "requests", "retries"}

// String returns the label value of l.
func (l Limit) String() string {
	if l < numLimits {
		return limitNames[l]
	}
	return "unknown"
}

// Retry reasons, each exported as a value of the `reason` label of
// flax_upstream_retries_total.
const (
	RetryConnectFailed   RetryReason = iota // the connect to the endpoint failed
	RetryUpstreamReset                      // the connection failed before a response head (reset, closed, a failed write)
	RetryStatus                             // the response status is one the route's policy retries
	RetryStaleConnection                    // a pooled keep-alive connection the upstream had closed
	RetryBackendTimeout                     // no response head within the route's backend request timeout
	numRetryReasons
)

// RetryReason says why a failed attempt was retried.
type RetryReason uint8

var retryNames = [numRetryReasons]string{"connect_failed", "upstream_reset", "status", "stale_connection", "backend_timeout"}

// String returns the label value of r.
func (r RetryReason) String() string {
	if r < numRetryReasons {
		return retryNames[r]
	}
	return "unknown"
}

// Mirror outcomes, each exported as a value of the `result` label of
// flax_mirror_requests_total.
const (
	MirrorSent    MirrorResult = iota // sent, and a response status line came back
	MirrorFailed                      // connect, write or read failed, or timed out
	MirrorDropped                     // not sent: the sender's queue was full or no endpoint
	numMirrorResults
)

// MirrorResult is the outcome of one mirrored request.
type MirrorResult uint8

var mirrorNames = [numMirrorResults]string{"sent", "failed", "dropped"}

// String returns the label value of r.
func (r MirrorResult) String() string {
	if r < numMirrorResults {
		return mirrorNames[r]
	}
	return "unknown"
}

// Overload actions, each exported as a value of the `action` label of
// flax_overload_actions_total, in the order a worker takes them as its memory use
// rises (see Pressure).
const (
	OverloadCloseIdle        OverloadAction = iota // an idle keep-alive connection closed
	OverloadRefuseConnection                       // a new connection accepted and closed at once
	OverloadRejectRequest                          // a new request answered 503
	numOverloadActions
)

// OverloadAction is one way a worker sheds load over its memory budget.
type OverloadAction uint8

var overloadNames = [numOverloadActions]string{"close_idle", "refuse_connection", "reject_request"}

// String returns the label value of a.
func (a OverloadAction) String() string {
	if a < numOverloadActions {
		return overloadNames[a]
	}
	return "unknown"
}

// Pressure is how close a worker's memory use is to its budget, and so which
// overload actions apply: each level includes the ones below it.
type Pressure uint8

// Pressure levels, by share of the budget used.
const (
	PressureNone Pressure = iota
	// PressureCloseIdle (80% of the budget): idle keep-alive connections are
	// closed, and responses say Connection: close.
	PressureCloseIdle
	// PressureRefuseConnections (90%): new connections are accepted and closed
	// at once.
	PressureRefuseConnections
	// PressureRejectRequests (100%): new requests are answered 503.
	PressureRejectRequests
)

// Overflow reasons, each exported as a value of the `reason` label of
// flax_downstream_connections_overflow_total.
const (
	OverflowCap         OverflowReason = iota // over the global or the listener's connection cap
	OverflowFdExhausted                       // accept failed: out of file descriptors (EMFILE, ENFILE)
	numOverflowReasons
)

// OverflowReason says why a client connection was not served.
type OverflowReason uint8

var overflowNames = [numOverflowReasons]string{"cap", "fd_exhausted"}

// String returns the label value of r.
func (r OverflowReason) String() string {
	if r < numOverflowReasons {
		return overflowNames[r]
	}
	return "unknown"
}

// ListenerCounters are one worker's counters for one listener.
type ListenerCounters struct {
	overflows [numOverflowReasons]atomic.Uint64
	received  atomic.Uint64 // bytes from clients
	sent      atomic.Uint64 // bytes to clients
	// handshakes counts the TLS handshakes the listener's connections
	// completed ([0]) and failed ([1]).
	handshakes [2]atomic.Uint64
	// UDP listeners' flows, by event, the flows open and the datagrams
	// dropped.
	udpFlows   [numUDPFlowEvents]atomic.Uint64
	udpActive  atomic.Int64
	udpDropped atomic.Uint64
}

// UDPFlowEvent is what happened to a flow of a UDP listener.
type UDPFlowEvent uint8

// UDP flow events.
const (
	// UDPFlowOpened: a datagram from a new client address got an endpoint.
	UDPFlowOpened UDPFlowEvent = iota
	// UDPFlowExpired: nothing moved either way for the idle timeout.
	UDPFlowExpired
	// UDPFlowEvicted: a new flow over the listener's bound ended the flow idle
	// the longest.
	UDPFlowEvicted
	// UDPFlowClosed: the listener went away or the dataplane stopped, or the
	// upstream socket failed.
	UDPFlowClosed
	numUDPFlowEvents
)

var udpFlowEventNames = [numUDPFlowEvents]string{"opened", "expired", "evicted", "closed"}

func (e UDPFlowEvent) String() string {
	if e < numUDPFlowEvents {
		return udpFlowEventNames[e]
	}
	return "unknown"
}

// Shared is the node-wide state of one backend group that every worker shares: the
// circuit breakers' in-flight gauges (compared with the group's limits, so they must be
// node-wide), the retry budget's counters and the counters of the node's health
// checker, outlier detector and mirror sender. It survives config swaps, like the
// group's id.
//
// The gauge of LimitRetries counts the group's requests being retried whether or not
// the group sets a retry limit: the retry budget compares it with a share of the
// group's requests in flight.
type Shared struct {
	active       [numLimits]atomic.Int64
	overflows    [numLimits]atomic.Uint64
	toHealthy    atomic.Uint64
	toUnhealthy  atomic.Uint64
	ejections    atomic.Uint64
	unhealthy    atomic.Int64
	mirrors      [numMirrorResults]atomic.Uint64
	retries      [numRetryReasons]atomic.Uint64 // retry attempts started, by reason
	budgetDenied atomic.Uint64                  // retries not made: the retry budget was used up
	// perWorker are the group's counters of every worker, in worker order. Set
	// when the group's id is interned, before any config naming it exists.
	perWorker []*GroupCounters
	_         [64]byte
}

// Acquire adds one to the in-flight gauge of l and reports whether it stays within
// limit (0 means no limit). On false the gauge is unchanged and the overflow counted.
func (s *Shared) Acquire(l Limit, limit int64) bool {
	if limit <= 0 {
		s.active[l].Add(1)
		return true
	}
	if s.active[l].Add(1) > limit {
		s.active[l].Add(-1)
		s.overflows[l].Add(1)
		return false
	}
	return true
}

// Add adds one to the in-flight gauge of l, without a limit, and returns the new
// count.
func (s *Shared) Add(l Limit) int64 { return s.active[l].Add(1) }

// TryAcquire is Acquire without counting an overflow.
func (s *Shared) TryAcquire(l Limit, limit int64) bool {
	if s.active[l].Add(1) > limit && limit > 0 {
		s.active[l].Add(-1)
		return false
	}
	return true
}

// Release subtracts one from the in-flight gauge of l.
func (s *Shared) Release(l Limit) { s.active[l].Add(-1) }

// Active returns the in-flight gauge of l.
func (s *Shared) Active(l Limit) int64 { return s.active[l].Load() }

// Overflows returns the number of times l was reached.
func (s *Shared) Overflows(l Limit) uint64 { return s.overflows[l].Load() }

// Overflow counts l being reached without touching its gauge.
func (s *Shared) Overflow(l Limit) { s.overflows[l].Add(1) }

// HealthTransition counts an endpoint's active health check verdict changing.
func (s *Shared) HealthTransition(healthy bool) {
	if healthy {
		s.toHealthy.Add(1)
	} else {
		s.toUnhealthy.Add(1)
	}
}

// Transitions returns the health transitions counted so far.
func (s *Shared) Transitions() (toHealthy, toUnhealthy uint64) {
	return s.toHealthy.Load(), s.toUnhealthy.Load()
}

// Ejection counts an endpoint ejected by outlier detection.
func (s *Shared) Ejection() { s.ejections.Add(1) }

// Ejections returns the ejections counted so far.
func (s *Shared) Ejections() uint64 { return s.ejections.Load() }

// SetUnhealthy records how many endpoints are excluded from load balancing (failing
// health checks or ejected).
func (s *Shared) SetUnhealthy(n int) { s.unhealthy.Store(int64(n)) }

// RequestsInFlight returns the group's requests in flight, summed over every worker:
// requests routed to the group that have not ended. It reads one counter per worker;
// call it on rare paths only (a retry), not per request.
func (s *Shared) RequestsInFlight() int64 {
	var n int64
	for _, g := range s.perWorker {
		n += g.inFlight.Load()
	}
	return n
}

// Retried counts a retry attempt started for reason r.
func (s *Shared) Retried(r RetryReason) { s.retries[r].Add(1) }

// Retries returns the retry attempts started so far, for every reason.
func (s *Shared) Retries() uint64 {
	var n uint64
	for r := range s.retries {
		n += s.retries[r].Load()
	}
	return n
}

// RetriesFor returns the retry attempts started so far for reason r.
func (s *Shared) RetriesFor(r RetryReason) uint64 { return s.retries[r].Load() }

// DenyRetry counts a retry not made because the group's retry budget was used up.
func (s *Shared) DenyRetry() { s.budgetDenied.Add(1) }

// RetriesDenied returns the retries the retry budget denied so far.
func (s *Shared) RetriesDenied() uint64 { return s.budgetDenied.Load() }

// Mirror counts one mirrored request's outcome.
func (s *Shared) Mirror(r MirrorResult) { s.mirrors[r].Add(1) }

// Mirrors returns the mirrored requests counted with outcome r.
func (s *Shared) Mirrors(r MirrorResult) uint64 { return s.mirrors[r].Load() }

// Worker is one worker's counters. Only its worker writes them.
type Worker struct {
	index       int
	routes      table[RouteCounters]
	groups      table[GroupCounters]
	listeners   table[ListenerCounters]
	reasons     [numReasons]atomic.Uint64
	timeouts    [numTimeoutKinds]atomic.Uint64
	connsActive atomic.Int64
	connsTotal  atomic.Uint64
	// Memory: buffer bytes lent to connections and kept free by the worker's
	// pools, the budget (0: none) and the bytes counted per open connection
	// besides its buffers.
	bufInUse, bufFree atomic.Int64
	memLimit          atomic.Int64
	connCost          atomic.Int64
	overload          [numOverloadActions]atomic.Uint64
	_                 [64]byte // keep the next worker's hot fields off this cache line
}

// Listener returns the counters of listener id; the id must come from
// Registry.ListenerID.
func (w *Worker) Listener(id uint32) *ListenerCounters { return w.listeners.at(id) }

// Overflow counts a client connection of listener l (may be nil) not served for
// reason r.
func (w *Worker) Overflow(l *ListenerCounters, r OverflowReason) {
	if l != nil {
		l.overflows[r].Add(1)
	}
}

// BufferBytes adds to the buffer bytes lent to connections (inUse) and kept free
// in the worker's pools (free); deltas may be negative.
func (w *Worker) BufferBytes(inUse, free int64) {
	if inUse != 0 {
		w.bufInUse.Add(inUse)
	}
	if free != 0 {
		w.bufFree.Add(free)
	}
}

// BufferBytesInUse returns the buffer bytes lent to connections.
func (w *Worker) BufferBytesInUse() int64 { return w.bufInUse.Load() }

// BufferBytesFree returns the buffer bytes kept free in the worker's pools.
func (w *Worker) BufferBytesFree() int64 { return w.bufFree.Load() }

// SetMemoryBudget sets the worker's memory budget in bytes (0: none) and the bytes
// counted per open client connection besides its buffers.
func (w *Worker) SetMemoryBudget(limit, connCost int64) {
	w.memLimit.Store(max(limit, 0))
	w.connCost.Store(max(connCost, 0))
}

// MemoryBudget returns the worker's memory budget in bytes, 0 when it has none.
func (w *Worker) MemoryBudget() int64 { return w.memLimit.Load() }

// MemoryUsed returns what the worker's budget counts: the buffer bytes lent to
// connections plus the cost of every open client connection.
func (w *Worker) MemoryUsed() int64 {
	return w.bufInUse.Load() + w.connsActive.Load()*w.connCost.Load()
}

// Pressure returns the worker's pressure level: PressureCloseIdle from 80% of the
// budget, PressureRefuseConnections from 90%, PressureRejectRequests from 100%.
func (w *Worker) Pressure() Pressure {
	limit := w.memLimit.Load()
	if limit <= 0 {
		return PressureNone
	}
	u := w.MemoryUsed()
	switch {
	case u >= limit:
		return PressureRejectRequests
	case u*10 >= limit*9:
		return PressureRefuseConnections
	case u*10 >= limit*8:
		return PressureCloseIdle
	}
	return PressureNone
}

// OverloadAction counts one overload action taken.
func (w *Worker) OverloadAction(a OverloadAction) { w.overload[a].Add(1) }

// Index returns the worker's index in its Registry (0 to Workers()-1).
func (w *Worker) Index() int { return w.index }

// Route returns the counters of route id; the id must come from Registry.RouteID.
func (w *Worker) Route(id uint32) *RouteCounters { return w.routes.at(id) }

// Group returns the counters of backend group id; the id must come from Registry.GroupID.
func (w *Worker) Group(id uint32) *GroupCounters { return w.groups.at(id) }

// ObserveRequest counts one finished request on route r (may be nil for requests that
// matched no route) with its final status and duration.
func (w *Worker) ObserveRequest(r *RouteCounters, status int, d time.Duration) {
	if r == nil {
		return
	}
	class := status/100 - 1
	if class < 0 || class > 4 {
		class = 4
	}
	r.codes[class].Add(1)
	r.duration.observe(d)
}

// ObserveUpstream counts one upstream response head from backend group g (may be nil),
// d after the attempt's request head was sent.
func (w *Worker) ObserveUpstream(g *GroupCounters, d time.Duration) {
	if g != nil {
		g.response.observe(d)
	}
}

// TLSHandshake counts a TLS handshake of a client of listener l (may be nil) that
// completed (ok) or failed. One that ran out of time is counted as a timeout
// (TimeoutRequestHead), not here.
func (w *Worker) TLSHandshake(l *ListenerCounters, ok bool) {
	if l == nil {
		return
	}
	if ok {
		l.handshakes[0].Add(1)
	} else {
		l.handshakes[1].Add(1)
	}
}

// ClientBytes counts bytes received from and sent to the clients of listener l (may
// be nil). On TLS listeners they are the decrypted bytes, as the proxy sees them.
func (w *Worker) ClientBytes(l *ListenerCounters, received, sent int) {
	if l == nil {
		return
	}
	if received > 0 {
		l.received.Add(uint64(received))
	}
	if sent > 0 {
		l.sent.Add(uint64(sent))
	}
}

// UDPFlow counts event e of a flow of UDP listener l (may be nil) and keeps its
// open flows gauge.
func (w *Worker) UDPFlow(l *ListenerCounters, e UDPFlowEvent) {
	if l == nil || e >= numUDPFlowEvents {
		return
	}
	l.udpFlows[e].Add(1)
	if e == UDPFlowOpened {
		l.udpActive.Add(1)
	} else {
		l.udpActive.Add(-1)
	}
}

// UDPDropped counts a datagram of UDP listener l (may be nil) that was not
// forwarded: its flow has no endpoint (a rejecting backend, or a group without
// a usable one) or the send failed.
func (w *Worker) UDPDropped(l *ListenerCounters) {
	if l != nil {
		l.udpDropped.Add(1)
	}
}

// LocalReply counts a response the proxy produced itself, by reason.
func (w *Worker) LocalReply(reason Reason) { w.reasons[reason].Add(1) }

// Timeout counts a wait that ran out, by kind.
func (w *Worker) Timeout(k TimeoutKind) { w.timeouts[k].Add(1) }

// RateLimited counts a request on route r answered 429 by the route's rate limit.
func (w *Worker) RateLimited(r *RouteCounters) {
	if r != nil {
		r.rateLimited.Add(1)
	}
}

// UpstreamRequest counts a request sent to group g.
func (w *Worker) UpstreamRequest(g *GroupCounters) { g.requests.Add(1) }

// ConnectError counts a failed upstream connect to group g.
func (w *Worker) ConnectError(g *GroupCounters) { g.connectErrors.Add(1) }

// UpstreamConn adds delta (+1 or -1) to group g's open upstream connections.
func (w *Worker) UpstreamConn(g *GroupCounters, delta int64) { g.connections.Add(delta) }

// ConnOpened counts an accepted downstream connection.
func (w *Worker) ConnOpened() { w.connsActive.Add(1); w.connsTotal.Add(1) }

// ConnClosed counts a closed downstream connection.
func (w *Worker) ConnClosed() { w.connsActive.Add(-1) }

// Registry interns route and group names and holds every worker's counters.
type Registry struct {
	mu      sync.Mutex
	routes  map[string]uint32
	groups  map[string]uint32
	lists   map[string]uint32
	rnames  []string
	gnames  []string
	lnames  []string
	workers []*Worker
	shared  table[Shared]

	engine        atomic.Pointer[string]
	engineReason  atomic.Pointer[string]
	configVersion atomic.Uint64
	configApplied atomic.Uint64
	applyErrors   atomic.Uint64
	runtime       [runtimeOps]atomic.Uint64 // by RuntimeOp

	descs descs
}

// NewRegistry returns a registry with counters for n workers.
func NewRegistry(n int) *Registry {
	r := &Registry{routes: map[string]uint32{}, groups: map[string]uint32{}, lists: map[string]uint32{}}
	for i := range n {
		r.workers = append(r.workers, &Worker{index: i})
	}
	empty := ""
	r.engine.Store(&empty)
	r.engineReason.Store(&empty)
	r.descs = newDescs()
	return r
}

// Worker returns worker i's counters.
func (r *Registry) Worker(i int) *Worker { return r.workers[i] }

// LocalReplies returns the local replies counted with reason, summed over the workers.
func (r *Registry) LocalReplies(reason Reason) uint64 {
	var n uint64
	for _, w := range r.workers {
		n += w.reasons[reason].Load()
	}
	return n
}

// Timeouts returns the timeouts counted with kind k, summed over the workers.
func (r *Registry) Timeouts(k TimeoutKind) uint64 {
	var n uint64
	for _, w := range r.workers {
		n += w.timeouts[k].Load()
	}
	return n
}

// Workers returns the number of workers.
func (r *Registry) Workers() int { return len(r.workers) }

// RouteID interns a route name and makes sure every worker has counters for it. Call it
// when compiling a snapshot, never per request.
func (r *Registry) RouteID(name string) uint32 {
	return r.intern(name, r.routes, &r.rnames, func(w *Worker, id uint32) { w.routes.ensure(id) })
}

// GroupID interns a backend group name, like RouteID.
func (r *Registry) GroupID(name string) uint32 {
	return r.intern(name, r.groups, &r.gnames, func(w *Worker, id uint32) {
		w.groups.ensure(id)
		r.shared.ensure(id)
		// Called once per worker, in order, while the id is new: no config
		// names the group yet, so no worker reads perWorker.
		sh := r.shared.at(id)
		sh.perWorker = append(sh.perWorker, w.groups.at(id))
	})
}

// ListenerID interns a listener name, like RouteID.
func (r *Registry) ListenerID(name string) uint32 {
	return r.intern(name, r.lists, &r.lnames, func(w *Worker, id uint32) { w.listeners.ensure(id) })
}

// Overflows returns the connections of listener id not served for reason, summed
// over the workers.
func (r *Registry) Overflows(id uint32, reason OverflowReason) uint64 {
	var n uint64
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil {
			n += c.overflows[reason].Load()
		}
	}
	return n
}

// TLSHandshakes returns the TLS handshakes of listener id's clients that
// completed and failed, summed over the workers.
func (r *Registry) TLSHandshakes(id uint32) (ok, failed uint64) {
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil {
			ok += c.handshakes[0].Load()
			failed += c.handshakes[1].Load()
		}
	}
	return ok, failed
}

// ClientBytes returns the bytes received from and sent to the clients of listener
// id, summed over the workers.
func (r *Registry) ClientBytes(id uint32) (received, sent uint64) {
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil {
			received += c.received.Load()
			sent += c.sent.Load()
		}
	}
	return received, sent
}

// UDPFlows returns the flows of UDP listener id that had event e, summed over
// the workers.
func (r *Registry) UDPFlows(id uint32, e UDPFlowEvent) uint64 {
	var n uint64
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil && e < numUDPFlowEvents {
			n += c.udpFlows[e].Load()
		}
	}
	return n
}

// UDPFlowsActive returns the open flows of UDP listener id over the workers.
func (r *Registry) UDPFlowsActive(id uint32) int64 {
	var n int64
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil {
			n += c.udpActive.Load()
		}
	}
	return n
}

// UDPDropped returns the datagrams UDP listener id dropped, summed over the
// workers.
func (r *Registry) UDPDropped(id uint32) uint64 {
	var n uint64
	for _, w := range r.workers {
		if c := w.Listener(id); c != nil {
			n += c.udpDropped.Load()
		}
	}
	return n
}

// OverloadActions returns the overload actions a taken, summed over the workers.
func (r *Registry) OverloadActions(a OverloadAction) uint64 {
	var n uint64
	for _, w := range r.workers {
		n += w.overload[a].Load()
	}
	return n
}

// BufferBytes returns the buffer bytes lent to connections and kept free, summed
// over the workers.
func (r *Registry) BufferBytes() (inUse, free int64) {
	for _, w := range r.workers {
		inUse += w.bufInUse.Load()
		free += w.bufFree.Load()
	}
	return inUse, free
}

// RateLimited returns the requests of route id answered 429 by its rate limit, summed
// over the workers.
func (r *Registry) RateLimited(id uint32) uint64 {
	var n uint64
	for _, w := range r.workers {
		if c := w.Route(id); c != nil {
			n += c.rateLimited.Load()
		}
	}
	return n
}

// Shared returns the node-wide state of backend group id; the id must come from
// GroupID.
func (r *Registry) Shared(id uint32) *Shared { return r.shared.at(id) }

func (r *Registry) intern(name string, ids map[string]uint32, names *[]string, ensure func(*Worker, uint32)) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := ids[name]
	if !ok {
		id = uint32(len(*names))
		ids[name] = id
		*names = append(*names, name)
		for _, w := range r.workers {
			ensure(w, id)
		}
	}
	return id
}

// SetEngine records the engine in use and, for a fallback, why.
func (r *Registry) SetEngine(name, reason string) {
	r.engine.Store(&name)
	r.engineReason.Store(&reason)
}

// ConfigApplied records a successfully applied snapshot version.
func (r *Registry) ConfigApplied(version uint64) {
	r.configVersion.Store(version)
	r.configApplied.Add(1)
}

// ConfigRejected counts a snapshot that failed validation or compilation.
func (r *Registry) ConfigRejected() { r.applyErrors.Add(1) }

// RuntimeOp is a change the runtime API (daemon.Pool) makes to a backend group.
type RuntimeOp uint8

// Runtime API changes.
const (
	RuntimeAdd     RuntimeOp = iota // an endpoint added
	RuntimeRemove                   // an endpoint removed at once
	RuntimeDrain                    // an endpoint set draining
	RuntimeDrained                  // a draining endpoint removed once it was done
	runtimeOps
)

var runtimeOpNames = [runtimeOps]string{"add", "remove", "drain", "drained"}

// String returns the op's label value.
func (o RuntimeOp) String() string { return runtimeOpNames[o] }

// RuntimeChange counts one change made through the runtime API.
func (r *Registry) RuntimeChange(op RuntimeOp) { r.runtime[op].Add(1) }

// RuntimeChanges returns the changes of kind op counted so far.
func (r *Registry) RuntimeChanges(op RuntimeOp) uint64 { return r.runtime[op].Load() }

// UpstreamConnections returns the open connections to the endpoints of group id
// (pooled HTTP connections and TCP tunnels), summed over every worker; a rare-path
// read.
func (r *Registry) UpstreamConnections(id uint32) int64 {
	var n int64
	for _, w := range r.workers {
		if g := w.Group(id); g != nil {
			n += g.connections.Load()
		}
	}
	return n
}

type descs struct {
	requests, duration, localReplies, connsActive, connsTotal          *prometheus.Desc
	upstreamRequests, connectErrors, upstreamConns                     *prometheus.Desc
	upstreamResponse, bytesReceived, bytesSent, handshakes             *prometheus.Desc
	engine, configVersion, configApplied, configErrors                 *prometheus.Desc
	healthTransitions, ejections, unhealthy                            *prometheus.Desc
	breakerActive, breakerOverflows, mirrors                           *prometheus.Desc
	rateLimited, requestsActive, retries, retriesDenied                *prometheus.Desc
	timeouts, connOverflows, bufferBytes, memBudget, memUsed, overload *prometheus.Desc
	runtimeChanges, udpFlows, udpFlowsActive, udpDropped               *prometheus.Desc
}

func newDescs() descs {
	return descs{
		requests:         prometheus.NewDesc("flax_requests_total", "Requests finished, by route and status code class.", []string{"route", "code"}, nil),
		duration:         prometheus.NewDesc("flax_request_duration_seconds", "Time from the first byte of a request to the last byte of its response, by route.", []string{"route"}, nil),
		localReplies:     prometheus.NewDesc("flax_local_replies_total", "Responses the proxy produced itself instead of a backend, by reason.", []string{"reason"}, nil),
		connsActive:      prometheus.NewDesc("flax_downstream_connections_active", "Open client connections.", nil, nil),
		connsTotal:       prometheus.NewDesc("flax_downstream_connections_total", "Accepted client connections.", nil, nil),
		upstreamRequests: prometheus.NewDesc("flax_upstream_requests_total", "Requests sent to a backend group.", []string{"backend_group"}, nil),
		upstreamResponse: prometheus.NewDesc("flax_upstream_response_duration_seconds", "Time from a request head sent to a backend group (each attempt) to its response head, by backend group.", []string{"backend_group"}, nil),
		bytesReceived:    prometheus.NewDesc("flax_downstream_bytes_received_total", "Bytes received from clients, by listener (decrypted bytes on TLS listeners).", []string{"listener"}, nil),
		bytesSent:        prometheus.NewDesc("flax_downstream_bytes_sent_total", "Bytes sent to clients, by listener (before encryption on TLS listeners).", []string{"listener"}, nil),
		handshakes:       prometheus.NewDesc("flax_tls_handshakes_total", "TLS handshakes with clients, by listener and result (ok, failed); those that ran out of time count in flax_timeouts_total{kind=\"request_head\"}. Listeners without any are left out.", []string{"listener", "result"}, nil),
		connectErrors:    prometheus.NewDesc("flax_upstream_connect_errors_total", "Failed connects to a backend group's endpoints.", []string{"backend_group"}, nil),
		upstreamConns:    prometheus.NewDesc("flax_upstream_connections_active", "Open connections to a backend group's endpoints.", []string{"backend_group"}, nil),
		engine:           prometheus.NewDesc("flax_engine_info", "The I/O engine in use (value 1), and why when it is a fallback.", []string{"engine", "reason"}, nil),
		configVersion:    prometheus.NewDesc("flax_config_version", "Version of the snapshot being served.", nil, nil),
		configApplied:    prometheus.NewDesc("flax_config_applied_total", "Snapshots applied.", nil, nil),
		configErrors:     prometheus.NewDesc("flax_config_apply_errors_total", "Snapshots rejected by validation or compilation.", nil, nil),

		healthTransitions: prometheus.NewDesc("flax_upstream_health_transitions_total", "Endpoints whose active health check verdict changed, by backend group and new state.", []string{"backend_group", "to"}, nil),
		ejections:         prometheus.NewDesc("flax_upstream_ejections_total", "Endpoints ejected by outlier detection, by backend group.", []string{"backend_group"}, nil),
		unhealthy:         prometheus.NewDesc("flax_upstream_endpoints_unhealthy", "Endpoints excluded from load balancing (failing health checks or ejected), by backend group.", []string{"backend_group"}, nil),
		breakerActive:     prometheus.NewDesc("flax_circuit_breaker_active", "In-flight count each circuit breaker limit is compared with, by backend group and limit.", []string{"backend_group", "limit"}, nil),
		breakerOverflows:  prometheus.NewDesc("flax_circuit_breaker_overflows_total", "Times a circuit breaker limit was reached, by backend group and limit.", []string{"backend_group", "limit"}, nil),
		mirrors:           prometheus.NewDesc("flax_mirror_requests_total", "Mirrored requests, by backend group and result.", []string{"backend_group", "result"}, nil),
		rateLimited:       prometheus.NewDesc("flax_rate_limited_requests_total", "Requests answered 429 because the route's local rate limit was exceeded, by route.", []string{"route"}, nil),
		requestsActive:    prometheus.NewDesc("flax_upstream_requests_active", "Requests in flight to a backend group (the base of its retry budget).", []string{"backend_group"}, nil),
		retries:           prometheus.NewDesc("flax_upstream_retries_total", "Retry attempts started by a route's retry policy (or the default retry of a failed connection), by backend group and reason (connect_failed, upstream_reset, status, stale_connection, backend_timeout).", []string{"backend_group", "reason"}, nil),
		retriesDenied:     prometheus.NewDesc("flax_upstream_retry_budget_denied_total", "Retries not made because the backend group's retry budget was used up, by backend group.", []string{"backend_group"}, nil),
		timeouts:          prometheus.NewDesc("flax_timeouts_total", "Waits that ran out (the connection got 408 or 504, or was closed), by kind.", []string{"kind"}, nil),
		connOverflows:     prometheus.NewDesc("flax_downstream_connections_overflow_total", "Client connections not served, by listener and reason: closed at once over a connection cap (cap), or accepts that failed for lack of file descriptors (fd_exhausted).", []string{"listener", "reason"}, nil),
		bufferBytes:       prometheus.NewDesc("flax_buffer_bytes", "Bytes of connection buffers, by state: lent to connections (in_use) or kept free in the workers' pools (free).", []string{"state"}, nil),
		memBudget:         prometheus.NewDesc("flax_memory_budget_bytes", "Sum of the workers' memory budgets (0: none).", nil, nil),
		memUsed:           prometheus.NewDesc("flax_memory_used_bytes", "What the memory budgets count, summed over the workers: buffers lent to connections plus a fixed cost per open connection.", nil, nil),
		runtimeChanges:    prometheus.NewDesc("flax_runtime_backend_changes_total", "Changes made to backend groups through the runtime API (admin /backends or daemon.Pool), by op: add, remove, drain, drained (a draining endpoint removed once done).", []string{"op"}, nil),
		udpFlows:          prometheus.NewDesc("flax_udp_flows_total", "Flows of UDP listeners, by listener and event: opened, expired (idle for the route's idle timeout), evicted (ended for a new flow over the listener's bound), closed (listener removed, dataplane stopped or upstream socket failed). Listeners without flows are left out.", []string{"listener", "event"}, nil),
		udpFlowsActive:    prometheus.NewDesc("flax_udp_flows_active", "Open flows of UDP listeners, by listener. Listeners without flows are left out.", []string{"listener"}, nil),
		udpDropped:        prometheus.NewDesc("flax_udp_datagrams_dropped_total", "Client datagrams of UDP listeners not forwarded (no endpoint, or the send failed), by listener.", []string{"listener"}, nil),
		overload:          prometheus.NewDesc("flax_overload_actions_total", "Load shed because a worker's memory use neared or passed its budget, by action: close_idle, refuse_connection, reject_request.", []string{"action"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	d := r.descs
	for _, x := range []*prometheus.Desc{
		d.requests, d.duration, d.localReplies, d.connsActive, d.connsTotal, d.upstreamRequests, d.connectErrors, d.upstreamConns, d.engine, d.configVersion, d.configApplied, d.configErrors,
		d.healthTransitions, d.ejections, d.unhealthy, d.breakerActive, d.breakerOverflows, d.mirrors,
		d.rateLimited, d.requestsActive, d.retries, d.retriesDenied, d.timeouts,
		d.connOverflows, d.bufferBytes, d.memBudget, d.memUsed, d.overload, d.runtimeChanges,
		d.upstreamResponse, d.bytesReceived, d.bytesSent, d.handshakes,
		d.udpFlows, d.udpFlowsActive, d.udpDropped,
	} {
		ch <- x
	}
}

var codeLabels = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Collect implements prometheus.Collector: it sums every worker's counters.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	rnames := r.rnames
	gnames := r.gnames
	lnames := r.lnames
	r.mu.Unlock()
	d := r.descs

	for id, name := range rnames {
		var codes [5]uint64
		var dur histogramSum
		var limited uint64
		for _, w := range r.workers {
			c := w.Route(uint32(id))
			if c == nil {
				continue
			}
			for i := range codes {
				codes[i] += c.codes[i].Load()
			}
			dur.add(&c.duration)
			limited += c.rateLimited.Load()
		}
		for i, v := range codes {
			if v > 0 {
				ch <- prometheus.MustNewConstMetric(d.requests, prometheus.CounterValue, float64(v), name, codeLabels[i])
			}
		}
		if limited > 0 {
			ch <- prometheus.MustNewConstMetric(d.rateLimited, prometheus.CounterValue, float64(limited), name)
		}
		ch <- dur.metric(d.duration, name)
	}
	for id, name := range gnames {
		var req, cerr uint64
		var conns int64
		var response histogramSum
		for _, w := range r.workers {
			g := w.Group(uint32(id))
			if g == nil {
				continue
			}
			req += g.requests.Load()
			cerr += g.connectErrors.Load()
			conns += g.connections.Load()
			response.add(&g.response)
		}
		ch <- response.metric(d.upstreamResponse, name)
		ch <- prometheus.MustNewConstMetric(d.upstreamRequests, prometheus.CounterValue, float64(req), name)
		ch <- prometheus.MustNewConstMetric(d.connectErrors, prometheus.CounterValue, float64(cerr), name)
		ch <- prometheus.MustNewConstMetric(d.upstreamConns, prometheus.GaugeValue, float64(conns), name)
		if sh := r.Shared(uint32(id)); sh != nil {
			r.collectShared(ch, sh, name)
		}
	}
	for id, name := range lnames {
		for reason := range numOverflowReasons {
			ch <- prometheus.MustNewConstMetric(d.connOverflows, prometheus.CounterValue, float64(r.Overflows(uint32(id), reason)), name, reason.String())
		}
		received, sent := r.ClientBytes(uint32(id))
		ch <- prometheus.MustNewConstMetric(d.bytesReceived, prometheus.CounterValue, float64(received), name)
		ch <- prometheus.MustNewConstMetric(d.bytesSent, prometheus.CounterValue, float64(sent), name)
		if ok, failed := r.TLSHandshakes(uint32(id)); ok+failed > 0 {
			ch <- prometheus.MustNewConstMetric(d.handshakes, prometheus.CounterValue, float64(ok), name, "ok")
			ch <- prometheus.MustNewConstMetric(d.handshakes, prometheus.CounterValue, float64(failed), name, "failed")
		}
		if opened, dropped := r.UDPFlows(uint32(id), UDPFlowOpened), r.UDPDropped(uint32(id)); opened+dropped > 0 {
			for e := range numUDPFlowEvents {
				ch <- prometheus.MustNewConstMetric(d.udpFlows, prometheus.CounterValue, float64(r.UDPFlows(uint32(id), e)), name, e.String())
			}
			ch <- prometheus.MustNewConstMetric(d.udpFlowsActive, prometheus.GaugeValue, float64(r.UDPFlowsActive(uint32(id))), name)
			ch <- prometheus.MustNewConstMetric(d.udpDropped, prometheus.CounterValue, float64(dropped), name)
		}
	}
	var reasons [numReasons]uint64
	var timeouts [numTimeoutKinds]uint64
	var overload [numOverloadActions]uint64
	var active, budget, used int64
	var total uint64
	for _, w := range r.workers {
		for i := range reasons {
			reasons[i] += w.reasons[i].Load()
		}
		for i := range timeouts {
			timeouts[i] += w.timeouts[i].Load()
		}
		for i := range overload {
			overload[i] += w.overload[i].Load()
		}
		active += w.connsActive.Load()
		total += w.connsTotal.Load()
		budget += w.MemoryBudget()
		used += w.MemoryUsed()
	}
	inUse, free := r.BufferBytes()
	ch <- prometheus.MustNewConstMetric(d.bufferBytes, prometheus.GaugeValue, float64(inUse), "in_use")
	ch <- prometheus.MustNewConstMetric(d.bufferBytes, prometheus.GaugeValue, float64(free), "free")
	ch <- prometheus.MustNewConstMetric(d.memBudget, prometheus.GaugeValue, float64(budget))
	ch <- prometheus.MustNewConstMetric(d.memUsed, prometheus.GaugeValue, float64(used))
	for i, v := range overload {
		ch <- prometheus.MustNewConstMetric(d.overload, prometheus.CounterValue, float64(v), OverloadAction(i).String())
	}
	for i, v := range reasons {
		ch <- prometheus.MustNewConstMetric(d.localReplies, prometheus.CounterValue, float64(v), Reason(i).String())
	}
	for i, v := range timeouts {
		ch <- prometheus.MustNewConstMetric(d.timeouts, prometheus.CounterValue, float64(v), TimeoutKind(i).String())
	}
	ch <- prometheus.MustNewConstMetric(d.connsActive, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(d.connsTotal, prometheus.CounterValue, float64(total))
	ch <- prometheus.MustNewConstMetric(d.engine, prometheus.GaugeValue, 1, *r.engine.Load(), *r.engineReason.Load())
	ch <- prometheus.MustNewConstMetric(d.configVersion, prometheus.GaugeValue, float64(r.configVersion.Load()))
	ch <- prometheus.MustNewConstMetric(d.configApplied, prometheus.CounterValue, float64(r.configApplied.Load()))
	ch <- prometheus.MustNewConstMetric(d.configErrors, prometheus.CounterValue, float64(r.applyErrors.Load()))
	for op := range RuntimeOp(runtimeOps) {
		ch <- prometheus.MustNewConstMetric(d.runtimeChanges, prometheus.CounterValue, float64(r.runtime[op].Load()), op.String())
	}
}

// collectShared exports one group's node-wide state.
func (r *Registry) collectShared(ch chan<- prometheus.Metric, sh *Shared, name string) {
	d := r.descs
	up, down := sh.Transitions()
	ch <- prometheus.MustNewConstMetric(d.healthTransitions, prometheus.CounterValue, float64(up), name, "healthy")
	ch <- prometheus.MustNewConstMetric(d.healthTransitions, prometheus.CounterValue, float64(down), name, "unhealthy")
	ch <- prometheus.MustNewConstMetric(d.ejections, prometheus.CounterValue, float64(sh.Ejections()), name)
	ch <- prometheus.MustNewConstMetric(d.unhealthy, prometheus.GaugeValue, float64(sh.unhealthy.Load()), name)
	for l := range numLimits {
		ch <- prometheus.MustNewConstMetric(d.breakerActive, prometheus.GaugeValue, float64(sh.Active(l)), name, l.String())
		ch <- prometheus.MustNewConstMetric(d.breakerOverflows, prometheus.CounterValue, float64(sh.Overflows(l)), name, l.String())
	}
	for m := range numMirrorResults {
		ch <- prometheus.MustNewConstMetric(d.mirrors, prometheus.CounterValue, float64(sh.Mirrors(m)), name, m.String())
	}
	ch <- prometheus.MustNewConstMetric(d.requestsActive, prometheus.GaugeValue, float64(sh.RequestsInFlight()), name)
	for rr := range numRetryReasons {
		ch <- prometheus.MustNewConstMetric(d.retries, prometheus.CounterValue, float64(sh.RetriesFor(rr)), name, rr.String())
	}
	ch <- prometheus.MustNewConstMetric(d.retriesDenied, prometheus.CounterValue, float64(sh.RetriesDenied()), name)
}
