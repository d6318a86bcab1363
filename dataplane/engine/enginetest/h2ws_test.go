package enginetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/net/websocket"
)

// WebSocket over HTTP/2 (RFC 8441) on every engine: a raw HTTP/2 client
// opens extended CONNECT streams through the proxy to a real WebSocket
// server (golang.org/x/net/websocket behind net/http, an HTTP/1.1
// upgrade), and speaks RFC 6455 frames in its DATA.

// wsEchoBackend serves WebSocket on /chat (each message echoed; "bye"
// makes the server close) and refuses the upgrade on /refuse.
// ended counts the WebSocket connections the server saw end.
func wsEchoBackend(t *testing.T, ended *atomic.Int32) *Backend {
	mux := http.NewServeMux()
	mux.Handle("/chat", websocket.Server{Handler: func(c *websocket.Conn) {
		defer ended.Add(1)
		for {
			var msg []byte
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if string(msg) == "bye" {
				return // the server's close frame and TCP close
			}
			if err := websocket.Message.Send(c, string(msg)); err != nil {
				return
			}
		}
	}})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no websocket here", http.StatusForbidden)
	})
	return StartBackend(t, mux)
}

// wsClient is a raw HTTP/2 client connection that opens WebSocket
// streams, one at a time, and keeps the send windows.
type wsClient struct {
	r        *h2raw
	connWin  int64 // send credit on the connection
	initWin  int64 // the server's SETTINGS_INITIAL_WINDOW_SIZE
	settings bool  // the server's SETTINGS arrived
	// connectProtocol: they set SETTINGS_ENABLE_CONNECT_PROTOCOL to 1.
	connectProtocol bool
	cur             *wsStream
}

// wsStream is one WebSocket over an HTTP/2 stream.
type wsStream struct {
	c   *wsClient
	id  uint32
	win int64  // send credit on the stream
	in  []byte // DATA received, not yet parsed as frames
	end bool   // END_STREAM received
	rst http2.ErrCode
	got bool // RST_STREAM received
}

func newWSClient(r *h2raw) *wsClient {
	return &wsClient{r: r, connWin: 65535, initWin: 65535}
}

// next reads one frame, acknowledging SETTINGS and PING, keeping the
// windows and collecting the current stream's DATA (its credit goes back
// at once).
func (c *wsClient) next() (http2.Frame, error) {
	r := c.r
	fr, err := r.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	w := c.cur
	if w != nil && fr.Header().StreamID != w.id {
		w = nil
	}
	switch f := fr.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				if c.cur != nil {
					c.cur.win += int64(v) - c.initWin
				}
				c.initWin = int64(v)
			}
			if v, ok := f.Value(http2.SettingEnableConnectProtocol); ok {
				c.connectProtocol = v == 1
			}
			c.settings = true
			r.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			r.fr.WritePing(true, f.Data)
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.connWin += int64(f.Increment)
		} else if w != nil {
			w.win += int64(f.Increment)
		}
	case *http2.DataFrame:
		if w != nil {
			w.in = append(w.in, f.Data()...)
			w.end = f.StreamEnded()
		}
		if n := uint32(len(f.Data())); n > 0 {
			r.fr.WriteWindowUpdate(0, n)
			if w != nil && !f.StreamEnded() {
				r.fr.WriteWindowUpdate(w.id, n)
			}
		}
	case *http2.MetaHeadersFrame:
		if w != nil {
			w.end = w.end || f.StreamEnded()
		}
	case *http2.RSTStreamFrame:
		if w != nil {
			w.got, w.rst = true, f.ErrCode
		}
	}
	return fr, nil
}

