package http2

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func TestServerRequestEvents(t *testing.T) {
	p := newServerPeer(t, Config{})
	evs := p.mustFeed(p.headers(1, false, append(getReq, "content-length", "5", "x-a", "b")...))
	if len(evs) != 1 || evs[0].Kind != EventHeaders || evs[0].StreamID != 1 || evs[0].EndStream {
		t.Fatalf("%+v", evs)
	}
	e := evs[0]
	if string(e.Method) != "GET" || string(e.Scheme) != "https" || string(e.Path) != "/" || string(e.Authority) != "example.com" || e.ContentLength != 5 {
		t.Fatalf("pseudo fields: %+v", e)
	}
	if v, ok := e.Header.Get("x-a"); !ok || string(v) != "b" {
		t.Fatal("x-a missing")
	}
	evs = p.mustFeed(AppendDataPadded(nil, 1, false, []byte("he"), 10))
	if len(evs) != 1 || string(evs[0].Data) != "he" {
		t.Fatalf("%+v", evs)
	}
	evs = p.mustFeed(AppendData(nil, 1, true, []byte("llo")))
	if len(evs) != 1 || !evs[0].EndStream || string(evs[0].Data) != "llo" {
		t.Fatalf("%+v", evs)
	}
	// Response: headers, body, trailers.
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	out, err := p.c.WriteHeaders(nil, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := p.c.WriteData(out, 1, []byte("world"), false)
	if err != nil || n != 5 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	p.c.BeginHeaders()
	p.c.AddHeaderString("grpc-status", "0")
	if out, err = p.c.WriteHeaders(out, 1, true); err != nil {
		t.Fatal(err)
	}
	if p.c.ActiveStreams() != 0 {
		t.Fatal("stream not released after both ends ended")
	}
	if _, err := p.c.WriteHeaders(nil, 1, true); err != ErrStreamNotFound { //nolint:errorlint // sentinel
		t.Fatalf("write after end: %v", err)
	}
	// What the server wrote decodes as a client would.
	c := newClientPeer(t, Config{})
	c.c.BeginHeaders()
	c.c.AddHeaderString(":method", "GET")
	c.c.AddHeaderString(":scheme", "https")
	c.c.AddHeaderString(":path", "/")
	if _, _, err := c.c.WriteRequestHeaders(nil, true); err != nil {
		t.Fatal(err)
	}
	evs = c.mustFeed(out)
	if got := fmt.Sprint(eventKinds(evs)); got != fmt.Sprint([]EventKind{EventHeaders, EventData, EventTrailers}) {
		t.Fatalf("client events %v", got)
	}
	if evs[0].Status != 200 || string(evs[1].Data) != "world" || !evs[2].EndStream {
		t.Fatalf("%+v", evs)
	}
}

func TestPrefaceAndFirstSettings(t *testing.T) {
	c := NewConn(RoleServer, Config{})
	if _, _, err := c.Next([]byte("GET / HTTP/1.1\r\n")); err == nil {
		t.Fatal("HTTP/1.1 accepted as preface")
	}
	p := &peer{t: t, c: NewConn(RoleServer, Config{})}
	p.feed(append([]byte(ClientPreface), AppendPing(nil, false, [8]byte{})...))
	p.expectConnError(ErrCodeProtocol)
	// The preface may arrive in pieces.
	p = &peer{t: t, c: NewConn(RoleServer, Config{})}
	if _, n, err := p.c.Next([]byte(ClientPreface[:10])); n != 0 || err != nil {
		t.Fatalf("partial preface: n=%d err=%v", n, err)
	}
	p.mustFeed(append([]byte(ClientPreface), AppendSettings(nil, nil)...))
}

func TestSettingsAckAndWindowDelta(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	evs := p.mustFeed(AppendSettings(nil, []Setting{{SettingInitialWindowSize, 100}, {SettingMaxFrameSize, 20000}, {0xff, 1}}))
	if len(evs) != 1 || evs[0].Kind != EventSettings {
		t.Fatalf("%+v", evs)
	}
	fs := p.frames()
	if len(fs) != 1 || fs[0].Type != FrameSettings || !fs[0].Flags.Has(FlagAck) {
		t.Fatalf("no SETTINGS ack: %+v", fs)
	}
	if _, sw, _ := p.c.SendWindow(1); sw != 100 {
		t.Fatalf("stream window %d after INITIAL_WINDOW_SIZE 100", sw)
	}
	if p.c.PeerMaxFrameSize() != 20000 {
		t.Fatal("max frame size not applied")
	}
	// A delta that overflows an open stream's window is FLOW_CONTROL_ERROR.
	p.mustFeed(AppendWindowUpdate(nil, 1, MaxWindowSize-100))
	p.feed(AppendSettings(nil, []Setting{{SettingInitialWindowSize, 200}}))
	p.expectConnError(ErrCodeFlowControl)
}

func TestPingAck(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(AppendPing(nil, false, [8]byte{1, 2, 3}))
	fs := p.frames()
	if len(fs) != 1 || fs[0].Type != FramePing || !fs[0].Flags.Has(FlagAck) || fs[0].PingData() != [8]byte{1, 2, 3} {
		t.Fatalf("%+v", fs)
	}
	evs := p.mustFeed(AppendPing(nil, true, [8]byte{9}))
	if len(evs) != 1 || evs[0].Kind != EventPingAck || evs[0].Data[0] != 9 {
		t.Fatalf("%+v", evs)
	}
}

func TestPendingAcksOnly(t *testing.T) {
	p := newServerPeer(t, Config{})
	if !p.c.PendingAcksOnly() {
		t.Fatal("nothing queued, yet not acknowledgements only")
	}
	p.mustFeed(AppendPing(nil, false, [8]byte{1}))
	p.mustFeed(AppendSettings(nil, nil))
	if p.c.Pending() == 0 || !p.c.PendingAcksOnly() {
		t.Fatalf("PING and SETTINGS acknowledgements queued: pending %d, acks only %v", p.c.Pending(), p.c.PendingAcksOnly())
	}
	// Credit for a whole connection window's worth queues a WINDOW_UPDATE,
	// which the peer needs to go on sending.
	p.c.Consume(0, int(p.c.cfg.ConnWindowSize))
	if p.c.PendingAcksOnly() {
		t.Fatal("a WINDOW_UPDATE queued, yet acknowledgements only")
	}
	p.frames()
	if p.c.Pending() != 0 || !p.c.PendingAcksOnly() {
		t.Fatal("the queue was taken, yet something is pending")
	}
}

func TestContinuationAssembly(t *testing.T) {
	p := newServerPeer(t, Config{})
	blk := p.block(getReq...)
	b := AppendHeaders(nil, 1, HeadersParams{EndStream: true}, blk[:3])
	b = AppendContinuation(b, 1, false, blk[3:6])
	b = AppendContinuation(b, 1, true, blk[6:])
	evs := p.mustFeed(b)
	if len(evs) != 1 || evs[0].Kind != EventHeaders || string(evs[0].Path) != "/" || !evs[0].EndStream {
		t.Fatalf("%+v", evs)
	}
	// Any other frame inside a header block is a connection error.
	p = newServerPeer(t, Config{})
	b = AppendHeaders(nil, 1, HeadersParams{}, blk[:3])
	b = AppendPing(b, false, [8]byte{})
	p.feed(b)
	p.expectConnError(ErrCodeProtocol)
	// So is a CONTINUATION on another stream, or without a block.
	p = newServerPeer(t, Config{})
	p.feed(AppendContinuation(AppendHeaders(nil, 1, HeadersParams{}, blk[:3]), 3, true, blk[3:]))
	p.expectConnError(ErrCodeProtocol)
	p = newServerPeer(t, Config{})
	p.feed(AppendContinuation(nil, 1, true, blk))
	p.expectConnError(ErrCodeProtocol)
}

func TestMalformedRequests(t *testing.T) {
	cases := map[string][]string{
		"uppercase name":       append(getReq, "X-Up", "1"),
		"connection field":     append(getReq, "connection", "keep-alive"),
		"transfer-encoding":    append(getReq, "transfer-encoding", "chunked"),
		"upgrade":              append(getReq, "upgrade", "websocket"),
		"te not trailers":      append(getReq, "te", "gzip"),
		"missing path":         {":method", "GET", ":scheme", "https"},
		"empty path":           {":method", "GET", ":scheme", "https", ":path", ""},
		"relative path":        {":method", "GET", ":scheme", "https", ":path", "a/b"},
		"missing method":       {":scheme", "https", ":path", "/"},
		"pseudo after field":   {":method", "GET", "x", "1", ":scheme", "https", ":path", "/"},
		"duplicate method":     {":method", "GET", ":method", "GET", ":scheme", "https", ":path", "/"},
		"unknown pseudo":       append(getReq, ":foo", "1")[:8:8],
		"status in request":    {":method", "GET", ":scheme", "https", ":path", "/", ":status", "200"},
		"host mismatch":        append(getReq, "host", "other.example"),
		"value leading space":  append(getReq, "x", " v"),
		"value with nul":       append(getReq, "x", "a\x00b"),
		"bad content-length":   append(getReq, "content-length", "1x"),
		"two content-lengths":  append(getReq, "content-length", "1", "content-length", "2"),
		"connect with path":    {":method", "CONNECT", ":authority", "a:443", ":path", "/"},
		"connect no authority": {":method", "CONNECT"},
		"empty name":           append(getReq, "", "v"),
	}
	cases["unknown pseudo"] = []string{":method", "GET", ":scheme", "https", ":path", "/", ":foo", "1"}
	for name, kv := range cases {
		t.Run(name, func(t *testing.T) {
			p := newServerPeer(t, Config{})
			evs := p.feed(p.headers(1, true, kv...))
			if len(evs) != 0 {
				t.Fatalf("events %+v for a malformed request", evs)
			}
			p.expectReset(1, ErrCodeProtocol)
			// The connection carries on.
			if evs := p.mustFeed(p.headers(3, true, getReq...)); len(evs) != 1 {
				t.Fatalf("next request: %+v", evs)
			}
		})
	}
	// Valid edge cases.
	for name, kv := range map[string][]string{
		"connect":        {":method", "CONNECT", ":authority", "a:443"},
		"options *":      {":method", "OPTIONS", ":scheme", "https", ":path", "*"},
		"te trailers":    append(getReq, "te", "trailers"),
		"host matches":   append(getReq, "host", "EXAMPLE.com"),
		"no authority":   {":method", "GET", ":scheme", "http", ":path", "/x"},
		"obs-text value": append(getReq, "x", "caf\xe9"),
	} {
		p := newServerPeer(t, Config{})
		if evs := p.mustFeed(p.headers(1, true, kv...)); len(evs) != 1 || evs[0].Kind != EventHeaders {
			t.Errorf("%s: %+v", name, evs)
		}
	}
}

func TestContentLengthMismatch(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, append(getReq, "content-length", "3")...))
	p.feed(AppendData(nil, 1, true, []byte("ab")))
	p.expectReset(1, ErrCodeProtocol)
	p.mustFeed(p.headers(3, false, append(getReq, "content-length", "1")...))
	p.feed(AppendData(nil, 3, false, []byte("ab")))
	p.expectReset(3, ErrCodeProtocol)
	p.feed(p.headers(5, true, append(getReq, "content-length", "1")...))
	p.expectReset(5, ErrCodeProtocol)
}

