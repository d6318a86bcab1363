package enginetest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// The timeouts of the suite: short, so that the tests are quick, and at
// least five times the gaps of the transfers that must not be cut.
const (
	tHead      = "0.5s"
	tBodyIdle  = "1s"
	tSendStall = "0.5s"
	tKeepAlive = "0.5s"
	tRespHead  = "0.5s"
	tRespBody  = "0.5s"
)

// timeoutSnapshot is a listener on port with every timeout set, in front of
// the backend at addr.
func timeoutSnapshot(port int, addr string) string {
	host, p, _ := net.SplitHostPort(addr)
	return `
listeners:
- name: web
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTP
  timeouts: {requestHead: ` + tHead + `, requestBodyIdle: ` + tBodyIdle + `, sendStall: ` + tSendStall + `, keepAliveIdle: ` + tKeepAlive + `}
  virtualHosts:
  - name: all
    routes:
    - name: default
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
  responseHeaderTimeout: ` + tRespHead + `
  responseBodyIdleTimeout: ` + tRespBody + `
  endpoints:
  - {address: ` + host + `, port: ` + p + `}
`
}

// rawBackend serves every connection with handle, on its own goroutine.
type rawBackend struct {
	ln     net.Listener
	handle func(c net.Conn)
	closed atomic.Int32 // connections whose handler returned
}

func startRawBackend(t *testing.T, handle func(c net.Conn)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, handle: handle}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				defer b.closed.Add(1)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				b.handle(c)
			}()
		}
	}()
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

// readRequest reads a request head and its body from c.
func readRequest(c net.Conn, br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// echoLength answers each request with the length of its body.
func echoLength(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		_, body, err := readRequest(c, br)
		if err != nil {
			return
		}
		n := strconv.Itoa(len(body))
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(n))+"\r\n\r\n"+n); err != nil {
			return
		}
	}
}

func startTimeouts(t *testing.T, k kind, b *rawBackend) (*testEngine, int) {
	t.Helper()
	te := startEngine(t, k)
	port := FreePort(t)
	te.apply(CompileYAML(t, te.reg, timeoutSnapshot(port, b.addr())))
	return te, port
}

// expectClosed reads c until the proxy closes it, within limit; it returns
// what was read.
func expectClosed(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	var got strings.Builder
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %d bytes)", limit, got.Len())
	}
	return got.String()
}

func waitTimeouts(t *testing.T, te *testEngine, k metrics.TimeoutKind, n uint64) {
	t.Helper()
	WaitFor(t, k.String()+" timeouts", 5*time.Second, func() bool { return te.reg.Timeouts(k) >= n })
}

// A request head that does not come whole in time gets a 408 and a close.
func TestTimeoutSlowHead(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		te, port := startTimeouts(t, k, startRawBackend(t, echoLength))
		c := Dial(t, port)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n"); err != nil {
			t.Fatal(err)
		}
		got := expectClosed(t, c, 5*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
			t.Fatalf("reply %q, want 408", got)
		}
		waitTimeouts(t, te, metrics.TimeoutRequestHead, 1)
	})
}

// A request body that stops arriving gets a 408 and a close; one that
// keeps moving, however slowly, is forwarded whole.
func TestTimeoutSlowBody(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		te, port := startTimeouts(t, k, startRawBackend(t, echoLength))

		// Moving: a byte every 100ms for 3s (the body idle timeout is 1s).
		c := Dial(t, port)
		const n = 30
		if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		for range n {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte{'x'}); err != nil {
				t.Fatalf("slow body cut: %v", err)
			}
		}
		resp, body := ReadResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 200 || body != strconv.Itoa(n) {
			t.Fatalf("slow body: %d %q, want 200 %q", resp.StatusCode, body, strconv.Itoa(n))
		}
		if got := te.reg.Timeouts(metrics.TimeoutRequestBodyIdle); got != 0 {
			t.Fatalf("%d request body timeouts while the body moved", got)
		}

		// Stopped: 2 of 10 bytes, then nothing.
		c = Dial(t, port)
		if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"); err != nil {
			t.Fatal(err)
		}
		got := expectClosed(t, c, 5*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
			t.Fatalf("reply %q, want 408", got)
		}
		waitTimeouts(t, te, metrics.TimeoutRequestBodyIdle, 1)
	})
}

