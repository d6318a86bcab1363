package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/iouring/iouringtest"
	"github.com/flaxlb/flax/dataplane/lb"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// named starts a backend that answers its name.
func named(t *testing.T, name string) string {
	t.Helper()
	return enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })).Addr()
}

// startDaemon runs a daemon (2 workers; netpoll unless opts names an engine)
// serving snap until the test ends.
func startDaemon(t *testing.T, opts Options, snap *dataplanev1.Snapshot) *Daemon {
	t.Helper()
	opts.Workers, opts.Log = 2, logr.Discard()
	if opts.Engine == "" {
		opts.Engine = EngineNetpoll
	}
	if opts.Engine == EngineUring {
		if err := iouring.Probe(); err != nil {
			iouringtest.Unavailable(t, "io_uring: %v", err)
		}
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if snap != nil {
		if _, err := d.Apply(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// spread sends n requests to url and counts the answers by body.
func spread(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		code, body := enginetest.Get(t, nil, url)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, code, body)
		}
		got[body]++
	}
	return got
}

func addrs(bs []Backend) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Address+"/"+b.State)
	}
	return strings.Join(s, " ")
}

func TestApplyValidates(t *testing.T) {
	d := startDaemon(t, Options{}, nil)
	port := enginetest.FreePort(t)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), named(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	// A weight left out: rejected with the field named, instead of answering 500.
	bad := dataplanev1.ShallowCopy(s)
	bad.Listeners = []*dataplanev1.Listener{dataplanev1.ShallowCopy(s.GetListeners()[0])}
	bad.Listeners[0].VirtualHosts = []*dataplanev1.VirtualHost{{Name: "all", Routes: []*dataplanev1.Route{{
		Name:     "r",
		Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: lb.DefaultGroup}}},
	}}}}
	bad.Hash = ""
	if _, err := d.Apply(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "routes[0].backends: every weight is 0") {
		t.Fatalf("snapshot without weights: err = %v", err)
	}
	if d.Current() != nil {
		t.Fatal("a rejected snapshot became current")
	}
	if err := d.ApplyEndpoints(context.Background(), lb.DefaultGroup, s); err == nil {
		t.Error("endpoint update before any config succeeded")
	}
	if _, err := d.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if d.Current() != s {
		t.Error("Current is not the applied snapshot")
	}
	// The fast path validates the group's endpoints: no endpoint twice.
	dup := dataplanev1.ShallowCopy(s)
	g := dataplanev1.ShallowCopy(s.GetBackendGroups()[0])
	g.Endpoints = append(g.GetEndpoints()[:1:1], g.GetEndpoints()[0])
	dup.BackendGroups = []*dataplanev1.BackendGroup{g}
	if err := d.ApplyEndpoints(context.Background(), lb.DefaultGroup, dup); err == nil || !strings.Contains(err.Error(), "duplicate endpoint") {
		t.Errorf("duplicate endpoints: err = %v", err)
	}
	if d.Current() != s {
		t.Error("a rejected endpoint update became current")
	}
	if _, err := d.Pool("nope"); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("Pool of an unknown group: err = %v", err)
	}
}