func TestStreamIDRules(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.feed(p.headers(2, true, getReq...))
	p.expectConnError(ErrCodeProtocol) // even id from a client
	p = newServerPeer(t, Config{})
	p.mustFeed(p.headers(5, true, getReq...))
	p.feed(p.headers(3, true, getReq...))
	p.expectConnError(ErrCodeProtocol) // ids must increase
	p = newServerPeer(t, Config{})
	p.feed(AppendData(nil, 1, false, []byte("x")))
	p.expectConnError(ErrCodeProtocol) // DATA on an idle stream
	p = newServerPeer(t, Config{})
	p.feed(AppendWindowUpdate(nil, 7, 1))
	p.expectConnError(ErrCodeProtocol) // WINDOW_UPDATE on an idle stream
	p = newServerPeer(t, Config{})
	p.feed(AppendRSTStream(nil, 7, ErrCodeCancel))
	p.expectConnError(ErrCodeProtocol) // RST_STREAM on an idle stream
	// PRIORITY is allowed on any stream, and unknown frames are ignored.
	p = newServerPeer(t, Config{})
	if evs := p.mustFeed(append(AppendPriority(nil, 9, Priority{StreamDep: 1}), append(AppendFrameHeader(nil, 3, 0xee, 0xff, 1), 1, 2, 3)...)); len(evs) != 0 {
		t.Fatalf("%+v", evs)
	}
	// A PRIORITY depending on itself is a stream error.
	p.feed(AppendPriority(nil, 11, Priority{StreamDep: 11}))
	p.expectReset(11, ErrCodeProtocol)
}

