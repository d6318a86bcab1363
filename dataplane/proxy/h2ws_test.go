package proxy

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	xhttp2 "golang.org/x/net/http2"

	"github.com/flaxlb/flax/dataplane/http1"
)

// wsFields are the fields of an extended CONNECT for WebSocket (RFC 8441
// section 5).
func wsFields(path string, extra ...string) []string {
	return append([]string{
		":method", "CONNECT", ":protocol", "websocket", ":scheme", "http", ":authority", "example.com",
		":path", path, "sec-websocket-version", "13", "sec-websocket-protocol", "chat",
	}, extra...)
}

const ws101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"

// wsBackend plays a backend: it records the upgrade request and every
// byte after it, and answers the head with resp.
type wsBackend struct {
	t    *testing.T
	resp string
	head http1.Request
	raw  []byte // the request head
	got  []byte // tunnel bytes received
	s    *Session
}

func (b *wsBackend) serve(s *Session, p []byte) {
	if bytes.HasPrefix(p, []byte("GET ")) {
		b.raw = append(b.raw[:0], p...)
		b.got = b.got[:0]
		b.head.Reset()
		if n, err := http1.ParseRequest(b.raw, &b.head, http1.Limits{}); err != nil || n != len(b.raw) {
			b.t.Fatalf("upstream request %q: n=%d err=%v", p, n, err)
		}
		b.s = s
		s.UpstreamData([]byte(b.resp))
		return
	}
	b.got = append(b.got, p...)
}

// send and eof act as the backend on the tunnel, then let everything run.
func (b *wsBackend) send(d *h2drv, p string) {
	b.s.UpstreamData([]byte(p))
	d.perform(b.s)
	d.h.Flush()
	d.run()
}

func (b *wsBackend) eof(d *h2drv) {
	b.s.UpstreamEOF()
	d.perform(b.s)
	d.h.Flush()
	d.run()
}

func newWSDrv(t *testing.T, resp string) (*h2drv, *wsBackend, *h2Client) {
	return newWSDrvOpts(t, resp, Options{})
}

func newWSDrvOpts(t *testing.T, resp string, opts Options) (*h2drv, *wsBackend, *h2Client) {
	cfg, reg := compileTest(t, testSnapshot)
	d := newH2DrvOpts(t, cfg, reg, "", opts)
	b := &wsBackend{t: t, resp: resp}
	d.upstream = b.serve
	c := newH2Client()
	c.fr.WriteSettings()
	d.client(c.take())
	return d, b, c
}

// The connection advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441
// section 3).
func TestH2AdvertisesExtendedConnect(t *testing.T) {
	d, _, _ := newWSDrv(t, ws101)
	fr := xhttp2.NewFramer(nil, bytes.NewReader(d.out))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*xhttp2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v", f)
	}
	if v, ok := sf.Value(xhttp2.SettingEnableConnectProtocol); !ok || v != 1 {
		t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL %v %v", v, ok)
	}
}

