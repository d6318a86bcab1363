package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/metrics"
)

func TestEndpoints(t *testing.T) {
	reg := metrics.NewRegistry(1)
	reg.SetEngine("uring", "")
	s, err := New(Options{
		Addr:       "127.0.0.1:0",
		Collectors: []prometheus.Collector{reg},
		ConfigDump: func() ([]byte, error) { return []byte(`{"version":"3"}`), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr()

	if code, _ := enginetest.Get(t, nil, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _ := enginetest.Get(t, nil, base+"/readyz"); code != 200 {
		t.Errorf("/readyz without a Ready func = %d, want 200", code)
	}
	if code, body := enginetest.Get(t, nil, base+"/metrics"); code != 200 || !strings.Contains(body, `flax_engine_info{engine="uring",reason=""} 1`) {
		t.Errorf("/metrics = %d, missing flax_engine_info:\n%s", code, body)
	}
	if code, body := enginetest.Get(t, nil, base+"/config_dump"); code != 200 || body != `{"version":"3"}` {
		t.Errorf("/config_dump = %d %q", code, body)
	}
	if code, _ := enginetest.Get(t, nil, base+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without the flag: %d", code)
	}
}

func TestConfigDumpLoopbackOnly(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0", ConfigDump: func() ([]byte, error) { return []byte("{}"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]int{"10.1.2.3:4000": 403, "[2001:db8::1]:80": 403, "127.0.0.1:5000": 200, "[::1]:80": 200} {
		req := httptest.NewRequest("GET", "/config_dump", nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("config_dump from %s = %d, want %d", addr, rec.Code, want)
		}
	}
}

func TestReadyFunc(t *testing.T) {
	var why error = errors.New("no config applied yet")
	s, err := New(Options{Addr: "127.0.0.1:0", Ready: func() error { return why }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr()
	if code, body := enginetest.Get(t, nil, base+"/readyz"); code != 503 || !strings.Contains(body, "no config applied yet") {
		t.Errorf("/readyz = %d %q, want 503 with the reason", code, body)
	}
	why = nil
	if code, _ := enginetest.Get(t, nil, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200 once Ready returns nil", code)
	}
}

func TestReusePort(t *testing.T) {
	start := func(reuse bool, addr string) (*Server, error) {
		s, err := New(Options{Addr: addr, ReusePort: reuse})
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Start()
	}
	first, err := start(true, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(context.Background())
	second, err := start(true, first.Addr())
	if err != nil {
		t.Fatalf("second server with ReusePort on %s: %v", first.Addr(), err)
	}
	defer second.Shutdown(context.Background())
	if _, err := start(false, first.Addr()); err == nil {
		t.Errorf("a server without ReusePort bound %s, which two servers hold", first.Addr())
	}
	if code, _ := enginetest.Get(t, nil, "http://"+first.Addr()+"/healthz"); code != 200 {
		t.Errorf("/healthz on the shared port = %d", code)
	}
}

func TestRoutes(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello " + r.PathValue("name"))) })
	s, err := New(Options{Addr: "127.0.0.1:0", Routes: []Route{
		{Pattern: "GET /open/{name}", Handler: hello},
		{Pattern: "POST /local/{name}", Handler: hello, LoopbackOnly: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, from string
		code               int
		body               string
	}{
		{"GET", "/open/a", "10.1.2.3:4000", 200, "hello a"},
		{"POST", "/local/b", "127.0.0.1:5000", 200, "hello b"},
		{"POST", "/local/b", "[::ffff:127.0.0.1]:5000", 200, "hello b"},
		{"POST", "/local/b", "10.1.2.3:4000", 403, "loopback clients only"},
		{"GET", "/local/b", "127.0.0.1:5000", 405, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.RemoteAddr = tc.from
		rec := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s %s from %s = %d %q, want %d %q", tc.method, tc.path, tc.from, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
	if _, err := New(Options{Addr: "127.0.0.1:0", Routes: []Route{{Pattern: "/metrics", Handler: hello}}}); err == nil {
		t.Error("a route that conflicts with /metrics was accepted")
	}
}
