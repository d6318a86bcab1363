package accesslog

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"/plain/path?a=1&b=2", `"/plain/path?a=1&b=2"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"tab\there\nnl\rcr", `"tab\there\nnl\rcr"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"héllo ✓ 😀", `"héllo ✓ 😀"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"cut\xe2\x9c", `"cut\ufffd\ufffd"`},
		{"overlong\xc0\xaf", `"overlong\ufffd\ufffd"`},
		{"surrogate\xed\xa0\x80", `"surrogate\ufffd\ufffd\ufffd"`},
		{"ls\u2028ps\u2029", `"ls\u2028ps\u2029"`},
		{"</script>", `"</script>"`},
	} {
		got := string(appendBytes(nil, []byte(tc.in), len(tc.in)))
		if got != tc.want {
			t.Errorf("appendBytes(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not valid JSON: %v", got, err)
		}
		if utf8.ValidString(tc.in) && back != tc.in {
			t.Errorf("%s decodes to %q, want %q", got, back, tc.in)
		}
	}
}

// FuzzAppendJSONString checks that any input gives a valid JSON string that
// decodes to the input with invalid UTF-8 replaced.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "\x00\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := appendBytes(nil, in, len(in))
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q → %s: %v", in, out, err)
		}
		if want := strings.ToValidUTF8(string(in), "\ufffd"); utf8.Valid(in) && back != want {
			t.Fatalf("%q → %s → %q", in, out, back)
		}
		if !utf8.Valid(out) {
			t.Fatalf("%q → invalid UTF-8 %q", in, out)
		}
	})
}

func testRecord() *Record {
	return &Record{
		Start: 1_000_000_000, End: 1_012_345_678,
		Listener: "web", Route: "ns/app\x01", BackendGroup: "ns/svc:80",
		Method: []byte("GET"), Path: []byte("/a\"b\\c?q=\xff"), Protocol: "HTTP/1.1",
		Status: 502, ResponseBytes: 123, RequestBytes: 45,
		Upstream: netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080"),
		Client:   netip.MustParseAddrPort("[2001:db8::1]:5555"),
		Attempts: 2, Reason: "upstream_reset",
	}
}

func TestAppendRecord(t *testing.T) {
	now := time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))
	got := string(appendRecord(nil, testRecord(), now))
	want := `{"time":"2026-01-02T03:04:04.987Z","listener":"web","route":"ns/app\u0001","method":"GET","path":"/a\"b\\c?q=\ufffd",` +
		`"protocol":"HTTP/1.1","status":502,"response_bytes":123,"request_bytes":45,"duration_ms":12.345,"upstream":"10.0.0.1:8080",` +
		`"backend_group":"ns/svc:80","attempts":2,"client":"[2001:db8::1]:5555","reason":"upstream_reset","trace_id":""}` + "\n"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 16 {
		t.Errorf("%d keys", len(m))
	}
	// A traced request's line carries its trace id.
	traced := testRecord()
	traced.TraceID, traced.Traced = [16]byte{0x4b, 0xf9, 15: 0x36}, true
	if line := string(appendRecord(nil, traced, now)); !strings.HasSuffix(line, `,"trace_id":"4bf90000000000000000000000000036"}`+"\n") {
		t.Errorf("traced line %s lacks its trace id", line)
	}
	// Long paths are cut at MaxPathBytes.
	r := testRecord()
	r.Path = bytes.Repeat([]byte{'\n'}, 2*MaxPathBytes)
	line := appendRecord(nil, r, now)
	if n := bytes.Count(line, []byte(`\n`)); n != MaxPathBytes {
		t.Errorf("long path: %d escaped newlines, want %d", n, MaxPathBytes)
	}
	if len(line) > maxLine {
		t.Errorf("line of %d bytes exceeds maxLine %d", len(line), maxLine)
	}
}

func TestAppendRecordDoesNotAllocate(t *testing.T) {
	r := testRecord()
	buf := make([]byte, 0, maxLine)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { buf = appendRecord(buf[:0], r, now) }); n != 0 {
		t.Fatalf("%v allocations per line", n)
	}
}

func TestAppendFlow(t *testing.T) {
	now := time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))
	f := &Flow{
		Start: 1_000_000_000, End: 61_012_345_678,
		Listener: "ns/gw/dns", Route: "ns/dns\"", BackendGroup: "ns/svc:53/udp",
		Client:       netip.MustParseAddrPort("[::ffff:192.0.2.7]:40000"),
		Upstream:     netip.MustParseAddrPort("[2001:db8::5]:53"),
		RequestBytes: 120, ResponseBytes: 480, RequestDatagrams: 2, ResponseDatagrams: 3,
		Reason: FlowIdle,
	}
	got := string(appendFlow(nil, f, now))
	want := `{"time":"2026-01-02T03:03:04.987Z","listener":"ns/gw/dns","route":"ns/dns\"","protocol":"UDP",` +
		`"client":"192.0.2.7:40000","upstream":"[2001:db8::5]:53","backend_group":"ns/svc:53/udp",` +
		`"request_bytes":120,"response_bytes":480,"request_datagrams":2,"response_datagrams":3,"duration_ms":60012.345,"reason":"idle"}` + "\n"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 13 {
		t.Errorf("%d keys", len(m))
	}
	buf := make([]byte, 0, maxLine)
	if n := testing.AllocsPerRun(100, func() { buf = appendFlow(buf[:0], f, now) }); n != 0 {
		t.Fatalf("%v allocations per flow line", n)
	}
	// Through a Logger, beside request lines.
	out := &syncBuffer{}
	l, err := New(Options{Output: out, Workers: 1, FlushInterval: time.Hour, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	l.Worker(0).LogFlow(f)
	l.Worker(0).Log(testRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := strings.SplitAfter(out.String(), "\n"); len(lines) != 3 || lines[0] != want || !strings.Contains(lines[1], `"protocol":"HTTP/1.1"`) {
		t.Fatalf("logged %q", out.String())
	}
	l.Worker(0).LogFlow(f)
	if l.Dropped() != 1 {
		t.Fatalf("a flow line after Close was not dropped")
	}
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFlushInterval(t *testing.T) {
	out := &syncBuffer{}
	l, err := New(Options{Output: out, Workers: 2, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Worker(0).Log(testRecord())
	l.Worker(1).Log(testRecord())
	// A few lines are not enough to fill a buffer: the flusher hands them over.
	enginetest.WaitFor(t, "two lines", 5*time.Second, func() bool { return strings.Count(out.String(), "\n") == 2 })
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	b.n += bytes.Count(p, []byte{'\n'})
	b.mu.Unlock()
	return len(p), nil
}

func (b *blockingWriter) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// TestDropsWhenWriterBlocked checks that a stuck writer never blocks the
// worker: lines beyond the spare buffers are dropped and counted.
func TestDropsWhenWriterBlocked(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	l, err := New(Options{Output: bw, Workers: 1, SpareBuffers: 2, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w := l.Worker(0)
	r := testRecord()
	lineLen := len(appendRecord(nil, r, time.Now()))
	perBuf := DefaultBufferSize / lineLen
	total := 10 * perBuf
	done := make(chan struct{})
	go func() {
		for range total {
			w.Log(r)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Log blocked behind a stuck writer")
	}
	// The writer holds one buffer, two spares are queued, one is current:
	// about 4 buffers' worth got through and the rest was dropped.
	dropped := int(l.Dropped())
	if dropped < total-5*perBuf || dropped > total-3*perBuf {
		t.Fatalf("dropped %d of %d lines (%d per buffer)", dropped, total, perBuf)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "flax_access_log_dropped_total" {
			found = true
			if v := f.GetMetric()[0].GetCounter().GetValue(); int(v) != dropped {
				t.Errorf("flax_access_log_dropped_total = %v, want %d", v, dropped)
			}
		}
	}
	if !found {
		t.Error("no flax_access_log_dropped_total series")
	}
	close(bw.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := bw.lines(); got != total-dropped {
		t.Fatalf("wrote %d lines, want %d", got, total-dropped)
	}
	// After Close lines are dropped, not written.
	w.Log(r)
	if int(l.Dropped()) != dropped+1 {
		t.Fatalf("a line after Close was not dropped")
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := New(Options{Path: path, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := l.Worker(0)
	w.Log(testRecord())
	l.Flush()
	enginetest.WaitFor(t, "first line", 5*time.Second, func() bool { b, _ := os.ReadFile(path); return bytes.Count(b, []byte("\n")) == 1 })
	// Rotate: move the file away, then reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Log(testRecord())
	w.Log(testRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if bytes.Count(old, []byte("\n")) != 1 || bytes.Count(cur, []byte("\n")) != 2 {
		t.Fatalf("rotated file has %q, new file %q", old, cur)
	}
	if _, err := New(Options{Path: filepath.Join(dir, "missing", "x.log")}); err == nil {
		t.Fatal("opening a file in a missing directory succeeded")
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("a logger without a path succeeded")
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	if l.Worker(3) != nil || l.Reopen() != nil || l.Close() != nil {
		t.Fatal("nil Logger methods misbehave")
	}
}
