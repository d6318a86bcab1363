package proxy

import (
	"net/netip"
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/metrics"
)

const filterSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  extensionFilters: [listener-tag]
  virtualHosts:
  - name: main
    routes:
    - name: tagged
      matches: [{path: {type: PATH_PREFIX, value: /tagged}}]
      filters:
      - requestHeaderModifier: {set: [{name: X-Env, value: prod}], add: [{name: X-Added, value: "1"}]}
      - responseHeaderModifier: {set: [{name: X-Served-By, value: flax}]}
      extensionFilters: [route-tag, upstream-tag, response-tag]
      backends: [{backendGroup: one, weight: 1}]
      retry: {}
    - name: guarded
      matches: [{path: {type: PATH_PREFIX, value: /guarded}}]
      extensionFilters: [guard, route-tag]
      backends: [{backendGroup: one, weight: 1}]
      retry: {}
    - name: steered
      matches: [{path: {type: PATH_PREFIX, value: /steered}}]
      extensionFilters: [steer, upstream-tag]
      filters: [{requestRedirect: {hostname: elsewhere.example.com}}]
    - name: plain
      matches: [{path: {type: PATH_PREFIX, value: /plain}}]
      backends: [{backendGroup: one, weight: 1}]
      retry: {}
- name: tcp
  address: 127.0.0.1
  port: 9000
  protocol: TCP
  extensionFilters: [conn-guard]
  tcpRoute:
    name: tcp-route
    backends: [{backendGroup: one, weight: 1}]
backendGroups:
- name: one
  endpoints: [{address: 10.0.0.1, port: 80}]
- name: two
  endpoints: [{address: 10.0.0.2, port: 80}]
