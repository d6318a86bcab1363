//go:build linux

package uring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/iouring/iouringtest"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// testLogger logs through t when -v is given.
func testLogger(t testing.TB) logr.Logger {
	if _, ok := t.(*testing.B); ok {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { t.Logf("%s %s", prefix, args) }, funcr.Options{Verbosity: 0})
}

// snapshotYAML builds a snapshot: listener "web" on port with routes to
// group "app" (backends), "/none" without route (404 from a host
// mismatch is covered by the vhost), "/dead" to group "dead" (refused) and
// "/direct" with a direct response.
func snapshotYAML(port int, backends []netip.AddrPort, dead netip.AddrPort, extra string) string {
	var eps strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&eps, "    - {address: %s, port: %d}\n", b.Addr(), b.Port())
	}
	return fmt.Sprintf(`
version: 1
listeners:
- name: web
  address: 127.0.0.1
  port: %d
  protocol: HTTP
  virtualHosts:
  - name: main
    routes:
    - name: dead
      matches: [{path: {type: PATH_PREFIX, value: /dead}}]
      backends: [{backendGroup: dead, weight: 1}]
    - name: direct
      matches: [{path: {type: EXACT, value: /direct}}]
      directResponse: {status: 200, body: "direct body\n"}
    - name: app
      matches: [{path: {type: PATH_PREFIX, value: /app}}]
      backends: [{backendGroup: app, weight: 1}]
%s
backendGroups:
- name: app
  connectTimeout: 2s
  endpoints:
%s- name: dead
  connectTimeout: 1s
  endpoints:
    - {address: %s, port: %d}
`, port, extra, eps.String(), dead.Addr(), dead.Port())
}

// testEngine is a running engine with a cancel func.
type testEngine struct {
	*Engine
	reg    *metrics.Registry
	cancel context.CancelFunc
	done   chan error
}

func startEngine(t testing.TB, workers int, popts proxy.Options) *testEngine {
	t.Helper()
	return startEngineWith(t, Options{Workers: workers, Proxy: popts})
}

// startEngineWith runs an engine with opts (its registry and log set here)
// until the test ends.
func startEngineWith(t testing.TB, opts Options) *testEngine {
	t.Helper()
	iouringtest.Require(t)
	reg := metrics.NewRegistry(opts.Workers)
	opts.Metrics, opts.Log = reg, testLogger(t)
	e, err := New(opts)
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEngine{Engine: e, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { te.done <- e.Run(ctx) }()
	t.Cleanup(te.stop)
	return te
}

func (te *testEngine) stop() {
	te.cancel()
	select {
	case <-te.done:
	case <-time.After(10 * time.Second):
		panic("engine did not stop")
	}
}

func (te *testEngine) apply(t testing.TB, cfg *compiled.Config) []engine.ListenerStatus {
	t.Helper()
	st, err := te.Apply(cfg)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return st
}

// appHandler answers the test routes.
func appHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/app/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
	})
	mux.HandleFunc("/app/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Request-Framing", "length")
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("X-Request-Framing", strings.Join(r.TransferEncoding, ","))
		}
		if r.URL.Query().Get("chunked") != "" {
			w.Header().Set("Content-Type", "application/octet-stream")
			fl := w.(http.Flusher)
			for len(b) > 0 {
				n := min(len(b), 10000)
				_, _ = w.Write(b[:n])
				fl.Flush()
				b = b[n:]
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/app/slowread", func(w http.ResponseWriter, r *http.Request) {
		// Reads the body slowly, then answers with its length and a checksum.
		var sum, n uint64
		buf := make([]byte, 8<<10)
		for {
			k, err := r.Body.Read(buf)
			for _, c := range buf[:k] {
				sum = sum*31 + uint64(c)
			}
			n += uint64(k)
			if err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		fmt.Fprintf(w, "%d %d", n, sum)
	})
	mux.HandleFunc("/app/slow", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprint(w, "slow done")
	})
	return mux
}

// deadAddr returns an address on which nothing listens.
func deadAddr(t testing.TB) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(enginetest.FreePort(t)))
}

// newClient returns an HTTP client with keep-alive to the engine.
func newClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64, DisableCompression: true,
	}}
}

// refused reports whether connecting to addr fails.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = c.Write([]byte("GET /app/hello HTTP/1.1\r\nHost: x\r\n\r\n"))
	var b [1]byte
	_, err = c.Read(b[:])
	return err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// activeConns sums the workers' open client connections.
func (te *testEngine) activeConns() int64 {
	te.mu.Lock()
	defer te.mu.Unlock()
	return active(te.workers)
}
