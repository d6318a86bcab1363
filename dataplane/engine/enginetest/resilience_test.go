package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/health"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// startResilient runs an engine of kind k whose config passes through a health
// Manager and gets a mirror sender, as the daemon does.
func startResilient(t *testing.T, k kind, y string) (*testEngine, *compiled.Config) {
	t.Helper()
	te := startEngine(t, k)
	hm := health.NewManager(health.Options{})
	ms := netpoll.NewMirrorSender(netpoll.MirrorOptions{Timeout: time.Second})
	t.Cleanup(func() { hm.Close(); ms.Close() })
	cfg := CompileYAML(t, te.reg, y)
	cfg.SetMirrorSender(ms)
	hm.Apply(cfg)
	te.apply(cfg)
	return te, cfg
}

func resilientSnapshot(port int, group string, extraRoute, extraGroups string, backends ...*scriptedBackend) string {
	eps := make([]string, len(backends))
	for i, b := range backends {
		eps[i] = b.addr()
	}
	return HTTPSnapshot(port, eps, group, extraRoute, extraGroups)
}

// load runs clients GETting through the proxy for d and returns the statuses
// that were not 200 (or the errors).
func load(t *testing.T, port, clients int, d time.Duration) (ok int, failures []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for time.Now().Before(stop) {
				resp, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/x")
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(body) != "ok" {
						failures = append(failures, fmt.Sprintf("%d %q", resp.StatusCode, body))
					} else {
						ok++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, failures
}

const retryAll = `      retry: {attempts: 2, retryOnConnectFailure: true, retryOnReset: true, retryOnStatusCodes: [503], backoffBase: 1ms, backoffMax: 2ms}
`

func withRetry(y string) string {
	return strings.Replace(y, "      backends: [{backendGroup: app, weight: 1}]\n", "      backends: [{backendGroup: app, weight: 1}]\n"+retryAll, 1)
}

// Under load, one endpoint failing in each scripted way costs the clients
// nothing while the other stays healthy; the failing one is ejected or
// marked unhealthy, takes (almost) no traffic afterwards, and comes back
// once it recovers.
func TestResilienceFailingEndpoint(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		for _, tc := range []struct {
			name string
			mode int32 // -1: refuse connections
		}{
			{"refuse", -1},
			{"reset", modeReset},
			{"5xx", mode5xx},
		} {
			t.Run(tc.name, func(t *testing.T) { testFailingEndpoint(t, k, tc.mode) })
		}
	})
}

func testFailingEndpoint(t *testing.T, k kind, mode int32) {
	good := startRaw(t, modeOK)
	bad := startRaw(t, modeOK)
	badAddr := bad.addr()
	if mode < 0 {
		bad.close()
	} else {
		bad.mode.Store(mode)
	}
	port := FreePort(t)
	// The four clients may all be retrying at once: a budget of 100% lets
	// them, so that the retry budget is not what this test measures.
	group := `  healthCheck: {path: /healthz, interval: 0.05s, timeout: 0.05s, healthyThreshold: 1, unhealthyThreshold: 2}
  outlierDetection: {consecutiveServerErrors: 3, consecutiveConnectFailures: 2, baseEjectionTime: 0.3s, maxEjectionPercent: 50}
  retryBudget: {percent: 100}
`
	_, cfg := startResilient(t, k, withRetry(resilientSnapshot(port, group, "", "", good, bad)))
	g := cfg.Group("app")
	okN, failures := load(t, port, 4, 500*time.Millisecond)
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(failures), okN+len(failures), failures[0])
	}
	if okN < 50 {
		t.Fatalf("only %d requests in 500ms", okN)
	}
	_, down := g.Shared.Transitions()
	ej := g.Shared.Ejections()
	if down == 0 && ej == 0 {
		t.Fatalf("failing endpoint neither marked unhealthy nor ejected")
	}
	t.Logf("%d requests, bad endpoint saw %d; unhealthy transitions %d, ejections %d", okN, bad.reqs.Load(), down, ej)
	if bad.reqs.Load() > int64(okN)/5 {
		t.Errorf("failing endpoint got %d of %d requests", bad.reqs.Load(), okN)
	}

	// Recovery: the endpoint comes back and takes traffic again.
	if mode < 0 {
		ln, err := net.Listen("tcp", badAddr)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", badAddr, err)
		}
		bad = &scriptedBackend{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
		go bad.serve()
		t.Cleanup(bad.close)
	} else {
		bad.mode.Store(modeOK)
	}
	deadline := time.Now().Add(5 * time.Second)
	for bad.reqs.Load() == 0 || !healthyAll(g) {
		if time.Now().After(deadline) {
			t.Fatalf("recovered endpoint not used again (health %v)", g.Unhealthy(g.Endpoints()))
		}
		if _, f := load(t, port, 1, 50*time.Millisecond); len(f) > 0 {
			t.Fatalf("failure while recovering: %s", f[0])
		}
	}
}

