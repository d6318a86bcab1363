//go:build linux

package uring

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/iouring/iouringtest"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// setup starts an engine (2 workers), one backend and applies the test
// snapshot; it returns the engine, the backend and the listener's base URL.
func setup(t *testing.T, popts proxy.Options, extraRoutes string) (*testEngine, *enginetest.Backend, string) {
	t.Helper()
	te := startEngine(t, 2, popts)
	be := enginetest.StartBackend(t, appHandler())
	port := enginetest.FreePort(t)
	st := te.apply(t, enginetest.CompileYAML(t, te.reg, snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), extraRoutes)))
	if len(st) != 1 || !st[0].Bound || st[0].Err != nil {
		t.Fatalf("statuses: %+v", st)
	}
	return te, be, fmt.Sprintf("http://127.0.0.1:%d", port)
}

func TestGetKeepAlive(t *testing.T) {
	te := startEngine(t, 2, proxy.Options{})
	var conns atomic.Int32
	be := enginetest.StartBackendWith(t, appHandler(), func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	port := enginetest.FreePort(t)
	te.apply(t, enginetest.CompileYAML(t, te.reg, snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), "")))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := newClient()
	for i := 0; i < 50; i++ {
		code, body := enginetest.Get(t, c, fmt.Sprintf("%s/app/hello?n=%d", base, i))
		if code != 200 || body != fmt.Sprintf("hello %d", i) {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	// One client connection lands on one worker, whose keep-alive pool
	// reuses one upstream connection.
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 50 sequential requests, want 1", n)
	}
}

