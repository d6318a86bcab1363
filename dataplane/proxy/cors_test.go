package proxy

import (
	"strings"
	"testing"

	"github.com/flaxlb/flax/dataplane/metrics"
)

const corsSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: listed
      matches: [{path: {type: PATH_PREFIX, value: /cors-1}}]
      filters:
      - cors:
          allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
          allowMethods: [GET, OPTIONS]
          allowHeaders: [x-header-1, x-header-2]
          exposeHeaders: [x-header-3, x-header-4]
          allowCredentials: true
          maxAgeSeconds: 3600
      - responseHeaderModifier: {set: [{name: X-Route, value: listed}]}
      backends: [{backendGroup: one, weight: 1}]
    - name: any-creds
      matches: [{path: {type: PATH_PREFIX, value: /any-creds}}]
      filters: [{cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: true}}]
      backends: [{backendGroup: one, weight: 1}]
    - name: any
      matches: [{path: {type: PATH_PREFIX, value: /any}}]
      filters: [{cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], exposeHeaders: ["*"]}}]
      backends: [{backendGroup: one, weight: 1}]
    - name: redirect
      matches: [{path: {type: PATH_PREFIX, value: /redirect}}]
      filters:
      - cors: {allowOrigins: ["https://www.foo.com"]}
      - requestRedirect: {scheme: https, hostname: new.example.com}
    - name: direct
      matches: [{path: {type: PATH_PREFIX, value: /direct}}]
      filters: [{cors: {allowOrigins: ["https://www.foo.com"], allowCredentials: true}}]
      directResponse: {status: 500}
    - name: plain
      backends: [{backendGroup: one, weight: 1}]
backendGroups:
- name: one
  endpoints: [{address: 10.0.0.1, port: 80}]