// A backend that takes the request and never answers: 504, and the client
// connection serves the next request.
func TestTimeoutSilentBackend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		silent := startRawBackend(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				req, _, err := readRequest(c, br)
				if err != nil {
					return
				}
				if req.URL.Path == "/ok" {
					io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				}
			}
		})
		te, port := startTimeouts(t, k, silent)
		c := Dial(t, port)
		br := bufio.NewReader(c)
		start := time.Now()
		io.WriteString(c, "GET /silent HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, _ := ReadResponse(t, br, "GET")
		if resp.StatusCode != 504 {
			t.Fatalf("status %d, want 504", resp.StatusCode)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("504 after %v", d)
		}
		waitTimeouts(t, te, metrics.TimeoutUpstreamResponseHeader, 1)
		if n := te.reg.LocalReplies(metrics.ReasonUpstreamHeaderTimeout); n != 1 {
			t.Fatalf("%d local replies for upstream_header_timeout, want 1", n)
		}
		// The backend connection was given up, not pooled.
		WaitFor(t, "the silent backend connection closed", 5*time.Second, func() bool { return silent.closed.Load() == 1 })
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := ReadResponse(t, br, "GET"); resp.StatusCode != 204 {
			t.Fatalf("next request: status %d, want 204", resp.StatusCode)
		}
	})
}

// A response body that stops arriving closes both connections.
func TestTimeoutUpstreamBodyIdle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startRawBackend(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, _, err := readRequest(c, br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			io.Copy(io.Discard, c) // until the proxy gives up
		})
		te, port := startTimeouts(t, k, b)
		c := Dial(t, port)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		got := expectClosed(t, c, 5*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\npartial") {
			t.Fatalf("client got %q", got)
		}
		waitTimeouts(t, te, metrics.TimeoutUpstreamBodyIdle, 1)
		WaitFor(t, "the backend connection closed", 5*time.Second, func() bool { return b.closed.Load() == 1 })
	})
}

// streamBackend answers with a body of size bytes (endless when 0) written
// as fast as the proxy takes it; wrote counts what it wrote.
func streamBackend(t *testing.T, size int, wrote *atomic.Int64) *rawBackend {
	return startRawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, _, err := readRequest(c, br); err != nil {
			return
		}
		head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
		if size == 0 {
			head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		}
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		chunk := make([]byte, 16<<10)
		for i := range chunk {
			chunk[i] = 'a' + byte(i%26)
		}
		for left := size; size == 0 || left > 0; {
			p := chunk
			if size == 0 {
				p = []byte("4000\r\n" + string(chunk) + "\r\n")
			} else if left < len(p) {
				p = p[:left]
			}
			n, err := c.Write(p)
			wrote.Add(int64(n))
			left -= n
			if err != nil {
				return
			}
		}
	})
}

// A client that stops reading a response is closed after the send stall
// timeout, and the backend connection with it; one that reads slowly but
// steadily gets the whole body.
func TestTimeoutStalledReader(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var wrote atomic.Int64
		b := streamBackend(t, 0, &wrote)
		te, port := startTimeouts(t, k, b)
		c := Dial(t, port)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		// The client reads nothing: every buffer on the way fills, the
		// proxy's send stalls, and the proxy gives up on both sides.
		waitTimeouts(t, te, metrics.TimeoutSendStall, 1)
		WaitFor(t, "the backend connection closed", 5*time.Second, func() bool { return b.closed.Load() == 1 })
		stopped := wrote.Load()
		t.Logf("backend wrote %d bytes", stopped)
		got := expectClosed(t, c, 5*time.Second)
		if int64(len(got)) >= stopped || len(got) == 0 {
			t.Fatalf("client read %d bytes of the %d the backend wrote", len(got), stopped)
		}
	})
}

func TestTimeoutSlowReaderNotCut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var wrote atomic.Int64
		const size = 64 << 10
		te, port := startTimeouts(t, k, streamBackend(t, size, &wrote))
		c := dialSmallWindow(t, port)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		// 1 KiB every 50ms: about 3s for the body, with gaps ten times
		// shorter than the 0.5s send stall timeout; one send of the proxy
		// (up to its 20 KiB buffer) takes longer than the timeout, so only
		// its progress keeps it alive.
		br := bufio.NewReaderSize(c, 1<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		total, err := ReadSlowly(resp.Body, 1<<10, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("after %d bytes: %v", total, err)
		}
		if total != size || te.reg.Timeouts(metrics.TimeoutSendStall) != 0 {
			t.Fatalf("read %d of %d bytes, %d send stalls", total, size, te.reg.Timeouts(metrics.TimeoutSendStall))
		}
	})
}

