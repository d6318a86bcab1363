package enginetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 hardening over real sockets on every engine: each attack is made
// with a raw framer against a listener, and the connection (or stream) is
// ended as the codec's limits say, while honest traffic goes on.

// h2raw is a raw HTTP/2 client connection.
type h2raw struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// dialH2 opens a connection to port and sends the preface and settings.
func dialH2(t *testing.T, port int, settings ...http2.Setting) *h2raw {
	t.Helper()
	return startH2(t, Dial(t, port), settings...)
}

// startH2 sends the preface and settings on c.
func startH2(t *testing.T, c net.Conn, settings ...http2.Setting) *h2raw {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &h2raw{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.SetMaxReadFrameSize(1 << 20)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	r.enc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return r
}

// writer returns a framer of its own for a goroutine writing while the
// test reads (each frame goes out in one write on the connection).
func (r *h2raw) writer() *http2.Framer { return http2.NewFramer(r.c, nil) }

// block encodes a request head for path with extra fields.
func (r *h2raw) block(method, path string, extra ...string) []byte {
	r.hbuf.Reset()
	r.enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	r.enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	r.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "example.com"})
	r.enc.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	for i := 0; i+1 < len(extra); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return bytes.Clone(r.hbuf.Bytes())
}

// get opens stream id with a GET of path.
func (r *h2raw) get(id uint32, path string) {
	r.t.Helper()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block("GET", path), EndStream: true, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// until reads frames (acknowledging the server's SETTINGS) until f
// returns true for one, and returns it; nil when the connection ends
// first, with the error.
func (r *h2raw) until(f func(http2.Frame) bool) (http2.Frame, error) {
	for {
		fr, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if s, ok := fr.(*http2.SettingsFrame); ok && !s.IsAck() {
			r.fr.WriteSettingsAck()
		}
		if p, ok := fr.(*http2.PingFrame); ok && !p.IsAck() {
			r.fr.WritePing(true, p.Data)
		}
		if f(fr) {
			return fr, nil
		}
	}
}

// response reads stream id's response: status and body length.
func (r *h2raw) response(id uint32) (status string, body int) {
	r.t.Helper()
	for {
		fr, err := r.until(func(f http2.Frame) bool { return f.Header().StreamID == id })
		if err != nil {
			r.t.Fatalf("stream %d: %v", id, err)
		}
		switch f := fr.(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				status = s
			}
			if f.StreamEnded() {
				return status, body
			}
		case *http2.DataFrame:
			body += len(f.Data())
			if len(f.Data()) > 0 {
				r.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				r.fr.WriteWindowUpdate(id, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				return status, body
			}
		case *http2.RSTStreamFrame:
			r.t.Fatalf("stream %d reset: %v", id, f.ErrCode)
		}
	}
}

// goAwayOrClose reads until a GOAWAY (returned) or the end of the
// connection (nil).
func (r *h2raw) goAwayOrClose() *http2.GoAwayFrame {
	fr, _ := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if g, ok := fr.(*http2.GoAwayFrame); ok {
		return g
	}
	return nil
}

// closes reports whether the server closes the connection within d.
func (r *h2raw) closes(d time.Duration) bool {
	r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func startH2Target(t *testing.T, k kind, listenerExtra string) (int, *testEngine) {
	be := echoBackend(t)
	port := FreePort(t)
	te := startEngine(t, k)
	y := HTTPSnapshot(port, []string{be.Addr()}, "", "", "")
	if listenerExtra != "" {
		y = strings.Replace(y, "  protocol: HTTP\n", "  protocol: HTTP\n"+listenerExtra, 1)
	}
	te.apply(CompileYAML(t, te.reg, y))
	return port, te
}

// checkServes makes sure a new connection is served.
func checkServes(t *testing.T, port int) {
	t.Helper()
	r := dialH2(t, port)
	r.get(1, "/ok")
	if st, _ := r.response(1); st != "200" {
		t.Fatalf("honest request after the attack: status %q", st)
	}
}

// Rapid reset (CVE-2023-44487): streams opened and reset at once, beyond
// the reset budget, end the connection with ENHANCE_YOUR_CALM.
func TestH2RapidReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port, _ := startH2Target(t, k, "")
		r := dialH2(t, port)
		w := r.writer()
		blk := r.block("GET", "/x")
		go func() {
			for id := uint32(1); id < 2000; id += 2 {
				if w.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil {
					return
				}
				if w.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}()
		g := r.goAwayOrClose()
		if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("rapid reset: GOAWAY %v, want ENHANCE_YOUR_CALM", g)
		}
		if !r.closes(5 * time.Second) {
			t.Fatal("connection left open after the GOAWAY")
		}
		checkServes(t, port)
	})
}

