package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/h2c"
	"github.com/flaxlb/flax/dataplane/metrics"
)

func TestObserveThresholds(t *testing.T) {
	e := newEndpointState(netip.MustParseAddrPort("10.0.0.1:80"))
	if !e.healthy {
		t.Fatal("a new endpoint must start healthy")
	}
	// Two failures below an unhealthy threshold of 3, a success resets the count.
	for i, step := range []struct {
		ok      bool
		changed bool
		healthy bool
	}{
		{false, false, true}, {false, false, true}, {true, false, true}, // reset
		{false, false, true}, {false, false, true}, {false, true, false}, // 3 in a row
		{false, false, false},                       // stays unhealthy, no new transition
		{true, false, false}, {false, false, false}, // success then failure: count reset
		{true, false, false}, {true, true, true}, // 2 in a row: healthy
		{true, false, true},
	} {
		if got := e.observe(step.ok, 2, 3); got != step.changed || e.healthy != step.healthy {
			t.Fatalf("step %d (ok=%v): changed %v healthy %v, want %v %v", i, step.ok, got, e.healthy, step.changed, step.healthy)
		}
	}
	// Thresholds of zero behave as one.
	e = newEndpointState(netip.MustParseAddrPort("10.0.0.1:80"))
	if !e.observe(false, 0, 0) || e.healthy {
		t.Fatal("threshold 0: one failure must make the endpoint unhealthy")
	}
	if !e.observe(true, 0, 0) || !e.healthy {
		t.Fatal("threshold 0: one success must make the endpoint healthy")
	}
}

func TestProbeDelayJitterBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const interval, jitter = 100 * time.Millisecond, 30 * time.Millisecond
	lo, hi := time.Hour, time.Duration(0)
	for range 10000 {
		d := probeDelay(interval, jitter, rng)
		if d < interval || d > interval+jitter {
			t.Fatalf("delay %v outside [%v, %v]", d, interval, interval+jitter)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	// The whole range is used.
	if lo > interval+jitter/20 || hi < interval+jitter*19/20 {
		t.Errorf("delays span [%v, %v], want about [%v, %v]", lo, hi, interval, interval+jitter)
	}
	if d := probeDelay(interval, 0, rng); d != interval {
		t.Errorf("no jitter: %v", d)
	}
}

func TestEjectionMath(t *testing.T) {
	const base = 10 * time.Second
	for _, c := range []struct {
		n    int
		max  time.Duration
		want time.Duration
	}{
		{0, time.Minute, 10 * time.Second},
		{1, time.Minute, 10 * time.Second},
		{2, time.Minute, 20 * time.Second},
		{6, time.Minute, time.Minute},
		{7, time.Minute, time.Minute},
		{1 << 40, time.Minute, time.Minute}, // no overflow
		{3, time.Second, base},              // a cap below base is raised to base
	} {
		if got := ejectionTime(base, c.n, c.max); got != c.want {
			t.Errorf("ejectionTime(%v, %d, %v) = %v, want %v", base, c.n, c.max, got, c.want)
		}
	}
	for _, c := range []struct{ n, pct, want int }{
		{10, 10, 1}, {10, 50, 5}, {2, 10, 1}, {2, 50, 1}, {3, 100, 3}, {1, 10, 1}, {0, 50, 0}, {5, 0, 0}, {7, 30, 2},
	} {
		if got := maxEjected(c.n, c.pct); got != c.want {
			t.Errorf("maxEjected(%d, %d) = %d, want %d", c.n, c.pct, got, c.want)
		}
	}

	// An endpoint's life: ejected for base, back, ejected again for 2×base,
	// then the multiplier decays by one per base it stays in.
	e := newEndpointState(netip.MustParseAddrPort("10.0.0.1:80"))
	t0 := time.Unix(1000, 0)
	if d := e.eject(t0, base, time.Minute); d != base || !e.ejected(t0) || !e.ejected(t0.Add(base-1)) {
		t.Fatalf("first ejection: %v", d)
	}
	if e.tick(t0.Add(base-1), base) {
		t.Fatal("returned early")
	}
	t1 := t0.Add(base)
	if !e.tick(t1, base) || e.ejected(t1) {
		t.Fatal("not returned after base")
	}
	if d := e.eject(t1.Add(time.Second), base, time.Minute); d != 2*base {
		t.Fatalf("second ejection lasts %v, want %v", d, 2*base)
	}
	t2 := t1.Add(time.Second + 2*base)
	if !e.tick(t2, base) || e.ejections != 2 {
		t.Fatalf("second return: ejections %d", e.ejections)
	}
	if e.next() != t2.Add(base) {
		t.Fatalf("next decay at %v, want %v", e.next(), t2.Add(base))
	}
	e.tick(t2.Add(base), base)
	if e.ejections != 1 {
		t.Fatalf("after one base: multiplier %d, want 1", e.ejections)
	}
	e.tick(t2.Add(5*base), base)
	if e.ejections != 0 || !e.next().IsZero() {
		t.Fatalf("after five bases: multiplier %d next %v", e.ejections, e.next())
	}
}

func TestParseStatusLine(t *testing.T) {
	for line, want := range map[string]int{
		"HTTP/1.1 200 OK\r\n":        200,
		"HTTP/1.0 503\r\n":           503,
		"HTTP/1.1 404 Not Found\r\n": 404,
		"HTTP/1.1 20 OK\r\n":         0,
		"HTTP/2 200 OK\r\n":          0,
		"SSH-2.0-OpenSSH\r\n":        0,
		"HTTP/1.1 2000 OK\r\n":       0,
		"HTTP/1.1 099 OK\r\n":        0,
	} {
		got, err := parseStatusLine([]byte(line))
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("%q: %d, %v; want %d", line, got, err, want)
		}
	}
}