func TestPoolAddRemoveList(t *testing.T) {
	a, b, c, x := named(t, "a"), named(t, "b"), named(t, "c"), named(t, "x")
	port := enginetest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := d.Pool(lb.DefaultGroup); again != p {
		t.Error("a second Pool of the same group is another handle")
	}
	list, err := p.List()
	if err != nil || len(list) != 3 || list[0] != (Backend{Address: a, Weight: 1, State: StateReady, Healthy: true}) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if got := spread(t, url, 6); got["a"] != 2 || got["b"] != 2 || got["c"] != 2 {
		t.Fatalf("round robin over three: %v", got)
	}

	if err := p.Add(x); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(x); !errors.Is(err, ErrBackendExists) {
		t.Errorf("adding twice: err = %v", err)
	}
	if err := p.Add("backend:80"); err == nil {
		t.Error("a host name was accepted")
	}
	if got := spread(t, url, 8); got["x"] != 2 || len(got) != 4 {
		t.Fatalf("after adding x: %v", got)
	}
	if err := p.Remove(a); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(a); !errors.Is(err, ErrBackendNotFound) {
		t.Errorf("removing twice: err = %v", err)
	}
	if got := spread(t, url, 6); got["a"] != 0 || got["b"] != 2 || got["c"] != 2 || got["x"] != 2 {
		t.Fatalf("after removing a: %v", got)
	}
	if list, _ := p.List(); addrs(list) != b+"/ready "+c+"/ready "+x+"/ready" {
		t.Errorf("List = %s", addrs(list))
	}
	cur := d.Current()
	if cur.GetVersion() != s.GetVersion() || cur.GetHash() == s.GetHash() || cur.GetHash() != dataplanev1.Hash(cur) || len(cur.GetBackendGroups()[0].GetEndpoints()) != 3 {
		t.Errorf("current config: version %d hash %s, %d endpoints", cur.GetVersion(), cur.GetHash(), len(cur.GetBackendGroups()[0].GetEndpoints()))
	}
	if len(s.GetBackendGroups()[0].GetEndpoints()) != 3 || s.GetBackendGroups()[0].GetEndpoints()[0].GetPort() == 0 {
		t.Error("the runtime changes modified the applied snapshot")
	}
	dump, err := d.configDump()
	if err != nil || !strings.Contains(string(dump), x[strings.LastIndex(x, ":")+1:]) {
		t.Errorf("config dump does not show the added backend: %s", dump)
	}
	if n := d.Metrics().RuntimeChanges(metrics.RuntimeAdd); n != 1 {
		t.Errorf("adds counted: %d", n)
	}
	if n := d.Metrics().RuntimeChanges(metrics.RuntimeRemove); n != 1 {
		t.Errorf("removes counted: %d", n)
	}

	// A later config wins over runtime changes.
	if _, err := d.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if list, _ := p.List(); addrs(list) != a+"/ready "+b+"/ready "+c+"/ready" {
		t.Errorf("after a reload: List = %s", addrs(list))
	}
	if got := spread(t, url, 3); got["a"] != 1 || got["x"] != 0 {
		t.Errorf("after a reload: %v", got)
	}
}

func TestPoolDrain(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testPoolDrain(t, eng) })
	}
}

func testPoolDrain(t *testing.T, eng string) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "slow")
	})).Addr()
	fast := named(t, "fast")
	port := enginetest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), slow)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{Engine: eng, DrainTimeout: time.Minute}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	// A request in flight on the endpoint to drain.
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "slow")
		if err != nil {
			inflight <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.StatusCode, " ")
		buf := make([]byte, 64)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		inflight <- b.String()
	}()
	<-entered
	if err := p.Add(fast); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain(slow); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain(slow); err != nil {
		t.Errorf("draining twice: %v", err)
	}
	if err := p.Drain("127.0.0.1:1"); !errors.Is(err, ErrBackendNotFound) {
		t.Errorf("draining an unknown backend: err = %v", err)
	}
	if list, _ := p.List(); addrs(list) != slow+"/draining "+fast+"/ready" {
		t.Fatalf("List = %s", addrs(list))
	}
	if got := spread(t, url, 5); got["fast"] != 5 {
		t.Fatalf("new requests while draining: %v", got)
	}
	// The finished requests leave the gauge just after their responses.
	enginetest.WaitFor(t, "one request in flight", 5*time.Second, func() bool { return p.InFlight() == 1 })
	// The endpoint stays while its request is in flight.
	time.Sleep(5 * drainPoll)
	if list, _ := p.List(); addrs(list) != slow+"/draining "+fast+"/ready" {
		t.Fatalf("with a request in flight: List = %s", addrs(list))
	}
	close(release)
	if got := <-inflight; got != "200 slow" {
		t.Fatalf("the in-flight request got %q", got)
	}
	enginetest.WaitFor(t, "the drained endpoint to leave", 5*time.Second, func() bool {
		list, _ := p.List()
		return addrs(list) == fast+"/ready"
	})
	if n := d.Metrics().RuntimeChanges(metrics.RuntimeDrained); n != 1 {
		t.Errorf("drained counted: %d", n)
	}
}

func TestPoolDrainTimeoutAndReload(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testPoolDrainTimeoutAndReload(t, eng) })
	}
}

