package proxy

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

const resilientSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: app
      backends: [{backendGroup: guarded, weight: 1}]
      filters: [{requestMirror: {backendGroup: shadow}}]
      retry: {}
backendGroups:
- name: guarded
  outlierDetection: {consecutiveServerErrors: 5, consecutiveConnectFailures: 2}
  circuitBreakers: {maxConnections: 100, maxPendingRequests: 100, maxRequests: 100, maxRetries: 10}
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}]
- name: shadow
  endpoints: [{address: 10.0.1.1, port: 80}]
`

// sinkMirror keeps the last mirrored request.
type sinkMirror struct {
	n    int
	last []byte
}

func (m *sinkMirror) Mirror(_ *compiled.Group, head, body []byte) bool {
	m.n++
	m.last = append(append(m.last[:0], head...), body...)
	return true
}

// With health published (one endpoint unhealthy), outlier counting,
// every circuit breaker and a mirror, a keep-alive exchange still does not
// allocate, and never picks the unhealthy endpoint.
func TestResilientExchangeDoesNotAllocate(t *testing.T) {
	cfg, reg := compileTest(t, resilientSnapshot)
	sink := &sinkMirror{last: make([]byte, 0, 4096)}
	cfg.SetMirrorSender(sink)
	g := cfg.Group("guarded")
	eps := g.Endpoints()
	bad := balancer.NewBitset(eps.Len())
	bad.Set(1)
	wake := make(chan struct{}, 1)
	g.SetHealth(&compiled.EndpointHealth{Endpoints: eps, Unhealthy: bad, Outcomes: compiled.NewOutcomes(eps.Len(), g.Outlier, wake)})

	var picked [3]int
	s := loopbackSessionWith(t, cfg, reg, &recordingPicker{EndpointPicker: NewPickers(0), picked: &picked})
	exchange := keepAliveExchange(t, s, "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	for range 3 {
		exchange()
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Fatalf("%v allocations per exchange", n)
	}
	if picked[1] != 0 || picked[0] == 0 || picked[2] == 0 {
		t.Fatalf("picks per endpoint %v: endpoint 1 is unhealthy", picked)
	}
	if sink.n < 1000 || !strings.HasPrefix(string(sink.last), "GET /index.html HTTP/1.1\r\n") || !strings.Contains(string(sink.last), "Connection: close\r\n") {
		t.Fatalf("%d mirrors, last %q", sink.n, sink.last)
	}
	for _, l := range []metrics.Limit{metrics.LimitConnections, metrics.LimitPending, metrics.LimitRequests, metrics.LimitRetries} {
		if a := g.Shared.Active(l); a != 0 {
			t.Fatalf("%v: %d still held", l, a)
		}
	}
}

// An endpoint whose connect just failed is passed over while another is left
// (passive avoidance), without allocating and without giving up health: with
// endpoint 0 marked and endpoint 1 unhealthy, every request goes to endpoint 2.
// A successful connect to it clears the mark.
func TestConnectFailedEndpointPassedOver(t *testing.T) {
	cfg, reg := compileTest(t, resilientSnapshot)
	g := cfg.Group("guarded")
	eps := g.Endpoints()
	bad := balancer.NewBitset(eps.Len())
	bad.Set(1)
	g.SetHealth(&compiled.EndpointHealth{Endpoints: eps, Unhealthy: bad})
	g.ConnectFailed(eps, 0)

	var picked [3]int
	s := loopbackSessionWith(t, cfg, reg, &recordingPicker{EndpointPicker: NewPickers(0), picked: &picked})
	req := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	var got [3]int
	exchange := func() {
		s.ClientData(req)
		got[s.x.ep.Index]++
		loopback(t, s)
		s.UpstreamData(resp)
		loopback(t, s)
	}
	for range 3 {
		exchange()
	}
	if n := testing.AllocsPerRun(100, exchange); n != 0 {
		t.Fatalf("%v allocations per exchange", n)
	}
	if got[0] != 0 || got[1] != 0 || got[2] == 0 {
		t.Fatalf("attempts per endpoint %v: 0 failed a connect, 1 is unhealthy", got)
	}
	g.ConnectSucceeded(eps, 0)
	got = [3]int{}
	for range 4 {
		exchange()
	}
	if got[0] == 0 || got[1] != 0 {
		t.Fatalf("attempts per endpoint %v after the mark was cleared", got)
	}
}

type recordingPicker struct {
	EndpointPicker
	picked *[3]int
}

func (r *recordingPicker) Pick(g *compiled.Group, key []byte, avoid balancer.Bitset) (Endpoint, bool) {
	e, ok := r.EndpointPicker.Pick(g, key, avoid)
	if ok && g.Name == "guarded" {
		r.picked[e.Index]++
	}
	return e, ok
}

// Outcomes reach the outlier counters: connect failures trip the group's
// threshold and wake its detector.
func TestOutcomesReported(t *testing.T) {
	cfg, reg := compileTest(t, resilientSnapshot)
	g := cfg.Group("guarded")
	eps := g.Endpoints()
	wake := make(chan struct{}, 1)
	oc := compiled.NewOutcomes(eps.Len(), g.Outlier, wake)
	g.SetHealth(&compiled.EndpointHealth{Endpoints: eps, Outcomes: oc})
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { return 1 }, Options{})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	for range 6 { // round robin: two failures on each of the three endpoints
		s.ClientData([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		for a, ok := s.Next(); ok; a, ok = s.Next() {
			if a.Kind == ActConnectUpstream {
				s.UpstreamConnected(false, errConnect)
			}
			if a.Kind == ActSendClient {
				s.Sent(Client, len(a.Data), nil)
			}
		}
	}
	select {
	case <-wake:
	default:
		t.Fatal("two consecutive connect failures did not wake the detector")
	}
	tripped := 0
	for i := range eps.Len() {
		if oc.Tripped(i) {
			tripped++
		}
	}
	if tripped != 3 {
		t.Fatalf("%d endpoints tripped, want 3", tripped)
	}
}

var errConnect = errString("connection refused")

type errString string

func (e errString) Error() string { return string(e) }

// Under the default retry policy a request whose connects fail goes on to
// every eligible endpoint once, past the policy's two retries (as after a
// scale-down that took several endpoints at once); an explicit policy keeps
// its own count.
func TestDefaultRetryTriesEveryEndpointOnConnectFailure(t *testing.T) {
	const y = `
