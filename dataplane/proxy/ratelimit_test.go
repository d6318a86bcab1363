package proxy

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Rate limits here are one request per minute with a small burst, so that no
// token comes back while a test runs on the real clock.
const limitedSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: limited
      matches: [{path: {type: PATH_PREFIX, value: /limited}}]
      rateLimit: {bucket: limited, requests: 1, interval: 60s, burst: 2}
      backends: [{backendGroup: app, weight: 1}]
    - name: shared-a
      matches: [{path: {type: PATH_PREFIX, value: /a}}]
      rateLimit: {bucket: shared, requests: 1, interval: 60s, burst: 2}
      backends: [{backendGroup: app, weight: 1}]
    - name: shared-b
      matches: [{path: {type: PATH_PREFIX, value: /b}}]
      rateLimit: {bucket: shared, requests: 1, interval: 60s, burst: 2}
      directResponse: {status: 200, body: "direct\n"}
    - name: per-client
      matches: [{path: {type: PATH_PREFIX, value: /client}}]
      rateLimit: {bucket: per-client, requests: 1, interval: 60s, burst: 1, perClientIp: true}
      backends: [{backendGroup: app, weight: 1}]
    - name: open
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
  endpoints: [{address: 10.0.0.1, port: 80}]
`

var rateLimitedReply = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 60\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
	strconv.Itoa(len(rateLimitedBody)) + "\r\n\r\n" + rateLimitedBody

// okExchange sends a GET for path through h and answers it upstream with 200.
func okExchange(t *testing.T, h *harness, path string) {
	t.Helper()
	h.client("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
	if len(h.connects) == 0 || !h.connected {
		t.Fatalf("GET %s: not forwarded (client got %q)", path, h.takeClient())
	}
	h.connects = nil
	h.takeUpstream()
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

func TestRateLimitAnswers429(t *testing.T) {
	cfg, reg := compileTest(t, limitedSnapshot)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.autoConnect = true
	okExchange(t, h, "/limited/1")
	okExchange(t, h, "/limited/2")
	h.client("GET /limited/3 HTTP/1.1\r\nHost: x\r\n\r\n")
	h.expectClient(rateLimitedReply)
	if len(h.connects) != 0 {
		t.Fatalf("a rate-limited request reached a backend: %v", h.connects)
	}
	if h.clientClosed {
		t.Fatal("a 429 closed a keep-alive connection")
	}
	// Other routes are not limited by it.
	okExchange(t, h, "/other")
	okExchange(t, h, "/other")
	okExchange(t, h, "/other")

	// A request whose body has not all arrived is answered and the connection
	// closed, since the rest of the body is not read.
	h.client("POST /limited/4 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	got := h.takeClient()
	if !strings.HasPrefix(got, "HTTP/1.1 429 Too Many Requests\r\n") || !strings.Contains(got, "Connection: close\r\n") || !h.clientClosed {
		t.Fatalf("429 to a partial body: %q (closed %v)", got, h.clientClosed)
	}

	if n := reg.RateLimited(reg.RouteID("limited")); n != 2 {
		t.Fatalf("rate limited requests = %d, want 2", n)
	}
	if n := gatherCounter(t, reg, "flax_rate_limited_requests_total", "route", "limited"); n != 2 {
		t.Fatalf("flax_rate_limited_requests_total{route=limited} = %v, want 2", n)
	}
	if n := reg.LocalReplies(metrics.ReasonRateLimited); n != 2 {
		t.Fatalf("rate_limited local replies = %d, want 2", n)
	}
	if n := requestsCount(t, reg, "limited", "4xx"); n != 2 {
		t.Fatalf("4xx of route limited = %v, want 2", n)
	}
	if n := gatherCounter(t, reg, "flax_rate_limited_requests_total", "route", "open"); n != 0 {
		t.Fatalf("route without a limit counted %v rate-limited requests", n)
	}
}

// Routes naming the same bucket share its tokens, whatever they do with the
// request (a direct response counts too).
func TestRateLimitSharedBucket(t *testing.T) {
	cfg, reg := compileTest(t, limitedSnapshot)
	if cfg.RateLimit("shared") == nil {
		t.Fatal("bucket shared not compiled")
	}
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.autoConnect = true
	okExchange(t, h, "/a")
	h.client("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "direct\n") {
		t.Fatalf("direct response: %q", got)
	}
	for _, p := range []string{"/a", "/b"} {
		h.client("GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n")
		h.expectClient(rateLimitedReply)
	}
	if a, b := gatherCounter(t, reg, "flax_rate_limited_requests_total", "route", "shared-a"), gatherCounter(t, reg, "flax_rate_limited_requests_total", "route", "shared-b"); a != 1 || b != 1 {
		t.Fatalf("rate limited per route: shared-a %v, shared-b %v; want 1 each", a, b)
	}
}

// A per-client limit keeps one bucket per client address, whatever the
// connection or port.
func TestRateLimitPerClient(t *testing.T) {
	cfg, reg := compileTest(t, limitedSnapshot)
	a1 := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	b := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.8:40000")
	a2 := openHarness(t, cfg, reg, Options{}, 0, "[::ffff:192.0.2.7]:40001") // the same client, IPv4-mapped
	for _, h := range []*harness{a1, b, a2} {
		h.autoConnect = true
	}
	okExchange(t, a1, "/client")
	okExchange(t, b, "/client")
	for _, h := range []*harness{a1, b, a2} {
		h.client("GET /client HTTP/1.1\r\nHost: x\r\n\r\n")
		h.expectClient(rateLimitedReply)
	}
	c := openHarness(t, cfg, reg, Options{}, 0, "[2001:db8::1]:40000")
	c.autoConnect = true
	okExchange(t, c, "/client")
	if n := gatherCounter(t, reg, "flax_rate_limited_requests_total", "route", "per-client"); n != 3 {
		t.Fatalf("rate limited = %v, want 3", n)
	}
}

// limitedSession returns a keep-alive exchange through limitedSnapshot whose
// limits are high enough never to be reached.
func limitedSession(tb testing.TB, path string) (*metrics.Registry, func()) {
	y := strings.NewReplacer("requests: 1, interval: 60s, burst: 2", "requests: 4000000000, interval: 1ms, burst: 1000000",
		"requests: 1, interval: 60s, burst: 1,", "requests: 4000000000, interval: 1ms, burst: 1000000,").Replace(limitedSnapshot)
	cfg, reg := compileTest(tb, y)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	now := int64(1)
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { now += 1000; return now }, Options{})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(tb, s)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	return reg, func() {
		s.ClientData(req)
		loopback(tb, s)
		s.UpstreamData(resp)
		loopback(tb, s)
	}
}

// A rate limit costs a request no allocation, per client or not.
func TestRateLimitDoesNotAllocate(t *testing.T) {
	for path, route := range map[string]string{"/limited": "limited", "/client": "per-client"} {
		reg, exchange := limitedSession(t, path)
		for range 3 {
			exchange()
		}
		if n := testing.AllocsPerRun(1000, exchange); n != 0 {
			t.Fatalf("%s: %v allocations per exchange", path, n)
		}
		if n := reg.LocalReplies(metrics.ReasonRateLimited); n != 0 {
			t.Fatalf("%s: %d requests rate limited", path, n)
		}
		if n := requestsCount(t, reg, route, "2xx"); n < 1000 {
			t.Fatalf("%s: %v requests answered 200", path, n)
		}
	}
}

// BenchmarkKeepAliveExchangeRateLimited is BenchmarkKeepAliveExchange on a
// route with a rate limit shared by all clients, and with one per client.
func BenchmarkKeepAliveExchangeRateLimited(b *testing.B) {
	for _, path := range []string{"/limited", "/client"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			_, exchange := limitedSession(b, path)
			exchange()
			b.ReportAllocs()
			for b.Loop() {
				exchange()
			}
		})
	}
}

const budgetSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: retry
      retry: {attempts: 2, retryOnConnectFailure: true, retryOnStatusCodes: [503], backoffBase: 10ms, backoffMax: 10ms}
      backends: [{backendGroup: app, weight: 1}]
    - name: default-retry
      matches: [{path: {type: PATH_PREFIX, value: /default}}]
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
GROUP  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}]
`