func TestHalfClosedRemote(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.feed(AppendData(nil, 1, false, []byte("late")))
	p.expectReset(1, ErrCodeStreamClosed)
	// HEADERS on the last stream after it closed: connection error.
	p = newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "204")
	if _, err := p.c.WriteHeaders(nil, 1, true); err != nil {
		t.Fatal(err)
	}
	p.feed(p.headers(1, true, getReq...))
	p.expectConnError(ErrCodeStreamClosed)
}

func TestTrailersRules(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	p.feed(p.headers(1, false, "x-t", "1"))
	p.expectReset(1, ErrCodeProtocol) // trailers without END_STREAM
	p.mustFeed(p.headers(3, false, getReq...))
	p.feed(p.headers(3, true, ":path", "/"))
	p.expectReset(3, ErrCodeProtocol) // pseudo field in trailers
	p.mustFeed(p.headers(5, false, getReq...))
	evs := p.mustFeed(p.headers(5, true, "x-checksum", "abc"))
	if len(evs) != 1 || evs[0].Kind != EventTrailers || !evs[0].EndStream {
		t.Fatalf("%+v", evs)
	}
}

func TestRecvFlowControl(t *testing.T) {
	p := newServerPeer(t, Config{InitialWindowSize: 1000, ConnWindowSize: 65535})
	p.mustFeed(p.headers(1, false, getReq...))
	p.mustFeed(AppendData(nil, 1, false, make([]byte, 600)))
	p.feed(AppendData(nil, 1, false, make([]byte, 401)))
	p.expectReset(1, ErrCodeFlowControl)

	p = newServerPeer(t, Config{InitialWindowSize: 1000, ConnWindowSize: 65535})
	p.mustFeed(p.headers(1, false, getReq...))
	p.mustFeed(AppendData(nil, 1, false, make([]byte, 400)))
	p.c.Consume(1, 400)
	if fs := p.frames(); len(fs) != 0 {
		t.Fatalf("credit returned before half a window: %+v", fs)
	}
	p.mustFeed(AppendDataPadded(nil, 1, false, make([]byte, 50), 99)) // 150 bytes: 100 of padding
	fs := p.frames()
	if len(fs) != 1 || fs[0].Type != FrameWindowUpdate || fs[0].StreamID != 1 || fs[0].Increment != 500 {
		t.Fatalf("want one stream WINDOW_UPDATE of 500: %+v", fs)
	}
	// 450 of 1000 used, 50 unconsumed: 1000-50 more allowed.
	p.mustFeed(AppendData(nil, 1, false, make([]byte, 950)))
	p.feed(AppendData(nil, 1, false, make([]byte, 1)))
	p.expectReset(1, ErrCodeFlowControl)

	// The connection window is shared by all streams.
	p = newServerPeer(t, Config{InitialWindowSize: 60000, ConnWindowSize: 65535})
	p.mustFeed(p.headers(1, false, getReq...))
	p.mustFeed(p.headers(3, false, getReq...))
	p.mustFeed(AppendData(nil, 1, false, make([]byte, 16384)))
	p.mustFeed(AppendData(nil, 1, false, make([]byte, 16384)))
	p.mustFeed(AppendData(nil, 3, false, make([]byte, 16384)))
	p.mustFeed(AppendData(nil, 3, false, make([]byte, 16383)))
	p.feed(AppendData(nil, 3, false, make([]byte, 1)))
	p.expectConnError(ErrCodeFlowControl)
}