listeners:
- name: web
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: explicit
      matches: [{path: {type: PATH_PREFIX, value: /explicit}}]
      retry: {attempts: 2, retryOnConnectFailure: true, backoffBase: 1ms, backoffMax: 1ms}
      backends: [{backendGroup: five, weight: 1}]
    - name: default
      backends: [{backendGroup: five, weight: 1}]
backendGroups:
- name: five
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}, {address: 10.0.0.4, port: 80}, {address: 10.0.0.5, port: 80}]
`
	for _, tc := range []struct {
		path     string
		failures int // connects that fail before the answer
		connects int
		want     string
	}{
		{"/", 4, 5, "HTTP/1.1 200 "},         // the fifth endpoint answers
		{"/", 5, 5, "HTTP/1.1 502 "},         // every endpoint tried once
		{"/explicit", 3, 3, "HTTP/1.1 502 "}, // two retries, as configured
	} {
		cfg, reg := compileTest(t, y)
		h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.1:5000")
		h.client("GET " + tc.path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		for i := 0; i < tc.failures && len(h.connects) == i+1; i++ {
			h.connect(false, errRefused)
			h.advance(10 * time.Millisecond)
		}
		if len(h.connects) < tc.connects {
			t.Fatalf("%s, %d failures: %d connects, want %d", tc.path, tc.failures, len(h.connects), tc.connects)
		}
		if tc.want == "HTTP/1.1 200 " {
			h.connect(false, nil)
			h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
		seen := map[netip.AddrPort]bool{}
		for _, c := range h.connects {
			seen[c.Addr] = true
		}
		if got := h.takeClient(); !strings.HasPrefix(got, tc.want) || len(h.connects) != tc.connects || len(seen) != tc.connects {
			t.Fatalf("%s, %d failures: got %q after connects to %d endpoints (%d connects), want %q after %d", tc.path, tc.failures, got, len(seen), len(h.connects), tc.want, tc.connects)
		}
	}
}
