package http2

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/flaxlb/flax/dataplane/http1"
)

// TestRequestToHTTP1: a request read by a server Conn, rewritten as an
// HTTP/1.1 head, parses with dataplane/http1 into the same request.
func TestRequestToHTTP1(t *testing.T) {
	p := newServerPeer(t, Config{})
	evs := p.mustFeed(p.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "api.example.com:8443",
		":path", "/v1/items?id=7", "cookie", "a=1", "content-type", "application/json", "cookie", "b=2", "host", "api.example.com:8443"))
	if len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
	head := AppendRequestHTTP1(nil, &evs[0])
	want := "POST /v1/items?id=7 HTTP/1.1\r\nhost: api.example.com:8443\r\ncontent-type: application/json\r\ncookie: a=1; b=2\r\ntransfer-encoding: chunked\r\n\r\n"
	if string(head) != want {
		t.Fatalf("head:\n%q\nwant\n%q", head, want)
	}
	var req http1.Request
	req.Reset()
	n, err := http1.ParseRequest(head, &req, http1.Limits{})
	if err != nil || n != len(head) {
		t.Fatalf("http1 parse: n=%d err=%v", n, err)
	}
	if req.Method != http1.MethodPost || string(req.Path.Bytes(head)) != "/v1/items" || string(req.Query.Bytes(head)) != "id=7" ||
		string(req.Authority.Bytes(head)) != "api.example.com:8443" || req.Framing() != http1.FramingChunked {
		t.Fatalf("parsed %+v", req)
	}
	// A bodiless GET with a content-length-less END_STREAM has no framing.
	evs = p.mustFeed(p.headers(3, true, getReq...))
	head = AppendRequestHTTP1(nil, &evs[0])
	if string(head) != "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n" {
		t.Fatalf("%q", head)
	}
	// CONNECT uses the authority as its target.
	evs = p.mustFeed(p.headers(5, false, ":method", "CONNECT", ":authority", "db:5432"))
	head = AppendRequestHTTP1(nil, &evs[0])
	if string(head[:len("CONNECT db:5432 HTTP/1.1\r\n")]) != "CONNECT db:5432 HTTP/1.1\r\n" {
		t.Fatalf("%q", head)
	}
}

func TestAddStatus(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddStatus(503)
	out, err := p.c.WriteHeaders(nil, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	c := newClientPeer(t, Config{})
	c.c.BeginHeaders()
	c.c.AddHeaderString(":method", "GET")
	if _, _, err := c.c.WriteRequestHeaders(nil, true); err != nil {
		t.Fatal(err)
	}
	if evs := c.mustFeed(out); len(evs) != 1 || evs[0].Status != 503 {
		t.Fatalf("%+v", evs)
	}
}

var wsConnect = []string{
	":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat?room=1",
	":authority", "ws.example.com", "sec-websocket-version", "13", "sec-websocket-protocol", "chat, superchat",
	"sec-websocket-extensions", "permessage-deflate", "origin", "https://example.com",
}

// TestExtendedConnectSetting: a server advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 only when configured to (RFC 8441
// section 3).
func TestExtendedConnectSetting(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := NewConn(RoleServer, Config{EnableConnectProtocol: on})
		f, _, err := ReadFrame(c.Start(nil), MaxMaxFrameSize)
		if err != nil || f.Type != FrameSettings {
			t.Fatalf("first frame %v %v", f.Type, err)
		}
		got := false
		for i := range f.NumSettings() {
			if s := f.Setting(i); s.ID == SettingEnableConnectProtocol {
				got = s.Val == 1
			}
		}
		if got != on {
			t.Errorf("EnableConnectProtocol %v: advertised %v", on, got)
		}
	}
	// A client never advertises it.
	c := NewConn(RoleClient, Config{EnableConnectProtocol: true})
	out := c.Start(nil)
	f, _, _ := ReadFrame(out[len(ClientPreface):], MaxMaxFrameSize)
	for i := range f.NumSettings() {
		if f.Setting(i).ID == SettingEnableConnectProtocol {
			t.Error("client advertised ENABLE_CONNECT_PROTOCOL")
		}
	}
}