func healthyAll(g *compiled.Group) bool {
	bad := g.Unhealthy(g.Endpoints())
	for _, w := range bad {
		if w != 0 {
			return false
		}
	}
	return true
}

// A backend that hangs fails its health checks and is marked unhealthy;
// then the requests no longer reach it.
func TestResilienceHangingEndpoint(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		good := startRaw(t, modeSlow)
		hang := startRaw(t, modeHang)
		port := FreePort(t)
		group := "  healthCheck: {path: /healthz, interval: 0.03s, timeout: 0.03s, jitter: 0.01s, healthyThreshold: 1, unhealthyThreshold: 2}\n"
		_, cfg := startResilient(t, k, resilientSnapshot(port, group, "", "", good, hang))
		g := cfg.Group("app")
		deadline := time.Now().Add(5 * time.Second)
		for healthyAll(g) {
			if time.Now().After(deadline) {
				t.Fatal("hanging endpoint never marked unhealthy")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, down := g.Shared.Transitions(); down != 1 {
			t.Fatalf("unhealthy transitions %d, want 1", down)
		}
		okN, failures := load(t, port, 2, 400*time.Millisecond)
		if len(failures) > 0 || okN == 0 {
			t.Fatalf("%d ok, failures %v", okN, failures)
		}
		if hang.reqs.Load() != 0 {
			t.Fatalf("hanging endpoint got %d requests after it was marked unhealthy", hang.reqs.Load())
		}
	})
}

// Circuit breakers hold their limits and count what they turn away.
func TestCircuitBreakers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		slow := startRaw(t, modeSlow)
		port := FreePort(t)
		group := "  circuitBreakers: {maxConnections: 2, maxPendingRequests: 1, maxRequests: 10}\n"
		te, cfg := startResilient(t, k, resilientSnapshot(port, group, "", "", slow))
		g := cfg.Group("app")

		// Five at once: two connect, one waits for a connection, two overflow
		// the pending limit.
		codes := fire(t, port, 5)
		if codes[200] != 3 || codes[503] != 2 {
			t.Fatalf("statuses %v, want 3×200 and 2×503", codes)
		}
		if p := slow.peak.Load(); p > 2 {
			t.Fatalf("backend saw %d requests at once, limit 2", p)
		}
		if n := g.Shared.Overflows(metrics.LimitPending); n != 2 {
			t.Fatalf("pending overflows %d, want 2", n)
		}
		if n := g.Shared.Overflows(metrics.LimitConnections); n != 3 {
			t.Fatalf("connection limit reached %d times, want 3", n)
		}
		for _, l := range []metrics.Limit{metrics.LimitConnections, metrics.LimitPending, metrics.LimitRequests, metrics.LimitRetries} {
			WaitFor(t, l.String()+" slots released", 5*time.Second, func() bool { return g.Shared.Active(l) == 0 })
		}
		if n := te.reg.LocalReplies(metrics.ReasonOverflow); n != 2 {
			t.Fatalf("overflow local replies %d, want 2", n)
		}

		// Max requests: with a larger pending limit, six at once: four admitted
		// (two wait), two turned away at once.
		te.apply(CompileYAML(t, te.reg, resilientSnapshot(port, "  circuitBreakers: {maxConnections: 2, maxPendingRequests: 10, maxRequests: 4}\n", "", "", slow)))
		codes = fire(t, port, 6)
		if codes[200] != 4 || codes[503] != 2 {
			t.Fatalf("statuses %v, want 4×200 and 2×503", codes)
		}
		if n := g.Shared.Overflows(metrics.LimitRequests); n != 2 {
			t.Fatalf("request overflows %d, want 2", n)
		}
	})
}

// Retries beyond the retry limit are not made: the failure is answered.
func TestCircuitBreakerRetries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		slow := startRaw(t, mode5xx)
		port := FreePort(t)
		_, cfg := startResilient(t, k, withRetry(resilientSnapshot(port, "  circuitBreakers: {maxRetries: 1}\n", "", "", slow)))
		codes := fire(t, port, 4)
		if codes[503] != 4 {
			t.Fatalf("statuses %v", codes)
		}
		g := cfg.Group("app")
		WaitFor(t, "retry slots released", 5*time.Second, func() bool { return g.Shared.Active(metrics.LimitRetries) == 0 })
		// Sequential requests each get their retries.
		before := slow.reqs.Load()
		fire(t, port, 1)
		if d := slow.reqs.Load() - before; d != 3 {
			t.Fatalf("one request made %d attempts, want 3", d)
		}
		t.Logf("retry overflows under 4 concurrent: %d", g.Shared.Overflows(metrics.LimitRetries))
	})
}

