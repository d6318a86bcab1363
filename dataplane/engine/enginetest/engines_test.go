package enginetest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// workers is the number of workers of every engine under test: more than one,
// so that node-wide state is shared between workers.
const workers = 2

// kind is an engine under test.
type kind struct {
	name string
	// new returns an engine counting in reg; it skips the test when the
	// engine cannot run here.
	new func(t *testing.T, reg *metrics.Registry) engine.Engine
}

// engines are the engines every test runs on; uring_linux_test.go adds io_uring.
var engines = []kind{{name: "netpoll", new: newNetpoll}}

func newNetpoll(t *testing.T, reg *metrics.Registry) engine.Engine {
	e, err := netpoll.New(reg, netpoll.Options{Workers: workers, Logger: testr.New(t), LingerTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("new netpoll engine: %v", err)
	}
	return e
}

// forEachEngine runs f as a subtest per engine.
func forEachEngine(t *testing.T, f func(t *testing.T, k kind)) {
	t.Helper()
	for _, k := range engines {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

// testEngine is a running engine with its registry.
type testEngine struct {
	engine.Engine
	t      *testing.T
	reg    *metrics.Registry
	cancel context.CancelFunc
	done   chan error
}

// startEngine runs an engine of kind k, without a configuration, until the test
// ends.
func startEngine(t *testing.T, k kind) *testEngine {
	t.Helper()
	reg := metrics.NewRegistry(workers)
	e := k.new(t, reg)
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEngine{Engine: e, t: t, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { te.done <- e.Run(ctx) }()
	t.Cleanup(te.stop)
	return te
}

func (te *testEngine) stop() {
	te.cancel()
	select {
	case err := <-te.done:
		if err != nil {
			te.t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		te.t.Errorf("engine did not stop")
	}
}

// apply makes cfg the engine's configuration; every listener must bind.
func (te *testEngine) apply(cfg *compiled.Config) {
	te.t.Helper()
	st, err := te.Apply(cfg)
	if err != nil {
		te.t.Fatalf("apply: %v", err)
	}
	for _, s := range st {
		if !s.Bound {
			te.t.Fatalf("listener %s not bound: %v", s.Name, s.Err)
		}
	}
}

func compileYAML(t testing.TB, reg *metrics.Registry, y string) *compiled.Config {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse snapshot: %v\n%s", err, y)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("validate snapshot: %v\n%s", err, y)
	}
	cfg, err := compiled.Compile(snap, reg)
	if err != nil {
		t.Fatalf("compile snapshot: %v", err)
	}
	return cfg
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func itoa(i int) string { return strconv.Itoa(i) }

// dial opens a raw client connection to the proxy from the local address from
// ("" for any), with a deadline.
func dial(t testing.TB, port int, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatalf("dial proxy from %q: %v", from, err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response from br for a request with method.
func readResponse(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body.Close()
	return resp, body.String()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