// connect opens stream id with an extended CONNECT of path and fields
// (name, value pairs) and returns it with the response status ("reset
// CODE" when it was reset). A pseudo field in extra replaces the default
// one, or removes it when its value is empty.
func (c *wsClient) connect(id uint32, path string, extra ...string) (*wsStream, string) {
	r := c.r
	r.t.Helper()
	for !c.settings {
		if _, err := c.next(); err != nil {
			r.t.Fatal(err)
		}
	}
	fields := [][2]string{
		{":method", "CONNECT"},
		{":protocol", "websocket"},
		{":scheme", "http"},
		{":authority", "example.com"},
		{":path", path},
		{"sec-websocket-version", "13"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fields = append(fields, [2]string{extra[i], extra[i+1]})
		if !strings.HasPrefix(extra[i], ":") {
			continue
		}
		// A pseudo field replaces the default one; empty, it removes it.
		fields = fields[:len(fields)-1]
		for j := range fields {
			if fields[j][0] == extra[i] {
				fields = append(fields[:j], fields[j+1:]...)
				break
			}
		}
		if extra[i+1] != "" {
			fields = append([][2]string{{extra[i], extra[i+1]}}, fields...)
		}
	}
	r.hbuf.Reset()
	for _, f := range fields {
		r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	w := &wsStream{c: c, id: id, win: c.initWin}
	c.cur = w
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
	for {
		fr, err := c.next()
		if err != nil {
			r.t.Fatalf("stream %d: %v", id, err)
		}
		if fr.Header().StreamID != id {
			continue
		}
		switch f := fr.(type) {
		case *http2.MetaHeadersFrame:
			return w, f.PseudoValue("status")
		case *http2.RSTStreamFrame:
			return w, "reset " + f.ErrCode.String()
		}
		r.t.Fatalf("stream %d: first frame %v", id, fr)
	}
}

// send writes one masked WebSocket frame (RFC 6455 section 5.2) with
// opcode op as DATA within the windows, in pieces of at most 16 KiB.
func (w *wsStream) send(op byte, payload []byte) {
	t := w.c.r.t
	t.Helper()
	b := maskedFrame(op, payload)
	for len(b) > 0 {
		k := int(min(int64(len(b)), 16<<10, w.win, w.c.connWin))
		if k <= 0 {
			if _, err := w.c.next(); err != nil || w.got {
				t.Fatalf("stream %d waiting for window: %v, reset %v", w.id, err, w.rst)
			}
			continue
		}
		if err := w.c.r.fr.WriteData(w.id, false, b[:k]); err != nil {
			t.Fatal(err)
		}
		w.win -= int64(k)
		w.c.connWin -= int64(k)
		b = b[k:]
	}
}

// maskedFrame returns a client's WebSocket frame (RFC 6455 section 5.2):
// opcode op, masked payload.
func maskedFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// endStream sends END_STREAM (the client's side of the tunnel closes).
func (w *wsStream) endStream() {
	if err := w.c.r.fr.WriteData(w.id, true, nil); err != nil {
		w.c.r.t.Fatal(err)
	}
}

// read returns the next WebSocket frame the server sent (opcode and
// payload); io.EOF when the stream ended first.
func (w *wsStream) read() (byte, []byte, error) {
	for {
		if op, p, n, ok := parseWSFrame(w.in); ok {
			w.in = w.in[n:]
			return op, p, nil
		}
		switch {
		case w.got:
			return 0, nil, errors.New("stream reset: " + w.rst.String())
		case w.end:
			return 0, nil, io.EOF
		}
		if _, err := w.c.next(); err != nil {
			return 0, nil, err
		}
	}
}

// parseWSFrame parses an unmasked frame at the start of b.
func parseWSFrame(b []byte) (op byte, payload []byte, n int, ok bool) {
	if len(b) < 2 {
		return 0, nil, 0, false
	}
	op, l, h := b[0]&0x0f, int(b[1]&0x7f), 2
	switch l {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, false
		}
		l, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, false
		}
		l, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < h+l {
		return 0, nil, 0, false
	}
	return op, b[h : h+l], h + l, true
}

const (
	wsText  = 0x1
	wsClose = 0x8
)

// expectEnd reads until the stream's END_STREAM, failing on more frames
// than a close.
func (w *wsStream) expectEnd() {
	w.c.r.t.Helper()
	for {
		op, p, err := w.read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil || op != wsClose {
			w.c.r.t.Fatalf("stream %d: frame %d %q, %v before END_STREAM", w.id, op, p, err)
		}
	}
}

// TestH2WebSocket: messages echoed both ways (one larger than either
// side's stream window, so that both directions wait for credit), a close
// from either side, a refused upgrade, a malformed extended CONNECT, and a
// reset stream closing its tunnel's upstream connection; over h2c and over
// TLS (ALPN h2).
func TestH2WebSocket(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		t.Run("h2c", func(t *testing.T) {
			var ended atomic.Int32
			be := wsEchoBackend(t, &ended)
			port := FreePort(t)
			te := startEngine(t, k)
			te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
			checkWebSocket(t, newWSClient(dialH2(t, port)), &ended)
		})
		t.Run("tls", func(t *testing.T) {
			var ended atomic.Int32
			be := wsEchoBackend(t, &ended)
			port := FreePort(t)
			te := startEngine(t, k)
			te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "example.com"))))
			d := net.Dialer{Timeout: 5 * time.Second}
			tc, err := tls.DialWithDialer(&d, "tcp", "127.0.0.1:"+strconv.Itoa(port),
				&tls.Config{ServerName: "example.com", InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tc.Close() })
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				t.Fatalf("ALPN %q", p)
			}
			checkWebSocket(t, newWSClient(startH2(t, tc)), &ended)
		})
	})
}