// dialSmallWindow connects to port with a 4 KiB receive buffer, set before
// the connection is made (so the window advertised is small from the
// start): the proxy's sends block as soon as the client stops reading.
func dialSmallWindow(t *testing.T, port int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) }); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// A keep-alive connection idle between requests is closed quietly after
// the listener's keep-alive idle timeout, not before.
func TestTimeoutKeepAliveIdle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		te, port := startTimeouts(t, k, startRawBackend(t, echoLength))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		for range 3 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, _ := ReadResponse(t, br, "GET"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			time.Sleep(50 * time.Millisecond) // a tenth of the timeout
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("idle connection: read %d, %v; want a quiet close", n, err)
		}
		waitTimeouts(t, te, metrics.TimeoutKeepAliveIdle, 1)
	})
}

// A TCP tunnel is closed once nothing moved either way for the listener's
// tunnel idle timeout, and kept while bytes keep moving at a slower pace than
// that.
func TestTimeoutTunnelIdle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startRawBackend(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
		te := startEngine(t, k)
		port := FreePort(t)
		host, p, _ := net.SplitHostPort(b.addr())
		te.apply(CompileYAML(t, te.reg, `
listeners:
- name: tcp
  address: 127.0.0.1
  port: `+strconv.Itoa(port)+`
  protocol: TCP
  timeouts: {tunnelIdle: 0.4s}
  tcpRoute: {name: echo, backends: [{backendGroup: echo, weight: 1}]}
backendGroups:
- name: echo
  endpoints: [{address: `+host+`, port: `+p+`}]
`))
		c := Dial(t, port)
		buf := make([]byte, 4)
		start := time.Now()
		var last time.Time
		for i := range 6 { // 0.6s of traffic, 4 bytes each way every 0.1s
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			io.WriteString(c, "ping")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("echo after %v: %v", time.Since(start), err)
			}
			last = time.Now()
		}
		expectClosed(t, c, 5*time.Second)
		if idle := time.Since(last); idle < 350*time.Millisecond {
			t.Errorf("closed %v after the last bytes moved, before the 0.4s tunnel idle timeout", idle)
		}
		waitTimeouts(t, te, metrics.TimeoutTunnelIdle, 1)
	})
}

// An attempt that gets no response head within the route's backendRequest
// timeout is abandoned and, when the retry policy says so, retried on another
// endpoint, body and all; without that setting the client gets 504.
func TestRetryOnBackendTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var silentReqs atomic.Int32
		silent := startRawBackend(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				if _, _, err := readRequest(c, br); err != nil {
					return
				}
				silentReqs.Add(1)
			}
		})
		good := startRawBackend(t, echoLength)
		for _, tc := range []struct {
			name  string
			retry string
			want  int
		}{
			{"retried", "retryOnBackendTimeout: true, ", 200},
			{"not retried", "", 504},
		} {
			t.Run(tc.name, func(t *testing.T) {
				te := startEngine(t, k)
				port := FreePort(t)
				y := strings.Replace(HTTPSnapshot(port, []string{silent.addr(), good.addr()}, "", "", ""),
					"      backends: [{backendGroup: app, weight: 1}]\n",
					"      backends: [{backendGroup: app, weight: 1}]\n"+
						"      timeouts: {request: 5s, backendRequest: 0.2s}\n"+
						"      retry: {attempts: 1, "+tc.retry+"backoffBase: 1ms, backoffMax: 2ms}\n", 1)
				cfg := CompileYAML(t, te.reg, y)
				te.apply(cfg)
				before := silentReqs.Load()
				// Round robin over two endpoints: of four requests, some reach
				// the silent one first.
				var statuses []int
				for range 4 {
					c := Dial(t, port)
					io.WriteString(c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
					resp, body := ReadResponse(t, bufio.NewReader(c), "POST")
					c.Close()
					statuses = append(statuses, resp.StatusCode)
					if resp.StatusCode == 200 && body != "5" {
						t.Fatalf("body %q, want the length of the replayed request body, 5", body)
					}
				}
				silentHits := int(silentReqs.Load() - before)
				if silentHits == 0 {
					t.Fatal("no request reached the silent endpoint")
				}
				timeouts, oks := 0, 0
				for _, st := range statuses {
					switch st {
					case 504:
						timeouts++
					case 200:
						oks++
					default:
						t.Fatalf("statuses %v: unexpected %d", statuses, st)
					}
				}
				retries := int(cfg.Group("app").Shared.RetriesFor(metrics.RetryBackendTimeout))
				if tc.want == 200 {
					// Every attempt that timed out was retried on the other endpoint.
					if oks != 4 || retries != silentHits {
						t.Fatalf("statuses %v, %d backend_timeout retries for %d silent attempts; want four 200s and a retry each", statuses, retries, silentHits)
					}
					return
				}
				if timeouts != silentHits || retries != 0 {
					t.Fatalf("statuses %v, %d backend_timeout retries for %d silent attempts; want a 504 each and no retry", statuses, retries, silentHits)
				}
			})
		}
	})
}