`

// Test filters; each records what it saw in seen.
type (
	listenerTag struct{}
	routeTag    struct{ seen *seenRequest }
	upstreamTag struct{ seen *seenRequest }
	responseTag struct{ seen *seenResponse }
	guard       struct{}
	steer       struct{ seen *seenRequest }
	connGuard   struct{ seen *seenConn }
)

type seenRequest struct {
	method, host, path, query, user string
	hasUser                         bool
	client                          netip.Addr
	listener, route, group          string
	used                            []bool // UseBackendGroup results
}

type seenResponse struct {
	status                 int
	server                 string
	listener, route, group string
}

type seenConn struct {
	client, local netip.AddrPort
	listener      string
	used          bool
}

func (listenerTag) OnRequest(r filter.Request) { r.AddHeader("X-Order", "listener") }

func (f routeTag) OnRequest(r filter.Request) {
	s := f.seen
	s.method, s.host, s.path, s.query = string(r.Method()), string(r.Host()), string(r.Path()), string(r.Query())
	v, ok := r.Header("x-USER")
	s.user, s.hasUser = string(v), ok
	s.client, s.listener, s.route, s.group = r.Client(), r.Listener(), r.Route(), r.BackendGroup()
	r.AddHeader("X-Order", "route")
	r.SetHeader("X-Env", "filter") // replaces the route modifier's value
	r.RemoveHeader("x-debug")
	r.SetHeader("Content-Length", "0") // the proxy's own field: dropped
	r.AddHeader("X-Bad", "a\r\nInjected: 1")
	r.AddHeader("Bad Name", "x")
}

func (f upstreamTag) OnUpstreamRequest(r filter.Request) {
	f.seen.group = r.BackendGroup()
	f.seen.used = append(f.seen.used, r.UseBackendGroup("one"))
	r.SetHeader("X-Group", r.BackendGroup())
}

func (f responseTag) OnResponse(r filter.Response) {
	s := f.seen
	v, _ := r.Header("SERVER")
	s.status, s.server = r.Status(), string(v)
	s.listener, s.route, s.group = r.Listener(), r.Route(), r.BackendGroup()
	r.RemoveHeader("server")
	r.SetHeader("X-Served-By", "filter") // replaces the route modifier's value
	r.AddHeader("X-Status-Seen", "yes")
	r.RemoveHeader("transfer-encoding") // the proxy's own field: dropped
}

func (guard) OnRequest(r filter.Request) {
	if _, ok := r.Header("x-odd"); ok {
		r.Respond(99, "odd\n")
		return
	}
	if _, ok := r.Header("x-block"); ok {
		r.Respond(403, "blocked by filter\n")
		r.Respond(500, "only the first answer counts\n")
	}
}

func (f steer) OnRequest(r filter.Request) {
	f.seen.used = append(f.seen.used, r.UseBackendGroup("nope"))
	if v, _ := r.Header("x-canary"); string(v) == "1" {
		f.seen.used = append(f.seen.used, r.UseBackendGroup("two"))
	}
}

func (f connGuard) OnConn(c filter.Conn) {
	f.seen.client, f.seen.local, f.seen.listener = c.Client(), c.Local(), c.Listener()
	switch c.Client().Addr() {
	case netip.MustParseAddr("192.0.2.66"):
		c.Reject()
	case netip.MustParseAddr("192.0.2.2"):
		f.seen.used = c.UseBackendGroup("two")
	}
}

type filterSeen struct {
	route, upstream, steer seenRequest
	response               seenResponse
	conn                   seenConn
}

func newFilterHarness(t *testing.T, listener int, remote string) (*harness, *filterSeen) {
	t.Helper()
	seen := &filterSeen{}
	fr := &filter.Registry{}
	fr.MustRegister("listener-tag", listenerTag{})
	fr.MustRegister("route-tag", routeTag{&seen.route})
	fr.MustRegister("upstream-tag", upstreamTag{&seen.upstream})
	fr.MustRegister("response-tag", responseTag{&seen.response})
	fr.MustRegister("guard", guard{})
	fr.MustRegister("steer", steer{&seen.steer})
	fr.MustRegister("conn-guard", connGuard{&seen.conn})
	cfg, reg := compileFilters(t, filterSnapshot, fr)
	return openHarness(t, cfg, reg, Options{}, listener, remote), seen
}

func compileFilters(t testing.TB, y string, fr *filter.Registry) (*compiled.Config, *metrics.Registry) {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse snapshot: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("validate snapshot: %v", err)
	}
	reg := metrics.NewRegistry(1)
	cfg, err := compiled.CompileWith(snap, reg, fr)
	if err != nil {
		t.Fatalf("compile snapshot: %v", err)
	}
	return cfg, reg
}

func TestRequestFilterEditsUpstreamHead(t *testing.T) {
	h, seen := newFilterHarness(t, 0, "192.0.2.7:40000")
	h.autoConnect = true
	h.client("POST /tagged/./a/%62?q=1 HTTP/1.1\r\nHost: example.com\r\nX-User: ann\r\nX-Debug: 1\r\nX-Env: dev\r\nContent-Length: 2\r\n\r\nhi")
	// The listener's filter runs before the route's; the filters' Set wins
	// over the route's modifier; the framing stays the proxy's.
	h.expectUpstream("POST /tagged/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nX-User: ann\r\nContent-Length: 2\r\n" + xff +
		"X-Added: 1\r\nX-Order: listener\r\nX-Order: route\r\nX-Env: filter\r\nX-Group: one\r\n\r\nhi")
	r := seen.route
	if r.method != "POST" || r.host != "example.com" || r.path != "/tagged/a/b" || r.query != "q=1" ||
		r.user != "ann" || !r.hasUser || r.client != netip.MustParseAddr("192.0.2.7") ||
		r.listener != "web" || r.route != "tagged" || r.group != "" {
		t.Errorf("request hook saw %+v", r)
	}
	if u := seen.upstream; u.group != "one" || len(u.used) != 1 || u.used[0] {
		t.Errorf("upstream request hook saw group %q, UseBackendGroup results %v; want one, [false]", u.group, u.used)
	}

	h.upstream("HTTP/1.1 200 OK\r\nServer: up\r\nX-Served-By: other\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Served-By: filter\r\nX-Status-Seen: yes\r\n\r\n")
	if s := seen.response; s.status != 200 || s.server != "up" || s.listener != "web" || s.route != "tagged" || s.group != "one" {
		t.Errorf("response hook saw %+v", s)
	}

	// The next request on the connection starts from a clean slate: the
	// edits of the last one are gone (a route without filters).
	h.client("GET /plain HTTP/1.1\r\nHost: example.com\r\nX-Debug: 1\r\n\r\n")
	h.expectUpstream("GET /plain HTTP/1.1\r\nHost: example.com\r\nX-Debug: 1\r\n" + xff + "X-Order: listener\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 0\r\n\r\n")
}

func TestRequestFilterResponds(t *testing.T) {
	h, seen := newFilterHarness(t, 0, "192.0.2.7:40000")
	h.client("GET /guarded HTTP/1.1\r\nHost: example.com\r\nX-Block: yes\r\n\r\n")
	h.expectClient("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\r\nblocked by filter\n")
	if len(h.connects) != 0 {
		t.Fatalf("a request answered by a filter connected upstream: %v", h.connects)
	}
	if seen.route.route != "" {
		t.Error("the filter after the one that answered ran")
	}
	if n := h.reasonCount(metrics.ReasonFilter); n != 1 {
		t.Errorf("local replies for reason filter = %v, want 1", n)
	}
	if h.clientClosed {
		t.Fatal("the connection closed after a filter's answer to a request without body")
	}
	// A status a final response cannot have answers 500.
	h.client("GET /guarded HTTP/1.1\r\nHost: example.com\r\nX-Odd: 1\r\n\r\n")
	h.expectClient("HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\nodd\n")
	h.takeLog()
	// Without the header the request goes on.
	h.client("GET /guarded HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectLog("Connect 10.0.0.1:80 fresh=false")
	if seen.route.route != "guarded" {
		t.Errorf("the second filter did not run on the request that was let through")
	}
}

func TestRequestFilterRespondsBeforeBody(t *testing.T) {
	h, _ := newFilterHarness(t, 0, "192.0.2.7:40000")
	h.client("POST /guarded HTTP/1.1\r\nHost: example.com\r\nX-Block: 1\r\nContent-Length: 10\r\n\r\nabc")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(got, "Connection: close\r\n") {
		t.Fatalf("reply %q, want 403 with Connection: close (the body was not read)", got)
	}
	if len(h.connects) != 0 || !h.clientClosed {
		t.Fatalf("connects %v, client closed %v", h.connects, h.clientClosed)
	}
}

func TestRequestFilterUsesBackendGroup(t *testing.T) {
	h, seen := newFilterHarness(t, 0, "192.0.2.7:40000")
	h.autoConnect = true
	// The route itself redirects; the filter's group wins.
	h.client("GET /steered HTTP/1.1\r\nHost: example.com\r\nX-Canary: 1\r\n\r\n")
	if len(h.connects) != 1 || h.connects[0].Group.Name != "two" || h.connects[0].Addr != netip.MustParseAddrPort("10.0.0.2:80") {
		t.Fatalf("connects %+v, want one to group two", h.connects)
	}
	h.expectUpstream("GET /steered HTTP/1.1\r\nHost: example.com\r\nX-Canary: 1\r\n" + xff + "X-Order: listener\r\nX-Group: two\r\n\r\n")
	if u := seen.steer.used; len(u) != 2 || u[0] || !u[1] {
		t.Errorf("UseBackendGroup results %v, want [false true] (no group nope, group two)", u)
	}
	if seen.upstream.group != "two" {
		t.Errorf("upstream request hook saw group %q, want two", seen.upstream.group)
	}
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")

	// Without a group chosen, the route's own action applies.
	h.client("GET /steered HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 302 ") || !strings.Contains(got, "Location: http://elsewhere.example.com") {
		t.Fatalf("reply %q, want the route's redirect", got)
	}
	if len(h.connects) != 1 {
		t.Fatalf("connects %+v after the redirect", h.connects)
	}
}

func TestConnFilter(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		h, seen := newFilterHarness(t, 1, "192.0.2.66:5000")
		if !h.clientClosed || len(h.connects) != 0 {
			t.Fatalf("rejected connection: closed %v, connects %v", h.clientClosed, h.connects)
		}
		if seen.conn.client != netip.MustParseAddrPort("192.0.2.66:5000") || seen.conn.local != netip.MustParseAddrPort("127.0.0.1:9000") || seen.conn.listener != "tcp" {
			t.Errorf("connection hook saw %+v", seen.conn)
		}
		if n := h.reasonCount(metrics.ReasonFilter); n != 1 {
			t.Errorf("local replies for reason filter = %v, want 1", n)
		}
	})
	t.Run("choose group", func(t *testing.T) {
		h, seen := newFilterHarness(t, 1, "192.0.2.2:5000")
		if len(h.connects) != 1 || h.connects[0].Group.Name != "two" || !seen.conn.used {
			t.Fatalf("connects %+v (UseBackendGroup %v), want one to group two", h.connects, seen.conn.used)
		}
		h.connect(false, nil)
		h.client("ping")
		h.expectUpstream("ping")
	})
	t.Run("let through", func(t *testing.T) {
		h, _ := newFilterHarness(t, 1, "192.0.2.3:5000")
		if len(h.connects) != 1 || h.connects[0].Group.Name != "one" {
			t.Fatalf("connects %+v, want one to the route's group one", h.connects)
		}
	})
}

// headerFilter reads a request header and sets one, the common case that
// must not allocate.
type headerFilter struct{}

func (headerFilter) OnRequest(r filter.Request) {
	if v, ok := r.Header("user-agent"); ok && len(v) > 0 {
		r.SetHeader("X-Client-Kind", "bench")
	}
	r.AddHeader("X-Route", r.Route())
}

func (headerFilter) OnResponse(r filter.Response) {
	if r.Status() == 200 {
		r.SetHeader("X-Filtered", "1")
	}
}

const allocSnapshot = `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: app
      extensionFilters: [headers]
      backends: [{backendGroup: one, weight: 1}]
