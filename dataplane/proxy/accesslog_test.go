package proxy

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
)

// lockedBuffer is an io.Writer safe for the access log's writer goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var logClock = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func newTestLog(t testing.TB) (*accesslog.Logger, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	l, err := accesslog.New(accesslog.Options{Output: out, Workers: 1, Clock: func() time.Time { return logClock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, out
}

// TestAccessLogFields drives requests through sessions with the access log
// on and checks every field of the lines written.
func TestAccessLogFields(t *testing.T) {
	al, out := newTestLog(t)
	opts := Options{AccessLog: al.Worker(0)}

	// A proxied 200, 1.5 ms after its first byte.
	h := newHarnessOpts(t, opts, 0)
	req := "GET /a/b?x=1&y=\"2\" HTTP/1.1\r\nHost: example.com\r\n\r\n"
	h.client(req)
	h.connect(false, nil)
	h.now += int64(1500 * time.Microsecond)
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	resp200 := len(h.takeClient())

	// A 404: no virtual host for the name; HTTP/1.0.
	h.now += int64(time.Second)
	req404 := "GET /nothing HTTP/1.0\r\nHost: other.example\r\nConnection: keep-alive\r\n\r\n"
	h.client(req404)
	resp404 := len(h.takeClient())

	// A 502: the connect fails (no retry policy on route app).
	req502 := "POST /c HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
	h.client(req502)
	h.now += int64(2 * time.Millisecond)
	h.connect(false, errors.New("connection refused"))
	resp502 := len(h.takeClient())

	// A malformed request: 400, and the connection closes.
	h2 := newHarnessOpts(t, opts, 0)
	bad := "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n"
	h2.client(bad)
	resp400 := len(h2.takeClient())
	if !h2.clientClosed {
		t.Fatal("malformed request did not close the connection")
	}

	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`{"time":"2026-03-04T05:06:07.888Z","listener":"web","route":"app","method":"GET","path":"/a/b?x=1&y=\"2\"","protocol":"HTTP/1.1","status":200,` +
			`"response_bytes":` + itoa(resp200) + `,"request_bytes":` + itoa(len(req)) + `,"duration_ms":1.500,"upstream":"10.0.0.1:80","backend_group":"one","attempts":1,"client":"192.0.2.7:40000","reason":"","trace_id":""}`,
		`{"time":"2026-03-04T05:06:07.890Z","listener":"web","route":"","method":"GET","path":"/nothing","protocol":"HTTP/1.0","status":404,` +
			`"response_bytes":` + itoa(resp404) + `,"request_bytes":` + itoa(len(req404)) + `,"duration_ms":0.000,"upstream":"","backend_group":"","attempts":0,"client":"192.0.2.7:40000","reason":"no_route","trace_id":""}`,
		`{"time":"2026-03-04T05:06:07.888Z","listener":"web","route":"app","method":"POST","path":"/c","protocol":"HTTP/1.1","status":502,` +
			`"response_bytes":` + itoa(resp502) + `,"request_bytes":` + itoa(len(req502)) + `,"duration_ms":2.000,"upstream":"10.0.0.1:80","backend_group":"one","attempts":1,"client":"192.0.2.7:40000","reason":"connect_failed","trace_id":""}`,
		`{"time":"2026-03-04T05:06:07.890Z","listener":"web","route":"","method":"","path":"","protocol":"","status":400,` +
			`"response_bytes":` + itoa(resp400) + `,"request_bytes":` + itoa(len(bad)) + `,"duration_ms":0.000,"upstream":"","backend_group":"","attempts":0,"client":"192.0.2.7:40000","reason":"bad_request","trace_id":""}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if resp200 == 0 || resp404 == 0 || resp502 == 0 || resp400 == 0 {
		t.Errorf("response sizes %d %d %d %d", resp200, resp404, resp502, resp400)
	}
}

// TestAccessLogRetriesAndTimeout checks attempts after retries and the
// reason of a 504.
func TestAccessLogRetriesAndTimeout(t *testing.T) {
	al, out := newTestLog(t)
	h := newHarnessOpts(t, Options{AccessLog: al.Worker(0)}, 0)
	// Route retry: two retries on connect failure, over two endpoints.
	h.client("GET /retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
	for range 3 {
		h.connect(false, errors.New("refused"))
		h.advance(50 * time.Millisecond)
	}
	// Route slow: the backend request timeout (2s) answers 504.
	h.client("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(false, nil)
	h.advance(3 * time.Second)
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, w := range []string{
		`"path":"/retry","protocol":"HTTP/1.1","status":502,`,
		`"backend_group":"two","attempts":3,"client":"192.0.2.7:40000","reason":"connect_failed","trace_id":""}`,
		`"path":"/slow","protocol":"HTTP/1.1","status":504,`,
		`"duration_ms":3000.000,"upstream":"10.0.0.1:80","backend_group":"one","attempts":1,"client":"192.0.2.7:40000","reason":"timeout","trace_id":""}`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("log lacks %s:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 2 {
		t.Errorf("%d lines, want 2:\n%s", n, got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestExchangeDoesNotAllocateWithAccessLog is TestExchangeDoesNotAllocate
// with the access log on.
func TestExchangeDoesNotAllocateWithAccessLog(t *testing.T) {
	var written atomic.Int64
	al, err := accesslog.New(accesslog.Options{Output: countWriter{&written}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	cfg, reg := compileTest(t, testSnapshot)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	now := int64(1)
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { now += 1000; return now }, Options{AccessLog: al.Worker(0)})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(t, s)
	req := []byte("GET /index.html?user=x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	exchange := func() {
		s.ClientData(req)
		loopback(t, s)
		s.UpstreamData(resp)
		loopback(t, s)
	}
	for range 3 {
		exchange()
	}
	// Enough runs to fill and hand over several buffers.
	if n := testing.AllocsPerRun(5000, exchange); n != 0 {
		t.Fatalf("%v allocations per keep-alive exchange with the access log on", n)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	if written.Load() == 0 {
		t.Fatal("nothing written")
	}
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// BenchmarkKeepAliveExchangeAccessLog is BenchmarkKeepAliveExchange with
// the access log on.
func BenchmarkKeepAliveExchangeAccessLog(b *testing.B) {
	var written atomic.Int64
	al, err := accesslog.New(accesslog.Options{Output: countWriter{&written}, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer al.Close()
	cfg, reg := compileTest(b, testSnapshot)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	now := int64(1)
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { now += 1000; return now }, Options{AccessLog: al.Worker(0)})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(b, s)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	b.ReportAllocs()
	for b.Loop() {
		s.ClientData(req)
		loopback(b, s)
		s.UpstreamData(resp)
		loopback(b, s)
	}
}

// TestAccessLogClientGone checks the line of a request whose client went
// away mid-body (499), and of a TCP listener's connection.
func TestAccessLogClientGone(t *testing.T) {
	al, out := newTestLog(t)
	h := newHarnessOpts(t, Options{AccessLog: al.Worker(0)}, 0)
	h.client("POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nabc")
	h.connect(false, nil)
	h.s.ClientEOF()
	h.drain()
	h.s.Close()

	tcp := newHarnessOpts(t, Options{AccessLog: al.Worker(0)}, 1)
	tcp.connect(false, nil)
	tcp.client("ping")
	tcp.upstream("pong")
	tcp.s.ClientEOF()
	tcp.drain()
	tcp.s.UpstreamEOF()
	tcp.drain()
	tcp.s.Close()
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, w := range []string{
		`"method":"POST","path":"/up","protocol":"HTTP/1.1","status":499,"response_bytes":0,"request_bytes":63,`,
		`"listener":"tcp","route":"tcp-route","method":"","path":"","protocol":"","status":200,"response_bytes":4,"request_bytes":4,`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("log lacks %s:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 2 {
		t.Errorf("%d lines, want 2:\n%s", n, got)
	}
}