// fire sends n concurrent GETs on their own connections and counts statuses.
func fire(t *testing.T, port, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == 503 && resp.Header.Get("Content-Type") != "" && !strings.Contains(string(body), "bad") && !strings.Contains(string(body), "circuit breaker") {
				t.Errorf("503 without a reason: %q", body)
			}
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// Mirrors arrive with the body when it came with the head, and a dead
// mirror costs the primary nothing.
func TestMirrors(t *testing.T) {
	forEachEngine(t, testMirrors)
}

func testMirrors(t *testing.T, k kind) {
	primary := startRaw(t, modeOK)
	shadow := startRaw(t, modeOK)
	shadow2 := startRaw(t, modeOK)
	dead := startRaw(t, modeOK)
	dead.close()
	port := FreePort(t)
	deadHost, deadPort, _ := net.SplitHostPort(dead.addr())
	shadowHost, shadowPort, _ := net.SplitHostPort(shadow.addr())
	shadow2Host, shadow2Port, _ := net.SplitHostPort(shadow2.addr())
	route := `    - name: mirrored
      matches: [{path: {type: PATH_PREFIX, value: /m}}]
      backends: [{backendGroup: app, weight: 1}]
      filters:
      - requestMirror: {backendGroup: shadow}
      - requestMirror: {backendGroup: dead}
    - name: half
      matches: [{path: {type: PATH_PREFIX, value: /half}}]
      backends: [{backendGroup: app, weight: 1}]
      filters:
      - requestMirror: {backendGroup: shadow2, fraction: {numerator: 1, denominator: 2}}
`
	groups := `- name: shadow
  endpoints:
  - {address: ` + shadowHost + `, port: ` + shadowPort + `}
- name: shadow2
  endpoints:
  - {address: ` + shadow2Host + `, port: ` + shadow2Port + `}
- name: dead
  endpoints:
  - {address: ` + deadHost + `, port: ` + deadPort + `}
`
	_, cfg := startResilient(t, k, resilientSnapshot(port, "", route, groups, primary))
	c := Dial(t, port)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /m/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp, body := ReadResponse(t, br, "POST"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("primary: %d %q", resp.StatusCode, body)
	}
	// A body that arrives after the head is not mirrored: the copy is
	// bodiless.
	io.WriteString(c, "POST /m/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
	time.Sleep(30 * time.Millisecond)
	io.WriteString(c, "world")
	if resp, body := ReadResponse(t, br, "POST"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("primary: %d %q", resp.StatusCode, body)
	}
	WaitFor(t, "two mirrored requests", 5*time.Second, func() bool { return shadow.reqs.Load() == 2 })
	// The mirror sender runs several goroutines: copies may arrive in any order.
	shadow.mu.Lock()
	bodies := slices.Clone(shadow.bodies)
	shadow.mu.Unlock()
	slices.Sort(bodies)
	got := strings.Join(bodies, "|")
	if got != "POST /m/1 hello|POST /m/2 " {
		t.Fatalf("shadow saw %q", got)
	}
	primary.mu.Lock()
	pgot := strings.Join(primary.bodies, "|")
	primary.mu.Unlock()
	if pgot != "POST /m/1 hello|POST /m/2 world" {
		t.Fatalf("primary saw %q", pgot)
	}
	sh, dg := cfg.Group("shadow").Shared, cfg.Group("dead").Shared
	WaitFor(t, "mirror outcomes counted", 5*time.Second, func() bool {
		return sh.Mirrors(metrics.MirrorSent) == 2 && dg.Mirrors(metrics.MirrorFailed) == 2
	})

	// Under load, the dead mirror does not fail or slow the primary.
	okN, failures := loadPath(t, port, 2, 300*time.Millisecond, "/m/load")
	if len(failures) > 0 {
		t.Fatalf("primary failures with a dead mirror: %v", failures[0])
	}
	t.Logf("%d requests with a dead mirror; dead mirror failed %d, dropped %d", okN, dg.Mirrors(metrics.MirrorFailed), dg.Mirrors(metrics.MirrorDropped))

	// A fraction mirrors about that share.
	sh2 := cfg.Group("shadow2").Shared
	for range 200 {
		io.WriteString(c, "GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
		ReadResponse(t, br, "GET")
	}
	WaitFor(t, "half mirrors", 5*time.Second, func() bool {
		return shadow2.reqs.Load() > 60 && sh2.Mirrors(metrics.MirrorSent) == uint64(shadow2.reqs.Load())
	})
	time.Sleep(20 * time.Millisecond)
	if n := shadow2.reqs.Load(); n < 60 || n > 140 {
		t.Fatalf("fraction 1/2 mirrored %d of 200", n)
	}
}

func loadPath(t *testing.T, port, clients int, d time.Duration, path string) (int, []string) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	okN := 0
	var failures []string
	stop := time.Now().Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 2 * time.Second}
			for time.Now().Before(stop) {
				start := time.Now()
				resp, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case resp.StatusCode != 200:
					failures = append(failures, resp.Status)
				case time.Since(start) > 500*time.Millisecond:
					failures = append(failures, "slow: "+time.Since(start).String())
				default:
					okN++
				}
				mu.Unlock()
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	return okN, failures
}
