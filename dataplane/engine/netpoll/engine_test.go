package netpoll

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/proxy"
)

func TestKeepAliveAndPipelining(t *testing.T) {
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s xff=%s proto=%s", r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	}))
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	// Three pipelined requests in one write, then one more on the same
	// connection.
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, p := range []string{"/a", "/b", "/c"} {
		resp, body := enginetest.ReadResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != "path="+p+" xff=127.0.0.1 proto=http" {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	io.WriteString(c, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := enginetest.ReadResponse(t, br, "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "path=/d ") {
		t.Fatalf("/d: %d %q", resp.StatusCode, body)
	}
	if conns, reqs := be.Counts(); conns != 1 || reqs != 4 {
		t.Fatalf("backend saw %d connections, %d requests; want 1 connection reused", conns, reqs)
	}
}

func TestChunkedBothWays(t *testing.T) {
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			http.Error(w, "request not chunked", 400)
			return
		}
		for _, part := range bytes.Split(body, []byte(" ")) {
			w.Write(part)
			w.(http.Flusher).Flush()
		}
	}))
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n")
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, "5\r\nworld\r\n0\r\n\r\n")
	resp, body := enginetest.ReadResponse(t, br, "POST")
	if resp.StatusCode != 200 || body != "helloworld" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d body %q transfer-encoding %v", resp.StatusCode, body, resp.TransferEncoding)
	}
}

func TestLargeBodiesStream(t *testing.T) {
	const size = 10 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	want := sha256.Sum256(payload)
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
				http.Error(w, fmt.Sprintf("got %d bytes, err %v", n, err), 400)
				return
			}
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(payload)
	}))
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://127.0.0.1:%d/big", port)
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(payload))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("upload: %d %q", resp.StatusCode, b)
	}
	resp, err = client.Get(url)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("download: %d bytes, err %v", n, err)
	}
	// Chunked upload of the same payload, streamed by the client.
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < size; off += 1 << 20 {
			pw.Write(payload[off : off+1<<20])
		}
		pw.Close()
	}()
	req, _ = http.NewRequest("PUT", url, pr)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("chunked upload: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("chunked upload: %d %q", resp.StatusCode, b)
	}
}

// rawBackend accepts connections and runs serve on each.
func rawBackend(t *testing.T, serve func(net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

// readHead reads a message head from br.
func readHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	addr, _ := rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readHead(br)
		if err != nil || !strings.Contains(head, "Upgrade: websocket\r\n") || !strings.Contains(head, "Connection: upgrade\r\n") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nwelcome;")
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				c.Write(bytes.ToUpper(buf[:n]))
			}
			if err != nil {
				return
			}
		}
	})
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	head, err := readHead(br)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade head %q: %v", head, err)
	}
	got := make([]byte, len("welcome;"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "welcome;" {
		t.Fatalf("server bytes %q: %v", got, err)
	}
	for i := range 50 {
		msg := fmt.Sprintf("message %d;", i)
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != strings.ToUpper(msg) {
			t.Fatalf("echo %q: %v", got, err)
		}
	}
	// Half-close: the backend sees EOF, closes, and so does the proxy.
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q, %v", rest, err)
	}
}

func TestBackendDiesMidResponse(t *testing.T) {
	addr, _ := rawBackend(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
	})
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(got), "\r\n\r\nonly ten b") {
		t.Fatalf("client got %q, want the truncated response then EOF", got)
	}
}

func TestRefusedConnect(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{dead}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := enginetest.ReadResponse(t, br, "GET")
	if resp.StatusCode != 502 || body != "bad gateway\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	// The connection stays usable.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := enginetest.ReadResponse(t, br, "GET"); resp.StatusCode != 502 {
		t.Fatalf("second request got %d", resp.StatusCode)
	}
}

func TestHangingBackendTimesOut(t *testing.T) {
	addr, _ := rawBackend(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		time.Sleep(5 * time.Second)
	})
	port := enginetest.FreePort(t)
	route := `    - name: slow
      matches: [{path: {type: PATH_PREFIX, value: /slow}}]
      timeouts: {backendRequest: 300ms}
      backends: [{backendGroup: app, weight: 1}]
`
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", route, ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	start := time.Now()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := enginetest.ReadResponse(t, br, "GET")
	if el := time.Since(start); resp.StatusCode != 504 || el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("got %d after %v, want 504 after 300ms", resp.StatusCode, el)
	}
}

func TestSlowClientGets408(t *testing.T) {
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{HeaderTimeout: 300 * time.Millisecond})
	c := enginetest.Dial(t, port)
	io.WriteString(c, "GET / HTTP/1.1\r\nHo")
	start := time.Now()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 408 Request Timeout\r\n") || !strings.Contains(string(got), "Connection: close\r\n") {
		t.Fatalf("got %q", got)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("408 after %v", el)
	}
	if _, reqs := be.Counts(); reqs != 0 {
		t.Fatal("the backend saw the slow request")
	}
}

