package enginetest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backend behaviours.
const (
	modeOK       int32 = iota // 200 "ok"
	mode5xx                   // 503
	modeReset                 // a partial response head, then a reset
	modeHang                  // reads the request, never answers
	modeSlow                  // 200 after slowDelay
	modeResetNow              // reads the request, then resets the connection without a byte
)

const slowDelay = 150 * time.Millisecond

// scriptedBackend is a loopback HTTP/1.1 backend whose behaviour a test scripts.
// "Refuse" is had by closing it.
type scriptedBackend struct {
	t        testing.TB
	ln       net.Listener
	mode     atomic.Int32
	reqs     atomic.Int64 // requests read, health checks excluded
	probes   atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	bodies   []string // "METHOD path body" of each non-probe request
	conns    map[net.Conn]struct{}
	closed   bool
}

func startRaw(t testing.TB, mode int32) *scriptedBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := &scriptedBackend{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
	b.mode.Store(mode)
	go b.serve()
	t.Cleanup(b.close)
	return b
}

func (b *scriptedBackend) addr() string { return b.ln.Addr().String() }

func (b *scriptedBackend) close() {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.ln.Close()
}

func (b *scriptedBackend) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		go b.handle(c)
	}
}

func (b *scriptedBackend) handle(c net.Conn) {
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		probe := req.URL.Path == "/healthz"
		if probe {
			b.probes.Add(1)
		} else {
			b.reqs.Add(1)
			b.mu.Lock()
			b.bodies = append(b.bodies, req.Method+" "+req.URL.Path+" "+string(body))
			b.mu.Unlock()
		}
		n := b.inFlight.Add(1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		ok := b.respond(c, probe)
		b.inFlight.Add(-1)
		if !ok || req.Close {
			return
		}
	}
}

func (b *scriptedBackend) respond(c net.Conn, probe bool) bool {
	switch b.mode.Load() {
	case mode5xx:
		_, err := io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbad\n")
		return err == nil
	case modeReset:
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return false
	case modeResetNow:
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return false
	case modeHang:
		io.Copy(io.Discard, c)
		return false
	case modeSlow:
		if !probe { // health checks answer at once
			time.Sleep(slowDelay)
		}
	}
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return err == nil
}
