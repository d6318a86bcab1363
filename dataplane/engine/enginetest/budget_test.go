package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// budgetBackend answers every request 503. It tells retries from first attempts
// by the X-Req header each client request carries, and measures how many retry
// attempts it holds at once. First attempts wait until first of them have
// arrived, so that the clients' requests are all in flight together; retry
// attempts are answered after retryDelay, so that retries overlap.
type budgetBackend struct {
	lns        []net.Listener
	first      int
	retryDelay time.Duration

	mu       sync.Mutex
	attempts map[string]int
	arrived  int
	release  chan struct{}

	retrying, peak atomic.Int64
}

func startBudgetBackend(t *testing.T, first int, retryDelay time.Duration) *budgetBackend {
	t.Helper()
	b := &budgetBackend{first: first, retryDelay: retryDelay, attempts: map[string]int{}, release: make(chan struct{})}
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b.lns = append(b.lns, ln)
		go b.serve(ln)
	}
	t.Cleanup(func() {
		for _, ln := range b.lns {
			ln.Close()
		}
	})
	return b
}

// endpoints returns the backend's two listeners as snapshot endpoints.
func (b *budgetBackend) endpoints() string {
	var s strings.Builder
	for _, ln := range b.lns {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		s.WriteString("  - {address: " + host + ", port: " + port + "}\n")
	}
	return s.String()
}

func (b *budgetBackend) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go b.handle(c)
	}
}

func (b *budgetBackend) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		id := req.Header.Get("X-Req")
		b.mu.Lock()
		b.attempts[id]++
		n := b.attempts[id]
		if n == 1 {
			b.arrived++
			if b.arrived == b.first {
				close(b.release)
			}
		}
		b.mu.Unlock()
		if n == 1 {
			select {
			case <-b.release:
			case <-time.After(3 * time.Second):
			}
		} else {
			r := b.retrying.Add(1)
			for p := b.peak.Load(); r > p && !b.peak.CompareAndSwap(p, r); p = b.peak.Load() {
			}
			time.Sleep(b.retryDelay)
			b.retrying.Add(-1)
		}
		if _, err := io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n"); err != nil {
			return
		}
	}
}

// A group whose every endpoint fails: under concurrent load, the retries in
// flight never exceed the budget, the requests over it are answered with the
// failed attempt's 503 at once, and the denials are counted.
func TestRetryBudgetBoundsRetries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		for _, tc := range []struct {
			name   string
			budget string
			max    int64 // retries allowed in flight with 10 requests in flight
		}{
			{"default", "", 3}, // max(3, 20% of 10)
			{"floor", "  retryBudget: {minRetryConcurrency: 1}\n", 1},
			{"percent", "  retryBudget: {percent: 30}\n", 3},
		} {
			t.Run(tc.name, func(t *testing.T) { testRetryBudget(t, k, tc.budget, tc.max) })
		}
	})
}

func testRetryBudget(t *testing.T, k kind, budget string, maxRetrying int64) {
	const clients = 10
	be := startBudgetBackend(t, clients, 30*time.Millisecond)
	port := FreePort(t)
	y := `
listeners:
- name: web
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: retried
      retry: {attempts: 3, retryOnStatusCodes: [503], backoffBase: 1ms, backoffMax: 2ms}
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
` + budget + `  endpoints:
` + be.endpoints()
	_, cfg := startResilient(t, k, y)
	sh := cfg.Group("app").Shared

	var wg sync.WaitGroup
	codes := make([]int, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Dial(t, port)
			io.WriteString(c, fmt.Sprintf("GET /r HTTP/1.1\r\nHost: x\r\nX-Req: %d\r\n\r\n", i))
			resp, body := ReadResponse(t, bufio.NewReader(c), "GET")
			if body != "busy\n" {
				t.Errorf("request %d: %d %q, want the backend's 503", i, resp.StatusCode, body)
			}
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()

	retried, denied := 0, 0
	be.mu.Lock()
	for id, n := range be.attempts {
		switch n {
		case 1:
			denied++
		case 4:
			retried++
		default:
			t.Errorf("request %s made %d attempts: want 1 (retry denied) or 4 (all retries)", id, n)
		}
	}
	be.mu.Unlock()
	t.Logf("%d requests retried, %d denied, at most %d retries at once (budget %d)", retried, denied, be.peak.Load(), maxRetrying)
	for i, c := range codes {
		if c != 503 {
			t.Fatalf("request %d: status %d, want 503", i, c)
		}
	}
	if p := be.peak.Load(); p > maxRetrying {
		t.Fatalf("%d retries in flight at once, the budget allows %d", p, maxRetrying)
	}
	if denied == 0 || retried == 0 {
		t.Fatalf("%d retried, %d denied: with %d requests at once both must happen", retried, denied, clients)
	}
	if n := sh.RetriesDenied(); n != uint64(denied) {
		t.Fatalf("denied counter %d, requests denied %d", n, denied)
	}
	if n := sh.Retries(); n != uint64(3*retried) {
		t.Fatalf("retries counter %d, want %d", n, 3*retried)
	}
	WaitFor(t, "retries and requests no longer in flight", 5*time.Second, func() bool {
		return sh.Active(metrics.LimitRetries) == 0 && sh.RequestsInFlight() == 0
	})
}

// With a healthy endpoint left, replayable requests all succeed under the
// default budget: as many clients as its floor, each retrying its failures on
// the other endpoint.
func TestRetryBudgetHealthyEndpointLeft(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		good := startRaw(t, modeOK)
		bad := startRaw(t, mode5xx)
		port := FreePort(t)
		_, cfg := startResilient(t, k, withRetry(resilientSnapshot(port, "", "", "", good, bad)))
		sh := cfg.Group("app").Shared
		var mu sync.Mutex
		var failures []string
		okN := 0
		var wg sync.WaitGroup
		stop := time.Now().Add(400 * time.Millisecond)
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := Dial(t, port)
				br := bufio.NewReader(c)
				for n := 0; time.Now().Before(stop); n++ {
					body := fmt.Sprintf("client %d request %d", i, n)
					fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					resp, got := ReadResponse(t, br, "POST")
					mu.Lock()
					if resp.StatusCode != 200 || got != "ok" {
						failures = append(failures, fmt.Sprintf("%d %q", resp.StatusCode, got))
					} else {
						okN++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("%d of %d requests failed, first: %s", len(failures), okN+len(failures), failures[0])
		}
		if sh.Retries() == 0 || sh.RetriesDenied() != 0 {
			t.Fatalf("%d requests: %d retries, %d denied; want retries and no denial", okN, sh.Retries(), sh.RetriesDenied())
		}
		// Each retried body reached the healthy endpoint whole.
		good.mu.Lock()
		defer good.mu.Unlock()
		for _, b := range good.bodies {
			if !strings.HasPrefix(b, "POST /x client ") {
				t.Fatalf("healthy endpoint got %q", b)
			}
		}
		t.Logf("%d requests, %d retries; the failing endpoint saw %d", okN, sh.Retries(), bad.reqs.Load())
	})
}
