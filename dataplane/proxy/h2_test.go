package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// h2drv drives an H2Conn and its stream sessions the way an engine would,
// in memory: client sends complete at once (their bytes are collected in
// out), upstream connections connect at once and answer every request with
// resp once its head is sent.
type h2drv struct {
	tb     testing.TB
	w      *Worker
	h      H2Conn
	free   []*Session
	out    []byte
	resp   []byte
	closed bool
	// With respondWhen set, the upstream bytes are kept in up and the
	// response goes once respondWhen(up) says the request is complete.
	respondWhen func(up []byte) bool
	up          []byte
	responded   bool
	sends       int // client sends
	// flushEach lets the connection act after each stream session, as
	// the io_uring engine does.
	flushEach bool
	nextID    uint32
	// With upstream set, what the stream sessions send upstream goes to
	// it instead (the test answers with UpstreamData and UpstreamEOF on
	// the session it is given); upShut and upClosed count the half-closes
	// and closes of upstream connections.
	upstream func(s *Session, p []byte)
	upShut   int
	upClosed int
}

func newH2Drv(tb testing.TB, cfg *compiled.Config, reg *metrics.Registry, resp string) *h2drv {
	return newH2DrvOpts(tb, cfg, reg, resp, Options{})
}

func newH2DrvOpts(tb testing.TB, cfg *compiled.Config, reg *metrics.Registry, resp string, opts Options) *h2drv {
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	now := int64(1)
	d := &h2drv{tb: tb, resp: []byte(resp)}
	d.w = NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { now += 1000; return now }, opts)
	d.h.Open(d.w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false, []byte(xhttp2.ClientPreface))
	d.run()
	return d
}

// client hands the connection bytes from the client and runs everything.
func (d *h2drv) client(p []byte) {
	for len(p) > 0 {
		n := d.h.ClientData(p)
		p = p[n:]
		d.run()
		if n == 0 {
			d.tb.Fatal("the connection takes no more client bytes")
		}
	}
}

func (d *h2drv) run() {
	for more := true; more; {
		more = d.connActions()
		for st := d.h.NextStream(); st != nil; st = d.h.NextStream() {
			more = true
			s := st.Session()
			if s == nil {
				if n := len(d.free); n > 0 {
					s = d.free[n-1]
					d.free = d.free[:n-1]
				} else {
					s = new(Session)
				}
				s.OpenStream(st)
			}
			d.perform(s)
			if d.flushEach {
				d.h.Flush()
				d.connActions()
			}
		}
		d.h.Flush()
		if !more && d.h.SendReady() {
			// The end of a batch (DeferSends).
			d.h.FlushSends()
			more = true
		}
	}
}

// connActions performs the connection's actions; it reports whether there
// were any.
func (d *h2drv) connActions() bool {
	did := false
	for a, ok := d.h.Next(); ok; a, ok = d.h.Next() {
		did = true
		switch a.Kind {
		case ActSendClient:
			d.sends++
			d.out = append(d.out, a.Data...)
			d.h.Sent(len(a.Data), nil)
		case ActCloseClient:
			d.closed = true
		}
	}
	return did
}

// perform carries out a stream session's actions.
func (d *h2drv) perform(s *Session) {
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		switch a.Kind {
		case ActConnectUpstream:
			s.UpstreamConnected(true, nil)
		case ActShutdownUpstream:
			d.upShut++
		case ActCloseUpstream:
			d.upClosed++
		case ActSendUpstream:
			if d.upstream != nil {
				s.Sent(Upstream, len(a.Data), nil)
				d.upstream(s, a.Data)
				continue
			}
			if d.respondWhen != nil {
				d.up = append(d.up, a.Data...)
				s.Sent(Upstream, len(a.Data), nil)
				if !d.responded && d.respondWhen(d.up) {
					d.responded = true
					s.UpstreamData(d.resp)
				}
				continue
			}
			head := bytes.HasPrefix(a.Data, []byte("GET ")) || bytes.HasPrefix(a.Data, []byte("POST "))
			s.Sent(Upstream, len(a.Data), nil)
			if head {
				s.UpstreamData(d.resp)
			}
		case ActCloseClient:
			s.Close()
			d.free = append(d.free, s)
			return
		case ActSendClient:
			d.tb.Fatal("a stream session asked to write to a client")
		}
	}
}

