package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/proxy"
)

func backend(t *testing.T, name string) (string, uint32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), uint32(a.Port)
}

func snap(version uint64, port uint32, eps ...*dataplanev1.Endpoint) *dataplanev1.Snapshot {
	s := &dataplanev1.Snapshot{
		Version: version,
		Listeners: []*dataplanev1.Listener{{
			Name: "web", Address: "127.0.0.1", Port: port, Protocol: dataplanev1.Listener_HTTP,
			VirtualHosts: []*dataplanev1.VirtualHost{{Name: "all", Routes: []*dataplanev1.Route{{
				Name:     "all",
				Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "be"}, Weight: 1}},
			}}}},
		}},
		BackendGroups: []*dataplanev1.BackendGroup{{Name: "be", Endpoints: eps}},
	}
	s.Hash = dataplanev1.Hash(s)
	return s
}

// get returns the status and body of url as "200 body".
func get(t *testing.T, url string) string {
	t.Helper()
	code, body := enginetest.Get(t, nil, url)
	return fmt.Sprintf("%d %s", code, body)
}

// TestApplyEndpointsAndDrain drives the daemon as cmd/flax-dataplane does: apply a
// snapshot, serve, take the endpoint fast path, reject a bad snapshot keeping the last
// good one, then drain on cancel.
func TestApplyEndpointsAndDrain(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testApplyEndpointsAndDrain(t, eng) })
	}
}

func testApplyEndpointsAndDrain(t *testing.T, eng string) {
	aIP, aPort := backend(t, "a")
	bIP, bPort := backend(t, "b")
	port := uint32(enginetest.FreePort(t))
	d, err := New(Options{Workers: 2, Engine: eng, AdminAddr: "127.0.0.1:0", Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	s1 := snap(1, port, &dataplanev1.Endpoint{Address: aIP, Port: aPort})
	st, err := d.Apply(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || !st[0].Bound {
		t.Fatalf("listener statuses = %v", st)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if got := get(t, url); got != "200 a" {
		t.Fatalf("before endpoint update: %q", got)
	}

	// Endpoint-only update: the group now points at b.
	s2 := snap(2, port, &dataplanev1.Endpoint{Address: bIP, Port: bPort})
	if err := d.ApplyEndpoints(ctx, "be", s2); err != nil {
		t.Fatal(err)
	}
	if got := get(t, url); got != "200 b" {
		t.Fatalf("after endpoint update: %q", got)
	}
	if err := d.ApplyEndpoints(ctx, "nope", s2); err == nil {
		t.Error("endpoint update of an unknown group succeeded")
	}

	// A snapshot that fails to compile is rejected; the last good config keeps serving.
	bad := snap(3, port, &dataplanev1.Endpoint{Address: "not-an-ip", Port: 1})
	if _, err := d.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "endpoints[0].address") {
		t.Fatalf("bad snapshot: err = %v", err)
	}
	if got := get(t, url); got != "200 b" {
		t.Fatalf("after a rejected snapshot: %q", got)
	}
	dump, err := d.configDump()
	var dumped dataplanev1.Snapshot
	if err != nil || protojson.Unmarshal(dump, &dumped) != nil || dumped.GetVersion() != 2 {
		t.Errorf("config dump = %s, %v; want version 2", dump, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop after cancel")
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("listener still accepts after the daemon stopped")
	}
}

func TestSelectEngine(t *testing.T) {
	if _, err := New(Options{Engine: "bogus", Log: logr.Discard()}); err == nil || !strings.Contains(err.Error(), "unknown engine") {
		t.Errorf("bogus engine: %v", err)
	}
	d, err := New(Options{Engine: EngineNetpoll, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if d.EngineName() != "netpoll" {
		t.Errorf("engine = %s", d.EngineName())
	}
	// io_uring is available on the machines Flax is tested on: auto must pick it.
	d, err = New(Options{Engine: EngineAuto, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if d.EngineName() != "io_uring" {
		t.Errorf("auto chose %s, want io_uring", d.EngineName())
	}
}

// A snapshot applied with a rate limit unchanged keeps its bucket's tokens; one
// that changes the limit starts the bucket full.
func TestRateLimitKeptAcrossApply(t *testing.T) {
	ip, bport := backend(t, "a")
	port := uint32(enginetest.FreePort(t))
	d, err := New(Options{Workers: 2, Engine: EngineNetpoll, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	limited := func(version uint64, burst uint32, extraRoute bool) *dataplanev1.Snapshot {
		s := snap(version, port, &dataplanev1.Endpoint{Address: ip, Port: bport})
		vh := s.Listeners[0].VirtualHosts[0]
		vh.Routes[0].RateLimit = &dataplanev1.LocalRateLimit{Bucket: "all", Requests: 1, Interval: durationpb.New(time.Minute), Burst: burst}
		if extraRoute {
			vh.Routes = append(vh.Routes, &dataplanev1.Route{
				Name:           "extra",
				Matches:        []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_EXACT, Value: "/extra"}}},
				DirectResponse: &dataplanev1.DirectResponse{Status: 200},
			})
		}
		s.Hash = dataplanev1.Hash(s)
		return s
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	statuses := func(n int) string {
		var out []string
		for range n {
			out = append(out, get(t, url)[:3])
		}
		return strings.Join(out, " ")
	}
	if _, err := d.Apply(ctx, limited(1, 2, false)); err != nil {
		t.Fatal(err)
	}
	if got := statuses(3); got != "200 200 429" {
		t.Fatalf("burst of 2: %s", got)
	}
	if _, err := d.Apply(ctx, limited(2, 2, true)); err != nil {
		t.Fatal(err)
	}
	if got := statuses(1); got != "429" {
		t.Fatalf("after a snapshot with the same limit: %s, want the bucket still empty", got)
	}
	if _, err := d.Apply(ctx, limited(3, 3, true)); err != nil {
		t.Fatal(err)
	}
	if got := statuses(4); got != "200 200 200 429" {
		t.Fatalf("after a snapshot with a burst of 3: %s", got)
	}
}

// Options.Proxy reaches the sessions of both engines: with one trusted hop
// the client's X-Forwarded-For is kept and appended to.
func TestProxyOptionsReachEngines(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, r.Header.Get("X-Forwarded-For"))
			})}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close() })
			a := ln.Addr().(*net.TCPAddr)
			port := uint32(enginetest.FreePort(t))
			d, err := New(Options{Workers: 1, Engine: eng, Proxy: proxy.Options{TrustedHops: 1}, Log: logr.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if _, err := d.Apply(ctx, snap(1, port, &dataplanev1.Endpoint{Address: a.IP.String(), Port: uint32(a.Port)})); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "203.0.113.9, 127.0.0.1" {
				t.Fatalf("backend saw X-Forwarded-For %q, want the client's kept", body)
			}
		})
	}
}