// A header block continued over endless CONTINUATION frames
// (CVE-2024-27316) ends the connection with ENHANCE_YOUR_CALM.
func TestH2ContinuationFlood(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port, _ := startH2Target(t, k, "")
		r := dialH2(t, port)
		// Acknowledge the server's SETTINGS first: an acknowledgement
		// written by the reader in the middle of the header block would
		// be a protocol error of the test's own.
		if _, err := r.until(func(f http2.Frame) bool {
			s, ok := f.(*http2.SettingsFrame)
			return ok && !s.IsAck()
		}); err != nil {
			t.Fatal(err)
		}
		w := r.writer()
		blk := r.block("GET", "/x")
		go func() {
			if w.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:3], EndStream: true}) != nil {
				return
			}
			junk := bytes.Repeat([]byte{0x40, 0x01, 'a', 0x01, 'b'}, 200)
			for range 10000 {
				if w.WriteContinuation(1, false, junk) != nil {
					return
				}
			}
		}()
		g := r.goAwayOrClose()
		if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("CONTINUATION flood: GOAWAY %v, want ENHANCE_YOUR_CALM", g)
		}
		if !r.closes(5 * time.Second) {
			t.Fatal("connection left open after the GOAWAY")
		}
		checkServes(t, port)
	})
}

// An HPACK bomb (a small block referencing a large table entry many
// times) is refused on its stream; the connection goes on.
func TestH2HPACKBomb(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port, _ := startH2Target(t, k, "")
		r := dialH2(t, port)
		// Index a 4000-byte field, then reference it 200 times: 800 KB
		// decoded from a block of a few hundred bytes.
		r.hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
			r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		r.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
		blk := bytes.Clone(r.hbuf.Bytes())
		for range 200 {
			blk = append(blk, 0x80|62) // indexed: the newest dynamic entry
		}
		if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		fr, err := r.until(func(f http2.Frame) bool { return f.Header().StreamID == 1 })
		if err != nil {
			t.Fatalf("HPACK bomb: %v", err)
		}
		if rst, ok := fr.(*http2.RSTStreamFrame); !ok || rst.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("HPACK bomb: got %v, want RST_STREAM PROTOCOL_ERROR", fr)
		}
		r.get(3, "/after")
		if st, _ := r.response(3); st != "200" {
			t.Fatalf("request after the bomb: %q", st)
		}
	})
}

// SETTINGS and PING floods from a client that does not read the
// acknowledgements end the connection (ENHANCE_YOUR_CALM) instead of
// queueing without bound.
func TestH2ControlFlood(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port, _ := startH2Target(t, k, "")
		for _, ping := range []bool{false, true} {
			r := dialH2(t, port)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range 1000000 {
					var err error
					if ping {
						err = r.fr.WritePing(false, [8]byte{1})
					} else {
						err = r.fr.WriteSettings()
					}
					if err != nil {
						return
					}
				}
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("flood (ping %v): the server still takes frames it cannot answer", ping)
			}
			if !r.closes(10 * time.Second) {
				t.Fatalf("flood (ping %v): connection left open", ping)
			}
		}
		checkServes(t, port)
	})
}