// h2Client builds client frames.
type h2Client struct {
	buf  bytes.Buffer
	fr   *xhttp2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newH2Client() *h2Client {
	c := &h2Client{}
	c.fr = xhttp2.NewFramer(&c.buf, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

func (c *h2Client) take() []byte {
	b := bytes.Clone(c.buf.Bytes())
	c.buf.Reset()
	return b
}

func (c *h2Client) headers(id uint32, end bool, fields ...string) {
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

// h2Response is what a client read of one stream.
type h2Response struct {
	header, trailer map[string]string
	body            []byte
	ended, reset    bool
	code            xhttp2.ErrCode // of the RST_STREAM
}

// readFrames parses the frames the connection sent, per stream.
func readFrames(t testing.TB, out []byte) map[uint32]*h2Response {
	fr := xhttp2.NewFramer(nil, bytes.NewReader(out))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	res := map[uint32]*h2Response{}
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		id := f.Header().StreamID
		if id == 0 {
			continue
		}
		r := res[id]
		if r == nil {
			r = &h2Response{}
			res[id] = r
		}
		switch f := f.(type) {
		case *xhttp2.MetaHeadersFrame:
			m := map[string]string{}
			for _, hf := range f.Fields {
				m[hf.Name] = hf.Value
			}
			if r.header == nil {
				r.header = m
			} else {
				r.trailer = m
			}
			r.ended = r.ended || f.StreamEnded()
		case *xhttp2.DataFrame:
			r.body = append(r.body, f.Data()...)
			r.ended = r.ended || f.StreamEnded()
		case *xhttp2.RSTStreamFrame:
			r.reset, r.code = true, f.ErrCode
		}
	}
}

func getFields(path string, extra ...string) []string {
	return append([]string{":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", path}, extra...)
}

// A stream's request goes through the HTTP/1.1 pipeline and its response,
// of known length or chunked with trailers, comes back as frames.
func TestH2StreamConversion(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	for _, tc := range []struct {
		name, resp, body string
		trailer          map[string]string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello", "hello", nil},
		{
			"chunked trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ngrpc-status: 0\r\nGrpc-Message: ok\r\n\r\n",
			"hello world",
			map[string]string{"grpc-status": "0", "grpc-message": "ok"},
		},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "abc", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newH2Drv(t, cfg, reg, tc.resp)
			c := newH2Client()
			c.fr.WriteSettings()
			c.headers(1, true, getFields("/x")...)
			d.client(c.take())
			r := readFrames(t, d.out)[1]
			if r == nil || !r.ended || r.reset {
				t.Fatalf("stream 1: %+v", r)
			}
			if r.header[":status"] != "200" || string(r.body) != tc.body {
				t.Fatalf("head %v body %q", r.header, r.body)
			}
			if _, ok := r.header["transfer-encoding"]; ok {
				t.Fatalf("connection-specific field forwarded: %v", r.header)
			}
			for k, v := range tc.trailer {
				if r.trailer[k] != v {
					t.Fatalf("trailers %v, want %s: %s", r.trailer, k, v)
				}
			}
			if tc.trailer == nil && r.trailer != nil {
				t.Fatalf("unexpected trailers %v", r.trailer)
			}
			// Idle again: the connection holds no buffer.
			if d.h.Streams() != 0 || d.h.in != nil || d.h.out[0] != nil || d.h.out[1] != nil {
				t.Fatalf("idle connection: %d streams, buffers in %v out %v %v", d.h.Streams(), d.h.in != nil, d.h.out[0] != nil, d.h.out[1] != nil)
			}
		})
	}
}

// A local reply to a gRPC request is trailers-only, with the gRPC status of
// the HTTP status.
func TestH2GRPCStatusMapping(t *testing.T) {
	for status, want := range map[int]string{400: "13", 401: "16", 403: "7", 404: "12", 429: "14", 502: "14", 503: "14", 504: "14", 500: "2", 408: "2"} {
		h := string(appendGRPCStatus(nil, status))
		if !strings.Contains(h, "grpc-status: "+want+"\r\n") || !strings.Contains(h, "Content-Type: application/grpc\r\n") {
			t.Errorf("%d: %q", status, h)
		}
	}
	cfg, reg := compileTest(t, testSnapshot)
	d := newH2Drv(t, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	c := newH2Client()
	c.fr.WriteSettings()
	c.headers(1, true, append(getFields("/"), "content-type", "application/grpc")...)
	c.headers(3, true, getFields("/")...)
	// Host example.org has no route in testSnapshot: 404.
	c.headers(5, true, ":method", "POST", ":scheme", "http", ":authority", "nowhere.test", ":path", "/svc/M", "content-type", "application/grpc+proto")
	d.client(c.take())
	res := readFrames(t, d.out)
	if r := res[5]; r == nil || r.header[":status"] != "200" || r.header["grpc-status"] != "12" || len(r.body) != 0 || !r.ended || r.trailer != nil {
		t.Fatalf("gRPC request without a route: %+v", r)
	}
	if r := res[3]; r == nil || r.header[":status"] != "200" || r.header["grpc-status"] != "" || string(r.body) != "ok" {
		t.Fatalf("plain request: %+v", r)
	}
}

// Every stream is a request of its own in the metrics and the access log,
// whose protocol says HTTP/2.0.
func TestH2StreamRecords(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	al, out := newTestLog(t)
	d := newH2DrvOpts(t, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Options{AccessLog: al.Worker(0)})
	before := requestsCount(t, reg, "app", "2xx")
	c := newH2Client()
	c.fr.WriteSettings()
	c.headers(1, true, getFields("/a")...)
	c.headers(3, true, getFields("/b")...)
	d.client(c.take())
	if n := requestsCount(t, reg, "app", "2xx") - before; n != 2 {
		t.Fatalf("%v requests counted for 2 streams", n)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log:\n%s", out.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, `"protocol":"HTTP/2.0"`) || !strings.Contains(l, `"status":200`) {
			t.Fatalf("access log line %s", l)
		}
	}
}

// Shed closes an idle connection with a GOAWAY, and not a busy one.
func TestH2Shed(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	d := newH2Drv(t, cfg, reg, "")
	c := newH2Client()
	c.fr.WriteSettings()
	c.headers(1, true, getFields("/a")...) // the upstream never answers
	d.client(c.take())
	if d.h.Shed() {
		t.Fatal("shed a connection with a stream open")
	}
	d.resp = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	c.headers(3, true, getFields("/b")...)
	d.client(c.take())
	if d.h.Streams() != 1 {
		t.Fatalf("%d streams open", d.h.Streams())
	}
	d2 := newH2Drv(t, cfg, reg, "")
	d2.client(c.take())
	d2.out = d2.out[:0]
	if !d2.h.Shed() {
		t.Fatal("idle connection not shed")
	}
	d2.run()
	if !d2.closed || !bytes.Contains(d2.out, []byte{0, 0, 8, byte(xhttp2.FrameGoAway)}) {
		t.Fatalf("shed: closed %v, output % x", d2.closed, d2.out)
	}
}

// postFields are the fields of a POST to path.
func postFields(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "http", ":authority", "example.com", ":path", path}, extra...)
}