// scripted is a loopback backend whose health endpoint answers as told.
type scripted struct {
	ln     net.Listener
	srv    *http.Server
	status atomic.Int32
	probes atomic.Int32
}

func startScripted(t *testing.T, status int) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln}
	s.status.Store(int32(status))
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			s.probes.Add(1)
			if r.Header.Get("User-Agent") != "flax-health-check" {
				w.WriteHeader(400)
				return
			}
		}
		w.WriteHeader(int(s.status.Load()))
	})}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *scripted) addr() netip.AddrPort { return netip.MustParseAddrPort(s.ln.Addr().String()) }

func groupYAML(name string, addrs []netip.AddrPort, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n%s  endpoints:\n", name, extra)
	for _, a := range addrs {
		fmt.Fprintf(&b, "  - {address: %s, port: %d}\n", a.Addr(), a.Port())
	}
	return b.String()
}

const fastCheck = `  healthCheck: {path: /healthz, interval: 0.02s, timeout: 0.02s, jitter: 0.005s, healthyThreshold: 2, unhealthyThreshold: 2}
`

// unhealthyAddrs returns the addresses of g's endpoints published unhealthy.
func unhealthyAddrs(g *compiled.Group) []netip.AddrPort {
	eps := g.Endpoints()
	bad := g.Unhealthy(eps)
	var out []netip.AddrPort
	for i := range eps.Len() {
		if bad.Has(i) {
			out = append(out, eps.Endpoint(i).Addr)
		}
	}
	return out
}

func TestManagerActiveChecks(t *testing.T) {
	good := startScripted(t, 200)
	bad := startScripted(t, 503)
	refused := func() netip.AddrPort { // a port nobody listens on
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := netip.MustParseAddrPort(ln.Addr().String())
		ln.Close()
		return a
	}()
	reg := metrics.NewRegistry(1)
	m := NewManager(Options{})
	defer m.Close()
	addrs := []netip.AddrPort{good.addr(), bad.addr(), refused}
	cfg := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("app", addrs, fastCheck))
	g := cfg.Group("app")
	m.Apply(cfg)
	if h := g.Health(); h == nil || h.Endpoints != g.Endpoints() || h.Unhealthy != nil {
		t.Fatalf("initial health %+v: want published, every endpoint healthy", h)
	}
	enginetest.WaitFor(t, "two unhealthy endpoints", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 2 })
	if u := unhealthyAddrs(g); u[0] != bad.addr() || u[1] != refused {
		t.Fatalf("unhealthy %v", u)
	}
	sh := g.Shared
	if up, down := sh.Transitions(); up != 0 || down != 2 {
		t.Fatalf("transitions %d up %d down", up, down)
	}

	// A new snapshot with the same endpoints keeps their state at once.
	cfg2 := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("app", addrs, fastCheck))
	m.Apply(cfg2)
	g2 := cfg2.Group("app")
	if u := unhealthyAddrs(g2); len(u) != 2 {
		t.Fatalf("after swap: unhealthy %v, want the two bad endpoints still", u)
	}
	// An endpoint update drops one bad endpoint and adds a fresh one, which
	// starts healthy; the published set follows at once.
	fresh := startScripted(t, 200)
	if err := cfg2.UpdateEndpoints("app", []*dataplanev1.Endpoint{
		{Address: "127.0.0.1", Port: uint32(good.addr().Port())},
		{Address: "127.0.0.1", Port: uint32(bad.addr().Port())},
		{Address: "127.0.0.1", Port: uint32(fresh.addr().Port())},
	}); err != nil {
		t.Fatal(err)
	}
	if u := unhealthyAddrs(g2); len(u) != 1 || u[0] != bad.addr() {
		t.Fatalf("after endpoint update: unhealthy %v, want only %v", u, bad.addr())
	}
	// The bad endpoint recovers after two good probes.
	bad.status.Store(204)
	enginetest.WaitFor(t, "recovery", 5*time.Second, func() bool { return len(unhealthyAddrs(g2)) == 0 })
	if up, _ := sh.Transitions(); up != 1 {
		t.Fatalf("transitions to healthy %d, want 1", up)
	}

	// Removing the group stops its checker and withdraws its health.
	m.Apply(enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("other", addrs[:1], "")))
	if len(m.Groups()) != 0 || g2.Health() != nil {
		t.Fatalf("groups %v health %v after removal", m.Groups(), g2.Health())
	}
	n := good.probes.Load()
	time.Sleep(80 * time.Millisecond)
	if d := good.probes.Load() - n; d > 1 {
		t.Fatalf("%d probes after the group was removed", d)
	}
}

