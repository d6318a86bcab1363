package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSumsAcrossWorkers(t *testing.T) {
	r := NewRegistry(3)
	route := r.RouteID("default/web/rule-0")
	group := r.GroupID("default/echo:80")
	if again := r.RouteID("default/web/rule-0"); again != route {
		t.Fatalf("RouteID not stable: %d then %d", route, again)
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func(w *Worker) {
			defer wg.Done()
			for range 1000 {
				w.ObserveRequest(w.Route(route), 200, 2*time.Millisecond)
				w.UpstreamRequest(w.Group(group))
			}
			w.ObserveRequest(w.Route(route), 503, 20*time.Second)
			w.LocalReply(ReasonNoEndpoint)
			w.ConnectError(w.Group(group))
			w.ConnOpened()
		}(r.Worker(i))
	}
	wg.Wait()
	r.Worker(0).ConnClosed()
	r.SetEngine("netpoll", "io_uring disabled by kernel.io_uring_disabled=2")
	r.ConfigApplied(7)

	want := `
# HELP flax_requests_total Requests finished, by route and status code class.
# TYPE flax_requests_total counter
flax_requests_total{code="2xx",route="default/web/rule-0"} 3000
flax_requests_total{code="5xx",route="default/web/rule-0"} 3
# HELP flax_upstream_connect_errors_total Failed connects to a backend group's endpoints.
# TYPE flax_upstream_connect_errors_total counter
flax_upstream_connect_errors_total{backend_group="default/echo:80"} 3
# HELP flax_upstream_requests_total Requests sent to a backend group.
# TYPE flax_upstream_requests_total counter
flax_upstream_requests_total{backend_group="default/echo:80"} 3000
# HELP flax_downstream_connections_active Open client connections.
# TYPE flax_downstream_connections_active gauge
flax_downstream_connections_active 2
# HELP flax_config_version Version of the snapshot being served.
# TYPE flax_config_version gauge
flax_config_version 7
# HELP flax_engine_info The I/O engine in use (value 1), and why when it is a fallback.
# TYPE flax_engine_info gauge
flax_engine_info{engine="netpoll",reason="io_uring disabled by kernel.io_uring_disabled=2"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want),
		"flax_requests_total", "flax_upstream_connect_errors_total", "flax_upstream_requests_total",
		"flax_downstream_connections_active", "flax_config_version", "flax_engine_info"); err != nil {
		t.Fatal(err)
	}

	// The histogram counts every observation; the 20s ones land above the last bucket.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flax_request_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 3003 {
			t.Errorf("histogram count = %d, want 3003", h.GetSampleCount())
		}
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0.0025 && b.GetCumulativeCount() != 3000 {
				t.Errorf("bucket le=0.0025 = %d, want 3000", b.GetCumulativeCount())
			}
		}
		return
	}
	t.Fatal("flax_request_duration_seconds not exported")
}

func TestCountersSurviveGrowth(t *testing.T) {
	r := NewRegistry(1)
	w := r.Worker(0)
	first := r.RouteID("r0")
	c := w.Route(first)
	c.codes[1].Add(1)
	for i := range 3 * chunkSize {
		r.RouteID("grow-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
	}
	if w.Route(first) != c || c.codes[1].Load() != 1 {
		t.Fatal("growing the registry moved or reset existing counters")
	}
}

func TestObserveRequestDoesNotAllocate(t *testing.T) {
	r := NewRegistry(1)
	w := r.Worker(0)
	rc := w.Route(r.RouteID("r"))
	g := w.Group(r.GroupID("g"))
	allocs := testing.AllocsPerRun(1000, func() {
		w.ObserveRequest(rc, 200, time.Millisecond)
		w.UpstreamRequest(g)
		w.LocalReply(ReasonTimeout)
	})
	if allocs != 0 {
		t.Fatalf("allocs per request = %v, want 0", allocs)
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	r := NewRegistry(1)
	w := r.Worker(0)
	rc := w.Route(r.RouteID("r"))
	b.ReportAllocs()
	for b.Loop() {
		w.ObserveRequest(rc, 200, 3*time.Millisecond)
	}
}

func TestSharedLimits(t *testing.T) {
	r := NewRegistry(2)
	sh := r.Shared(r.GroupID("g"))
	first, second, third := sh.Acquire(LimitRequests, 2), sh.Acquire(LimitRequests, 2), sh.Acquire(LimitRequests, 2)
	if !first || !second || third {
		t.Fatalf("limit 2: acquisitions %v %v %v, want true true false", first, second, third)
	}
	if sh.Active(LimitRequests) != 2 || sh.Overflows(LimitRequests) != 1 {
		t.Fatalf("active %d overflows %d", sh.Active(LimitRequests), sh.Overflows(LimitRequests))
	}
	if sh.TryAcquire(LimitRequests, 2) || sh.Overflows(LimitRequests) != 1 {
		t.Fatal("TryAcquire succeeded or counted")
	}
	sh.Release(LimitRequests)
	if !sh.TryAcquire(LimitRequests, 2) {
		t.Fatal("slot not given back")
	}
	if !sh.Acquire(LimitRetries, 0) {
		t.Fatal("no limit refused")
	}
	sh.HealthTransition(false)
	sh.Ejection()
	sh.Mirror(MirrorDropped)
	want := `
# HELP flax_circuit_breaker_overflows_total Times a circuit breaker limit was reached, by backend group and limit.
# TYPE flax_circuit_breaker_overflows_total counter
flax_circuit_breaker_overflows_total{backend_group="g",limit="connections"} 0
flax_circuit_breaker_overflows_total{backend_group="g",limit="pending_requests"} 0
flax_circuit_breaker_overflows_total{backend_group="g",limit="requests"} 1
flax_circuit_breaker_overflows_total{backend_group="g",limit="retries"} 0
# HELP flax_upstream_ejections_total Endpoints ejected by outlier detection, by backend group.
# TYPE flax_upstream_ejections_total counter
flax_upstream_ejections_total{backend_group="g"} 1
# HELP flax_upstream_health_transitions_total Endpoints whose active health check verdict changed, by backend group and new state.
# TYPE flax_upstream_health_transitions_total counter
flax_upstream_health_transitions_total{backend_group="g",to="healthy"} 0
flax_upstream_health_transitions_total{backend_group="g",to="unhealthy"} 1
# HELP flax_mirror_requests_total Mirrored requests, by backend group and result.
# TYPE flax_mirror_requests_total counter
flax_mirror_requests_total{backend_group="g",result="dropped"} 1
flax_mirror_requests_total{backend_group="g",result="failed"} 0
flax_mirror_requests_total{backend_group="g",result="sent"} 0
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "flax_circuit_breaker_overflows_total", "flax_upstream_ejections_total", "flax_upstream_health_transitions_total", "flax_mirror_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// Requests in flight are counted per worker and summed over every worker of
// the group; retries, budget denials and rate-limited requests are exported.
func TestRetryBudgetAndRateLimitSeries(t *testing.T) {
	r := NewRegistry(3)
	gid, other := r.GroupID("g"), r.GroupID("other")
	route := r.RouteID("limited")
	sh := r.Shared(gid)
	for i, n := range []int64{3, 0, 2} {
		for range n {
			r.Worker(i).Group(gid).AddInFlight(1)
		}
	}
	r.Worker(1).Group(other).AddInFlight(7)
	r.Worker(2).Group(gid).AddInFlight(-1)
	if n := sh.RequestsInFlight(); n != 4 {
		t.Fatalf("requests in flight %d, want 4 (3 + 0 + 2 - 1)", n)
	}
	if n := sh.Add(LimitRetries); n != 1 {
		t.Fatalf("Add returned %d, want 1", n)
	}
	sh.Retried(RetryConnectFailed)
	sh.Retried(RetryStatus)
	sh.Retried(RetryStatus)
	sh.DenyRetry()
	r.Worker(0).RateLimited(r.Worker(0).Route(route))
	r.Worker(2).RateLimited(r.Worker(2).Route(route))
	r.Worker(2).RateLimited(nil)
	r.Worker(1).LocalReply(ReasonRateLimited)
	want := `
# HELP flax_upstream_requests_active Requests in flight to a backend group (the base of its retry budget).
# TYPE flax_upstream_requests_active gauge
flax_upstream_requests_active{backend_group="g"} 4
flax_upstream_requests_active{backend_group="other"} 7
# HELP flax_upstream_retries_total Retry attempts started by a route's retry policy (or the default retry of a failed connection), by backend group and reason (connect_failed, upstream_reset, status, stale_connection, backend_timeout).
# TYPE flax_upstream_retries_total counter
flax_upstream_retries_total{backend_group="g",reason="backend_timeout"} 0
flax_upstream_retries_total{backend_group="g",reason="connect_failed"} 1
flax_upstream_retries_total{backend_group="g",reason="stale_connection"} 0
flax_upstream_retries_total{backend_group="g",reason="status"} 2
flax_upstream_retries_total{backend_group="g",reason="upstream_reset"} 0
flax_upstream_retries_total{backend_group="other",reason="backend_timeout"} 0
flax_upstream_retries_total{backend_group="other",reason="connect_failed"} 0
flax_upstream_retries_total{backend_group="other",reason="stale_connection"} 0
flax_upstream_retries_total{backend_group="other",reason="status"} 0
flax_upstream_retries_total{backend_group="other",reason="upstream_reset"} 0
# HELP flax_upstream_retry_budget_denied_total Retries not made because the backend group's retry budget was used up, by backend group.
# TYPE flax_upstream_retry_budget_denied_total counter
flax_upstream_retry_budget_denied_total{backend_group="g"} 1
flax_upstream_retry_budget_denied_total{backend_group="other"} 0
# HELP flax_rate_limited_requests_total Requests answered 429 because the route's local rate limit was exceeded, by route.
# TYPE flax_rate_limited_requests_total counter
flax_rate_limited_requests_total{route="limited"} 2
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "flax_upstream_requests_active", "flax_upstream_retries_total",
		"flax_upstream_retry_budget_denied_total", "flax_rate_limited_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := r.LocalReplies(ReasonRateLimited); n != 1 || ReasonRateLimited.String() != "rate_limited" {
		t.Fatalf("rate_limited local replies %d (%s)", n, ReasonRateLimited)
	}
	if n := r.RateLimited(route); n != 2 {
		t.Fatalf("RateLimited = %d, want 2", n)
	}
	problems, err := testutil.CollectAndLint(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "flax_upstream_re") || strings.HasPrefix(p.Metric, "flax_rate_limited") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestTimeoutsByKind(t *testing.T) {
	r := NewRegistry(2)
	r.Worker(0).Timeout(TimeoutSendStall)
	r.Worker(1).Timeout(TimeoutSendStall)
	r.Worker(1).Timeout(TimeoutUpstreamResponseHeader)
	if n := r.Timeouts(TimeoutSendStall); n != 2 {
		t.Fatalf("send_stall timeouts summed to %d, want 2", n)
	}
	want := `
# HELP flax_timeouts_total Waits that ran out (the connection got 408 or 504, or was closed), by kind.
# TYPE flax_timeouts_total counter
flax_timeouts_total{kind="ext_auth"} 0
flax_timeouts_total{kind="keepalive_idle"} 0
flax_timeouts_total{kind="request_body_idle"} 0
flax_timeouts_total{kind="request_head"} 0
flax_timeouts_total{kind="send_stall"} 2
flax_timeouts_total{kind="tunnel_idle"} 0
flax_timeouts_total{kind="upstream_body_idle"} 0
flax_timeouts_total{kind="upstream_response_header"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "flax_timeouts_total"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r    Reason
		want string
	}{
		{ReasonRequestBodyTimeout, "request_body_timeout"},
		{ReasonUpstreamHeaderTimeout, "upstream_header_timeout"},
		{ReasonUpstreamBodyTimeout, "upstream_body_timeout"},
		{ReasonSendStall, "send_stall"},
		{ReasonTunnelIdle, "tunnel_idle"},
		{ReasonFilter, "filter"},
		{ReasonCORSPreflight, "cors_preflight"},
		{ReasonExtAuthDenied, "ext_auth_denied"},
		{ReasonExtAuthError, "ext_auth_error"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("reason %d = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestMemoryPressureAndOverloadSeries(t *testing.T) {
	r := NewRegistry(2)
	w := r.Worker(0)
	if p := w.Pressure(); p != PressureNone {
		t.Fatalf("pressure without a budget = %v", p)
	}
	w.SetMemoryBudget(1000, 100)
	for _, tc := range []struct {
		inUse int64
		want  Pressure
	}{
		{0, PressureNone},
		{699, PressureNone},
		{700, PressureCloseIdle},
		{799, PressureCloseIdle},
		{800, PressureRefuseConnections},
		{899, PressureRefuseConnections},
		{900, PressureRejectRequests},
	} {
		w.ConnOpened() // 100 bytes per connection
		w.BufferBytes(tc.inUse, 0)
		if got := w.Pressure(); got != tc.want || w.MemoryUsed() != tc.inUse+100 {
			t.Errorf("%d buffer bytes and one connection: pressure %v, used %d; want %v, %d", tc.inUse, got, w.MemoryUsed(), tc.want, tc.inUse+100)
		}
		w.BufferBytes(-tc.inUse, 0)
		w.ConnClosed()
	}
	w.BufferBytes(4096, 8192)
	r.Worker(1).BufferBytes(0, 1024)
	w.OverloadAction(OverloadCloseIdle)
	w.OverloadAction(OverloadCloseIdle)
	r.Worker(1).OverloadAction(OverloadRejectRequest)
	id := r.ListenerID("web")
	w.Overflow(w.Listener(id), OverflowCap)
	r.Worker(1).Overflow(r.Worker(1).Listener(id), OverflowFdExhausted)

	want := `
# HELP flax_buffer_bytes Bytes of connection buffers, by state: lent to connections (in_use) or kept free in the workers' pools (free).
# TYPE flax_buffer_bytes gauge
flax_buffer_bytes{state="free"} 9216
flax_buffer_bytes{state="in_use"} 4096
# HELP flax_downstream_connections_overflow_total Client connections not served, by listener and reason: closed at once over a connection cap (cap), or accepts that failed for lack of file descriptors (fd_exhausted).
# TYPE flax_downstream_connections_overflow_total counter
flax_downstream_connections_overflow_total{listener="web",reason="cap"} 1
flax_downstream_connections_overflow_total{listener="web",reason="fd_exhausted"} 1
# HELP flax_memory_budget_bytes Sum of the workers' memory budgets (0: none).
# TYPE flax_memory_budget_bytes gauge
flax_memory_budget_bytes 1000
# HELP flax_memory_used_bytes What the memory budgets count, summed over the workers: buffers lent to connections plus a fixed cost per open connection.
# TYPE flax_memory_used_bytes gauge
flax_memory_used_bytes 4096
# HELP flax_overload_actions_total Load shed because a worker's memory use neared or passed its budget, by action: close_idle, refuse_connection, reject_request.
# TYPE flax_overload_actions_total counter
flax_overload_actions_total{action="close_idle"} 2
flax_overload_actions_total{action="refuse_connection"} 0
flax_overload_actions_total{action="reject_request"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "flax_buffer_bytes", "flax_downstream_connections_overflow_total",
		"flax_memory_budget_bytes", "flax_memory_used_bytes", "flax_overload_actions_total"); err != nil {
		t.Fatal(err)
	}
}