// Request trailers reach the upstream: a request body of unknown length
// goes as chunks, ended by the trailer section; one with a content-length
// cannot carry them in HTTP/1.1 and keeps its length.
func TestH2RequestTrailers(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	for _, tc := range []struct {
		name    string
		fields  []string
		framing string // the upstream request's framing field
		want    string // the end of its head and its body
	}{
		{"chunked", postFields("/up", "te", "trailers"), "Transfer-Encoding: chunked\r\n", "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\nx-other: \r\n\r\n"},
		{"length", postFields("/up", "content-length", "11"), "Content-Length: 11\r\n", "\r\n\r\nhello world"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newH2Drv(t, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			d.respondWhen = func(up []byte) bool { return bytes.HasSuffix(up, []byte(tc.want)) }
			c := newH2Client()
			c.fr.WriteSettings()
			c.headers(1, false, tc.fields...)
			c.fr.WriteData(1, false, []byte("hello"))
			d.client(c.take())
			c.fr.WriteData(1, false, []byte(" world"))
			c.headers(1, true, "x-checksum", "abc", "x-other", "")
			d.client(c.take())
			r := readFrames(t, d.out)[1]
			if r == nil || !r.ended || r.reset || string(r.body) != "ok" {
				t.Fatalf("stream 1: %+v; upstream got:\n%s", r, d.up)
			}
			if !bytes.HasSuffix(d.up, []byte(tc.want)) || !bytes.Contains(d.up, []byte(tc.framing)) {
				t.Fatalf("upstream got:\n%q\nwant it to end with %q", d.up, tc.want)
			}
			if d.h.Streams() != 0 {
				t.Fatalf("%d streams open", d.h.Streams())
			}
		})
	}
}

