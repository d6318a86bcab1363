package compiled

import (
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// tagFilter has every HTTP hook; name tells instances apart.
type tagFilter struct{ name string }

func (tagFilter) OnRequest(filter.Request)         {}
func (tagFilter) OnUpstreamRequest(filter.Request) {}
func (tagFilter) OnResponse(filter.Response)       {}

// reqOnly has only the request hook.
type reqOnly struct{ name string }

func (reqOnly) OnRequest(filter.Request) {}

type connFilter struct{ name string }

func (connFilter) OnConn(filter.Conn) {}

const filterSnap = `
listeners:
- name: web
  port: 8080
  protocol: HTTP
  extensionFilters: [l1, l2]
  virtualHosts:
  - name: all
    routes:
    - name: r0
      extensionFilters: [r1, req]
      backends: [{backendGroup: g, weight: 1}]
    - name: r1
      matches: [{path: {type: EXACT, value: /plain}}]
      backends: [{backendGroup: g, weight: 1}]
- name: tcp
  port: 9000
  protocol: TCP
  extensionFilters: [conn]
  tcpRoute: {name: t, backends: [{backendGroup: g, weight: 1}]}
- name: bare
  port: 8081
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: r2
      backends: [{backendGroup: g, weight: 1}]
backendGroups:
- name: g
  endpoints: [{address: 127.0.0.1, port: 9001}]
`

func filterRegistry(t *testing.T) *filter.Registry {
	t.Helper()
	r := &filter.Registry{}
	for name, f := range map[string]any{
		"l1": tagFilter{"l1"}, "l2": tagFilter{"l2"}, "r1": tagFilter{"r1"},
		"req": reqOnly{"req"}, "conn": connFilter{"conn"},
	} {
		r.MustRegister(name, f)
	}
	return r
}

func compileFilterSnap(t *testing.T, y string, fr *filter.Registry) (*Config, error) {
	t.Helper()
	s, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := dataplanev1.Validate(s); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return CompileWith(s, metrics.NewRegistry(1), fr)
}

func routeNamed(t *testing.T, l *Listener, name string) *Route {
	t.Helper()
	for i := range l.matched {
		if r := l.matched[i].Route; r.Name == name {
			return r
		}
	}
	t.Fatalf("listener %s has no route %s", l.Name, name)
	return nil
}

func TestCompileFiltersInOrder(t *testing.T) {
	c, err := compileFilterSnap(t, filterSnap, filterRegistry(t))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	names := func(hooks any) string {
		var out []string
		switch hs := hooks.(type) {
		case []filter.RequestFilter:
			for _, h := range hs {
				switch f := h.(type) {
				case tagFilter:
					out = append(out, f.name)
				case reqOnly:
					out = append(out, f.name)
				}
			}
		case []filter.UpstreamRequestFilter:
			for _, h := range hs {
				out = append(out, h.(tagFilter).name)
			}
		case []filter.ResponseFilter:
			for _, h := range hs {
				out = append(out, h.(tagFilter).name)
			}
		}
		return strings.Join(out, ",")
	}
	web := c.Listeners[0]
	r0 := routeNamed(t, web, "r0")
	if got := names(r0.Filters.Request); got != "l1,l2,r1,req" {
		t.Errorf("r0 request hooks = %q, want the listener's then the route's: l1,l2,r1,req", got)
	}
	if got := names(r0.Filters.Upstream); got != "l1,l2,r1" {
		t.Errorf("r0 upstream request hooks = %q, want l1,l2,r1 (req has none)", got)
	}
	if got := names(r0.Filters.Response); got != "l1,l2,r1" {
		t.Errorf("r0 response hooks = %q, want l1,l2,r1", got)
	}
	r1 := routeNamed(t, web, "r1")
	if got := names(r1.Filters.Request); got != "l1,l2" {
		t.Errorf("r1 request hooks = %q, want only the listener's l1,l2", got)
	}
	if tcp := c.Listeners[1]; len(tcp.ConnFilters) != 1 || tcp.ConnFilters[0].(connFilter).name != "conn" {
		t.Errorf("tcp listener conn hooks = %v, want [conn]", tcp.ConnFilters)
	}
	r2 := routeNamed(t, c.Listeners[2], "r2")
	if r2.Filters.Request != nil || r2.Filters.Upstream != nil || r2.Filters.Response != nil {
		t.Errorf("a route without filters has hooks: %+v", r2.Filters)
	}
}

func TestCompileFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{
			"unknown on a route", "[r1, req]", "[r1, nope]",
			`listeners[0] (web): virtualHosts[0].routes[0] (r0): extensionFilters[1]: unknown extension filter "nope" (this dataplane registers conn, l1, l2, r1, req)`,
		},
		{
			"unknown on a listener", "[l1, l2]", "[l1, gone]",
			`listeners[0] (web): extensionFilters[1]: unknown extension filter "gone"`,
		},
		{
			"unknown on a TCP listener", "[conn]", "[nope]",
			`listeners[1] (tcp): extensionFilters[0]: unknown extension filter "nope"`,
		},
		{
			"connection filter on a route", "[r1, req]", "[conn]",
			`listeners[0] (web): virtualHosts[0].routes[0] (r0): extensionFilters[0]: filter "conn"`,
		},
		{
			"request filter on a TCP listener", "[conn]", "[req]",
			`listeners[1] (tcp): extensionFilters[0]: filter "req"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(filterSnap, tc.from, tc.to, 1)
			c, err := compileFilterSnap(t, y, filterRegistry(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("compile = %v, %v; want an error containing %q", c, err, tc.want)
			}
		})
	}
	// The default registry does not hold the test's names.
	s, err := dataplanev1.Parse([]byte(filterSnap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompileWith(s, metrics.NewRegistry(1), &filter.Registry{}); err == nil || !strings.Contains(err.Error(), `unknown extension filter "l1" (this dataplane registers none)`) {
		t.Fatalf("CompileWith an empty registry = %v, want unknown extension filter l1", err)
	}
	if _, err := Compile(s, metrics.NewRegistry(1)); err == nil || !strings.Contains(err.Error(), `unknown extension filter "l1"`) {
		t.Fatalf("Compile against filter.Default = %v, want unknown extension filter l1", err)
	}
}