func TestConnWindowAdvertised(t *testing.T) {
	c := NewConn(RoleServer, Config{ConnWindowSize: 1 << 20})
	out := c.Start(nil)
	var sawWU bool
	for len(out) > 0 {
		f, n, err := ReadFrame(out, MinMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == FrameWindowUpdate && f.StreamID == 0 && f.Increment == 1<<20-65535 {
			sawWU = true
		}
		out = out[n:]
	}
	if !sawWU {
		t.Fatal("connection window increment not sent")
	}
}

func TestSendFlowControlAndStall(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	out, _ := p.c.WriteHeaders(nil, 1, false)
	body := make([]byte, 100000)
	out, n, err := p.c.WriteData(out, 1, body, true)
	if err != nil || n != 65535 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	// Frames respect the peer's 16384 max frame size; no END_STREAM yet.
	frames := 0
	for b := out; len(b) > 0; {
		f, k, err := ReadFrame(b, MinMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == FrameData {
			frames++
			if f.Flags.Has(FlagEndStream) {
				t.Fatal("END_STREAM on a partial write")
			}
		}
		b = b[k:]
	}
	if frames != 4 {
		t.Fatalf("%d DATA frames", frames)
	}
	connW, streamW, ok := p.c.SendWindow(1)
	if !ok || connW != 0 || streamW != 0 {
		t.Fatalf("windows %d %d %v", connW, streamW, ok)
	}
	if _, n, _ := p.c.WriteData(nil, 1, body[n:], true); n != 0 {
		t.Fatalf("wrote %d with no window", n)
	}
	evs := p.mustFeed(AppendWindowUpdate(AppendWindowUpdate(nil, 0, 50000), 1, 10000))
	if len(evs) != 2 || evs[0].Kind != EventWindowUpdate || evs[1].StreamID != 1 {
		t.Fatalf("%+v", evs)
	}
	if _, n, _ := p.c.WriteData(nil, 1, body[65535:], true); n != 10000 {
		t.Fatalf("wrote %d, want the stream's 10000", n)
	}
	// Window overflow: stream error, then connection error.
	p.feed(AppendWindowUpdate(AppendWindowUpdate(nil, 1, 1), 1, MaxWindowSize))
	p.expectReset(1, ErrCodeFlowControl)
	p.feed(AppendWindowUpdate(nil, 0, MaxWindowSize))
	p.expectConnError(ErrCodeFlowControl)
}

func TestMaxConcurrentStreams(t *testing.T) {
	p := newServerPeer(t, Config{MaxConcurrentStreams: 3})
	for id := uint32(1); id <= 5; id += 2 {
		p.mustFeed(p.headers(id, false, getReq...))
	}
	if evs := p.feed(p.headers(7, false, getReq...)); len(evs) != 0 {
		t.Fatalf("fourth stream reported: %+v", evs)
	}
	p.expectReset(7, ErrCodeRefusedStream)
	// Ending one stream frees a slot.
	p.mustFeed(AppendRSTStream(nil, 3, ErrCodeCancel))
	if evs := p.mustFeed(p.headers(9, false, getReq...)); len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
	if len(p.c.streams) > 3 {
		t.Fatalf("stream slab grew to %d for 3 concurrent streams", len(p.c.streams))
	}
}

func TestPeerReset(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	evs := p.mustFeed(AppendRSTStream(nil, 1, ErrCodeCancel))
	if len(evs) != 1 || evs[0].Kind != EventReset || evs[0].Code != ErrCodeCancel || evs[0].Local {
		t.Fatalf("%+v", evs)
	}
	if _, err := p.c.WriteHeaders(nil, 1, true); err == nil {
		t.Fatal("write on a reset stream")
	}
	// Frames on the closed stream: RST_STREAM and WINDOW_UPDATE are ignored,
	// DATA is STREAM_CLOSED.
	p.mustFeed(AppendRSTStream(AppendWindowUpdate(nil, 1, 10), 1, ErrCodeCancel))
	p.feed(AppendData(nil, 1, false, []byte("x")))
	p.expectReset(1, ErrCodeStreamClosed)
}

func TestLocalResetIgnoresLateFrames(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	if b := p.c.WriteReset(nil, 1, ErrCodeCancel); len(b) != 13 {
		t.Fatalf("RST_STREAM %x", b)
	}
	// Frames in flight when we reset are dropped without answer; their
	// HPACK state is kept.
	if evs := p.mustFeed(append(AppendData(nil, 1, false, []byte("x")), p.headers(1, true, "x-t", "1")...)); len(evs) != 0 {
		t.Fatalf("%+v", evs)
	}
	if fs := p.frames(); len(fs) != 0 {
		t.Fatalf("answered late frames: %+v", fs)
	}
}

func TestGoAwayGracefulDrain(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	b := p.c.GoAway(nil, ErrCodeNo, nil)
	f, _, _ := ReadFrame(b, MinMaxFrameSize)
	if f.Type != FrameGoAway || f.LastStreamID != 1 || f.Code != ErrCodeNo {
		t.Fatalf("%+v", f)
	}
	if p.c.Done() {
		t.Fatal("done with stream 1 open")
	}
	if evs := p.feed(p.headers(3, true, getReq...)); len(evs) != 0 {
		t.Fatalf("new stream after GOAWAY: %+v", evs)
	}
	p.expectReset(3, ErrCodeRefusedStream)
	// Stream 1 finishes normally.
	if evs := p.mustFeed(AppendData(nil, 1, true, nil)); len(evs) != 1 || !evs[0].EndStream {
		t.Fatalf("%+v", evs)
	}
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	if _, err := p.c.WriteHeaders(nil, 1, true); err != nil {
		t.Fatal(err)
	}
	if !p.c.Done() {
		t.Fatal("not done after the last stream")
	}
}

func TestClientGoAwayReceived(t *testing.T) {
	p := newClientPeer(t, Config{})
	var ids []uint32
	for range 3 {
		p.c.BeginHeaders()
		p.c.AddHeaderString(":method", "GET")
		p.c.AddHeaderString(":scheme", "http")
		p.c.AddHeaderString(":path", "/")
		id, _, err := p.c.WriteRequestHeaders(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if fmt.Sprint(ids) != "[1 3 5]" {
		t.Fatalf("ids %v", ids)
	}
	evs := p.mustFeed(AppendGoAway(nil, 1, ErrCodeNo, []byte("restart")))
	if len(evs) != 1 || evs[0].Kind != EventGoAway || evs[0].LastStreamID != 1 || string(evs[0].Data) != "restart" {
		t.Fatalf("%+v", evs)
	}
	if p.c.ActiveStreams() != 1 {
		t.Fatalf("%d streams open, want stream 1 only", p.c.ActiveStreams())
	}
	p.c.BeginHeaders()
	if _, _, err := p.c.WriteRequestHeaders(nil, true); err != ErrGoingAway { //nolint:errorlint // sentinel
		t.Fatalf("open after GOAWAY: %v", err)
	}
}

func TestClientResponses(t *testing.T) {
	p := newClientPeer(t, Config{})
	open := func(method string) uint32 {
		p.c.BeginHeaders()
		p.c.AddHeaderString(":method", method)
		p.c.AddHeaderString(":scheme", "http")
		p.c.AddHeaderString(":path", "/")
		id, _, err := p.c.WriteRequestHeaders(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := open("GET")
	evs := p.mustFeed(append(p.headers(id, false, ":status", "103", "link", "</a>"), p.headers(id, false, ":status", "200")...))
	if len(evs) != 2 || evs[0].Status != 103 || evs[1].Status != 200 {
		t.Fatalf("%+v", evs)
	}
	// HEAD: content-length without a body.
	id = open("HEAD")
	if evs := p.mustFeed(p.headers(id, true, ":status", "200", "content-length", "1000")); len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
	// DATA before the response head is malformed.
	id = open("GET")
	p.feed(AppendData(nil, id, true, []byte("x")))
	p.expectReset(id, ErrCodeProtocol)
	// 101 and a missing :status are malformed.
	id = open("GET")
	p.feed(p.headers(id, true, ":status", "101"))
	p.expectReset(id, ErrCodeProtocol)
	id = open("GET")
	p.feed(p.headers(id, true, "x", "y"))
	p.expectReset(id, ErrCodeProtocol)
	// Server-initiated streams and pushes are connection errors.
	p.feed(p.headers(2, true, ":status", "200"))
	p.expectConnError(ErrCodeProtocol)
	p = newClientPeer(t, Config{})
	p.feed(AppendPushPromise(nil, 1, 2, true, 0, nil))
	p.expectConnError(ErrCodeProtocol)
	p = newClientPeer(t, Config{})
	p.feed(AppendSettings(nil, []Setting{{SettingEnablePush, 1}}))
	p.expectConnError(ErrCodeProtocol)
}

func TestClientRespectsPeerMaxStreams(t *testing.T) {
	p := newClientPeer(t, Config{})
	p.mustFeed(AppendSettings(nil, []Setting{{SettingMaxConcurrentStreams, 1}}))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":method", "GET")
	if _, _, err := p.c.WriteRequestHeaders(nil, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.c.WriteRequestHeaders(nil, false); err != ErrTooManyStreams { //nolint:errorlint // sentinel
		t.Fatalf("second stream: %v", err)
	}
}

func TestHeaderBlockSplitToPeerFrameSize(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	big := bytes.Repeat([]byte{0xff}, 40000) // not Huffman-friendly: stays ~40 KB
	p.c.AddHeader([]byte("x-big"), big)
	out, err := p.c.WriteHeaders(nil, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	var types []FrameType
	for len(out) > 0 {
		f, n, err := ReadFrame(out, MinMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, f.Type)
		out = out[n:]
	}
	if fmt.Sprint(types) != "[HEADERS CONTINUATION CONTINUATION]" {
		t.Fatalf("%v", types)
	}
}

func TestEncoderDropsConnectionFields(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	for _, n := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"} {
		p.c.AddHeaderString(n, "x")
	}
	p.c.AddHeaderString("TE", "gzip")
	p.c.AddHeaderString("X-Kept", "1")
	out, _ := p.c.WriteHeaders(nil, 1, true)
	f, _, _ := ReadFrame(out, MinMaxFrameSize)
	var d Decoder
	d.Init(4096, 1<<16)
	var h HeaderList
	if err := d.Decode(f.Data, &h); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(listPairs(&h)); got != "[:status: 200 x-kept: 1]" {
		t.Fatal(got)
	}
}

func TestShutdownTwoStep(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	b := p.c.Shutdown(nil)
	var fs []Frame
	for len(b) > 0 {
		f, n, err := ReadFrame(b, MinMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
		b = b[n:]
	}
	if len(fs) != 2 || fs[0].Type != FrameGoAway || fs[0].LastStreamID != MaxStreamID || fs[1].Type != FramePing {
		t.Fatalf("%+v", fs)
	}
	// A stream the client opened before it saw the GOAWAY is accepted.
	if evs := p.mustFeed(p.headers(3, true, getReq...)); len(evs) != 1 {
		t.Fatalf("in-flight stream refused: %+v", evs)
	}
	// The PING's acknowledgement brings the final GOAWAY, naming stream 3.
	if evs := p.mustFeed(AppendPing(nil, true, fs[1].PingData())); len(evs) != 0 {
		t.Fatalf("%+v", evs)
	}
	out := p.frames()
	if len(out) != 1 || out[0].Type != FrameGoAway || out[0].LastStreamID != 3 || out[0].Code != ErrCodeNo {
		t.Fatalf("%+v", out)
	}
	p.feed(p.headers(5, true, getReq...))
	p.expectReset(5, ErrCodeRefusedStream)
	if p.c.Done() {
		t.Fatal("done with streams 1 and 3 open")
	}
	for _, id := range []uint32{1, 3} {
		p.c.WriteReset(nil, id, ErrCodeNo)
	}
	if !p.c.Done() {
		t.Fatal("not done")
	}
}

func TestFrameErrorsOnIdleStreams(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.feed(AppendWindowUpdate(nil, 1, 0))
	p.expectConnError(ErrCodeProtocol) // idle stream: connection error
	p = newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, false, getReq...))
	p.feed(AppendWindowUpdate(nil, 1, 0))
	p.expectReset(1, ErrCodeProtocol) // open stream: stream error
	p = newServerPeer(t, Config{})
	p.feed(AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, HasPriority: true, Priority: Priority{StreamDep: 1}}, p.block(getReq...)))
	p.expectConnError(ErrCodeProtocol) // HEADERS depending on itself
}

// TestUnwrittenBlockLeavesTableInStep writes a response head on a stream the
// client has reset: the write fails, and the fields it would have indexed
// are not in the encoder's table, so the next block, on another stream, is
// decoded by the client as sent.
func TestUnwrittenBlockLeavesTableInStep(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.mustFeed(p.headers(3, true, getReq...))
	p.mustFeed(AppendRSTStream(nil, 1, ErrCodeCancel))
	p.frames()
	p.c.BeginHeaders()
	p.c.AddStatus(200)
	p.c.AddHeaderString("x-indexed", "first")
	if _, err := p.c.WriteHeaders(nil, 1, true); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("write on the reset stream: %v, want ErrStreamNotFound", err)
	}
	p.c.BeginHeaders()
	p.c.AddStatus(200)
	p.c.AddHeaderString("x-other", "second")
	p.c.AddHeaderString("x-indexed", "first")
	b, err := p.c.WriteHeaders(nil, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := ReadFrame(b, MaxMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(f.Data)
	if err != nil {
		t.Fatalf("client cannot decode the block: %v", err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.Name+"="+f.Value)
	}
	if want := "[:status=200 x-other=second x-indexed=first]"; fmt.Sprint(got) != want {
		t.Fatalf("client decoded %v, want %s", got, want)
	}
}
