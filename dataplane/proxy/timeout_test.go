package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// timeoutSnapshot sets every timeout to its own value, so that a test sees
// which one fired.
const timeoutSnapshot = `
listeners:
- name: web
  port: 8080
  protocol: HTTP
  timeouts: {requestHead: 1s, requestBodyIdle: 2s, sendStall: 3s, keepAliveIdle: 4s}
  virtualHosts:
  - name: all
    routes:
    - name: app
      backends: [{backendGroup: one, weight: 1}]
      retry: {}
- name: tcp
  port: 9000
  protocol: TCP
  timeouts: {sendStall: 3s, tunnelIdle: 7s}
  tcpRoute: {name: tcp, backends: [{backendGroup: one, weight: 1}]}
- name: slow-clients
  port: 8081
  protocol: HTTP
  timeouts: {requestBodyIdle: 8s}
  virtualHosts:
  - name: all
    routes:
    - name: slow
      backends: [{backendGroup: one, weight: 1}]
      retry: {}
backendGroups:
- name: one
  responseHeaderTimeout: 5s
  responseBodyIdleTimeout: 6s
  endpoints: [{address: 10.0.0.1, port: 80}]
`

func newTimeoutHarness(t *testing.T, listener int) *harness {
	t.Helper()
	cfg, reg := compileTest(t, timeoutSnapshot)
	h := openHarness(t, cfg, reg, Options{}, listener, "192.0.2.7:40000")
	h.autoConnect = true
	return h
}

func (h *harness) timeouts(k metrics.TimeoutKind) float64 {
	return gatherCounter(h.t, h.reg, "flax_timeouts_total", "kind", k.String())
}

// expectOpen fails when the client connection was closed.
func (h *harness) expectOpen(when string) {
	h.t.Helper()
	if h.clientClosed {
		h.t.Fatalf("client closed %s", when)
	}
}

func TestRequestHeadTimeoutOfListener(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("GET / HTTP/1.1\r\nHost: a")
	h.advance(999 * time.Millisecond)
	h.expectOpen("before the listener's 1s request head timeout")
	h.advance(time.Millisecond)
	h.expectClient("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\nConnection: close\r\n\r\nrequest header timeout\n")
	if !h.clientClosed || h.timeouts(metrics.TimeoutRequestHead) != 1 {
		t.Fatalf("closed %v, request_head timeouts %v", h.clientClosed, h.timeouts(metrics.TimeoutRequestHead))
	}
}

func TestKeepAliveIdleTimeoutOfListener(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	h.takeClient()
	h.advance(3999 * time.Millisecond)
	h.expectOpen("before the listener's 4s keep-alive idle timeout")
	h.advance(time.Millisecond)
	if !h.clientClosed || h.toClient.Len() != 0 {
		t.Fatalf("idle connection: closed %v, sent %q", h.clientClosed, h.toClient.String())
	}
	if h.timeouts(metrics.TimeoutKeepAliveIdle) != 1 || h.timeouts(metrics.TimeoutRequestHead) != 0 {
		t.Fatalf("keepalive_idle %v, request_head %v", h.timeouts(metrics.TimeoutKeepAliveIdle), h.timeouts(metrics.TimeoutRequestHead))
	}
}

func TestRequestBodyIdleTimeout(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
	// A byte every 1.9s keeps the request alive past the 2s timeout.
	for range 4 {
		h.advance(1900 * time.Millisecond)
		h.expectOpen("while the body moves")
		h.client("c")
	}
	if h.toClient.Len() != 0 || h.closedUp != 0 {
		t.Fatalf("moving body cut: client got %q, upstream closed %d", h.toClient.String(), h.closedUp)
	}
	h.advance(1999 * time.Millisecond)
	h.expectOpen("before the listener's 2s request body idle timeout")
	h.advance(time.Millisecond)
	h.expectClient("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nConnection: close\r\n\r\nrequest body timeout\n")
	if !h.clientClosed || !h.linger || h.closedUp != 1 {
		t.Fatalf("client closed %v linger %v, upstream closed %d", h.clientClosed, h.linger, h.closedUp)
	}
	if h.timeouts(metrics.TimeoutRequestBodyIdle) != 1 || h.reasonCount(metrics.ReasonRequestBodyTimeout) != 1 {
		t.Fatalf("request_body_idle %v, local replies %v", h.timeouts(metrics.TimeoutRequestBodyIdle), h.reasonCount(metrics.ReasonRequestBodyTimeout))
	}
}