// TestExtendedConnectWebSocket: an extended CONNECT for WebSocket becomes
// an HTTP/1.1 upgrade request (RFC 8441 section 5 to RFC 6455 section 4.1).
func TestExtendedConnectWebSocket(t *testing.T) {
	p := newServerPeer(t, Config{EnableConnectProtocol: true})
	evs := p.mustFeed(p.headers(1, false, append(wsConnect, "sec-websocket-key", "c2VudCBieSB0aGUgY2xpZW50IQ==", "content-length", "100")...))
	if len(evs) != 1 || !evs[0].WebSocket() || string(evs[0].Protocol) != "websocket" {
		t.Fatalf("%+v", evs)
	}
	head := AppendRequestHTTP1(nil, &evs[0])
	var req http1.Request
	req.Reset()
	n, err := http1.ParseRequest(head, &req, http1.Limits{})
	if err != nil || n != len(head) {
		t.Fatalf("http1 parse of %q: n=%d err=%v", head, n, err)
	}
	if req.Method != http1.MethodGet || string(req.Path.Bytes(head)) != "/chat" || string(req.Authority.Bytes(head)) != "ws.example.com" ||
		!req.UpgradeRequested() || string(req.Upgrade.Bytes(head)) != "websocket" || req.Framing() != http1.FramingNone {
		t.Fatalf("parsed %q as %+v", head, req)
	}
	fields := map[string][]string{}
	for i := range req.Fields {
		f := &req.Fields[i]
		fields[string(f.Name.Bytes(head))] = append(fields[string(f.Name.Bytes(head))], string(f.Value.Bytes(head)))
	}
	for name, want := range map[string]string{
		"sec-websocket-version": "13", "sec-websocket-protocol": "chat, superchat",
		"sec-websocket-extensions": "permessage-deflate", "origin": "https://example.com",
	} {
		if v := fields[name]; len(v) != 1 || v[0] != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	keys := fields["sec-websocket-key"]
	if len(keys) != 1 || keys[0] == "c2VudCBieSB0aGUgY2xpZW50IQ==" {
		t.Fatalf("sec-websocket-key %q: want one of the proxy's own", keys)
	}
	if raw, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(raw) != 16 {
		t.Fatalf("sec-websocket-key %q: %v, %d bytes", keys[0], err, len(raw))
	}
	// A fresh key per request.
	evs = p.mustFeed(p.headers(3, false, wsConnect...))
	if again := AppendRequestHTTP1(nil, &evs[0]); bytes.Contains(again, []byte(keys[0])) {
		t.Fatal("the same sec-websocket-key twice")
	}
	// Another protocol is a plain CONNECT, which the proxy does not serve.
	evs = p.mustFeed(p.headers(5, false, ":method", "CONNECT", ":protocol", "connect-udp", ":scheme", "https",
		":path", "/.well-known/masque/udp/h/53/", ":authority", "proxy.example.com"))
	if len(evs) != 1 || evs[0].WebSocket() {
		t.Fatalf("%+v", evs)
	}
	if head := AppendRequestHTTP1(nil, &evs[0]); !bytes.HasPrefix(head, []byte("CONNECT proxy.example.com:443 HTTP/1.1\r\n")) {
		t.Fatalf("%q", head)
	}
}

// TestExtendedConnectMalformed: extended CONNECT requests that break RFC
// 8441 section 4 (or use :protocol where the server did not enable it) are
// malformed: RST_STREAM PROTOCOL_ERROR (RFC 9113 section 8.1.1), and the
// connection goes on.
func TestExtendedConnectMalformed(t *testing.T) {
	cases := map[string]struct {
		kv []string
		on bool
	}{
		"setting off":        {wsConnect, false},
		"no path":            {[]string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", "a"}, true},
		"no scheme":          {[]string{":method", "CONNECT", ":protocol", "websocket", ":path", "/", ":authority", "a"}, true},
		"no authority":       {[]string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/"}, true},
		"protocol on GET":    {[]string{":method", "GET", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", "a"}, true},
		"empty protocol":     {[]string{":method", "CONNECT", ":protocol", "", ":scheme", "https", ":path", "/", ":authority", "a"}, true},
		"protocol not token": {[]string{":method", "CONNECT", ":protocol", "web socket", ":scheme", "https", ":path", "/", ":authority", "a"}, true},
		"relative path":      {[]string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "chat", ":authority", "a"}, true},
		"two protocols":      {[]string{":method", "CONNECT", ":protocol", "websocket", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", "a"}, true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := newServerPeer(t, Config{EnableConnectProtocol: c.on})
			if evs := p.feed(p.headers(1, false, c.kv...)); len(evs) != 0 {
				t.Fatalf("events %+v for a malformed request", evs)
			}
			p.expectReset(1, ErrCodeProtocol)
			if evs := p.mustFeed(p.headers(3, true, getReq...)); len(evs) != 1 {
				t.Fatalf("next request: %+v", evs)
			}
		})
	}
	// Plain CONNECT is unchanged by the setting.
	p := newServerPeer(t, Config{EnableConnectProtocol: true})
	if evs := p.mustFeed(p.headers(1, false, ":method", "CONNECT", ":authority", "db:5432")); len(evs) != 1 || evs[0].WebSocket() {
		t.Fatalf("%+v", evs)
	}
}