func TestManyClients(t *testing.T) {
	_, _, base := setup(t, proxy.Options{}, "")
	const clients, requests = 200, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient()
			defer cl.CloseIdleConnections()
			for r := 0; r < requests; r++ {
				n := c*1000 + r
				resp, err := cl.Get(fmt.Sprintf("%s/app/hello?n=%d", base, n))
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", c, r, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != fmt.Sprintf("hello %d", n) {
					errs <- fmt.Errorf("client %d request %d: %d %q: %w", c, r, resp.StatusCode, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// hideLen hides a reader's length so the HTTP client sends it chunked.
type hideLen struct{ r io.Reader }

func (h hideLen) Read(p []byte) (int, error) { return h.r.Read(p) }

func TestLargeBodies(t *testing.T) {
	_, _, base := setup(t, proxy.Options{}, "")
	payload := make([]byte, 1<<20)
	mrand.New(mrand.NewSource(1)).Read(payload)
	c := newClient()
	for _, tc := range []struct {
		name           string
		reqChunked     bool
		respChunkedArg string
	}{
		{"content-length both ways", false, ""},
		{"chunked request", true, ""},
		{"chunked response", false, "?chunked=1"},
		{"chunked both ways", true, "?chunked=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(payload)
			if tc.reqChunked {
				body = hideLen{body}
			}
			req, _ := http.NewRequest(http.MethodPost, base+"/app/echo"+tc.respChunkedArg, body)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
				t.Fatalf("status %d, %d bytes back, equal=%v", resp.StatusCode, len(got), bytes.Equal(got, payload))
			}
			want := "length"
			if tc.reqChunked {
				want = "chunked"
			}
			if got := resp.Header.Get("X-Request-Framing"); got != want {
				t.Fatalf("backend saw request framing %q, want %q", got, want)
			}
			if tc.respChunkedArg != "" && resp.ContentLength != -1 {
				t.Fatalf("response was not chunked (content-length %d)", resp.ContentLength)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	_, _, base := setup(t, proxy.Options{}, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var reqs strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&reqs, "GET /app/hello?n=%d HTTP/1.1\r\nHost: test\r\n\r\n", i)
	}
	reqs.WriteString("GET /direct HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	if _, err := conn.Write([]byte(reqs.String())); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := 1; i <= 6; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("hello %d", i)
		if i == 6 {
			want = "direct body\n"
		}
		if err != nil || resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("response %d: %d %q %v, want %q", i, resp.StatusCode, b, err, want)
		}
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after Connection: close: read %d, %v; want EOF", n, err)
	}
}

func TestLocalReplies(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB, larger than the Exchange buffers
	extra := fmt.Sprintf(`    - name: big
      matches: [{path: {type: EXACT, value: /big}}]
      directResponse: {status: 200, body: %q}
`, big)
	te, _, base := setup(t, proxy.Options{}, extra)
	c := newClient()
	if code, body := enginetest.Get(t, c, base+"/dead"); code != 502 {
		t.Errorf("refused backend: %d %q, want 502", code, body)
	}
	if code, body := enginetest.Get(t, c, base+"/nothing"); code != 404 {
		t.Errorf("no route: %d %q, want 404", code, body)
	}
	if code, body := enginetest.Get(t, c, base+"/direct"); code != 200 || body != "direct body\n" {
		t.Errorf("direct: %d %q", code, body)
	}
	for i := 0; i < 3; i++ {
		if code, body := enginetest.Get(t, c, base+"/big"); code != 200 || body != big {
			t.Fatalf("big direct response: %d, %d bytes", code, len(body))
		}
	}
	for i := 0; i < 10; i++ {
		enginetest.Get(t, c, fmt.Sprintf("%s/app/hello?n=%d", base, i))
	}
	// Everything went out of the Exchange arenas without copies.
	if n := te.copiedSends.Load(); n != 0 {
		t.Errorf("%d sends were copied, want 0", n)
	}
}

// TestHeapExchanges covers the fallback for sends from memory the ring
// does not own: each goes through a scratch buffer, in pieces, in order.
func TestHeapExchanges(t *testing.T) {
	heapExchanges.Store(true)
	defer heapExchanges.Store(false)
	te, _, base := setup(t, proxy.Options{}, "")
	payload := make([]byte, 1<<20)
	mrand.New(mrand.NewSource(2)).Read(payload)
	c := newClient()
	for i := 0; i < 3; i++ {
		resp, err := c.Post(base+"/app/echo", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d, %d bytes, %v", resp.StatusCode, len(got), err)
		}
		if code, body := enginetest.Get(t, c, base+"/app/hello?n=3"); code != 200 || body != "hello 3" {
			t.Fatalf("get: %d %q", code, body)
		}
	}
	if te.copiedSends.Load() == 0 {
		t.Errorf("no send went through a scratch buffer")
	}
}

func TestApplyWhileInFlight(t *testing.T) {
	te, be, base := setup(t, proxy.Options{}, "")
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	c := newClient()
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get(base + "/app/slow?d=400ms")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	time.Sleep(100 * time.Millisecond)
	// The new configuration drops the /app route: the request in flight
	// finishes on the old one, new requests see the new one.
	var p int
	fmt.Sscan(port, &p)
	y := strings.Replace(snapshotYAML(p, []netip.AddrPort{be.AddrPort()}, deadAddr(t), ""), "value: /app}", "value: /moved}", 1)
	y = strings.Replace(y, "version: 1", "version: 2", 1)
	st := te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	if !st[0].Bound {
		t.Fatalf("kept listener not bound: %+v", st[0])
	}
	if code, _ := enginetest.Get(t, newClient(), base+"/app/hello"); code != 404 {
		t.Errorf("request after apply: %d, want 404 (route removed)", code)
	}
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "slow done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if te.Current().Version != 2 {
		t.Errorf("current version %d, want 2", te.Current().Version)
	}
}

func TestListenerRemoved(t *testing.T) {
	te := startEngine(t, 2, proxy.Options{})
	be := enginetest.StartBackend(t, appHandler())
	p1, p2 := enginetest.FreePort(t), enginetest.FreePort(t)
	second := fmt.Sprintf(`- name: web2
  address: 127.0.0.1
  port: %d
  protocol: HTTP
  virtualHosts:
  - name: v2
    routes:
    - name: app2
      backends: [{backendGroup: app, weight: 1}]
`, p2)
	base := snapshotYAML(p1, []netip.AddrPort{be.AddrPort()}, deadAddr(t), "")
	withSecond := strings.Replace(base, "backendGroups:", second+"backendGroups:", 1)
	st := te.apply(t, enginetest.CompileYAML(t, te.reg, withSecond))
	if len(st) != 2 || !st[0].Bound || !st[1].Bound {
		t.Fatalf("statuses: %+v", st)
	}
	addr2 := fmt.Sprintf("127.0.0.1:%d", p2)
	if code, body := enginetest.Get(t, newClient(), "http://"+addr2+"/app/hello?n=7"); code != 200 || body != "hello 7" {
		t.Fatalf("second listener: %d %q", code, body)
	}
	// A keep-alive connection on the listener that goes away.
	kc, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	br := bufio.NewReader(kc)
	fmt.Fprintf(kc, "GET /app/hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	st = te.apply(t, enginetest.CompileYAML(t, te.reg, strings.Replace(base, "version: 1", "version: 2", 1)))
	if len(st) != 1 || !st[0].Bound {
		t.Fatalf("statuses after removal: %+v", st)
	}
	// The sockets were shut down by Apply itself.
	if c, err := net.DialTimeout("tcp", addr2, time.Second); err == nil {
		c.Close()
		t.Errorf("removed listener still accepts right after Apply")
	}
	enginetest.WaitFor(t, "removed listener to refuse", 2*time.Second, func() bool { return refused(addr2) })
	// Its idle keep-alive connection is closed.
	_ = kc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("idle connection of a removed listener: read %d, %v; want EOF", n, err)
	}
	if code, _ := enginetest.Get(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d/app/hello", p1)); code != 200 {
		t.Errorf("remaining listener: %d", code)
	}
}

func TestDrain(t *testing.T) {
	te, _, base := setup(t, proxy.Options{}, "")
	c := newClient()
	// An idle keep-alive connection, closed by Drain at once.
	idle, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ibr := bufio.NewReader(idle)
	fmt.Fprintf(idle, "GET /app/hello HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(ibr, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	type result struct {
		resp *http.Response
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get(base + "/app/slow?d=500ms")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp, string(b), err}
	}()
	time.Sleep(150 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- te.Drain(ctx) }()
	enginetest.WaitFor(t, "listener to refuse while draining", 2*time.Second, func() bool { return refused(strings.TrimPrefix(base, "http://")) })
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := ibr.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("idle connection during drain: read %d, %v; want EOF", n, err)
	}
	r := <-res
	if r.err != nil || r.resp.StatusCode != 200 || r.body != "slow done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if !r.resp.Close {
		t.Errorf("response during drain lacks Connection: close")
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	t.Logf("drain took %v", time.Since(start))
	if _, err := te.Apply(te.Current()); err == nil {
		t.Errorf("apply while draining succeeded")
	}
}