func TestProbeTimeoutAndHost(t *testing.T) {
	// A backend that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hc := &compiled.HealthCheck{Path: "/", Timeout: 50 * time.Millisecond, Expected: []compiled.StatusRange{{Min: 200, Max: 299}}}
	start := time.Now()
	err = Probe(context.Background(), netip.MustParseAddrPort(ln.Addr().String()), hc)
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("hanging backend: %v after %v", err, time.Since(start))
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a timeout error, got %v", err)
	}
	s := startScripted(t, 302)
	hc.Timeout = time.Second
	if err := Probe(context.Background(), s.addr(), hc); !errors.Is(err, ErrUnexpectedStatus) {
		t.Fatalf("302 with 2xx expected: %v", err)
	}
	hc.Expected = append(hc.Expected, compiled.StatusRange{Min: 300, Max: 302})
	if err := Probe(context.Background(), s.addr(), hc); err != nil {
		t.Fatalf("302 expected: %v", err)
	}
}

func TestOutlierEjection(t *testing.T) {
	reg := metrics.NewRegistry(1)
	m := NewManager(Options{})
	defer m.Close()
	var addrs []netip.AddrPort
	for i := range 4 {
		addrs = append(addrs, netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:80", i+1)))
	}
	od := "  outlierDetection: {consecutiveServerErrors: 3, consecutiveConnectFailures: 2, baseEjectionTime: 0.1s, maxEjectionPercent: 50}\n"
	cfg := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("app", addrs, od))
	g := cfg.Group("app")
	m.Apply(cfg)
	eps := g.Endpoints()
	h := g.Health()
	if h == nil || h.Outcomes == nil {
		t.Fatal("no outcome counters published")
	}
	// Two errors then a success: no ejection.
	g.Report(eps, 0, compiled.OutcomeServerError)
	g.Report(eps, 0, compiled.OutcomeServerError)
	g.Report(eps, 0, compiled.OutcomeSuccess)
	g.Report(eps, 0, compiled.OutcomeServerError)
	g.Report(eps, 0, compiled.OutcomeServerError)
	time.Sleep(20 * time.Millisecond)
	if len(unhealthyAddrs(g)) != 0 {
		t.Fatal("ejected without consecutive errors")
	}
	start := time.Now()
	g.Report(eps, 0, compiled.OutcomeServerError)
	enginetest.WaitFor(t, "ejection", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 1 })
	// Connect failures of two more endpoints: only one more may go (50% of 4).
	for _, i := range []int{1, 2} {
		g.Report(eps, i, compiled.OutcomeConnectFailure)
		g.Report(eps, i, compiled.OutcomeConnectFailure)
	}
	enginetest.WaitFor(t, "second ejection", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 2 })
	time.Sleep(20 * time.Millisecond)
	if u := unhealthyAddrs(g); len(u) != 2 || u[0] != addrs[0] {
		t.Fatalf("unhealthy %v: want endpoint 0 and one more, capped at 50%%", u)
	}
	if n := g.Shared.Ejections(); n != 2 {
		t.Fatalf("ejections %d, want 2", n)
	}
	// They return after base ejection time.
	enginetest.WaitFor(t, "return", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 0 })
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("returned after %v, before the base ejection time", took)
	}
	// Ejected again at once: twice as long.
	for range 3 {
		g.Report(eps, 0, compiled.OutcomeServerError)
	}
	enginetest.WaitFor(t, "second ejection of endpoint 0", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 1 })
	start = time.Now()
	enginetest.WaitFor(t, "second return", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 0 })
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("second ejection lasted %v, want about 200ms", took)
	}
	// Reports for another endpoint set are ignored.
	other := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("app", addrs, od)).Group("app").Endpoints()
	for range 5 {
		g.Report(other, 3, compiled.OutcomeServerError)
	}
	time.Sleep(20 * time.Millisecond)
	if len(unhealthyAddrs(g)) != 0 {
		t.Fatal("a report for a stale endpoint set ejected an endpoint")
	}
}

