package proxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

const testSnapshot = `
version: 1
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    hostnames: [example.com]
    routes:
    - name: app
      backends: [{backendGroup: one, weight: 1}]
      retry: {}  # explicitly none: most tests look at one attempt
    - name: default-retry
      matches: [{path: {type: PATH_PREFIX, value: /default-retry}}]
      backends: [{backendGroup: two, weight: 1}]
    - name: two
      matches: [{path: {type: PATH_PREFIX, value: /two}}]
      backends: [{backendGroup: two, weight: 1}]
    - name: retry
      matches: [{path: {type: PATH_PREFIX, value: /retry}}]
      retry: {attempts: 2, retryOnConnectFailure: true, retryOnReset: true, retryOnStatusCodes: [503], backoffBase: 10ms, backoffMax: 20ms}
      backends: [{backendGroup: two, weight: 1}]
    - name: slow
      matches: [{path: {type: PATH_PREFIX, value: /slow}}]
      timeouts: {request: 5s, backendRequest: 2s}
      backends: [{backendGroup: one, weight: 1}]
    - name: redirect
      matches: [{path: {type: PATH_PREFIX, value: /old}}]
      filters: [{requestRedirect: {scheme: https, hostname: new.example.com, path: {replacePrefixMatch: /new}, statusCode: 301}}]
    - name: redirect-port
      matches: [{path: {type: EXACT, value: /port}}]
      filters: [{requestRedirect: {hostname: other.example.com}}]
    - name: direct
      matches: [{path: {type: EXACT, value: /direct}}]
      directResponse: {status: 418, body: "teapot\n"}
    - name: nobackend
      matches: [{path: {type: EXACT, value: /none}}]
    - name: empty
      matches: [{path: {type: PATH_PREFIX, value: /empty}}]
      backends: [{backendGroup: empty, weight: 1}]
    - name: rewrite
      matches: [{path: {type: PATH_PREFIX, value: /api}}]
      filters:
      - urlRewrite: {hostname: internal.svc, path: {replacePrefixMatch: /v2}}
      - requestHeaderModifier: {set: [{name: X-Env, value: prod}], add: [{name: X-Added, value: "1"}], remove: [X-Debug]}
      - responseHeaderModifier: {set: [{name: X-Served-By, value: flax}], remove: [Server]}
      backends: [{backendGroup: one, weight: 1}]
    - name: full
      matches: [{path: {type: PATH_PREFIX, value: /full}}]
      filters: [{urlRewrite: {path: {replaceFullPath: /replaced}}}]
      backends: [{backendGroup: one, weight: 1}]
    - name: sticky
      matches: [{path: {type: PATH_PREFIX, value: /sticky}}]
      sessionAffinity: {cookie: {name: flax-ep, ttl: 60s}}
      backends: [{backendGroup: two, weight: 1}]
    - name: hashed
      matches: [{path: {type: PATH_PREFIX, value: /hashed}}]
      backends: [{backendGroup: hashed, weight: 1}]
- name: tcp
  address: 127.0.0.1
  port: 9000
  protocol: TCP
  tcpRoute:
    name: tcp-route
    backends: [{backendGroup: one, weight: 1}]
backendGroups:
- name: one
  endpoints: [{address: 10.0.0.1, port: 80}]
- name: two
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}]
- name: empty
- name: hashed
  loadBalancing: {policy: RING_HASH, hashOn: {header: X-User}}
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}]
`

// harness drives a Session like an engine, with a manual clock and
// recorded actions.
type harness struct {
	t    *testing.T
	reg  *metrics.Registry
	cfg  *compiled.Config
	slot atomic.Pointer[compiled.Listener]
	w    *Worker
	s    Session
	now  int64

	// autoSend completes every send as soon as it is queued.
	autoSend bool
	// autoConnect answers every connect with success.
	autoConnect bool

	log                  []string
	pendingC, pendingU   [][]byte
	copyC, copyU         [][]byte // what the pending sends held when queued
	toClient, toUpstream bytes.Buffer
	connects             []Target
	connected            bool
	clientClosed, linger bool
	released, closedUp   int
	timer                int64
	arms                 int // ActArmTimer actions seen
	tunnel               bool
	shutUp, shutCli      bool
	terminated           []byte // the Data of ActTerminateTLS
}

