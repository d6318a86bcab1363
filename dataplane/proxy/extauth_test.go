package proxy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

const extAuthSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: authed
      matches: [{path: {type: PATH_PREFIX, value: /app}}]
      filters:
      - extAuth:
          backendGroup: auth
          pathPrefix: /check/
          allowedRequestHeaders: [x-trace]
          allowedResponseHeaders: [x-user, x-tenant]
          timeout: 2s
          maxBodyBytes: 16
      - requestHeaderModifier: {set: [{name: X-Route, value: authed}]}
      backends: [{backendGroup: app, weight: 1}]
    - name: all-headers
      matches: [{path: {type: PATH_PREFIX, value: /all}}]
      timeouts: {request: 1s}
      filters: [{extAuth: {backendGroup: auth}}]
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
  endpoints: [{address: 10.0.0.1, port: 80}]
- name: auth
  endpoints: [{address: 10.0.0.9, port: 9000}]
`

func extAuthHarness(t *testing.T) *harness {
	t.Helper()
	cfg, reg := compileTest(t, extAuthSnapshot)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.autoConnect = true
	return h
}

// An allowed request: the check carries the filter's headers only, the
// check connection goes back to the pool, and the request reaches its
// backend with the allowed response headers replacing the client's.
func TestExtAuthAllow(t *testing.T) {
	h := extAuthHarness(t)
	h.client("GET /app/x?q=1 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer t\r\nX-Trace: 7\r\nCookie: c=1\r\nX-User: mallory\r\nx-user: eve\r\n\r\n")
	if len(h.connects) != 1 || h.connects[0].Addr.String() != "10.0.0.9:9000" || h.connects[0].Group.Name != "auth" {
		t.Fatalf("connects %v, want one to the auth group", h.connects)
	}
	h.expectUpstream("GET /check/app/x?q=1 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer t\r\nX-Trace: 7\r\n" +
		"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nContent-Length: 0\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nX-User: alice\r\nX-Other: no\r\nX-Tenant: t1\r\nContent-Length: 2\r\n\r\nok")
	if h.released != 1 || len(h.connects) != 2 || h.connects[1].Group.Name != "app" {
		t.Fatalf("released %d, connects %v: want the check connection pooled, then one to app", h.released, h.connects)
	}
	h.expectUpstream("GET /app/x?q=1 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer t\r\nX-Trace: 7\r\nCookie: c=1\r\n" +
		"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\n" +
		"Forwarded: for=192.0.2.7;proto=http;host=shop\r\nX-Route: authed\r\nX-User: alice\r\nX-Tenant: t1\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\napp")
	if got := h.takeClient(); !strings.HasSuffix(got, "\r\n\r\napp") || !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("client got %q", got)
	}
	if h.clientClosed {
		t.Fatal("the client connection was closed")
	}
}

// With no allowed response headers listed, every header of the allowing
// response is copied but those describing the response itself.
func TestExtAuthAllowAllHeaders(t *testing.T) {
	h := extAuthHarness(t)
	h.client("GET /all HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 200 OK\r\nDate: Mon\r\nServer: authd\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-B: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	got := h.takeUpstream()
	if !strings.HasSuffix(got, "\r\nX-A: 1\r\nX-B: 2\r\n\r\n") || strings.Contains(got, "authd") || strings.Contains(got, "text/plain") || strings.Contains(got, "chunked") {
		t.Fatalf("forwarded head %q", got)
	}
	if h.released != 1 {
		t.Fatalf("the complete chunked check response left its connection unpooled (released %d)", h.released)
	}
}

// A denial goes to the client with its status, headers and (decoded) body;
// the backend is never asked.
func TestExtAuthDeny(t *testing.T) {
	h := extAuthHarness(t)
	h.client("GET /app/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
	if got := h.takeClient(); got != "" {
		t.Fatalf("answered before the body was complete: %q", got)
	}
	h.upstream("2\r\n1}\r\n0\r\n\r\n")
	h.expectClient("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
	if len(h.connects) != 1 || h.released != 1 {
		t.Fatalf("connects %d released %d: want only the check, pooled", len(h.connects), h.released)
	}
	if n := h.reasonCount(metrics.ReasonExtAuthDenied); n != 1 {
		t.Fatalf("ext_auth_denied = %v", n)
	}
	// The connection serves the next request.
	h.client("GET /app/y HTTP/1.1\r\nHost: shop\r\n\r\n")
	if len(h.connects) != 2 || h.connects[1].Group.Name != "auth" {
		t.Fatalf("next request: connects %v", h.connects)
	}
}

// A denial whose body does not fit the upstream buffer is passed on
// without its body, and its connection is closed.
func TestExtAuthDenyLargeBody(t *testing.T) {
	h := extAuthHarness(t)
	h.client("GET /app/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.takeUpstream()
	n := 4 * DefaultBufferSize
	h.upstream("HTTP/1.1 403 Forbidden\r\nX-Why: policy\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n" + strings.Repeat("x", n))
	h.expectClient("HTTP/1.1 403 Forbidden\r\nX-Why: policy\r\nContent-Length: 0\r\n\r\n")
	if h.closedUp != 1 || h.released != 0 {
		t.Fatalf("closed %d released %d: the unread body makes the connection unusable", h.closedUp, h.released)
	}
}

// A redirect passes Location on, without a body.
func TestExtAuthRedirect(t *testing.T) {
	h := extAuthHarness(t)
	h.client("GET /app/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 302 Found\r\nLocation: https://login/\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 302 Found\r\nLocation: https://login/\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n")
}

// Failures fail closed with 403: connect refused, a reset before the head,
// a malformed response, and the filter's timeout; the route's request
// timeout passing first gives 504.
func TestExtAuthFailures(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		act        func(h *harness)
		status     string
	}{
		{"refused", "/app", func(h *harness) { h.connect(false, errors.New("refused")) }, "403"},
		{"reset", "/app", func(h *harness) { h.connect(false, nil); h.s.UpstreamEOF(); h.drain() }, "403"},
		{"malformed", "/app", func(h *harness) { h.connect(false, nil); h.upstream("HTTP/9 x\r\n\r\n") }, "403"},
		{"timeout", "/app", func(h *harness) { h.connect(false, nil); h.advance(2 * time.Second) }, "403"},
		{"request timeout", "/all", func(h *harness) { h.connect(false, nil); h.advance(time.Second) }, "504"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, reg := compileTest(t, extAuthSnapshot)
			h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
			h.client("GET " + tc.path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
			tc.act(h)
			got := h.takeClient()
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("client got %q, want %s", got, tc.status)
			}
			if h.closedUp != 1 && tc.name != "refused" {
				t.Fatalf("the check connection was not closed (closed %d)", h.closedUp)
			}
			if len(h.connects) != 1 {
				t.Fatalf("%d connects: the backend must not be asked", len(h.connects))
			}
		})
	}
}

// A pooled check connection the service had closed is replaced by a fresh
// one, once; a second failure fails closed.
func TestExtAuthStalePooledConnection(t *testing.T) {
	cfg, reg := compileTest(t, extAuthSnapshot)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.client("GET /app/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.connect(true, nil)
	h.takeUpstream()
	h.s.UpstreamEOF()
	h.drain()
	if len(h.connects) != 2 || !h.connects[1].Fresh || h.connects[1].Group.Name != "auth" {
		t.Fatalf("connects %+v, want a fresh one to auth", h.connects)
	}
	if got := h.takeClient(); got != "" {
		t.Fatalf("client got %q", got)
	}
	h.connect(false, nil)
	if got := h.takeUpstream(); !strings.HasPrefix(got, "GET /check/app/x ") {
		t.Fatalf("check resent as %q", got)
	}
	h.s.UpstreamEOF()
	h.drain()
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 403 ") || len(h.connects) != 2 {
		t.Fatalf("second failure: %q after %d connects", got, len(h.connects))
	}
}

// A body is sent with the check once it is all in, after the proxy's own
// 100 (Continue); the backend then gets it too. A chunked body is sent
// decoded. A body over maxBodyBytes gets 413 without a check.
func TestExtAuthBody(t *testing.T) {
	h := extAuthHarness(t)
	h.client("POST /app/f HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	h.expectClient("HTTP/1.1 100 Continue\r\n\r\n")
	if len(h.connects) != 0 {
		t.Fatal("the check started before the body came")
	}
	h.client("hel")
	h.client("lo")
	if got := h.takeUpstream(); !strings.HasSuffix(got, "Content-Length: 5\r\n\r\nhello") || !strings.HasPrefix(got, "POST /check/app/f ") {
		t.Fatalf("check %q", got)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if got := h.takeUpstream(); !strings.HasSuffix(got, "\r\n\r\nhello") || !strings.HasPrefix(got, "POST /app/f ") {
		t.Fatalf("forwarded %q", got)
	}

	// A chunked body goes decoded, with its length.
	h = extAuthHarness(t)
	h.client("POST /app/c HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n")
	if len(h.connects) != 0 {
		t.Fatal("the check started before the chunked body ended")
	}
	h.client("3\r\nret\r\n0\r\n\r\n")
	if got := h.takeUpstream(); !strings.HasSuffix(got, "X-Forwarded-Proto: http\r\nContent-Length: 6\r\n\r\nsecret") {
		t.Fatalf("check %q", got)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if got := h.takeUpstream(); !strings.HasPrefix(got, "POST /app/c ") || !strings.HasSuffix(got, "\r\n\r\n3\r\nsec\r\n3\r\nret\r\n0\r\n\r\n") {
		t.Fatalf("forwarded %q", got)
	}
	// Chunked over maxBodyBytes: 413 without a check.
	h = extAuthHarness(t)
	h.client("POST /app/c HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n" + strings.Repeat("y", 17) + "\r\n0\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 413 ") || len(h.connects) != 0 {
		t.Fatalf("large chunked body: %q, %d connects", got, len(h.connects))
	}

	h = extAuthHarness(t)
	h.client("POST /app/f HTTP/1.1\r\nHost: shop\r\nContent-Length: 17\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 413 ") || len(h.connects) != 0 {
		t.Fatalf("large body: %q, %d connects", got, len(h.connects))
	}
}

// extAuthExchange returns a function that runs one allowed request
// through the check and its backend on a loopback session (every action
// performed at once).
func extAuthExchange(tb testing.TB) func() (toClient, toUpstream int) {
	cfg, reg := compileTest(tb, extAuthSnapshot)
	s := loopbackSession(tb, cfg, reg)
	req := []byte("GET /app/x HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer t\r\nX-User: m\r\n\r\n")
	check := []byte("HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return func() (int, int) {
		s.ClientData(req)
		c1, u1 := loopback(tb, s)
		s.UpstreamData(check)
		c2, u2 := loopback(tb, s)
		s.UpstreamData(resp)
		c3, u3 := loopback(tb, s)
		return c1 + c2 + c3, u1 + u2 + u3
	}
}

// A request through the check allocates nothing once the buffers are warm.
func TestExtAuthDoesNotAllocate(t *testing.T) {
	exchange := extAuthExchange(t)
	for range 3 {
		exchange()
	}
	if c, u := exchange(); c < 40 || u < 150 {
		t.Fatalf("exchange sent %d bytes to the client and %d upstream", c, u)
	}
	if n := testing.AllocsPerRun(1000, func() { exchange() }); n != 0 {
		t.Fatalf("%v allocations per checked request, want 0", n)
	}
}

// BenchmarkExtAuthExchange runs one allowed request, its check and its
// backend's response through a keep-alive session.
func BenchmarkExtAuthExchange(b *testing.B) {
	exchange := extAuthExchange(b)
	exchange()
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}
