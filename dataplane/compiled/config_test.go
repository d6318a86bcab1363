package compiled

import (
	"strings"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/router"
)

const snap = `
version: 3
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: api
    hostnames: [api.example.com]
    routes:
    - name: default/api/rule-0
      order: {creationTimestampUnixNanos: 1, namespace: default, name: api}
      matches:
      - path: {type: PATH_PREFIX, value: /v1}
      - path: {type: PATH_PREFIX, value: /legacy}
      filters:
      - urlRewrite: {path: {replacePrefixMatch: /v2}}
      - requestHeaderModifier: {set: [{name: X-Env, value: prod}], remove: [X-Debug]}
      backends:
      - {backendGroup: api, weight: 3}
      - {backendGroup: missing-is-direct, weight: 1}
  - name: catch-all
    routes:
    - name: default/web/rule-0
      order: {creationTimestampUnixNanos: 2, namespace: default, name: web}
      filters:
      - requestRedirect: {scheme: https, statusCode: 301}
    - name: default/web/rule-1
      order: {creationTimestampUnixNanos: 2, namespace: default, name: web, ruleIndex: 1}
      matches:
      - path: {type: EXACT, value: /nothing}
      directResponse: {status: 500}
backendGroups:
- name: api
  loadBalancing: {policy: LEAST_REQUEST}
  endpoints:
  - {address: 127.0.0.1, port: 9001}
  - {address: 127.0.0.1, port: 9002, conditions: {ready: false, serving: true, terminating: true}}
- name: missing-is-direct
  endpoints: []
`

func compile(t *testing.T, y string) (*Config, *metrics.Registry) {
	t.Helper()
	s, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	reg := metrics.NewRegistry(1)
	c, err := Compile(s, reg)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c, reg
}

func view(host, path string) *router.RequestView {
	return &router.RequestView{
		Host: []byte(host), Path: []byte(path), Method: []byte("GET"),
	}
}

func TestCompileAndMatch(t *testing.T) {
	c, _ := compile(t, snap)
	if c.Version != 3 || len(c.Listeners) != 1 || len(c.Groups) != 2 {
		t.Fatalf("compiled %d listeners, %d groups, version %d", len(c.Listeners), len(c.Groups), c.Version)
	}
	l := c.Listeners[0]
	if l.Addr.String() != "127.0.0.1:8080" || l.Protocol != ProtocolHTTP {
		t.Fatalf("listener = %v %v", l.Addr, l.Protocol)
	}
	for _, tc := range []struct{ host, path, route, prefix string }{
		{"api.example.com", "/v1/users", "default/api/rule-0", "/v1"},
		{"API.example.com:8080", "/legacy", "default/api/rule-0", "/legacy"},
		{"other.example.com", "/nothing", "default/web/rule-1", ""},
		{"other.example.com", "/", "default/web/rule-0", "/"},
	} {
		m := l.Match(view(tc.host, tc.path))
		if m == nil {
			t.Errorf("%s%s: no match", tc.host, tc.path)
			continue
		}
		if m.Route.Name != tc.route || m.Prefix != tc.prefix {
			t.Errorf("%s%s: matched %s prefix %q, want %s prefix %q", tc.host, tc.path, m.Route.Name, m.Prefix, tc.route, tc.prefix)
		}
	}
	if m := l.Match(view("api.example.com", "/other")); m != nil {
		t.Errorf("api.example.com/other matched %s; want no route", m.Route.Name)
	}

	api := l.Match(view("api.example.com", "/v1")).Route
	if api.Rewrite == nil || api.Rewrite.Path == nil || !api.Rewrite.Path.IsPrefix || api.Rewrite.Path.PrefixReplace != "/v2" {
		t.Errorf("rewrite = %+v", api.Rewrite)
	}
	if len(api.RequestHeaders.Set) != 1 || api.RequestHeaders.Set[0].Lower != "x-env" || api.RequestHeaders.Remove[0] != "x-debug" {
		t.Errorf("request headers = %+v", api.RequestHeaders)
	}
	redirect := l.Match(view("x", "/")).Route
	if redirect.Redirect == nil || redirect.Redirect.Status != 301 || redirect.Redirect.Scheme != "https" {
		t.Errorf("redirect = %+v", redirect.Redirect)
	}
	direct := l.Match(view("x", "/nothing")).Route
	if b := direct.PickBackend(12345); b == nil || b.Direct == nil || b.Direct.Status != 500 {
		t.Errorf("direct response route picked %+v", b)
	}
}