`

func corsHarness(t *testing.T) *harness {
	t.Helper()
	cfg, reg := compileTest(t, corsSnapshot)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.autoConnect = true
	return h
}

// A preflight is answered by the proxy: nothing reaches the backend.
func TestCORSPreflightAnsweredLocally(t *testing.T) {
	h := corsHarness(t)
	h.client("OPTIONS /cors-1/x HTTP/1.1\r\nHost: a\r\nOrigin: https://xpto.www.bar.com\r\n" +
		"Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: x-header-1, x-header-2\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n" +
		"Access-Control-Allow-Origin: https://xpto.www.bar.com\r\n" +
		"Access-Control-Allow-Credentials: true\r\n" +
		"Access-Control-Allow-Methods: GET, OPTIONS\r\n" +
		"Access-Control-Allow-Headers: x-header-1, x-header-2\r\n" +
		"Access-Control-Expose-Headers: x-header-3, x-header-4\r\n" +
		"Access-Control-Max-Age: 3600\r\n" +
		"Vary: Origin\r\n" +
		"X-Route: listed\r\n\r\n")
	if len(h.connects) != 0 || h.takeUpstream() != "" {
		t.Fatalf("the preflight reached a backend: %d connects", len(h.connects))
	}
	if n := h.reasonCount(metrics.ReasonCORSPreflight); n != 1 {
		t.Fatalf("cors_preflight local replies = %v, want 1", n)
	}

	// A disallowed origin gets the 204 without any CORS field.
	h.client("OPTIONS /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://foobar.com\r\nAccess-Control-Request-Method: GET\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\nVary: Origin\r\nX-Route: listed\r\n\r\n")

	// The Origin's port must be the allowed one (443 by default).
	h.client("OPTIONS /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://www.foo.com:8443\r\nAccess-Control-Request-Method: GET\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\nVary: Origin\r\nX-Route: listed\r\n\r\n")
	if len(h.connects) != 0 {
		t.Fatal("a preflight reached a backend")
	}
}

// With credentials, wildcards are never sent: the Origin, method and
// headers are echoed. Without, "*" is sent.
func TestCORSPreflightWildcards(t *testing.T) {
	h := corsHarness(t)
	h.client("OPTIONS /any-creds HTTP/1.1\r\nHost: a\r\nOrigin: https://other.foo.com\r\n" +
		"Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-header-1, x-header-2\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n" +
		"Access-Control-Allow-Origin: https://other.foo.com\r\n" +
		"Access-Control-Allow-Credentials: true\r\n" +
		"Access-Control-Allow-Methods: PUT\r\n" +
		"Access-Control-Allow-Headers: x-header-1, x-header-2\r\n" +
		"Access-Control-Max-Age: 5\r\n" +
		"Vary: Origin\r\n\r\n")
	// No Access-Control-Request-Headers: no Access-Control-Allow-Headers.
	h.client("OPTIONS /any-creds HTTP/1.1\r\nHost: a\r\nOrigin: https://other.foo.com\r\nAccess-Control-Request-Method: PUT\r\n\r\n")
	if got := h.takeClient(); strings.Contains(got, "Allow-Headers") || !strings.Contains(got, "Access-Control-Allow-Methods: PUT\r\n") {
		t.Fatalf("preflight without request headers got %q", got)
	}
	h.client("OPTIONS /any HTTP/1.1\r\nHost: a\r\nOrigin: https://foobar.com:12345\r\n" +
		"Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-a\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n" +
		"Access-Control-Allow-Origin: https://foobar.com:12345\r\n" +
		"Access-Control-Allow-Methods: *\r\n" +
		"Access-Control-Allow-Headers: *\r\n" +
		"Access-Control-Expose-Headers: *\r\n" +
		"Access-Control-Max-Age: 5\r\n" +
		"Vary: Origin\r\n\r\n")
}

// Requests that are not preflights go to the backend; an allowed Origin gets
// the CORS fields on the backend's response, a disallowed one none, and the
// backend's own CORS fields are replaced.
func TestCORSActualRequest(t *testing.T) {
	h := corsHarness(t)
	backend := "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: false\r\nContent-Length: 2\r\n\r\nok"

	h.client("GET /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://www.foo.com\r\n\r\n")
	if up := h.takeUpstream(); !strings.HasPrefix(up, "GET /cors-1 HTTP/1.1\r\n") || !strings.Contains(up, "Origin: https://www.foo.com\r\n") {
		t.Fatalf("upstream got %q", up)
	}
	h.upstream(backend)
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Route: listed\r\n" +
		"Vary: Origin\r\n" +
		"Access-Control-Allow-Origin: https://www.foo.com\r\n" +
		"Access-Control-Allow-Credentials: true\r\n" +
		"Access-Control-Expose-Headers: x-header-3, x-header-4\r\n\r\nok")

	// OPTIONS without Access-Control-Request-Method is an ordinary request.
	h.client("OPTIONS /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://www.bar.com\r\n\r\n")
	if up := h.takeUpstream(); !strings.HasPrefix(up, "OPTIONS /cors-1 HTTP/1.1\r\n") {
		t.Fatalf("upstream got %q", up)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if got := h.takeClient(); !strings.Contains(got, "Access-Control-Allow-Origin: https://www.bar.com\r\n") {
		t.Fatalf("client got %q", got)
	}

	h.client("GET /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://foobar.com\r\n\r\n")
	h.takeUpstream()
	h.upstream(backend)
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Route: listed\r\nVary: Origin\r\n\r\nok")

	// No Origin: no CORS field either.
	h.client("GET /cors-1 HTTP/1.1\r\nHost: a\r\n\r\n")
	h.takeUpstream()
	h.upstream(backend)
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Route: listed\r\nVary: Origin\r\n\r\nok")

	// A route without a policy leaves the backend's fields alone, and an
	// allowed Origin of an earlier request is not carried over.
	h.client("GET /other HTTP/1.1\r\nHost: a\r\nOrigin: https://www.foo.com\r\n\r\n")
	h.takeUpstream()
	h.upstream(backend)
	h.expectClient(backend)
}

// corsSession runs keep-alive CORS exchanges through a loopback session: an
// actual request from an allowed origin, then a preflight.
func corsSession(tb testing.TB, cli *strings.Builder) func() {
	cfg, reg := compileTest(tb, corsSnapshot)
	s := loopbackSession(tb, cfg, reg)
	actual := keepAliveExchange(tb, s,
		"GET /cors-1 HTTP/1.1\r\nHost: a\r\nOrigin: https://xpto.www.bar.com\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	pre := []byte("OPTIONS /any-creds HTTP/1.1\r\nHost: a\r\nOrigin: https://other.foo.com\r\n" +
		"Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-header-1\r\n\r\n")
	return func() {
		actual()
		s.ClientData(pre)
		for {
			a, ok := s.Next()
			if !ok {
				break
			}
			switch a.Kind {
			case ActSendClient:
				if cli.Len() == 0 {
					cli.Write(a.Data)
				}
				s.Sent(Client, len(a.Data), nil)
			case ActConnectUpstream, ActSendUpstream:
				tb.Fatalf("preflight: unexpected %v", a.Kind)
			}
		}
	}
}

func TestCORSDoesNotAllocate(t *testing.T) {
	var cli strings.Builder
	exchange := corsSession(t, &cli)
	for range 3 {
		exchange()
	}
	if !strings.Contains(cli.String(), "Access-Control-Allow-Origin: https://other.foo.com\r\n") {
		t.Fatalf("the preflight was not answered: %q", cli.String())
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Fatalf("%v allocations per CORS request and preflight", n)
	}
}

// BenchmarkCORSExchange runs an allowed cross-origin request and a preflight
// through a keep-alive session.
func BenchmarkCORSExchange(b *testing.B) {
	var cli strings.Builder
	exchange := corsSession(b, &cli)
	exchange()
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}

// The proxy's own replies to a routed request carry the CORS fields too, so
// that a browser can read a redirect or an error answered for the route.
func TestCORSOnLocalReplies(t *testing.T) {
	h := corsHarness(t)
	h.client("GET /redirect HTTP/1.1\r\nHost: a\r\nOrigin: https://www.foo.com\r\n\r\n")
	h.expectClient("HTTP/1.1 302 Found\r\nLocation: https://new.example.com/redirect\r\n" +
		"Vary: Origin\r\nAccess-Control-Allow-Origin: https://www.foo.com\r\nContent-Length: 0\r\n\r\n")
	h.client("GET /redirect HTTP/1.1\r\nHost: a\r\nOrigin: https://foobar.com\r\n\r\n")
	h.expectClient("HTTP/1.1 302 Found\r\nLocation: https://new.example.com/redirect\r\nVary: Origin\r\nContent-Length: 0\r\n\r\n")
	h.client("GET /direct HTTP/1.1\r\nHost: a\r\nOrigin: https://www.foo.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 500 Internal Server Error\r\nVary: Origin\r\n"+
		"Access-Control-Allow-Origin: https://www.foo.com\r\nAccess-Control-Allow-Credentials: true\r\n") {
		t.Fatalf("direct response: %q", got)
	}
	if len(h.connects) != 0 {
		t.Fatal("a local reply reached a backend")
	}
}