// checkWebSocket runs TestH2WebSocket's streams on c, whose backend
// counts the WebSocket connections it saw end in ended.
func checkWebSocket(t *testing.T, c *wsClient, ended *atomic.Int32) {
	w, status := c.connect(1, "/chat", "sec-websocket-protocol", "chat")
	if !c.connectProtocol {
		t.Fatal("the server's SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")
	}
	if status != "200" || w.end {
		t.Fatalf("extended CONNECT: status %q", status)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	for _, msg := range [][]byte{[]byte("hello"), big, []byte("again")} {
		w.send(wsText, msg)
		op, got, err := w.read()
		if err != nil || op != wsText || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", len(msg), op, len(got), err)
		}
	}
	// The client closes: the server answers the close frame and
	// closes its connection, which ends the stream.
	w.send(wsClose, []byte{0x03, 0xe8})
	w.expectEnd()
	w.endStream()

	// The server closes first.
	w, status = c.connect(3, "/chat")
	if status != "200" {
		t.Fatalf("second stream: status %q", status)
	}
	w.send(wsText, []byte("ping"))
	if _, got, err := w.read(); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q %v", got, err)
	}
	w.send(wsText, []byte("bye"))
	w.expectEnd()
	w.endStream()

	// A backend that refuses the upgrade answers with its status.
	if _, status := c.connect(5, "/refuse"); status != "403" {
		t.Fatalf("refused upgrade: status %q", status)
	}
	// A malformed extended CONNECT (no :scheme) is reset
	// PROTOCOL_ERROR, and the connection carries on.
	if _, status := c.connect(7, "/chat", ":scheme", ""); status != "reset PROTOCOL_ERROR" {
		t.Fatalf("malformed extended CONNECT: %q", status)
	}
	w, status = c.connect(9, "/chat")
	if status != "200" {
		t.Fatalf("third stream: status %q", status)
	}
	// RST_STREAM closes the tunnel's upstream connection.
	w.send(wsText, []byte("one"))
	if _, got, err := w.read(); err != nil || string(got) != "one" {
		t.Fatalf("echo: %q %v", got, err)
	}
	c.r.fr.WriteRSTStream(9, http2.ErrCodeCancel)
	WaitFor(t, "the backend to see the reset tunnel close", 10*time.Second, func() bool { return ended.Load() == 3 })
}

// TestH2WebSocketGoClient: the HTTP/2 client of golang.org/x/net (h2c with
// prior knowledge), which sends extended CONNECT once the server's SETTINGS
// allow it, runs 8 WebSocket streams at once on one connection through
// either engine (messages of up to 100 KiB, so the tunnels share the
// connection window), and each ends when the server closes.
// (net/http's own Transport refuses the :protocol field.)
func TestH2WebSocketGoClient(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var ended atomic.Int32
		be := wsEchoBackend(t, &ended)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		var dials atomic.Int32
		rt, closeIdle := xnetTransport(&dials)
		defer closeIdle()
		const streams = 8
		errs := make(chan error, streams)
		for i := range streams {
			go func() { errs <- wsGoStream(rt, port, i) }()
		}
		for range streams {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Fatalf("%d connections for %d streams", n, streams)
		}
		WaitFor(t, "the backend to see the tunnels close", 10*time.Second, func() bool { return ended.Load() == streams })
	})
}

// wsGoStream opens a WebSocket stream with rt, echoes messages of
// growing size through it (stream i's own bytes), then says "bye" and
// expects the end of the stream.
func wsGoStream(rt http.RoundTripper, port, i int) error {
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodConnect, "http://127.0.0.1:"+strconv.Itoa(port)+"/chat", pr)
	if err != nil {
		return err
	}
	req.Host = "example.com"
	req.Header[":protocol"] = []string{"websocket"}
	req.Header.Set("Sec-WebSocket-Version", "13")
	res, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		return fmt.Errorf("stream %d: extended CONNECT: %s %s", i, res.Proto, res.Status)
	}
	var in []byte
	buf := make([]byte, 32<<10)
	for _, size := range []int{5, 1000, 40 << 10, 100 << 10} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		go pw.Write(maskedFrame(wsText, msg))
		for {
			op, got, n, ok := parseWSFrame(in)
			if ok {
				in = in[n:]
				if op != wsText || !bytes.Equal(got, msg) {
					return fmt.Errorf("stream %d: echo of %d bytes: op %d, %d bytes", i, size, op, len(got))
				}
				break
			}
			n, err := res.Body.Read(buf)
			if err != nil && n == 0 {
				return fmt.Errorf("stream %d: reading the tunnel: %w", i, err)
			}
			in = append(in, buf[:n]...)
		}
	}
	// "bye": the server closes its connection (x/net's server sends no
	// close frame), so the client reads the end of the stream.
	go pw.Write(maskedFrame(wsText, []byte("bye")))
	rest, err := io.ReadAll(res.Body)
	if op, _, _, ok := parseWSFrame(append(in, rest...)); err != nil || ok && op != wsClose {
		return fmt.Errorf("stream %d: after bye: %q %w", i, rest, err)
	}
	return nil
}

// xnetTransport returns x/net's HTTP/2 Transport over h2c, counting its
// connections in dials, and a function closing them.
//
//nolint:staticcheck // x/net's Transport is deprecated in favour of net/http's, which rejects the :protocol field (Go 1.26): it is the Go client that speaks RFC 8441.
func xnetTransport(dials *atomic.Int32) (http.RoundTripper, func()) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return tr, tr.CloseIdleConnections
}