// A WebSocket stream: the extended CONNECT reaches the backend as an
// HTTP/1.1 upgrade, its 101 reaches the client as 200, bytes flow both
// ways as DATA, and each side's close is an END_STREAM or a half-close.
func TestH2WebSocketTunnel(t *testing.T) {
	t.Run("backend closes first", func(t *testing.T) {
		d, b, c := newWSDrv(t, ws101)
		c.headers(1, false, wsFields("/chat?x=1", "origin", "http://example.com")...)
		d.out = d.out[:0]
		d.client(c.take())
		r := &b.head
		if r.Method != http1.MethodGet || string(r.Path.Bytes(b.raw)) != "/chat" || !r.UpgradeRequested() ||
			!strings.EqualFold(string(r.Upgrade.Bytes(b.raw)), "websocket") || r.Framing() != http1.FramingNone {
			t.Fatalf("upstream request %q", b.raw)
		}
		for _, f := range []string{"sec-websocket-key: ", "sec-websocket-version: 13\r\n", "sec-websocket-protocol: chat\r\n", "origin: http://example.com\r\n"} {
			if !bytes.Contains(bytes.ToLower(b.raw), []byte(f)) {
				t.Errorf("upstream request lacks %q: %q", f, b.raw)
			}
		}
		res := readFrames(t, d.out)[1]
		if res == nil || res.header[":status"] != "200" || res.header["sec-websocket-protocol"] != "chat" || res.ended || res.reset {
			t.Fatalf("response %+v", res)
		}
		for _, name := range []string{"sec-websocket-accept", "upgrade", "connection"} {
			if _, ok := res.header[name]; ok {
				t.Errorf("response carries %s", name)
			}
		}
		// Client to backend.
		c.fr.WriteData(1, false, []byte("hello"))
		d.client(c.take())
		if string(b.got) != "hello" {
			t.Fatalf("backend got %q", b.got)
		}
		// The stream holds no buffer of its own while the tunnel idles.
		if st := d.h.streams[0]; st.nrx != 0 {
			t.Fatalf("an idle WebSocket stream holds %d buffers", st.nrx)
		}
		// Backend to client.
		d.out = d.out[:0]
		b.send(d, "world")
		if res := readFrames(t, d.out)[1]; res == nil || string(res.body) != "world" || res.ended {
			t.Fatalf("client got %+v", res)
		}
		// The backend closes: END_STREAM, the client side stays open.
		d.out = d.out[:0]
		b.eof(d)
		if res := readFrames(t, d.out)[1]; res == nil || !res.ended || res.reset {
			t.Fatalf("after the backend closed: %+v", res)
		}
		if d.h.Streams() != 1 || d.upShut != 0 {
			t.Fatalf("%d streams, %d upstream shutdowns", d.h.Streams(), d.upShut)
		}
		c.fr.WriteData(1, false, []byte("bye"))
		d.client(c.take())
		if string(b.got) != "hellobye" {
			t.Fatalf("backend got %q", b.got)
		}
		// The client ends too: the tunnel is over.
		d.out = d.out[:0]
		c.fr.WriteData(1, true, nil)
		d.client(c.take())
		if d.upShut != 1 || d.h.Streams() != 0 {
			t.Fatalf("%d upstream shutdowns, %d streams", d.upShut, d.h.Streams())
		}
		if res := readFrames(t, d.out)[1]; res != nil && res.reset {
			t.Fatalf("stream reset after a clean close: %+v", res)
		}
	})
	t.Run("client closes first", func(t *testing.T) {
		d, b, c := newWSDrv(t, ws101)
		c.headers(1, false, wsFields("/chat")...)
		d.client(c.take())
		c.fr.WriteData(1, true, []byte("last words"))
		d.client(c.take())
		if string(b.got) != "last words" || d.upShut != 1 {
			t.Fatalf("backend got %q, %d shutdowns", b.got, d.upShut)
		}
		b.send(d, "echo")
		b.eof(d)
		res := readFrames(t, d.out)[1]
		if res == nil || res.header[":status"] != "200" || string(res.body) != "echo" || !res.ended || res.reset || d.h.Streams() != 0 {
			t.Fatalf("client got %+v, %d streams", res, d.h.Streams())
		}
	})
	t.Run("backend speaks first", func(t *testing.T) {
		// Bytes right behind the 101 head are the tunnel's first DATA.
		d, _, c := newWSDrv(t, ws101+"\x81\x02hi")
		c.headers(1, false, wsFields("/chat")...)
		d.out = d.out[:0]
		d.client(c.take())
		if res := readFrames(t, d.out)[1]; res == nil || res.header[":status"] != "200" || string(res.body) != "\x81\x02hi" || res.ended {
			t.Fatalf("client got %+v", res)
		}
	})
	t.Run("tunnel times out", func(t *testing.T) {
		// A tunnel that ends other than by both sides closing (here its
		// idle timeout) is reset CONNECT_ERROR (RFC 9113 section 8.5).
		d, b, c := newWSDrv(t, ws101)
		c.headers(1, false, wsFields("/chat")...)
		d.client(c.take())
		d.out = d.out[:0]
		b.s.Timer(1 << 62)
		d.perform(b.s)
		d.h.Flush()
		d.run()
		if res := readFrames(t, d.out)[1]; res == nil || !res.reset || res.code != xhttp2.ErrCodeConnect || res.ended || d.upClosed == 0 {
			t.Fatalf("client got %+v, %d upstream closes", res, d.upClosed)
		}
		if d.h.Streams() != 0 {
			t.Fatalf("%d streams", d.h.Streams())
		}
	})
	t.Run("client resets", func(t *testing.T) {
		d, b, c := newWSDrv(t, ws101)
		c.headers(1, false, wsFields("/chat")...)
		d.client(c.take())
		c.fr.WriteRSTStream(1, xhttp2.ErrCodeCancel)
		d.client(c.take())
		if d.upClosed == 0 || d.h.Streams() != 0 || b.s == nil {
			t.Fatalf("%d upstream closes, %d streams", d.upClosed, d.h.Streams())
		}
	})
}