func testPoolDrainTimeoutAndReload(t *testing.T, eng string) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	entered := make(chan struct{}, 1)
	slow := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprint(w, "slow")
	})).Addr()
	port := enginetest.FreePort(t)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), slow)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{Engine: eng, DrainTimeout: 200 * time.Millisecond}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	// One request stays in flight until the end.
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	<-entered
	// A reload while draining: the config wins and the drain is forgotten.
	if err := p.Drain(slow); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if list, _ := p.List(); addrs(list) != slow+"/ready" {
		t.Fatalf("after a reload during a drain: List = %s", addrs(list))
	}
	// A drain that never sees the group idle ends at its timeout.
	if err := p.DrainWithin(slow, -time.Second); err == nil {
		t.Error("a negative drain timeout was accepted")
	}
	start := time.Now()
	if err := p.DrainWithin(slow, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, "the drain to time out", 5*time.Second, func() bool {
		list, _ := p.List()
		return len(list) == 0
	})
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("the drain ended after %s, before its timeout", took)
	}
	if p.InFlight() != 1 {
		t.Errorf("in flight = %d, want the stuck request", p.InFlight())
	}
	// Removing its endpoint did not cut it.
	once.Do(func() { close(release) })
	if got := <-result; got != "200 slow" {
		t.Errorf("the request in flight on the removed endpoint got %q", got)
	}
}

// TestPoolAndEndpointUpdates: an endpoint update of a group replaces that group's
// runtime changes and keeps the other groups', and Current shows what runs.
func TestPoolAndEndpointUpdates(t *testing.T) {
	a, b, x := named(t, "a"), named(t, "b"), named(t, "x")
	port := enginetest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), a)
	if err != nil {
		t.Fatal(err)
	}
	// A second group, "spare", that no route uses.
	spare, _ := lb.Endpoint(b, 1)
	s.BackendGroups = append(s.BackendGroups, &dataplanev1.BackendGroup{Name: "spare", Endpoints: []*dataplanev1.Endpoint{spare}})
	s.Hash = dataplanev1.Hash(s)
	d := startDaemon(t, Options{}, s)
	be, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := d.Pool("spare")
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Add(x); err != nil {
		t.Fatal(err)
	}
	if err := sp.Remove(b); err != nil {
		t.Fatal(err)
	}
	// The controller (or a caller) updates "spare" from its own base, s.
	upd := dataplanev1.ShallowCopy(s)
	upd.BackendGroups = slices.Clone(s.BackendGroups)
	g := dataplanev1.ShallowCopy(s.BackendGroups[1])
	c, _ := lb.Endpoint(a, 1)
	g.Endpoints = []*dataplanev1.Endpoint{spare, c}
	upd.BackendGroups[1] = g
	upd.Version++
	upd.Hash = dataplanev1.Hash(upd)
	if err := d.ApplyEndpoints(context.Background(), "spare", upd); err != nil {
		t.Fatal(err)
	}
	if list, _ := sp.List(); addrs(list) != b+"/ready "+a+"/ready" {
		t.Errorf("spare after the update: %s", addrs(list))
	}
	if list, _ := be.List(); addrs(list) != a+"/ready "+x+"/ready" {
		t.Errorf("the other group lost its runtime change: %s", addrs(list))
	}
	if got := spread(t, url, 4); got["x"] != 2 {
		t.Errorf("traffic after the update: %v", got)
	}
	cur := d.Current()
	if cur.GetVersion() != upd.GetVersion() || cur.GetHash() != dataplanev1.Hash(cur) || len(cur.GetBackendGroups()[0].GetEndpoints()) != 2 {
		t.Errorf("current: version %d, group %v", cur.GetVersion(), cur.GetBackendGroups()[0])
	}
}

// greeter starts a TCP backend that writes its name to every connection and then
// echoes.
func greeter(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, name)
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// greeting connects to the proxy and returns the connection and the backend's name.
func greeting(t *testing.T, port int) (net.Conn, string) {
	t.Helper()
	c := enginetest.Dial(t, port)
	buf := make([]byte, 1)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("no greeting: %v", err)
	}
	return c, string(buf)
}

// TestPoolDrainTCP: a drained endpoint of a TCP group stays while a tunnel to it is
// open and leaves when it closes.
func TestPoolDrainTCP(t *testing.T) {
	a, b := greeter(t, "a"), greeter(t, "b")
	port := enginetest.FreePort(t)
	s, err := lb.TCPProxy(fmt.Sprintf("127.0.0.1:%d", port), a)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{DrainTimeout: time.Minute}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	tunnel, name := greeting(t, port)
	if name != "a" {
		t.Fatalf("first tunnel went to %q", name)
	}
	if err := p.Add(b); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain(a); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, name := greeting(t, port)
		c.Close()
		if name != "b" {
			t.Fatalf("a new tunnel went to %q while a drains", name)
		}
	}
	// The open tunnel still works and keeps a in the group.
	if _, err := tunnel.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(tunnel, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo through the draining tunnel: %q %v", buf, err)
	}
	time.Sleep(5 * drainPoll)
	if list, _ := p.List(); addrs(list) != a+"/draining "+b+"/ready" {
		t.Fatalf("with a tunnel open: List = %s", addrs(list))
	}
	tunnel.Close()
	enginetest.WaitFor(t, "the drained endpoint to leave", 5*time.Second, func() bool {
		list, _ := p.List()
		return addrs(list) == b+"/ready"
	})
}