func TestSmugglingRejected(t *testing.T) {
	addr, accepted := rawBackend(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 400 Bad Request\r\n") || strings.Count(string(got), "HTTP/1.1") != 1 {
		t.Fatalf("got %q, want one 400 and a close", got)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("backend accepted %d connections", n)
	}
}

func TestConfigSwapWhileInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "old backend")
	}))
	port := enginetest.FreePort(t)
	te := startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	// Swap to a configuration that answers directly.
	swapped := strings.Replace(enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""),
		"      backends: [{backendGroup: app, weight: 1}]\n", "      directResponse: {status: 200, body: new config}\n", 1)
	te.apply(swapped)
	close(release)
	if resp, body := enginetest.ReadResponse(t, br, "GET"); resp.StatusCode != 200 || body != "old backend" {
		t.Fatalf("in-flight request: %d %q", resp.StatusCode, body)
	}
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := enginetest.ReadResponse(t, br, "GET"); resp.StatusCode != 200 || body != "new config" {
		t.Fatalf("next request on the same connection: %d %q", resp.StatusCode, body)
	}
	c2 := enginetest.Dial(t, port)
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := enginetest.ReadResponse(t, bufio.NewReader(c2), "GET"); body != "new config" {
		t.Fatalf("new connection: %d %q", resp.StatusCode, body)
	}
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be := enginetest.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}))
	port := enginetest.FreePort(t)
	te := startEngine(t, enginetest.HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), proxy.Options{})
	idle := enginetest.Dial(t, port)
	ibr := bufio.NewReader(idle)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	enginetest.ReadResponse(t, ibr, "GET")
	busy := enginetest.Dial(t, port)
	bbr := bufio.NewReader(busy)
	io.WriteString(busy, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- te.Drain(ctx)
	}()
	// The idle connection is closed at once.
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	// New connections are refused.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting while draining")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, body := enginetest.ReadResponse(t, bbr, "GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestTCPListener(t *testing.T) {
	addr, _ := rawBackend(t, func(c net.Conn) {
		io.WriteString(c, "hello;")
		io.Copy(c, c)
	})
	port := enginetest.FreePort(t)
	host, bport, _ := net.SplitHostPort(addr)
	y := fmt.Sprintf(`
listeners:
- name: tcp
  address: 127.0.0.1
  port: %d
  protocol: TCP
  tcpRoute: {name: tcp, backends: [{backendGroup: app, weight: 1}]}
backendGroups:
- name: app
  endpoints: [{address: %s, port: %s}]
`, port, host, bport)
	startEngine(t, y, proxy.Options{})
	c := enginetest.Dial(t, port)
	io.WriteString(c, "ping")
	got := make([]byte, len("hello;ping"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello;ping" {
		t.Fatalf("got %q: %v", got, err)
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q %v", rest, err)
	}
}

func TestBindFailureReported(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	reg := startEngine(t, enginetest.HTTPSnapshot(enginetest.FreePort(t), []string{"127.0.0.1:1"}, "", "", ""), proxy.Options{})
	st, err := reg.Apply(enginetest.CompileYAML(t, reg.reg, enginetest.HTTPSnapshot(port, []string{"127.0.0.1:1"}, "", "", "")))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(st) != 1 || st[0].Bound || st[0].Err == nil || !errors.Is(st[0].Err, errAddrInUse()) {
		t.Fatalf("statuses %+v", st)
	}
}

func TestStalePooledConnectionRetried(t *testing.T) {
	// The backend answers the first request of each connection and drops
	// the connection on the second, as a backend whose keep-alive timeout
	// races with the proxy's reuse does.
	addr, accepted := rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readHead(br)
	})
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	br := bufio.NewReader(c)
	for i := range 3 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := enginetest.ReadResponse(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("backend accepted %d connections, want 3 (one fresh retry per reuse)", n)
	}
}

func TestEarlyReplyWhileBodyStreams(t *testing.T) {
	// The backend answers 413 after part of a large body and closes; the
	// client, still sending, must get the reply rather than a reset.
	addr, _ := rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		readHead(br)
		io.CopyN(io.Discard, br, 1000)
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
	})
	port := enginetest.FreePort(t)
	startEngine(t, enginetest.HTTPSnapshot(port, []string{addr}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(t, port)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
	go func() {
		chunk := make([]byte, 64<<10)
		for range 100 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	resp, body := enginetest.ReadResponse(t, br, "POST")
	if resp.StatusCode != 413 || body != "big" || !resp.Close {
		t.Fatalf("got %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
}