func TestDrainTimeout(t *testing.T) {
	te, _, base := setup(t, proxy.Options{}, "")
	res := make(chan error, 1)
	go func() {
		resp, err := newClient().Get(base + "/app/slow?d=3s")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		res <- err
	}()
	time.Sleep(150 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := te.Drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain: %v, want a deadline error", err)
	}
	if err := <-res; err == nil {
		t.Errorf("request cut by the drain timeout succeeded")
	}
}

func TestBindFailure(t *testing.T) {
	te := startEngine(t, 2, proxy.Options{})
	// A socket without SO_REUSEPORT holds the port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	st, err := te.Apply(enginetest.CompileYAML(t, te.reg, snapshotYAML(port, []netip.AddrPort{deadAddr(t)}, deadAddr(t), "")))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Bound || st[0].Err == nil || !strings.Contains(st[0].Err.Error(), "address already in use") {
		t.Fatalf("statuses: %+v", st)
	}
	if st[0].Name != "web" || st[0].Addr.Port() != uint16(port) {
		t.Errorf("status names %s %v", st[0].Name, st[0].Addr)
	}
}

func TestApplyBeforeRun(t *testing.T) {
	iouringtest.Require(t)
	e, err := New(Options{Workers: 1, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	be := enginetest.StartBackend(t, appHandler())
	port := enginetest.FreePort(t)
	st, err := e.Apply(enginetest.CompileYAML(t, e.reg, snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), "")))
	if err != nil || !st[0].Bound {
		t.Fatalf("apply: %v %+v", err, st)
	}
	// The socket is bound: a connection is queued until Run starts.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /app/hello?n=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil || !strings.HasSuffix(string(b), "hello 5") {
		t.Errorf("queued connection: %q %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if !refused(fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("listener still open after Run returned")
	}
}