// A stream whose client gives it no window stalls alone: another stream
// on the same connection completes, and the stalled one is reset once the
// send stall timeout passes.
func TestH2ZeroWindowStall(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port, _ := startH2Target(t, k, "  timeouts: {sendStall: 1s}\n")
		r := dialH2(t, port, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		r.get(1, "/stalled?size=100000")
		r.get(3, "/moving?size=100000")
		r.fr.WriteWindowUpdate(0, 1<<20)
		r.fr.WriteWindowUpdate(3, 1<<20)
		start := time.Now()
		st, n := r.response(3)
		if st != "200" || n != 100000 {
			t.Fatalf("stream 3 next to a stalled one: %q, %d bytes", st, n)
		}
		fr, err := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok && f.Header().StreamID == 1 })
		if err != nil {
			t.Fatalf("stalled stream: %v", err)
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("stalled stream reset after %v, before the send stall timeout", d)
		}
		_ = fr
		r.get(5, "/after")
		r.fr.WriteWindowUpdate(5, 1<<20)
		if st, _ := r.response(5); st != "200" {
			t.Fatalf("request after the stall: %q", st)
		}
	})
}

// Streams past the listener's max_concurrent_streams are refused
// (REFUSED_STREAM, safe to retry), the others are served.
func TestH2ConcurrentStreamLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		release := make(chan struct{})
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			io.WriteString(w, "ok")
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		y := strings.Replace(HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), "  protocol: HTTP\n", "  protocol: HTTP\n  http2: {maxConcurrentStreams: 2}\n", 1)
		te.apply(CompileYAML(t, te.reg, y))
		r := dialH2(t, port)
		fr, err := r.until(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && !s.IsAck() })
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := fr.(*http2.SettingsFrame).Value(http2.SettingMaxConcurrentStreams); !ok || v != 2 {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want 2", v, ok)
		}
		r.get(1, "/a")
		r.get(3, "/b")
		r.get(5, "/c")
		fr, err = r.until(func(f http2.Frame) bool { return f.Header().StreamID == 5 })
		if err != nil {
			t.Fatal(err)
		}
		if rst, ok := fr.(*http2.RSTStreamFrame); !ok || rst.ErrCode != http2.ErrCodeRefusedStream {
			t.Fatalf("third stream: %v, want RST_STREAM REFUSED_STREAM", fr)
		}
		close(release)
		status := map[uint32]string{}
		ended := 0
		for ended < 2 {
			fr, err := r.until(func(f http2.Frame) bool { id := f.Header().StreamID; return id == 1 || id == 3 })
			if err != nil {
				t.Fatal(err)
			}
			switch f := fr.(type) {
			case *http2.MetaHeadersFrame:
				status[f.StreamID] = f.PseudoValue("status")
				if f.StreamEnded() {
					ended++
				}
			case *http2.DataFrame:
				if f.StreamEnded() {
					ended++
				}
			case *http2.RSTStreamFrame:
				t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
			}
		}
		if status[1] != "200" || status[3] != "200" {
			t.Fatalf("statuses %v", status)
		}
	})
}

// A draining engine (shutdown, as on a configuration change) sends
// GOAWAY, lets the streams in flight finish, then closes the connection.
func TestH2GracefulDrain(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		got := make(chan struct{}, 1)
		release := make(chan struct{})
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- struct{}{}
			<-release
			io.WriteString(w, "done")
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		r := dialH2(t, port)
		r.get(1, "/slow")
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("request did not reach the backend")
		}
		drained := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			drained <- te.Drain(ctx)
		}()
		g := r.goAwayOrClose()
		if g == nil || g.ErrCode != http2.ErrCodeNo {
			t.Fatalf("drain: GOAWAY %v, want NO_ERROR", g)
		}
		close(release)
		if st, n := r.response(1); st != "200" || n != 4 {
			t.Fatalf("stream in flight during the drain: %q, %d bytes", st, n)
		}
		if !r.closes(10 * time.Second) {
			t.Fatal("connection left open after the drain")
		}
		if err := <-drained; err != nil {
			t.Fatalf("drain: %v", err)
		}
	})
}