// budgetHarnesses compiles budgetSnapshot with group settings and opens n
// sessions, alternating between the two workers of the registry.
func budgetHarnesses(t *testing.T, group string, n int) ([]*harness, *compiled.Group) {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(strings.Replace(budgetSnapshot, "GROUP", group, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry(2)
	cfg, err := compiled.Compile(snap, reg)
	if err != nil {
		t.Fatal(err)
	}
	var hs []*harness
	for i := range n {
		h := &harness{t: t, autoSend: true, now: int64(time.Hour), cfg: cfg, reg: reg}
		h.slot.Store(cfg.Listeners[0])
		h.w = NewWorker(reg.Worker(i%2), NewPickers(uint64(i)), nil, func() int64 { return h.now }, Options{})
		h.s.Open(h.w, &h.slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
		h.drain()
		hs = append(hs, h)
	}
	return hs, cfg.Group("app")
}

var errRefused = errors.New("connection refused")

// failAttempt connects h's pending attempt and fails it, with a 503 on a route
// whose policy retries it, or with a close before any response byte (a replay
// of the default policy) on /default, and reports whether the session is
// retrying (backing off) rather than answering.
func failAttempt(t *testing.T, h *harness, path string) (retrying bool) {
	t.Helper()
	h.connect(false, nil)
	if path == "/default" {
		h.s.UpstreamEOF()
		h.drain()
	} else {
		h.upstream("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
	}
	got := h.takeClient()
	switch {
	case got == "":
		return true
	case strings.HasPrefix(got, "HTTP/1.1 502 "), strings.HasPrefix(got, "HTTP/1.1 503 "):
		return false
	}
	t.Fatalf("after a failed attempt the client got %q", got)
	return false
}

// A retry after a failed connect takes no slot of the retry limit or budget:
// the request reached no backend. With the budget at zero and every slot of
// the limit free, each session still retries its failed connect, on both
// routes, and the retries gauge stays at zero.
func TestRetryAfterConnectFailureTakesNoSlot(t *testing.T) {
	for _, path := range []string{"/", "/default"} {
		hs, g := budgetHarnesses(t, "  retryBudget: {}\n  circuitBreakers: {maxRetries: 1}\n", 4)
		for _, h := range hs {
			h.client("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		for i, h := range hs {
			h.connect(false, errRefused)
			if got := h.takeClient(); got != "" {
				t.Fatalf("%s: session %d answered %q after a failed connect", path, i, got)
			}
		}
		if a, d, o := g.Shared.Active(metrics.LimitRetries), g.Shared.RetriesDenied(), g.Shared.Overflows(metrics.LimitRetries); a != 0 || d != 0 || o != 0 {
			t.Fatalf("%s: retries gauge %d, denied %d, overflows %d; want 0", path, a, d, o)
		}
		for i, h := range hs {
			h.advance(time.Second)
			if len(h.connects) != 2 {
				t.Fatalf("%s: session %d: %d connects, want 2", path, i, len(h.connects))
			}
			h.connect(false, nil)
			h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 200 OK") {
				t.Fatalf("%s: session %d: %q", path, i, got)
			}
		}
		if n := g.Shared.Retries(); n != 4 {
			t.Fatalf("%s: %d retries, want 4", path, n)
		}
	}
}

// The budget allows max(min, percent% of the requests in flight) retries at
// once, counted over both workers; a denied retry answers the failure.
func TestRetryBudget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group string
		path  string
		n     int
		want  []bool // retrying after each session's failed connect, in order
	}{
		// Default: 20% of 4 is 0, so the floor of 3 applies.
		{"default", "", "/", 4, []bool{true, true, true, false}},
		// The default policy's replay of a request whose connection failed
		// before any response byte is subject to the budget too.
		{"default retry policy", "", "/default", 4, []bool{true, true, true, false}},
		// Half of 4 in flight: 2; then 3 in flight (the denied one ended): 1.
		{"percent", "  retryBudget: {percent: 50}\n", "/", 4, []bool{true, true, false, false}},
		// Half of 10 in flight is 5, above the floor of 2.
		{
			"percent above floor", "  retryBudget: {percent: 50, minRetryConcurrency: 2}\n", "/", 10,
			[]bool{true, true, true, true, true, false, false, false, false, false},
		},
		{"floor", "  retryBudget: {minRetryConcurrency: 1}\n", "/", 3, []bool{true, false, false}},
		{"disabled", "  retryBudget: {}\n", "/", 2, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, g := budgetHarnesses(t, tc.group, tc.n)
			for _, h := range hs {
				h.client("GET " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
			}
			if n := g.Shared.RequestsInFlight(); n != int64(tc.n) {
				t.Fatalf("requests in flight %d, want %d", n, tc.n)
			}
			denied := 0
			for i, h := range hs {
				if got := failAttempt(t, h, tc.path); got != tc.want[i] {
					t.Fatalf("session %d retrying = %v, want %v", i, got, tc.want[i])
				}
				if !tc.want[i] {
					denied++
				}
			}
			if n := g.Shared.RetriesDenied(); n != uint64(denied) {
				t.Fatalf("denied retries %d, want %d", n, denied)
			}
			if n := gatherCounter(t, hs[0].reg, "flax_upstream_retry_budget_denied_total", "backend_group", "app"); n != float64(denied) {
				t.Fatalf("flax_upstream_retry_budget_denied_total = %v, want %d", n, denied)
			}
			if n := g.Shared.Active(metrics.LimitRetries); n != int64(tc.n-denied) {
				t.Fatalf("retries in flight %d, want %d", n, tc.n-denied)
			}
			// The retries go ahead and succeed; everything is given back.
			for i, h := range hs {
				if !tc.want[i] {
					continue
				}
				h.advance(time.Second)
				if len(h.connects) != 2 {
					t.Fatalf("session %d: %d connects, want 2", i, len(h.connects))
				}
				h.connect(false, nil)
				h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 200 OK") {
					t.Fatalf("session %d: %q", i, got)
				}
			}
			if n := g.Shared.Retries(); n != uint64(tc.n-denied) {
				t.Fatalf("retries made %d, want %d", n, tc.n-denied)
			}
			if a, r := g.Shared.Active(metrics.LimitRetries), g.Shared.RequestsInFlight(); a != 0 || r != 0 {
				t.Fatalf("after the requests: %d retries and %d requests still in flight", a, r)
			}
		})
	}
}

// A request's later retries ride on the slot of its first: with room for one
// retry, a request may still use all its attempts.
func TestRetryBudgetHeldAcrossAttempts(t *testing.T) {
	hs, g := budgetHarnesses(t, "  retryBudget: {minRetryConcurrency: 1}\n", 1)
	h := hs[0]
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for range 2 {
		h.upstream("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
		if h.toClient.Len() != 0 {
			t.Fatalf("retryable 503 forwarded: %q", h.takeClient())
		}
		h.advance(time.Second)
	}
	h.upstream("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") {
		t.Fatalf("after the last attempt: %q", got)
	}
	if len(h.connects) != 3 || g.Shared.Retries() != 2 || g.Shared.RetriesDenied() != 0 {
		t.Fatalf("%d attempts, %d retries, %d denied; want 3, 2, 0", len(h.connects), g.Shared.Retries(), g.Shared.RetriesDenied())
	}
}

// A 5xx whose retry the budget denies goes to the client as it is.
func TestRetryBudgetDeniedStatusForwarded(t *testing.T) {
	hs, g := budgetHarnesses(t, "  retryBudget: {}\n", 1)
	h := hs[0]
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	h.upstream("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
	h.expectClient("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
	if len(h.connects) != 1 || g.Shared.RetriesDenied() != 1 {
		t.Fatalf("%d attempts, %d denied; want 1, 1", len(h.connects), g.Shared.RetriesDenied())
	}
}

// The circuit breaker's retry limit is checked before the budget: a retry over
// the limit counts as an overflow, not as a budget denial.
func TestRetryBudgetWithMaxRetries(t *testing.T) {
	hs, g := budgetHarnesses(t, "  circuitBreakers: {maxRetries: 1}\n", 3)
	for _, h := range hs {
		h.client("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	want := []bool{true, false, false}
	for i, h := range hs {
		if got := failAttempt(t, h, "/"); got != want[i] {
			t.Fatalf("session %d retrying = %v, want %v", i, got, want[i])
		}
	}
	if o, d := g.Shared.Overflows(metrics.LimitRetries), g.Shared.RetriesDenied(); o != 2 || d != 0 {
		t.Fatalf("retry overflows %d, budget denials %d; want 2, 0", o, d)
	}
}