func TestTimeouts(t *testing.T) {
	_, _, base := setup(t, proxy.Options{IdleTimeout: 300 * time.Millisecond, HeaderTimeout: 300 * time.Millisecond}, "")
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /app/hello HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want about 300ms", d)
	}
	// A partial head gets 408 once the header timeout passes.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	fmt.Fprintf(conn2, "GET /app/hello HTTP/1.1\r\nHost: x\r\n")
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 408 {
		t.Errorf("partial head: %d, want 408", resp.StatusCode)
	}
}

func TestStalePooledConnection(t *testing.T) {
	te := startEngine(t, 1, proxy.Options{})
	be := enginetest.StartBackendWith(t, appHandler(), func(s *http.Server) { s.IdleTimeout = 100 * time.Millisecond })
	port := enginetest.FreePort(t)
	te.apply(t, enginetest.CompileYAML(t, te.reg, snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), "")))
	c := newClient()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; i < 5; i++ {
		if code, body := enginetest.Get(t, c, fmt.Sprintf("%s/app/hello?n=%d", base, i)); code != 200 || body != fmt.Sprintf("hello %d", i) {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		// The backend closes its idle connection meanwhile: the pooled
		// connection's armed receive sees the EOF and leaves the pool.
		time.Sleep(250 * time.Millisecond)
	}
}

func TestTCPListener(t *testing.T) {
	te := startEngine(t, 2, proxy.Options{})
	be := enginetest.StartBackend(t, appHandler())
	port, tport := enginetest.FreePort(t), enginetest.FreePort(t)
	tcp := fmt.Sprintf(`- name: tcp
  address: 127.0.0.1
  port: %d
  protocol: TCP
  tcpRoute:
    name: tcp-route
    backends: [{backendGroup: app, weight: 1}]
`, tport)
	y := strings.Replace(snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), ""), "backendGroups:", tcp+"backendGroups:", 1)
	st := te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	if len(st) != 2 || !st[1].Bound {
		t.Fatalf("statuses: %+v", st)
	}
	// HTTP through the byte tunnel, then a half-close.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tport))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /app/hello?n=9 HTTP/1.1\r\nHost: x\r\n\r\nGET /app/hello?n=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil || !strings.Contains(string(b), "hello 9") || !strings.HasSuffix(string(b), "hello 10") {
		t.Fatalf("tunnel: %q %v", b, err)
	}
}

func TestHTTPSListenerNotServed(t *testing.T) {
	te := startEngine(t, 1, proxy.Options{})
	snap, err := dataplanev1.Parse([]byte(snapshotYAML(enginetest.FreePort(t), []netip.AddrPort{deadAddr(t)}, deadAddr(t), "")))
	if err != nil {
		t.Fatal(err)
	}
	cert, key := enginetest.SelfSigned(t, "test")
	l := snap.Listeners[0]
	l.Protocol = dataplanev1.Listener_HTTPS
	l.Certificates = []*dataplanev1.TLSCertificate{{CertPem: cert, KeyPem: key}}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatal(err)
	}
	cfg, err := compiled.Compile(snap, te.reg)
	if err != nil {
		t.Fatal(err)
	}
	st := te.apply(t, cfg)
	if len(st) != 1 || st[0].Bound || !errors.Is(st[0].Err, ErrHTTPS) {
		t.Fatalf("statuses: %+v", st)
	}
}

func TestConnectTimeout(t *testing.T) {
	te := startEngine(t, 1, proxy.Options{})
	// A listener that never accepts, with its queue full: further SYNs are
	// dropped and connects hang.
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rc, _ := l.SyscallConn()
	_ = rc.Control(func(fd uintptr) { _ = unix.Listen(int(fd), 0) })
	black := netip.MustParseAddrPort(l.Addr().String())
	var fill []net.Conn
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", black.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		fill = append(fill, c)
	}
	port := enginetest.FreePort(t)
	y := strings.Replace(snapshotYAML(port, []netip.AddrPort{black}, deadAddr(t), ""), "connectTimeout: 2s", "connectTimeout: 300ms", 1)
	te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	start := time.Now()
	code, _ := enginetest.Get(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d/app/hello", port))
	d := time.Since(start)
	if code != 502 {
		t.Errorf("connect timeout: %d, want 502", code)
	}
	if d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("connect timeout answered after %v, want about 300ms", d)
	}
}

