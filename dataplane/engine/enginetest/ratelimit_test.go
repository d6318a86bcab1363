package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// Rate limits of these tests let one request per minute back in, so that no
// token comes back while a test runs: the counts are exact.
const limitedRoutes = `    - name: limited
      matches: [{path: {type: PATH_PREFIX, value: /limited}}]
      rateLimit: {bucket: limited, requests: 1, interval: 60s, burst: 5}
      backends: [{backendGroup: app, weight: 1}]
    - name: shared-a
      matches: [{path: {type: PATH_PREFIX, value: /a}}]
      rateLimit: {bucket: shared, requests: 1, interval: 60s, burst: 3}
      backends: [{backendGroup: app, weight: 1}]
    - name: shared-b
      matches: [{path: {type: PATH_PREFIX, value: /b}}]
      rateLimit: {bucket: shared, requests: 1, interval: 60s, burst: 3}
      backends: [{backendGroup: app, weight: 1}]
    - name: per-client
      matches: [{path: {type: PATH_PREFIX, value: /client}}]
      rateLimit: {bucket: per-client, requests: 1, interval: 60s, burst: BURST, perClientIp: true}
      backends: [{backendGroup: app, weight: 1}]
`

// getAll sends each path in turn on one keep-alive connection from the local
// address from, and returns the statuses. Every 429 must say when to come back.
func getAll(t *testing.T, port int, from string, paths ...string) []int {
	t.Helper()
	c := DialFrom(t, port, from)
	br := bufio.NewReader(c)
	var codes []int
	for _, p := range paths {
		io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := ReadResponse(t, br, "GET")
		if resp.StatusCode == 429 && (resp.Header.Get("Retry-After") != "60" || !strings.HasPrefix(body, "rate limited")) {
			t.Errorf("429 with Retry-After %q and body %q", resp.Header.Get("Retry-After"), body)
		}
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

func count(codes []int, code int) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

// backendSaw counts the requests the backend got whose path starts with prefix.
func backendSaw(b *scriptedBackend, prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.bodies {
		if strings.HasPrefix(r, "GET "+prefix) {
			n++
		}
	}
	return n
}

// A route limited to a burst of N gets exactly N 200s, whatever worker its
// connections land on; the rest are 429s that never reach the backend, and
// the counters say so. Routes naming one bucket share it; per-client limits
// keep one bucket per client address; a config push with the same limits
// keeps the buckets' state.
func TestRateLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := startRaw(t, modeOK)
		port := FreePort(t)
		y := resilientSnapshot(port, "", strings.Replace(limitedRoutes, "BURST", "3", 1), "", be)
		te, cfg := startResilient(t, k, y)
		reg := te.reg

		// Twelve requests on four connections at once.
		var mu sync.Mutex
		var codes []int
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := getAll(t, port, "", fmt.Sprintf("/limited/%d/1", i), fmt.Sprintf("/limited/%d/2", i), fmt.Sprintf("/limited/%d/3", i))
				mu.Lock()
				codes = append(codes, got...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if count(codes, 200) != 5 || count(codes, 429) != 7 {
			t.Fatalf("statuses %v: want 5×200 and 7×429", codes)
		}
		if n := backendSaw(be, "/limited"); n != 5 {
			t.Fatalf("backend saw %d limited requests, want 5", n)
		}
		if n := reg.RateLimited(reg.RouteID("limited")); n != 7 {
			t.Fatalf("rate limited requests of the route = %d, want 7", n)
		}
		if n := reg.LocalReplies(metrics.ReasonRateLimited); n != 7 {
			t.Fatalf("rate_limited local replies = %d, want 7", n)
		}
		// A 429 leaves the connection usable, and other routes are not limited.
		if got := getAll(t, port, "", "/limited", "/other", "/other", "/other", "/other", "/other", "/other"); count(got, 200) != 6 || got[0] != 429 {
			t.Fatalf("after the limit: %v", got)
		}

		// Two routes, one bucket of 3.
		if got := getAll(t, port, "", "/a", "/b", "/a", "/b", "/a"); fmt.Sprint(got) != "[200 200 200 429 429]" {
			t.Fatalf("shared bucket: %v", got)
		}

		// Per client: 127.0.0.1 and 127.0.0.2 have 3 each, on any connection.
		for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
			got := append(getAll(t, port, from, "/client", "/client"), getAll(t, port, from, "/client", "/client", "/client")...)
			if fmt.Sprint(got) != "[200 200 200 429 429]" {
				t.Fatalf("client %s: %v", from, got)
			}
		}
		if n := reg.RateLimited(reg.RouteID("per-client")); n != 4 {
			t.Fatalf("per-client rate limited = %d, want 4", n)
		}

		// A new config with the same limits keeps the buckets: still empty.
		// One whose per-client burst changed starts that bucket full.
		cfg2 := CompileYAML(t, reg, y)
		cfg2.KeepState(cfg)
		te.apply(cfg2)
		if got := getAll(t, port, "", "/limited", "/a", "/client"); fmt.Sprint(got) != "[429 429 429]" {
			t.Fatalf("after a config push with the same limits: %v", got)
		}
		cfg3 := CompileYAML(t, reg, resilientSnapshot(port, "", strings.Replace(limitedRoutes, "BURST", "2", 1), "", be))
		cfg3.KeepState(cfg2)
		te.apply(cfg3)
		if got := getAll(t, port, "127.0.0.2", "/client", "/client", "/client", "/limited"); fmt.Sprint(got) != "[200 200 429 429]" {
			t.Fatalf("after a config push changing the per-client limit: %v", got)
		}
	})
}