func TestReportDoesNotAllocate(t *testing.T) {
	reg := metrics.NewRegistry(1)
	m := NewManager(Options{})
	defer m.Close()
	addrs := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")}
	cfg := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("app", addrs, "  outlierDetection: {consecutiveServerErrors: 1000000}\n"))
	g := cfg.Group("app")
	m.Apply(cfg)
	eps := g.Endpoints()
	if a := testing.AllocsPerRun(1000, func() {
		g.Report(eps, 1, compiled.OutcomeServerError)
		g.Report(eps, 0, compiled.OutcomeSuccess)
		_ = g.Unhealthy(eps)
	}); a != 0 {
		t.Fatalf("Report allocates %v", a)
	}
}

// TestProbeTLS: a group with backend TLS probes over TLS with its client
// configuration: a backend whose certificate the configuration trusts is
// healthy, one it does not trust fails the probe at the handshake.
func TestProbeTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	hc := &compiled.HealthCheck{
		Path: "/healthz", Expected: []compiled.StatusRange{{Min: 200, Max: 299}}, Timeout: 2 * time.Second,
		TLS: &tls.Config{ServerName: "example.com", RootCAs: roots},
	}
	if err := Probe(context.Background(), addr, hc); err != nil {
		t.Fatalf("trusted backend: %v", err)
	}
	hc.TLS = &tls.Config{ServerName: "example.com", RootCAs: x509.NewCertPool()}
	if err := Probe(context.Background(), addr, hc); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Fatalf("untrusted backend: %v, want a handshake failure", err)
	}
	hc.TLS = nil
	if err := Probe(context.Background(), addr, hc); err == nil {
		t.Fatal("a plain probe of a TLS backend succeeded")
	}
}

func TestProbeH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos []string
	var mu sync.Mutex
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true) // prior knowledge only: an HTTP/1.1 probe fails
	srv := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto+" "+r.Host+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/healthz" {
			w.WriteHeader(503)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := netip.MustParseAddrPort(ln.Addr().String())
	hc := &compiled.HealthCheck{
		Path: "/healthz", Host: "svc.example", Timeout: 2 * time.Second,
		Expected: []compiled.StatusRange{{Min: 200, Max: 299}}, H2C: true,
	}
	if err := Probe(context.Background(), addr, hc); err != nil {
		t.Fatalf("h2c probe of a healthy backend: %v", err)
	}
	hc.Path = "/down"
	if err := Probe(context.Background(), addr, hc); !errors.Is(err, ErrUnexpectedStatus) {
		t.Fatalf("h2c probe of a 503: %v", err)
	}
	hc.H2C = false
	if err := Probe(context.Background(), addr, hc); err == nil {
		t.Fatal("an HTTP/1.1 probe of an h2c-only backend succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(protos) != 2 || protos[0] != "HTTP/2.0 svc.example /healthz" {
		t.Fatalf("backend saw %q", protos)
	}
}

// startGRPCHealth serves grpc-go's health service on loopback (h2c, as gRPC
// servers speak without TLS) and returns it with its address.
func startGRPCHealth(t *testing.T) (*grpchealth.Server, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return hs, netip.MustParseAddrPort(ln.Addr().String())
}