func TestPoolBounds(t *testing.T) {
	te := startEngine(t, 1, proxy.Options{})
	var open, total atomic.Int32
	be := enginetest.StartBackendWith(t, appHandler(), func(s *http.Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
				total.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
	})
	port := enginetest.FreePort(t)
	y := strings.Replace(snapshotYAML(port, []netip.AddrPort{be.AddrPort()}, deadAddr(t), ""), "connectTimeout: 2s",
		"connectTimeout: 2s\n  idleTimeout: 300ms\n  maxIdleConnectionsPerEndpoint: 2", 1)
	te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := enginetest.Get(t, newClient(), base+"/app/slow?d=300ms"); code != 200 {
				t.Errorf("slow request: %d", code)
			}
		}()
	}
	wg.Wait()
	if n := total.Load(); n < 3 {
		t.Fatalf("only %d backend connections for 8 concurrent requests", n)
	}
	enginetest.WaitFor(t, "pool to keep at most 2 idle connections", 2*time.Second, func() bool { return open.Load() <= 2 })
	enginetest.WaitFor(t, "idle connections to expire", 3*time.Second, func() bool { return open.Load() == 0 })
}

func TestBackpressure(t *testing.T) {
	te, _, base := setup(t, proxy.Options{}, "")
	payload := make([]byte, 2<<20)
	mrand.New(mrand.NewSource(3)).Read(payload)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A slow client: the response waits in the proxy's buffers and
			// the receive from the backend is stopped and resumed.
			c := newClient()
			defer c.CloseIdleConnections()
			resp, err := c.Post(base+"/app/echo?chunked=1", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			got := make([]byte, 0, len(payload))
			buf := make([]byte, 64<<10)
			for {
				n, err := resp.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("slow reader got %d bytes, equal=%v", len(got), bytes.Equal(got, payload))
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A slow backend: the request body waits in the proxy.
			c := newClient()
			defer c.CloseIdleConnections()
			resp, err := c.Post(base+"/app/slowread", "application/octet-stream", bytes.NewReader(payload[:1<<20]))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var sum, n uint64
			for _, c := range payload[:1<<20] {
				sum = sum*31 + uint64(c)
			}
			n = 1 << 20
			if want := fmt.Sprintf("%d %d", n, sum); string(b) != want {
				t.Errorf("slow backend saw %q, want %q", b, want)
			}
		}()
	}
	wg.Wait()
	enginetest.WaitFor(t, "client connections to close", 5*time.Second, func() bool {
		return te.activeConns() == 0
	})
	if te.recvPauses.Load() == 0 {
		t.Errorf("no receive was paused for flow control")
	}
	t.Logf("receive pauses %d, buffer starvations %d", te.recvPauses.Load(), te.starvations.Load())
}

func TestClientAbort(t *testing.T) {
	te, _, base := setup(t, proxy.Options{}, "")
	payload := make([]byte, 4<<20)
	for i := 0; i < 20; i++ {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			fmt.Fprintf(conn, "POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(payload))
			_, _ = conn.Write(payload)
		}()
		buf := make([]byte, 1000)
		_, _ = conn.Read(buf) // some of the response, or nothing
		if i%2 == 0 {
			_ = conn.(*net.TCPConn).SetLinger(0) // reset
		}
		conn.Close()
	}
	enginetest.WaitFor(t, "aborted connections to be released", 5*time.Second, func() bool { return te.activeConns() == 0 })
	if code, body := enginetest.Get(t, newClient(), base+"/app/hello?n=1"); code != 200 || body != "hello 1" {
		t.Fatalf("after aborts: %d %q", code, body)
	}
}