func compileTest(t testing.TB, y string) (*compiled.Config, *metrics.Registry) {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse snapshot: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("validate snapshot: %v", err)
	}
	reg := metrics.NewRegistry(1)
	cfg, err := compiled.Compile(snap, reg)
	if err != nil {
		t.Fatalf("compile snapshot: %v", err)
	}
	return cfg, reg
}

func newHarness(t *testing.T) *harness {
	return newHarnessOpts(t, Options{}, 0)
}

func newHarnessOpts(t *testing.T, opts Options, listener int) *harness {
	t.Helper()
	cfg, reg := compileTest(t, testSnapshot)
	return openHarness(t, cfg, reg, opts, listener, "192.0.2.7:40000")
}

// openHarness opens a session from remote on listener of cfg, with a worker
// counting in reg.
func openHarness(t *testing.T, cfg *compiled.Config, reg *metrics.Registry, opts Options, listener int, remote string) *harness {
	t.Helper()
	h := &harness{t: t, autoSend: true, now: int64(time.Hour), cfg: cfg, reg: reg}
	h.slot.Store(h.cfg.Listeners[listener])
	h.w = NewWorker(h.reg.Worker(0), NewPickers(0), nil, func() int64 { return h.now }, opts)
	h.s.Open(h.w, &h.slot, netip.MustParseAddrPort(remote), false)
	h.drain()
	return h
}

// drain performs the queued actions.
func (h *harness) drain() {
	for {
		a, ok := h.s.Next()
		if !ok {
			return
		}
		switch a.Kind {
		case ActSendClient:
			h.log = append(h.log, "SendClient")
			h.pendingC = append(h.pendingC, a.Data)
			h.copyC = append(h.copyC, append([]byte(nil), a.Data...))
		case ActSendUpstream:
			h.log = append(h.log, "SendUpstream")
			h.pendingU = append(h.pendingU, a.Data)
			h.copyU = append(h.copyU, append([]byte(nil), a.Data...))
		case ActConnectUpstream:
			tg := h.s.Target()
			h.connects = append(h.connects, tg)
			h.log = append(h.log, fmt.Sprintf("Connect %s fresh=%v", tg.Addr, tg.Fresh))
		case ActReleaseUpstream:
			h.log = append(h.log, "Release")
			h.released++
			h.connected = false
			h.pendingU, h.copyU = nil, nil
		case ActCloseUpstream:
			h.log = append(h.log, "CloseUpstream")
			h.closedUp++
			h.connected = false
			h.pendingU, h.copyU = nil, nil
		case ActShutdownUpstream:
			h.log = append(h.log, "ShutdownUpstream")
			h.shutUp = true
		case ActShutdownClient:
			h.log = append(h.log, "ShutdownClient")
			h.shutCli = true
		case ActCloseClient:
			h.log = append(h.log, fmt.Sprintf("CloseClient linger=%v", a.Linger))
			h.clientClosed = true
			h.linger = a.Linger
		case ActArmTimer:
			h.timer = h.s.Deadline()
			h.arms++
		case ActStartTunnel:
			h.log = append(h.log, "StartTunnel")
			h.tunnel = true
		case ActTerminateTLS:
			h.log = append(h.log, "TerminateTLS")
			h.terminated = append(h.terminated, a.Data...)
		default:
			h.t.Fatalf("unexpected action %v", a.Kind)
		}
		if a.Kind == ActConnectUpstream && h.autoConnect {
			h.connected = true
			h.s.UpstreamConnected(false, nil)
		}
		if h.autoSend {
			h.completeSends()
		}
	}
}

// completeSends reports every pending send as complete.
func (h *harness) completeSends() {
	for len(h.pendingC) > 0 {
		h.completeOne(Client)
	}
	for len(h.pendingU) > 0 {
		h.completeOne(Upstream)
	}
}