backendGroups:
- name: one
  endpoints: [{address: 10.0.0.1, port: 80}]
`

// filteredSession returns a session on allocSnapshot's listener and a
// function that runs one keep-alive exchange through it, keeping the first
// upstream and client heads in up and cli.
func filteredSession(tb testing.TB, up, cli *strings.Builder) func() {
	fr := &filter.Registry{}
	fr.MustRegister("headers", headerFilter{})
	cfg, reg := compileFilters(tb, allocSnapshot, fr)
	s := loopbackSession(tb, cfg, reg)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return func() {
		s.ClientData(req)
		for {
			a, ok := s.Next()
			if !ok {
				break
			}
			switch a.Kind {
			case ActConnectUpstream:
				s.UpstreamConnected(true, nil)
			case ActSendUpstream:
				if up.Len() == 0 {
					up.Write(a.Data)
				}
				s.Sent(Upstream, len(a.Data), nil)
			case ActSendClient:
				s.Sent(Client, len(a.Data), nil)
			}
		}
		s.UpstreamData(resp)
		for {
			a, ok := s.Next()
			if !ok {
				break
			}
			if a.Kind == ActSendClient {
				if cli.Len() == 0 {
					cli.Write(a.Data)
				}
				s.Sent(Client, len(a.Data), nil)
			}
		}
	}
}

func TestHeaderFilterDoesNotAllocate(t *testing.T) {
	var up, cli strings.Builder
	exchange := filteredSession(t, &up, &cli)
	for range 3 {
		exchange()
	}
	if !strings.Contains(up.String(), "X-Client-Kind: bench\r\nX-Route: app\r\n") || !strings.Contains(cli.String(), "X-Filtered: 1\r\n") {
		t.Fatalf("the filter did not run: upstream got %q, client got %q", up.String(), cli.String())
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Fatalf("%v allocations per keep-alive exchange through a header filter", n)
	}
}

// BenchmarkFilteredExchange is BenchmarkKeepAliveExchange's exchange through
// a route with a filter that reads and sets request headers and sets a
// response header.
func BenchmarkFilteredExchange(b *testing.B) {
	var up, cli strings.Builder
	exchange := filteredSession(b, &up, &cli)
	exchange()
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}

// A route's mirrors get the request as the hooks edited it.
func TestMirrorCarriesFilterEdits(t *testing.T) {
	fr := &filter.Registry{}
	fr.MustRegister("listener-tag", listenerTag{})
	cfg, reg := compileFilters(t, `
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  extensionFilters: [listener-tag]
  virtualHosts:
  - name: main
    routes:
    - name: app
      filters: [{requestMirror: {backendGroup: shadow}}]
      backends: [{backendGroup: one, weight: 1}]
backendGroups:
- name: one
  endpoints: [{address: 10.0.0.1, port: 80}]
- name: shadow
  endpoints: [{address: 10.0.1.1, port: 80}]
`, fr)
	sink := &sinkMirror{}
	cfg.SetMirrorSender(sink)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.autoConnect = true
	h.client("GET /m HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if sink.n != 1 || !strings.Contains(string(sink.last), "\r\nX-Order: listener\r\n") {
		t.Fatalf("%d mirrored, last %q; want the filter's header in it", sink.n, sink.last)
	}
	h.expectUpstream("GET /m HTTP/1.1\r\nHost: example.com\r\n" + xff + "X-Order: listener\r\n\r\n")
}