// TestBufferStarvation runs concurrent traffic on a ring of 8 provided
// buffers: receives end with ENOBUFS and must resume once buffers return.
func TestBufferStarvation(t *testing.T) {
	testBufCount.Store(8)
	defer testBufCount.Store(0)
	te, _, base := setup(t, proxy.Options{}, "")
	payload := make([]byte, 512<<10)
	mrand.New(mrand.NewSource(4)).Read(payload)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			defer c.CloseIdleConnections()
			for r := 0; r < 5; r++ {
				resp, err := c.Post(base+"/app/echo", "application/octet-stream", bytes.NewReader(payload))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, payload) {
					t.Errorf("echo: %d bytes, %v", len(got), err)
					return
				}
				if code, body := enginetest.Get(t, c, fmt.Sprintf("%s/app/hello?n=%d", base, r)); code != 200 || body != fmt.Sprintf("hello %d", r) {
					t.Errorf("get: %d %q", code, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	enginetest.WaitFor(t, "client connections to close", 5*time.Second, func() bool { return te.activeConns() == 0 })
	if te.starvations.Load() == 0 {
		t.Errorf("no receive ran out of buffers")
	}
	t.Logf("receive pauses %d, buffer starvations %d", te.recvPauses.Load(), te.starvations.Load())
}

// TestHandshakeCap: over Options.MaxHandshakes handshakes in progress, a
// new connection closes the oldest one, so clients that stall in their
// handshake cannot keep others from starting theirs.
func TestHandshakeCap(t *testing.T) {
	const maxHandshakes = 4
	te := startEngineWith(t, Options{Workers: 1, HTTPS: true, MaxHandshakes: maxHandshakes})
	port := enginetest.FreePort(t)
	cert, key := enginetest.SelfSigned(t, "a.example.com")
	y := strings.Replace(snapshotYAML(port, []netip.AddrPort{deadAddr(t)}, deadAddr(t), ""), "  protocol: HTTP\n",
		fmt.Sprintf("  protocol: HTTPS\n  timeouts: {requestHead: 10s}\n  certificates:\n  - {certPem: %s, keyPem: %s}\n",
			base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(key)), 1)
	te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	hello := enginetest.ClientHello(t)
	var stalled []net.Conn
	for range 4 {
		c := enginetest.Dial(t, port)
		if _, err := c.Write(hello[:len(hello)/2]); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
		time.Sleep(20 * time.Millisecond) // in this order
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with %d stalled ones in progress: %v", len(stalled), err)
	}
	defer tc.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("handshake took %v", el)
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	if !closed(stalled[0]) {
		t.Fatal("the oldest stalled handshake is still open")
	}
	for i, c := range stalled[1:] {
		if closed(c) {
			t.Fatalf("stalled handshake %d closed, only the oldest should be", i+1)
		}
	}
}

// TestTLSIdleHoldsNoBuffers: TLS keep-alive connections between requests
// give their receive and send buffers back (an idle one holds its slot and
// TLS state only), and take them again for the next request.
func TestTLSIdleHoldsNoBuffers(t *testing.T) {
	te := startEngineWith(t, Options{Workers: 1, HTTPS: true})
	be := startRawBackend(t)
	port := enginetest.FreePort(t)
	cert, key := enginetest.SelfSigned(t, "a.example.com")
	y := strings.Replace(snapshotYAML(port, []netip.AddrPort{be.addr}, deadAddr(t), ""), "  protocol: HTTP\n",
		fmt.Sprintf("  protocol: HTTPS\n  certificates:\n  - {certPem: %s, keyPem: %s}\n",
			base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(key)), 1)
	te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	var conns []*bufio.Reader
	var tcs []*tls.Conn
	for range 20 {
		tc, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tcs = append(tcs, tc)
		conns = append(conns, bufio.NewReader(tc))
	}
	for round := range 2 {
		for i, tc := range tcs {
			io.WriteString(tc, "GET /app/x HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, _ := enginetest.ReadResponse(t, conns[i], "GET"); resp.StatusCode != 200 {
				t.Fatalf("round %d conn %d: status %d", round, i, resp.StatusCode)
			}
		}
		enginetest.WaitFor(t, "idle TLS connections to give their buffers back", 5*time.Second, func() bool {
			in, _ := te.reg.BufferBytes()
			return in == 0
		})
	}
}
