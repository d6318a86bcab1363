package compiled

import (
	"testing"

	"github.com/flaxlb/flax/dataplane/filter"
)

const corsSnap = `
listeners:
- name: web
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: listed
      matches: [{path: {type: PATH_PREFIX, value: /listed}}]
      filters:
      - cors:
          allowOrigins: ["https://www.foo.com", "https://*.bar.com", "http://*:8080"]
          allowCredentials: true
          allowMethods: [GET, OPTIONS]
          allowHeaders: [x-header-1, x-header-2]
          exposeHeaders: ["*"]
          maxAgeSeconds: 3600
      backends: [{backendGroup: g, weight: 1}]
    - name: wildcard
      matches: [{path: {type: PATH_PREFIX, value: /wildcard}}]
      filters:
      - cors:
          allowOrigins: ["*"]
          allowMethods: ["*"]
          allowHeaders: ["*"]
          exposeHeaders: ["*"]
      backends: [{backendGroup: g, weight: 1}]
    - name: plain
      backends: [{backendGroup: g, weight: 1}]
backendGroups:
- name: g
  endpoints: [{address: 127.0.0.1, port: 9001}]
`

func TestCompileCORS(t *testing.T) {
	c, err := compileFilterSnap(t, corsSnap, &filter.Registry{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	l := c.Listeners[0]
	listed := routeNamed(t, l, "listed").CORS
	if listed == nil {
		t.Fatal("route listed has no CORS policy")
	}
	if !listed.Credentials || listed.Methods != "GET, OPTIONS" || listed.AnyMethod ||
		listed.Headers != "x-header-1, x-header-2" || listed.AnyHeader || listed.MaxAge != "3600" {
		t.Errorf("listed = %+v", listed)
	}
	if listed.Expose != "" {
		t.Errorf("listed.Expose = %q: a wildcard with credentials must not be sent", listed.Expose)
	}
	wild := routeNamed(t, l, "wildcard").CORS
	if wild.Credentials || !wild.AnyMethod || wild.Methods != "*" || !wild.AnyHeader || wild.Expose != "*" || wild.MaxAge != "5" {
		t.Errorf("wildcard = %+v", wild)
	}
	if p := routeNamed(t, l, "plain").CORS; p != nil {
		t.Errorf("plain has a CORS policy: %+v", p)
	}

	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://www.foo.com", true},
		{"HTTPS://WWW.FOO.COM", true},
		{"https://www.foo.com:443", true},
		{"https://www.foo.com:8443", false},
		{"http://www.foo.com", false},
		{"https://foo.com", false},
		{"https://xwww.foo.com", false},
		{"https://www.bar.com", true},
		{"https://xpto.www.bar.com", true},
		{"https://bar.com", false},
		{"https://.bar.com", false},
		{"https://foobar.com", false},
		{"https://www.bar.com:444", false},
		{"http://anything.example:8080", true},
		{"http://[::1]:8080", true},
		{"http://[::1]", false},
		{"http://anything.example", false},
		{"null", false},
		{"", false},
		{"https://", false},
		{"https://www.foo.com:", false},
		{"https://www.foo.com:x", false},
		{"https://www.foo.com:99999", false},
		{"ftp://www.foo.com", false},
	} {
		if got := listed.AllowOrigin([]byte(tc.origin)); got != tc.want {
			t.Errorf("listed.AllowOrigin(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
	for _, o := range []string{"https://foobar.com", "https://foobar.com:12345", "null"} {
		if !wild.AllowOrigin([]byte(o)) {
			t.Errorf("wildcard.AllowOrigin(%q) = false", o)
		}
	}
	if wild.AllowOrigin(nil) {
		t.Error("wildcard.AllowOrigin(empty) = true")
	}
	origin := []byte("https://xpto.www.bar.com")
	if n := testing.AllocsPerRun(100, func() { listed.AllowOrigin(origin) }); n != 0 {
		t.Errorf("AllowOrigin allocates %v times", n)
	}
}