// A backend that does not switch protocols answers the stream with its
// own status (a 2xx, which would mean the tunnel is up, becomes 502).
func TestH2WebSocketRefused(t *testing.T) {
	for _, tc := range []struct{ resp, status, body string }{
		{"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied", "403", "denied"},
		{"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n", "426", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "502", ""},
	} {
		d, _, c := newWSDrv(t, tc.resp)
		c.headers(1, false, wsFields("/chat")...)
		d.out = d.out[:0]
		d.client(c.take())
		res := readFrames(t, d.out)[1]
		if res == nil || res.header[":status"] != tc.status || !res.ended || (tc.body != "" && string(res.body) != tc.body) {
			t.Fatalf("%q: client got %+v", tc.resp, res)
		}
		if d.h.Streams() != 0 {
			t.Fatalf("%q: %d streams left", tc.resp, d.h.Streams())
		}
	}
}

// An extended CONNECT for a protocol other than WebSocket is answered 501,
// as a plain CONNECT is.
func TestH2ExtendedConnectOtherProtocol(t *testing.T) {
	d, b, c := newWSDrv(t, ws101)
	c.headers(1, false, ":method", "CONNECT", ":protocol", "connect-udp", ":scheme", "http", ":authority", "example.com",
		":path", "/.well-known/masque/udp/h/53/")
	d.out = d.out[:0]
	d.client(c.take())
	if res := readFrames(t, d.out)[1]; res == nil || res.header[":status"] != "501" || b.raw != nil {
		t.Fatalf("client got %+v, backend %q", res, b.raw)
	}
}

// A WebSocket stream (upgrade, a message each way, both closes) allocates
// nothing in steady state.
func TestH2WebSocketDoesNotAllocate(t *testing.T) {
	d, b, c := newWSDrv(t, ws101)
	c.headers(1, false, wsFields("/chat")...)
	c.fr.WriteData(1, false, []byte("hello"))
	open := c.take()
	c.fr.WriteData(1, true, nil)
	end := c.take()
	dataAt := len(open) - 9 - len("hello")
	id := uint32(1)
	stream := func() {
		binary.BigEndian.PutUint32(open[5:9], id)
		binary.BigEndian.PutUint32(open[dataAt+5:dataAt+9], id)
		binary.BigEndian.PutUint32(end[5:9], id)
		d.client(open)
		b.send(d, "world")
		b.eof(d)
		d.client(end)
		d.out = d.out[:0]
		id += 2
	}
	for range 3 {
		stream()
	}
	if d.h.Streams() != 0 || string(b.got) != "hello" {
		t.Fatalf("%d streams left, backend got %q", d.h.Streams(), b.got)
	}
	if n := testing.AllocsPerRun(200, stream); n != 0 {
		t.Fatalf("%v allocations per WebSocket stream", n)
	}
}

// A WebSocket stream is one access log line when its tunnel ends, as an
// HTTP/1.1 upgrade is: the backend's 101, the HTTP/2 protocol, the bytes.
func TestH2WebSocketRecord(t *testing.T) {
	al, out := newTestLog(t)
	d, b, c := newWSDrvOpts(t, ws101, Options{AccessLog: al.Worker(0)})
	c.headers(1, false, wsFields("/chat")...)
	c.fr.WriteData(1, false, []byte("hello"))
	d.client(c.take())
	b.send(d, "world!")
	b.eof(d)
	c.fr.WriteData(1, true, nil)
	d.client(c.take())
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("access log:\n%s", out.String())
	}
	for _, want := range []string{`"protocol":"HTTP/2.0"`, `"status":101`, `"method":"GET"`, `"path":"/chat"`} {
		if !strings.Contains(lines[0], want) {
			t.Fatalf("access log line %s lacks %s", lines[0], want)
		}
	}
}