func TestRequestBodyIdleAfterResponseStartedCloses(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
	h.takeClient()
	h.advance(2 * time.Second)
	if !h.clientClosed || h.closedUp != 1 || h.toClient.Len() != 0 {
		t.Fatalf("client closed %v, upstream closed %d, client got %q", h.clientClosed, h.closedUp, h.toClient.String())
	}
	if h.timeouts(metrics.TimeoutRequestBodyIdle) != 1 {
		t.Fatal("request_body_idle not counted")
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h.takeUpstream()
	h.advance(4999 * time.Millisecond)
	if h.toClient.Len() != 0 {
		t.Fatal("timed out before the group's 5s response header timeout")
	}
	h.advance(time.Millisecond)
	h.expectClient("HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n\r\nupstream request timeout\n")
	if h.clientClosed || h.closedUp != 1 {
		t.Fatalf("client closed %v, upstream closed %d", h.clientClosed, h.closedUp)
	}
	if h.timeouts(metrics.TimeoutUpstreamResponseHeader) != 1 || h.reasonCount(metrics.ReasonUpstreamHeaderTimeout) != 1 {
		t.Fatalf("upstream_response_header %v, local replies %v", h.timeouts(metrics.TimeoutUpstreamResponseHeader), h.reasonCount(metrics.ReasonUpstreamHeaderTimeout))
	}
	// The connection serves the next request.
	h.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
}

// TestResponseHeaderTimerWaitsForTheClient: while the request body is still
// coming, the session waits on the client, not on the backend: gaps longer
// than the response header timeout (but shorter than the body idle
// timeout) cut nothing.
func TestResponseHeaderTimerWaitsForTheClient(t *testing.T) {
	h := newTimeoutHarness(t, 2)
	h.client("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na")
	h.advance(7 * time.Second)
	h.client("b")
	h.advance(7 * time.Second)
	h.expectOpen("while the client uploads")
	h.client("c")
	if h.toClient.Len() != 0 || h.closedUp != 0 {
		t.Fatalf("slow upload cut: client got %q", h.toClient.String())
	}
	// Now the backend has it all: 5s without a response head is too long.
	h.advance(5 * time.Second)
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 504 ") {
		t.Fatalf("reply %q, want 504", got)
	}
}

// TestUploadStalledByBackend: a backend that stops taking the request is
// waited on with the response header timeout.
func TestUploadStalledByBackend(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.autoSend = false
	h.client("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
	if len(h.pendingU) == 0 {
		t.Fatal("nothing sent upstream")
	}
	h.advance(4999 * time.Millisecond)
	if len(h.pendingC) != 0 {
		t.Fatal("timed out early")
	}
	h.advance(time.Millisecond)
	h.completeSends()
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 504 ") || !strings.Contains(got, "Connection: close\r\n") {
		t.Fatalf("reply %q, want 504 with Connection: close", got)
	}
	if h.closedUp != 1 || h.timeouts(metrics.TimeoutUpstreamResponseHeader) != 1 {
		t.Fatalf("upstream closed %d, upstream_response_header %v", h.closedUp, h.timeouts(metrics.TimeoutUpstreamResponseHeader))
	}
}

func TestResponseBodyIdleTimeout(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npar")
	for range 3 {
		h.advance(5900 * time.Millisecond)
		h.expectOpen("while the response body moves")
		h.upstream("t")
	}
	h.advance(5999 * time.Millisecond)
	h.expectOpen("before the group's 6s response body idle timeout")
	h.advance(time.Millisecond)
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nparttt")
	if !h.clientClosed || h.closedUp != 1 || h.timeouts(metrics.TimeoutUpstreamBodyIdle) != 1 {
		t.Fatalf("client closed %v, upstream closed %d, upstream_body_idle %v", h.clientClosed, h.closedUp, h.timeouts(metrics.TimeoutUpstreamBodyIdle))
	}
}

func TestSendStall(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.autoSend = false
	h.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	h.completeSends()
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 50))
	if len(h.pendingC) == 0 {
		t.Fatal("nothing sent to the client")
	}
	// Partial writes and completed sends are progress.
	h.advance(2900 * time.Millisecond)
	h.s.SendProgress(Client)
	h.drain()
	h.advance(2900 * time.Millisecond)
	h.completeOne(Client)
	h.drain()
	h.advance(2900 * time.Millisecond)
	h.expectOpen("while the client reads")
	h.advance(100 * time.Millisecond)
	if !h.clientClosed || h.linger || h.closedUp != 1 {
		t.Fatalf("client closed %v linger %v, upstream closed %d", h.clientClosed, h.linger, h.closedUp)
	}
	if h.timeouts(metrics.TimeoutSendStall) != 1 {
		t.Fatal("send_stall not counted")
	}
}

