package dataplanev1_test

import (
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

func TestParseCORSOrigin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want dataplanev1.CORSOrigin
	}{
		{"*", dataplanev1.CORSOrigin{Any: true}},
		{"https://www.foo.com", dataplanev1.CORSOrigin{Scheme: "https", Host: "www.foo.com", Port: 443}},
		{"HTTP://WWW.Foo.com", dataplanev1.CORSOrigin{Scheme: "http", Host: "www.foo.com", Port: 80}},
		{"https://*.bar.com", dataplanev1.CORSOrigin{Scheme: "https", Host: ".bar.com", Suffix: true, Port: 443}},
		{"http://*:8080", dataplanev1.CORSOrigin{Scheme: "http", Port: 8080}},
		{"https://api.example.com:8443", dataplanev1.CORSOrigin{Scheme: "https", Host: "api.example.com", Port: 8443}},
	} {
		got, err := dataplanev1.ParseCORSOrigin(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCORSOrigin(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "**", "www.foo.com", "ftp://a.com", "https://", "https://a.com:", "https://a.com:65536", "https://a.*.com", "https://*a.com", "https://a.com/", "https://10.0.0.1"} {
		if o, err := dataplanev1.ParseCORSOrigin(bad); err == nil {
			t.Errorf("ParseCORSOrigin(%q) = %+v, want an error", bad, o)
		} else if !strings.Contains(err.Error(), "invalid origin") {
			t.Errorf("ParseCORSOrigin(%q) error %q does not say the origin is invalid", bad, err)
		}
	}
}

func TestParseCORSFilter(t *testing.T) {
	snap, err := dataplanev1.Parse([]byte(`
listeners:
  - name: l
    port: 80
    protocol: HTTP
    virtualHosts:
      - name: v
        routes:
          - name: r
            filters:
              - cors:
                  allowOrigins: ["https://*.example.com"]
                  allowCredentials: true
                  allowMethods: [GET, PUT]
                  allowHeaders: ["*"]
                  exposeHeaders: [x-request-id]
                  maxAgeSeconds: 3600
            directResponse: {status: 200}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c := snap.GetListeners()[0].GetVirtualHosts()[0].GetRoutes()[0].GetFilters()[0].GetCors()
	if c.GetAllowOrigins()[0] != "https://*.example.com" || !c.GetAllowCredentials() || len(c.GetAllowMethods()) != 2 ||
		c.GetAllowHeaders()[0] != "*" || c.GetExposeHeaders()[0] != "x-request-id" || c.GetMaxAgeSeconds() != 3600 {
		t.Errorf("cors = %v", c)
	}
}