// A client may send a stream's DATA up to the initial window of RFC 9113
// (65,535 bytes) before it has the server's SETTINGS: the stream takes it
// all (in several buffers), and its credit goes back as the upstream takes
// the bytes, so a large upload goes through.
func TestH2UploadBeforeSettings(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	const size = 300_000
	body := bytes.Repeat([]byte("0123456789"), size/10)
	d := newH2Drv(t, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	d.respondWhen = func(up []byte) bool { return bytes.HasSuffix(up, body[size-1000:]) && len(up) > size }
	if w := streamWindow(d.w.opts.BufferSize); w < 65535 {
		t.Fatalf("stream window %d with %d-byte buffers", w, d.w.opts.BufferSize)
	}
	c := newH2Client()
	c.fr.WriteSettings()
	c.headers(1, false, postFields("/up", "content-length", "300000")...)
	// The client's view of the windows: RFC 9113's defaults until the
	// server's SETTINGS and WINDOW_UPDATEs say otherwise.
	win, conn, init := 65535, 65535, 65535
	sent := 0
	for sent < size {
		n := min(16384, win, conn, size-sent)
		if n <= 0 {
			d.client(c.take())
			fr := xhttp2.NewFramer(nil, bytes.NewReader(d.out))
			d.out = d.out[:0]
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					break
				}
				switch f := f.(type) {
				case *xhttp2.SettingsFrame:
					if v, ok := f.Value(xhttp2.SettingInitialWindowSize); ok && !f.IsAck() {
						win += int(v) - init
						init = int(v)
						c.fr.WriteSettingsAck()
					}
				case *xhttp2.WindowUpdateFrame:
					if f.StreamID == 0 {
						conn += int(f.Increment)
					} else {
						win += int(f.Increment)
					}
				case *xhttp2.RSTStreamFrame:
					t.Fatalf("stream reset (%v) after %d bytes", f.ErrCode, sent)
				}
			}
			if min(win, conn) <= 0 {
				t.Fatalf("no credit after %d bytes", sent)
			}
			continue
		}
		c.fr.WriteData(1, sent+n == size, body[sent:sent+n])
		sent += n
		win -= n
		conn -= n
	}
	d.client(c.take())
	if !d.responded {
		t.Fatalf("upstream got %d bytes", len(d.up))
	}
	if r := readFrames(t, d.out)[1]; r == nil || r.reset || string(r.body) != "ok" {
		t.Fatalf("stream 1: %+v", r)
	}
}

// With DeferSends, what the streams that progressed together frame goes
// out in one send, once the engine calls FlushSends.
func TestH2DeferSends(t *testing.T) {
	cfg, reg := compileTest(t, testSnapshot)
	d := newH2Drv(t, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	d.flushEach = true
	c := newH2Client()
	c.fr.WriteSettings()
	d.client(c.take())
	batch := func() int {
		d.sends = 0
		for range 5 {
			c.headers(d.nextID, true, getFields("/x")...)
			d.nextID += 2
		}
		d.client(c.take())
		return d.sends
	}
	d.nextID = 1
	if n := batch(); n != 5 {
		t.Fatalf("without DeferSends: %d client sends for 5 streams, want one each", n)
	}
	d.h.DeferSends(true)
	d.out = d.out[:0]
	if n := batch(); n != 1 {
		t.Fatalf("%d client sends for 5 streams answered together", n)
	}
	res := readFrames(t, d.out)
	for id := uint32(11); id <= 19; id += 2 {
		if r := res[id]; r == nil || !r.ended || string(r.body) != "ok" {
			t.Fatalf("stream %d: %+v", id, r)
		}
	}
	if d.h.SendReady() || d.h.Streams() != 0 {
		t.Fatalf("after the batch: send ready %v, %d streams", d.h.SendReady(), d.h.Streams())
	}
}

// h2StreamLoop returns a function serving one GET stream (a new id each
// time) with a 100-byte response, returning the bytes sent to the client.
func h2StreamLoop(tb testing.TB) func() int {
	cfg, reg := compileTest(tb, testSnapshot)
	d := newH2Drv(tb, cfg, reg, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nServer: up\r\n\r\n"+strings.Repeat("x", 100))
	c := newH2Client()
	c.fr.WriteSettings()
	d.client(c.take())
	c.headers(1, true, getFields("/index.html", "user-agent", "bench/1.0", "accept", "*/*")...)
	c.fr.WriteWindowUpdate(0, 100)
	frames := c.take()
	id := uint32(1)
	return func() int {
		binary.BigEndian.PutUint32(frames[5:9], id)
		id += 2
		d.out = d.out[:0]
		d.client(frames)
		return len(d.out)
	}
}

// Serving a stream allocates nothing in steady state: the stream state,
// its session, exchange and buffers are all reused.
func TestH2StreamDoesNotAllocate(t *testing.T) {
	stream := h2StreamLoop(t)
	for range 3 {
		stream()
	}
	if n := stream(); n < 100 {
		t.Fatalf("a stream sent %d bytes to the client", n)
	}
	if n := testing.AllocsPerRun(1000, func() { stream() }); n != 0 {
		t.Fatalf("%v allocations per HTTP/2 stream", n)
	}
}

// BenchmarkH2Stream serves one GET stream with a 100-byte response on a
// long-lived HTTP/2 connection.
func BenchmarkH2Stream(b *testing.B) {
	stream := h2StreamLoop(b)
	stream()
	b.ReportAllocs()
	for b.Loop() {
		stream()
	}
}