// TestSendStallOfLocalReply: a client that does not read the proxy's own
// reply is closed too.
func TestSendStallOfLocalReply(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.autoSend = false
	h.client("GET / HTTP/1.1\r\nHost: a")
	h.advance(time.Second) // 408
	if len(h.pendingC) != 1 || h.clientClosed {
		t.Fatalf("408 not in flight (%d sends, closed %v)", len(h.pendingC), h.clientClosed)
	}
	h.advance(2999 * time.Millisecond)
	h.expectOpen("before the send stall timeout")
	h.advance(time.Millisecond)
	if !h.clientClosed || h.timeouts(metrics.TimeoutSendStall) != 1 {
		t.Fatalf("closed %v, send_stall %v", h.clientClosed, h.timeouts(metrics.TimeoutSendStall))
	}
}

// TestTunnelSendStall: in a TCP tunnel an upstream that stops reading is a
// stalled send too.
func TestTunnelSendStall(t *testing.T) {
	h := newTimeoutHarness(t, 1)
	h.autoSend = false
	h.connect(false, nil)
	h.client("hello")
	if len(h.pendingU) != 1 {
		t.Fatal("nothing sent upstream")
	}
	h.advance(2999 * time.Millisecond)
	h.expectOpen("before the listener's 3s send stall timeout")
	h.advance(time.Millisecond)
	if !h.clientClosed || h.closedUp != 1 || h.timeouts(metrics.TimeoutSendStall) != 1 {
		t.Fatalf("client closed %v, upstream closed %d, send_stall %v", h.clientClosed, h.closedUp, h.timeouts(metrics.TimeoutSendStall))
	}
}

// TestTunnelIdleTimeout: a tunnel with nothing in flight is closed once
// nothing moved either way for the listener's tunnel idle timeout (default
// 1h); every byte, in either direction, restarts the wait.
func TestTunnelIdleTimeout(t *testing.T) {
	h := newTimeoutHarness(t, 1)
	h.connect(false, nil)
	h.client("hello")
	for range 3 {
		h.advance(6 * time.Second)
		h.upstream("hi")
		h.advance(6 * time.Second)
		h.client("again")
	}
	h.advance(6999 * time.Millisecond)
	h.expectOpen("before the listener's 7s tunnel idle timeout")
	h.advance(time.Millisecond)
	if !h.clientClosed || h.closedUp != 1 || h.timeouts(metrics.TimeoutTunnelIdle) != 1 {
		t.Fatalf("client closed %v, upstream closed %d, tunnel_idle %v", h.clientClosed, h.closedUp, h.timeouts(metrics.TimeoutTunnelIdle))
	}

	// An upgraded HTTP connection takes the default.
	h = newTimeoutHarness(t, 2)
	h.client("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	h.upstream("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	if !h.tunnel {
		t.Fatal("no tunnel after 101")
	}
	h.advance(DefaultTunnelIdleTimeout - time.Second)
	h.expectOpen("before the default tunnel idle timeout")
	h.advance(time.Second)
	if !h.clientClosed || h.timeouts(metrics.TimeoutTunnelIdle) != 1 {
		t.Fatalf("WebSocket tunnel not closed after %v idle", DefaultTunnelIdleTimeout)
	}
}

// TestTimeoutDefaults: a snapshot that sets no timeouts takes the worker's
// options, whose defaults are the production ones.
func TestTimeoutDefaults(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.advance(DefaultResponseHeaderTimeout - time.Millisecond)
	if h.toClient.Len() != 0 {
		t.Fatal("504 before the default response header timeout")
	}
	h.advance(time.Millisecond)
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 504 ") {
		t.Fatalf("reply %q, want 504", got)
	}

	h = newHarnessOpts(t, Options{RequestBodyIdleTimeout: 700 * time.Millisecond}, 0)
	h.autoConnect = true
	h.client("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nab")
	h.advance(700 * time.Millisecond)
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Fatalf("reply %q, want 408 after the option's 700ms", got)
	}
}

// TestProgressTimerArmedLazily: bytes that move do not re-arm the timer
// each time; it is re-armed when it fires early.
func TestProgressTimerArmedLazily(t *testing.T) {
	h := newTimeoutHarness(t, 0)
	h.client("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
	before := h.arms
	for range 1000 {
		h.advance(10 * time.Millisecond)
		h.client("x")
	}
	// 10s of upload with a 2s timeout: about one re-arm per timeout.
	if n := h.arms - before; n > 12 {
		t.Fatalf("timer armed %d times for 1000 body bytes", n)
	}
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
	h.expectOpen("after a slow upload")
}