func TestPickBackendFollowsWeights(t *testing.T) {
	c, _ := compile(t, snap)
	api := c.Listeners[0].Match(view("api.example.com", "/v1")).Route
	counts := map[string]int{}
	const n = 40000
	for i := range n {
		b := api.PickBackend(uint32(i) * 107374) // spread over the uint32 range
		counts[b.Group.Name]++
	}
	share := float64(counts["api"]) / n
	if share < 0.72 || share > 0.78 {
		t.Errorf("weight 3:1 gave share %.3f to api; counts %v", share, counts)
	}
}

func TestEndpointConditions(t *testing.T) {
	c, _ := compile(t, snap)
	eps := c.Group("api").Endpoints()
	if eps.Len() != 2 || !eps.Endpoint(0).Ready || eps.Endpoint(1).Ready || !eps.Endpoint(1).Terminating {
		t.Fatalf("endpoints = %+v %+v", eps.Endpoint(0), eps.Endpoint(1))
	}
}

func TestUpdateEndpointsFastPath(t *testing.T) {
	c, _ := compile(t, snap)
	g := c.Group("api")
	before := g.Endpoints()
	routeBefore := c.Listeners[0].Match(view("api.example.com", "/v1")).Route
	pc := NewPickerCache(1)
	p1, _ := pc.Picker(g)
	if err := c.UpdateEndpoints("api", []*dataplanev1.Endpoint{{Address: "10.0.0.7", Port: 80}, {Address: "10.0.0.8", Port: 80}, {Address: "10.0.0.9", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	if g.Endpoints() == before || g.Endpoints().Len() != 3 {
		t.Fatalf("endpoints not replaced: len %d", g.Endpoints().Len())
	}
	if c.Listeners[0].Match(view("api.example.com", "/v1")).Route != routeBefore {
		t.Error("an endpoint update recompiled routes")
	}
	if p2, eps := pc.Picker(g); p2 == p1 || eps != g.Endpoints() || p2.(*balancer.Picker).Group() != eps {
		t.Error("picker cache did not follow the endpoint update")
	}
	if err := c.UpdateEndpoints("nope", nil); err == nil || !strings.Contains(err.Error(), "unknown backend group") {
		t.Errorf("update of unknown group: %v", err)
	}
	if err := c.UpdateEndpoints("api", []*dataplanev1.Endpoint{{Address: "10.0.0.7", Port: 80}, {Address: "::ffff:10.0.0.7", Port: 80}}); err == nil || !strings.Contains(err.Error(), "duplicate endpoint 10.0.0.7:80") {
		t.Errorf("duplicate endpoints: err = %v", err)
	} else if g.Endpoints().Len() != 3 {
		t.Error("a rejected update replaced the endpoints")
	}
	if err := c.UpdateEndpoints("api", []*dataplanev1.Endpoint{{Address: "not-an-ip", Port: 80}}); err == nil {
		t.Error("a bad address was accepted")
	} else if g.Endpoints().Len() != 3 {
		t.Error("a rejected update replaced the endpoints")
	}
}

func TestMatchAndPickDoNotAllocate(t *testing.T) {
	c, _ := compile(t, snap)
	l := c.Listeners[0]
	v := view("api.example.com", "/v1/users")
	pc := NewPickerCache(7)
	g := c.Group("api")
	pc.Picker(g)
	allocs := testing.AllocsPerRun(1000, func() {
		m := l.Match(v)
		b := m.Route.PickBackend(99)
		p, _ := pc.Picker(b.Group)
		if i, ok := p.Pick(nil, nil); ok {
			p.Done(i)
		}
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func TestCompileErrors(t *testing.T) {
	bad := strings.Replace(snap, "{backendGroup: missing-is-direct, weight: 1}", "{backendGroup: nope, weight: 1}", 1)
	s, err := dataplanev1.Parse([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(s, metrics.NewRegistry(1))
	if err == nil || !strings.Contains(err.Error(), `listeners[0] (web): virtualHosts[0].routes[0] (default/api/rule-0): backends[1].backendGroup: unknown backend group "nope"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestExampleCompiles(t *testing.T) {
	s, err := dataplanev1.Load("../../examples/standalone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(s, metrics.NewRegistry(2)); err != nil {
		t.Fatal(err)
	}
}

func TestPickerCacheAcrossConfigSwap(t *testing.T) {
	oldCfg, _ := compile(t, snap)
	newCfg, _ := compile(t, snap)
	pc := NewPickerCache(3)
	oldG, newG := oldCfg.Group("api"), newCfg.Group("api")
	pOld, _ := pc.Picker(oldG)
	pNew, _ := pc.Picker(newG)
	if pOld == pNew {
		t.Fatal("two configs' groups share a picker")
	}
	// Requests of both configs interleave after a swap: no picker is rebuilt.
	allocs := testing.AllocsPerRun(100, func() {
		if a, _ := pc.Picker(oldG); a != pOld {
			t.Fatal("old group's picker rebuilt")
		}
		if b, _ := pc.Picker(newG); b != pNew {
			t.Fatal("picker rebuilt while configs interleave")
		}
	})
	if allocs != 0 {
		t.Fatalf("interleaving configs allocates %v per request", allocs)
	}
}

func TestDefaultRetryOnConnectFailure(t *testing.T) {
	c, _ := compile(t, snap)
	r := c.Listeners[0].Match(view("api.example.com", "/v1")).Route
	if r.Retry.Attempts != 2 || !r.Retry.OnConnectFailure || r.Retry.OnReset || len(r.Retry.OnStatus) != 0 {
		t.Errorf("route without a retry policy got %+v, want two retries on connect failure only", r.Retry)
	}
	explicit := strings.Replace(snap, "      backends:\n      - {backendGroup: api, weight: 3}", "      retry: {}\n      backends:\n      - {backendGroup: api, weight: 3}", 1)
	c, _ = compile(t, explicit)
	r = c.Listeners[0].Match(view("api.example.com", "/v1")).Route
	if r.Retry.Attempts != 0 || r.Retry.OnConnectFailure {
		t.Errorf("route with an empty retry policy got %+v, want no retries", r.Retry)
	}
}

func TestGroupTimeouts(t *testing.T) {
	c, _ := compile(t, `
backendGroups:
- name: unset
- name: zero-idle
  idleTimeout: 0s
- name: set
  connectTimeout: 250ms
  idleTimeout: 5s
`)
	want := map[string][2]time.Duration{
		"unset":     {dataplanev1.DefaultConnectTimeout, dataplanev1.DefaultIdleTimeout},
		"zero-idle": {dataplanev1.DefaultConnectTimeout, 0}, // kept until the endpoint closes them
		"set":       {250 * time.Millisecond, 5 * time.Second},
	}
	for _, g := range c.Groups {
		if got := [2]time.Duration{g.ConnectTimeout, g.IdleTimeout}; got != want[g.Name] {
			t.Errorf("group %s: connect, idle = %v, want %v", g.Name, got, want[g.Name])
		}
	}
}

func TestListenerAndResponseTimeouts(t *testing.T) {
	c, _ := compile(t, `
listeners:
- name: unset
  port: 8080
  protocol: HTTP
- name: set
  port: 8081
  protocol: HTTP
  timeouts: {requestHead: 1s, requestBodyIdle: 2s, sendStall: 3s, keepAliveIdle: 4s}
backendGroups:
- name: unset
- name: set
  responseHeaderTimeout: 5s
  responseBodyIdleTimeout: 6s
`)
	// Unset stays zero: the engine's defaults (proxy.Options) apply.
	if got := c.Listeners[0].Timeouts; got != (ListenerTimeouts{}) {
		t.Errorf("unset listener timeouts = %+v, want zero", got)
	}
	want := ListenerTimeouts{RequestHead: time.Second, RequestBodyIdle: 2 * time.Second, SendStall: 3 * time.Second, KeepAliveIdle: 4 * time.Second}
	if got := c.Listeners[1].Timeouts; got != want {
		t.Errorf("listener timeouts = %+v, want %+v", got, want)
	}
	if g := c.Group("unset"); g.ResponseHeaderTimeout != 0 || g.ResponseBodyIdleTimeout != 0 {
		t.Errorf("unset group: response timeouts %v, %v, want zero", g.ResponseHeaderTimeout, g.ResponseBodyIdleTimeout)
	}
	if g := c.Group("set"); g.ResponseHeaderTimeout != 5*time.Second || g.ResponseBodyIdleTimeout != 6*time.Second {
		t.Errorf("group: response timeouts %v, %v, want 5s, 6s", g.ResponseHeaderTimeout, g.ResponseBodyIdleTimeout)
	}
}

func TestGroupProtocol(t *testing.T) {
	c, _ := compile(t, `
backendGroups:
- name: unset
- name: http1
  protocol: HTTP1
- name: h2c
  protocol: H2C
`)
	want := map[string]bool{"unset": false, "http1": false, "h2c": true}
	for _, g := range c.Groups {
		if g.H2C != want[g.Name] {
			t.Errorf("group %s: H2C = %v, want %v", g.Name, g.H2C, want[g.Name])
		}
	}
}