// completeOne completes the oldest send to side, checking that its memory
// was not modified while in flight.
func (h *harness) completeOne(side Side) {
	h.t.Helper()
	p, c, out := &h.pendingC, &h.copyC, &h.toClient
	if side == Upstream {
		p, c, out = &h.pendingU, &h.copyU, &h.toUpstream
	}
	d, orig := (*p)[0], (*c)[0]
	*p, *c = (*p)[1:], (*c)[1:]
	if !bytes.Equal(d, orig) {
		h.t.Fatalf("%v send modified while in flight: queued %q, now %q", side, orig, d)
	}
	out.Write(d)
	h.s.Sent(side, len(d), nil)
}

func (h *harness) client(data string) {
	h.t.Helper()
	p := []byte(data)
	for len(p) > 0 {
		n := h.s.ClientData(p)
		h.drain()
		if n == 0 {
			h.t.Fatalf("session took no client bytes (WantClientData=%v)", h.s.WantClientData())
		}
		p = p[n:]
	}
}

func (h *harness) upstream(data string) {
	h.t.Helper()
	p := []byte(data)
	for len(p) > 0 {
		n := h.s.UpstreamData(p)
		h.drain()
		if n == 0 {
			h.t.Fatalf("session took no upstream bytes (WantUpstreamData=%v)", h.s.WantUpstreamData())
		}
		p = p[n:]
	}
}

func (h *harness) connect(reused bool, err error) {
	h.t.Helper()
	if err == nil {
		h.connected = true
	}
	h.s.UpstreamConnected(reused, err)
	h.drain()
}

func (h *harness) advance(d time.Duration) {
	h.now += int64(d)
	if h.timer != 0 && h.now >= h.timer {
		h.s.Timer(h.now)
		h.drain()
	}
}

// takeClient returns and clears what the client received.
func (h *harness) takeClient() string {
	s := h.toClient.String()
	h.toClient.Reset()
	return s
}

// takeUpstream returns and clears what the upstream received.
func (h *harness) takeUpstream() string {
	s := h.toUpstream.String()
	h.toUpstream.Reset()
	return s
}

func (h *harness) takeLog() string {
	s := strings.Join(h.log, "; ")
	h.log = nil
	return s
}

func (h *harness) expectClient(want string) {
	h.t.Helper()
	if got := h.takeClient(); got != want {
		h.t.Fatalf("client received:\n%q\nwant:\n%q", got, want)
	}
}

func (h *harness) expectUpstream(want string) {
	h.t.Helper()
	if got := h.takeUpstream(); got != want {
		h.t.Fatalf("upstream received:\n%q\nwant:\n%q", got, want)
	}
}

func (h *harness) expectLog(want string) {
	h.t.Helper()
	if got := h.takeLog(); got != want {
		h.t.Fatalf("actions:\n%s\nwant:\n%s", got, want)
	}
}

// reason returns the local-reply count of r.
func (h *harness) reasonCount(r metrics.Reason) float64 {
	return gatherCounter(h.t, h.reg, "flax_local_replies_total", "reason", r.String())
}

// gather returns the metric families reg exports.
func gather(t testing.TB, reg *metrics.Registry) []*dto.MetricFamily {
	t.Helper()
	pr := prometheus.NewRegistry()
	if err := pr.Register(reg); err != nil {
		t.Fatalf("register metrics: %v", err)
	}
	fams, err := pr.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	return fams
}

// gatherCounter returns the value of the first series of family name
// whose labels have the given values (label, value pairs; a pair with an
// empty label matches any series).
func gatherCounter(t testing.TB, reg *metrics.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams := gather(t, reg)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := labels[i] == ""
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// gatherHistogram returns the histogram of family name whose label has value,
// nil if there is none.
func gatherHistogram(t testing.TB, reg *metrics.Registry, name, label, value string) *dto.Histogram {
	t.Helper()
	fams := gather(t, reg)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetHistogram()
				}
			}
		}
	}
	return nil
}

// requestsCount returns flax_requests_total for a route and code class.
func requestsCount(t testing.TB, reg *metrics.Registry, route, code string) float64 {
	t.Helper()
	fams := gather(t, reg)
	for _, f := range fams {
		if f.GetName() != "flax_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var r, c string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "route":
					r = lp.GetValue()
				case "code":
					c = lp.GetValue()
				}
			}
			if r == route && c == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