// TestNewEngine: a daemon runs the engine its program made, with the daemon's
// metrics, and serves through it.
func TestNewEngine(t *testing.T) {
	var got EngineDeps
	opts := Options{NewEngine: func(deps EngineDeps) (engine.Engine, error) {
		got = deps
		return netpoll.New(deps.Metrics, netpoll.Options{Workers: 1, Proxy: deps.Proxy, Limits: deps.Limits, Logger: deps.Log})
	}}
	port := enginetest.FreePort(t)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), named(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, opts, s)
	if got.Metrics != d.Metrics() || got.Workers != 2 || got.Limits.Connections == nil {
		t.Errorf("engine deps = %+v", got)
	}
	if d.EngineName() != "netpoll" {
		t.Errorf("engine = %s", d.EngineName())
	}
	if r := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); r != "200 a" {
		t.Errorf("through the injected engine: %s", r)
	}
	if _, err := New(Options{NewEngine: func(EngineDeps) (engine.Engine, error) { return nil, nil }, Log: logr.Discard()}); err == nil {
		t.Error("a nil engine was accepted")
	}
}

// TestPoolWithAlgorithm: a group balanced by a registered algorithm (here the
// built-in round robin by its registered name) changes at run time like any other.
func TestPoolWithAlgorithm(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	port := enginetest.FreePort(t)
	s, err := lb.Proxy{Listen: fmt.Sprintf("127.0.0.1:%d", port), Backends: []string{a}, Algorithm: "round_robin"}.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(b); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 4); got["a"] != 2 || got["b"] != 2 {
		t.Errorf("traffic: %v", got)
	}
}

// TestPoolOfRemovedGroup: a config without the group retires its pool.
func TestPoolOfRemovedGroup(t *testing.T) {
	a := named(t, "a")
	port := enginetest.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	s1, err := lb.HTTPProxy(listen, a)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{}, s1)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := lb.Proxy{Listen: listen, Backends: []string{a}, Group: "other"}.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(context.Background(), s2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("List of a removed group: err = %v", err)
	}
	// The group comes back: the old handle stays retired, a new one works.
	if _, err := d.Apply(context.Background(), s1); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(named(t, "b")); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("Add through a retired handle: err = %v", err)
	}
	p2, err := d.Pool(lb.DefaultGroup)
	if err != nil || p2 == p {
		t.Fatalf("Pool after the group returned: %v, same handle %v", err, p2 == p)
	}
	if list, err := p2.List(); err != nil || len(list) != 1 {
		t.Errorf("List = %v, %v", list, err)
	}
}

// TestPoolStartsEmpty: a proxy built without backends answers 503 until the first
// is added.
func TestPoolStartsEmpty(t *testing.T) {
	port := enginetest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Options{}, s)
	if code, _ := enginetest.Get(t, nil, url); code != http.StatusServiceUnavailable {
		t.Errorf("without backends: %d, want 503", code)
	}
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(named(t, "a")); err != nil {
		t.Fatal(err)
	}
	if r := get(t, url); r != "200 a" {
		t.Errorf("after the first add: %s", r)
	}
}

// TestPoolListsHealth: List says which backends health checks keep out.
func TestPoolListsHealth(t *testing.T) {
	good := named(t, "good")
	bad := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})).Addr()
	port := enginetest.FreePort(t)
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), good, bad)
	if err != nil {
		t.Fatal(err)
	}
	s.BackendGroups[0].HealthCheck = &dataplanev1.HealthCheck{
		Path: "/health", Interval: durationpb.New(20 * time.Millisecond), Timeout: durationpb.New(20 * time.Millisecond), UnhealthyThreshold: 1,
	}
	s.Hash = dataplanev1.Hash(s)
	d := startDaemon(t, Options{}, s)
	p, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, "the failing backend to be unhealthy", 5*time.Second, func() bool {
		list, _ := p.List()
		return len(list) == 2 && list[0].Healthy && !list[1].Healthy
	})
}