// TestProbeGRPC: a gRPC health check calls grpc.health.v1.Health/Check on a
// real grpc-go health server: SERVING passes, NOT_SERVING, an unknown service
// (NOT_FOUND) and a server without the health service (UNIMPLEMENTED) fail.
func TestProbeGRPC(t *testing.T) {
	hs, addr := startGRPCHealth(t)
	hs.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	hc := &compiled.HealthCheck{Timeout: 2 * time.Second, H2C: true, GRPC: true, GRPCService: "echo.Echo"}
	if err := Probe(context.Background(), addr, hc); err != nil {
		t.Fatalf("SERVING: %v", err)
	}
	hc.GRPCService = "" // the server as a whole: grpc-go's health server starts SERVING
	if err := Probe(context.Background(), addr, hc); err != nil {
		t.Fatalf("server SERVING: %v", err)
	}
	hs.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	hc.GRPCService = "echo.Echo"
	if err := Probe(context.Background(), addr, hc); !errors.Is(err, ErrNotServing) || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("NOT_SERVING: %v", err)
	}
	hc.GRPCService = "nope.Nope"
	var se *h2c.StatusError
	if err := Probe(context.Background(), addr, hc); !errors.As(err, &se) || se.Code != 5 {
		t.Fatalf("unknown service: %v, want grpc-status 5 (NOT_FOUND)", err)
	}

	// A gRPC server without the health service answers UNIMPLEMENTED.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bare := grpc.NewServer()
	go func() { _ = bare.Serve(ln) }()
	defer bare.Stop()
	if err := Probe(context.Background(), netip.MustParseAddrPort(ln.Addr().String()), hc); !errors.As(err, &se) || se.Code != 12 {
		t.Fatalf("no health service: %v, want grpc-status 12 (UNIMPLEMENTED)", err)
	}
}

// TestHealthCheckMessages: the hand-encoded grpc.health.v1 messages match
// the generated ones both ways, unknown fields included.
func TestHealthCheckMessages(t *testing.T) {
	for _, svc := range []string{"", "echo.Echo", strings.Repeat("s", 300)} {
		var want healthpb.HealthCheckRequest
		if err := proto.Unmarshal(appendHealthCheckRequest(nil, svc), &want); err != nil || want.GetService() != svc {
			t.Fatalf("request for %q decodes as %q, %v", svc, want.GetService(), err)
		}
	}
	for _, st := range []healthpb.HealthCheckResponse_ServingStatus{0, 1, 2, 3} {
		b, err := proto.Marshal(&healthpb.HealthCheckResponse{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendTag(b, 7, protowire.BytesType) // a field this end does not know
		b = protowire.AppendString(b, "later")
		got, err := parseHealthCheckResponse(b)
		if err != nil || got != uint64(st) {
			t.Fatalf("status %v decodes as %d, %v", st, got, err)
		}
	}
	if _, err := parseHealthCheckResponse([]byte{0x08}); err == nil {
		t.Fatal("a truncated status decoded")
	}
}

// TestManagerGRPCHealthCheck: an H2C group with a gRPC health check takes an
// endpoint out of rotation while its grpc-go health server says NOT_SERVING
// and puts it back once it says SERVING again; the other endpoint stays.
func TestManagerGRPCHealthCheck(t *testing.T) {
	hsA, a := startGRPCHealth(t)
	hsB, b := startGRPCHealth(t)
	hsA.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	hsB.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	reg := metrics.NewRegistry(1)
	m := NewManager(Options{})
	defer m.Close()
	check := "  protocol: H2C\n  healthCheck: {grpc: {service: echo.Echo}, interval: 0.05s, timeout: 0.05s, healthyThreshold: 2, unhealthyThreshold: 2}\n"
	cfg := enginetest.CompileYAML(t, reg, "backendGroups:\n"+groupYAML("grpc", []netip.AddrPort{a, b}, check))
	g := cfg.Group("grpc")
	if !g.HealthCheck.GRPC || g.HealthCheck.GRPCService != "echo.Echo" {
		t.Fatalf("compiled health check %+v", g.HealthCheck)
	}
	m.Apply(cfg)
	time.Sleep(100 * time.Millisecond)
	if u := unhealthyAddrs(g); len(u) != 0 {
		t.Fatalf("unhealthy %v while both serve", u)
	}
	hsB.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	enginetest.WaitFor(t, "the NOT_SERVING endpoint out of rotation", 5*time.Second, func() bool {
		u := unhealthyAddrs(g)
		return len(u) == 1 && u[0] == b
	})
	hsB.SetServingStatus("echo.Echo", healthpb.HealthCheckResponse_SERVING)
	enginetest.WaitFor(t, "the endpoint back in rotation", 5*time.Second, func() bool { return len(unhealthyAddrs(g)) == 0 })
	if up, down := g.Shared.Transitions(); up != 1 || down != 1 {
		t.Fatalf("transitions %d up %d down, want 1 and 1", up, down)
	}
}
