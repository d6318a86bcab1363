package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/http2"
	"github.com/flaxlb/flax/dataplane/metrics"
)

const h2Snapshot = `
version: 1
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    hostnames: [example.com]
    routes:
    - name: app
      backends: [{backendGroup: h2, weight: 1}]
      retry: {}
    - name: retry
      matches: [{path: {type: PATH_PREFIX, value: /retry}}]
      retry: {attempts: 2, retryOnConnectFailure: true, backoffBase: 1ms, backoffMax: 1ms}
      backends: [{backendGroup: h2, weight: 1}]
    - name: plain
      matches: [{path: {type: PATH_PREFIX, value: /plain}}]
      backends: [{backendGroup: plain, weight: 1}]
      retry: {}
backendGroups:
- name: h2
  protocol: H2C
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}]
- name: plain
  endpoints: [{address: 10.0.0.1, port: 80}]
`

// h2Peer is the backend side of an upstream HTTP/2 connection: a server
// http2.Conn fed what the session sends upstream.
type h2Peer struct {
	t    testing.TB
	c    *http2.Conn
	in   []byte
	evs  []http2.Event
	data map[uint32]*bytes.Buffer
	hdrs map[uint32][][2]string // request headers, then trailers
	ends map[uint32]bool
}

func newH2Peer(t testing.TB, cfg http2.Config) *h2Peer {
	return &h2Peer{
		t: t, c: http2.NewConn(http2.RoleServer, cfg),
		data: map[uint32]*bytes.Buffer{}, hdrs: map[uint32][][2]string{}, ends: map[uint32]bool{},
	}
}

// feed processes bytes the proxy sent and returns the frames the peer
// answers with on its own (SETTINGS and PING acknowledgements, window
// updates).
func (p *h2Peer) feed(b string) []byte {
	p.t.Helper()
	p.in = append(p.in, b...)
	for {
		ev, n, err := p.c.Next(p.in)
		if err != nil {
			p.t.Fatalf("backend: connection error %v", err)
		}
		if n == 0 {
			break
		}
		p.in = p.in[n:]
		switch ev.Kind {
		case http2.EventHeaders, http2.EventTrailers:
			var fs [][2]string
			if ev.Kind == http2.EventHeaders {
				fs = append(fs, [2]string{":method", string(ev.Method)}, [2]string{":scheme", string(ev.Scheme)},
					[2]string{":authority", string(ev.Authority)}, [2]string{":path", string(ev.Path)})
			}
			for i := range ev.Header.Len() {
				n, v := ev.Header.Field(i)
				if n[0] != ':' {
					fs = append(fs, [2]string{string(n), string(v)})
				}
			}
			p.hdrs[ev.StreamID] = append(p.hdrs[ev.StreamID], fs...)
		case http2.EventData:
			if p.data[ev.StreamID] == nil {
				p.data[ev.StreamID] = new(bytes.Buffer)
			}
			p.data[ev.StreamID].Write(ev.Data)
			p.c.Consume(ev.StreamID, len(ev.Data))
		}
		if ev.EndStream {
			p.ends[ev.StreamID] = true
		}
		p.evs = append(p.evs, ev)
	}
	return p.c.AppendPending(nil)
}

func (p *h2Peer) header(id uint32, name string) string {
	var vs []string
	for _, f := range p.hdrs[id] {
		if f[0] == name {
			vs = append(vs, f[1])
		}
	}
	return strings.Join(vs, ",")
}

// respond writes a response head (fields as name, value pairs).
func (p *h2Peer) respond(id uint32, status int, end bool, fields ...string) []byte {
	p.t.Helper()
	p.c.BeginHeaders()
	p.c.AddStatus(status)
	for i := 0; i+1 < len(fields); i += 2 {
		p.c.AddHeaderString(fields[i], fields[i+1])
	}
	b, err := p.c.WriteHeaders(nil, id, end)
	if err != nil {
		p.t.Fatalf("backend: write headers: %v", err)
	}
	return b
}

func (p *h2Peer) body(id uint32, data string, end bool) []byte {
	p.t.Helper()
	b, n, err := p.c.WriteData(nil, id, []byte(data), end)
	if err != nil || n != len(data) {
		p.t.Fatalf("backend: write data: %d of %d, %v", n, len(data), err)
	}
	return b
}

func (p *h2Peer) trailers(id uint32, fields ...string) []byte {
	p.t.Helper()
	p.c.BeginHeaders()
	for i := 0; i+1 < len(fields); i += 2 {
		p.c.AddHeaderString(fields[i], fields[i+1])
	}
	b, err := p.c.WriteHeaders(nil, id, true)
	if err != nil {
		p.t.Fatalf("backend: write trailers: %v", err)
	}
	return b
}

func newH2Harness(t *testing.T) *harness {
	t.Helper()
	cfg, reg := compileTest(t, h2Snapshot)
	return openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
}

// h2Exchange connects a new upstream connection and lets the backend start.
func (h *harness) h2Start(p *h2Peer) {
	h.t.Helper()
	h.connect(false, nil)
	up := h.takeUpstream()
	if !strings.HasPrefix(up, http2.ClientPreface) {
		h.t.Fatalf("upstream got %q, want the client preface first", up)
	}
	h.upstream(string(p.c.Start(nil)) + string(p.feed(up)))
}

func TestH2UpstreamGet(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nTE: gzip\r\nAccept: */*\r\n\r\n")
	h.h2Start(p)
	if got := p.feed(h.takeUpstream()); len(got) > 0 {
		h.upstream(string(got))
	}
	for _, c := range []struct{ name, want string }{
		{":method", "GET"},
		{":scheme", "http"},
		{":authority", "example.com"},
		{":path", "/a?b=c"},
		{"accept", "*/*"},
		{"x-forwarded-for", "192.0.2.7"},
		{"x-forwarded-proto", "http"},
		{"host", ""},
		{"connection", ""},
		{"x-hop", ""},
		{"te", ""},
	} {
		if got := p.header(1, c.name); got != c.want {
			t.Errorf("request field %s = %q, want %q", c.name, got, c.want)
		}
	}
	if !p.ends[1] {
		t.Fatal("the request without a body did not end the stream")
	}
	resp := p.respond(1, 200, false, "content-type", "text/plain", "content-length", "5")
	resp = append(resp, p.body(1, "hello", true)...)
	h.upstream(string(resp))
	h.expectClient("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	if h.released != 1 || h.closedUp != 0 {
		t.Fatalf("released %d, closed %d upstream connections; want the connection pooled", h.released, h.closedUp)
	}
	st := h.s.DetachUpstream()
	if st == nil {
		t.Fatal("no HTTP/2 state handed to the engine with the pooled connection")
	}

	// A PING while pooled is taken in; its answer goes with the next request.
	if !st.IdleData(http2.AppendPing(nil, false, [8]byte{9})) {
		t.Fatal("PING on the pooled connection refused")
	}
	evs := len(p.evs)

	// The next request reuses the connection: no preface, stream 3.
	h.client("HEAD /b HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.s.AttachUpstream(st)
	h.connect(true, nil)
	up := h.takeUpstream()
	if strings.HasPrefix(up, http2.ClientPreface) {
		t.Fatal("the preface was sent again on a reused connection")
	}
	if got := p.feed(up); len(got) > 0 {
		h.upstream(string(got))
	}
	if ev := p.evs[evs]; ev.Kind != http2.EventPingAck || ev.Data[0] != 9 {
		t.Fatalf("backend got %+v first on reuse, want the PING acknowledged", ev)
	}
	if p.header(3, ":method") != "HEAD" || !p.ends[3] {
		t.Fatalf("stream 3: %v, ended %v", p.hdrs[3], p.ends[3])
	}
	h.upstream(string(p.respond(3, 200, true, "content-length", "10")))
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
	if h.released != 2 {
		t.Fatalf("released %d, want 2", h.released)
	}
}

func TestH2UpstreamChunkedBodyAndTrailers(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/grpc\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n")
	h.h2Start(p)
	h.client("6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\nX-Other:  a b \r\n\r\n")
	if got := p.feed(h.takeUpstream()); len(got) > 0 {
		h.upstream(string(got))
	}
	if got := p.data[1].String(); got != "hello world" {
		t.Fatalf("backend got body %q, want %q", got, "hello world")
	}
	if got := p.header(1, "te"); got != "trailers" {
		t.Errorf("te = %q, want trailers", got)
	}
	if got := p.header(1, "transfer-encoding"); got != "" {
		t.Errorf("transfer-encoding forwarded: %q", got)
	}
	if p.header(1, "x-checksum") != "42" || p.header(1, "x-other") != "a b" || !p.ends[1] {
		t.Fatalf("request trailers: %v, ended %v", p.hdrs[1], p.ends[1])
	}
	resp := p.respond(1, 200, false, "content-type", "application/grpc")
	resp = append(resp, p.body(1, "\x00\x00\x00\x00\x02ok", false)...)
	resp = append(resp, p.trailers(1, "grpc-status", "0", "grpc-message", "")...)
	h.upstream(string(resp))
	h.expectClient("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n" +
		"7\r\n\x00\x00\x00\x00\x02ok\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n")
	if h.released != 1 {
		t.Fatalf("released %d, want 1", h.released)
	}
}

func TestH2UpstreamFlowControl(t *testing.T) {
	h := newH2Harness(t)
	// A backend with small windows: the body goes in steps.
	p := newH2Peer(t, http2.Config{InitialWindowSize: 10000, ConnWindowSize: 65535})
	body := strings.Repeat("0123456789", 4000)
	h.client("PUT /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 40000\r\n\r\n")
	h.h2Start(p)
	sent := 0
	for i := 0; i < 100 && !p.ends[1]; i++ {
		if sent < len(body) && h.s.WantClientData() {
			n := h.s.ClientData([]byte(body[sent:]))
			sent += n
			h.drain()
		}
		if got := p.feed(h.takeUpstream()); len(got) > 0 {
			h.upstream(string(got))
		}
	}
	if got := p.data[1].String(); got != body || !p.ends[1] {
		t.Fatalf("backend got %d body bytes (ended %v), want %d", len(got), p.ends[1], len(body))
	}
	h.upstream(string(p.respond(1, 204, true)))
	h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
}

func TestH2UpstreamLargeResponse(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	// A body of unknown length, larger than the buffers, with the
	// client taking it slowly.
	h.autoSend = false
	want := strings.Repeat("abcdefghij", 10000)
	resp := p.respond(1, 200, false)
	for i := 0; i < len(want); i += 16384 {
		resp = append(resp, p.body(1, want[i:min(i+16384, len(want))], i+16384 >= len(want))...)
	}
	for len(resp) > 0 || len(h.pendingC) > 0 {
		if len(resp) > 0 && h.s.WantUpstreamData() {
			n := h.s.UpstreamData(resp)
			resp = resp[n:]
			h.drain()
		}
		for len(h.pendingC) > 0 {
			h.completeOne(Client)
			h.drain()
		}
		for len(h.pendingU) > 0 {
			h.completeOne(Upstream)
			h.drain()
		}
		if got := p.feed(h.takeUpstream()); len(got) > 0 {
			t.Fatalf("backend answered %q", got)
		}
	}
	got := h.takeClient()
	head, chunked, _ := strings.Cut(got, "\r\n\r\n")
	if head != "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked" {
		t.Fatalf("head %q", head)
	}
	var body strings.Builder
	for rest := chunked; ; {
		line, after, _ := strings.Cut(rest, "\r\n")
		var n int
		for _, c := range line {
			n = n*16 + strings.IndexRune("0123456789abcdef", c)
		}
		if n == 0 {
			if after != "\r\n" {
				t.Fatalf("after the last chunk: %q", after)
			}
			break
		}
		body.WriteString(after[:n])
		rest = after[n+2:]
	}
	if body.String() != want {
		t.Fatalf("client got %d body bytes, want %d", body.Len(), len(want))
	}
	h.completeSends()
	if h.released != 1 {
		t.Fatalf("released %d, want 1", h.released)
	}
}

func TestH2UpstreamRefusedStreamRetried(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("POST /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	h.takeLog()
	// The backend refuses the stream: nothing was processed, so even a POST
	// is retried, on a new connection.
	h.upstream(string(http2.AppendRSTStream(nil, 1, http2.ErrCodeRefusedStream)))
	h.advance(2e6)
	if got := h.takeLog(); !strings.Contains(got, "CloseUpstream") || !strings.Contains(got, "Connect") {
		t.Fatalf("actions after REFUSED_STREAM: %s", got)
	}
	p2 := newH2Peer(t, http2.Config{})
	h.h2Start(p2)
	if got := p2.feed(h.takeUpstream()); len(got) > 0 {
		h.upstream(string(got))
	}
	if p2.data[1].String() != "hi" || !p2.ends[1] {
		t.Fatalf("retried request body %q", p2.data[1])
	}
	h.upstream(string(p2.respond(1, 200, true)))
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
}

func TestH2UpstreamGoAwayRetried(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET /retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	h.takeLog()
	h.upstream(string(http2.AppendGoAway(nil, 0, http2.ErrCodeNo, nil)))
	h.advance(2e6)
	if got := h.takeLog(); !strings.Contains(got, "Connect") {
		t.Fatalf("actions after GOAWAY below the stream: %s", got)
	}
}

func TestH2UpstreamResetFails(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	h.upstream(string(http2.AppendRSTStream(nil, 1, http2.ErrCodeInternal)))
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 502 ") {
		t.Fatalf("client got %q, want 502", got)
	}
	if h.closedUp != 1 || h.released != 0 {
		t.Fatalf("closed %d released %d, want the connection closed", h.closedUp, h.released)
	}
	if n := h.reasonCount(metrics.ReasonUpstreamReset); n != 1 {
		t.Fatalf("upstream_reset replies = %v", n)
	}
}

func TestH2UpstreamResetMidBody(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	resp := p.respond(1, 200, false)
	resp = append(resp, p.body(1, "part", false)...)
	h.upstream(string(resp))
	h.upstream(string(http2.AppendRSTStream(nil, 1, http2.ErrCodeInternal)))
	if got := h.takeClient(); got != "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\npart\r\n" {
		t.Fatalf("client got %q", got)
	}
	if !h.clientClosed {
		t.Fatal("client not closed after the reset mid-body")
	}
}

func TestH2UpstreamPingAndSettingsAcked(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	h.upstream(string(http2.AppendPing(nil, false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})))
	p.feed(h.takeUpstream())
	last := p.evs[len(p.evs)-1]
	if last.Kind != http2.EventPingAck || !bytes.Equal(last.Data, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("backend got %+v, want the PING acknowledged", last)
	}
}

func TestH2UpstreamPooledConnectionOfOtherProtocol(t *testing.T) {
	h := newH2Harness(t)
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.takeLog()
	// The engine offers a pooled HTTP/1.1 connection (no state): the
	// session asks for a new one instead.
	h.connect(true, nil)
	if got := h.takeLog(); got != "CloseUpstream; Connect 10.0.0.1:80 fresh=true" {
		t.Fatalf("actions: %s", got)
	}
	if up := h.takeUpstream(); up != "" {
		t.Fatalf("sent %q on the wrong connection", up)
	}
}

func TestH2UpstreamHTTP1GroupUnchanged(t *testing.T) {
	h := newH2Harness(t)
	h.client("GET /plain HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(false, nil)
	if up := h.takeUpstream(); !strings.HasPrefix(up, "GET /plain HTTP/1.1\r\n") {
		t.Fatalf("plain group got %q", up)
	}
}

// h2Bench returns a session whose H2C connection is open and pooled, and
// a function running the i-th keep-alive exchange over it (at most n), with
// the backend's frames prepared in advance.
func h2Bench(tb testing.TB, n int) (*Session, *(*UpstreamState), func(i int)) {
	cfg, reg := compileTest(tb, h2Snapshot)
	s := loopbackSessionWith(tb, cfg, reg, NewPickers(0))
	p := newH2Peer(tb, http2.Config{})
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n")
	st := new(*UpstreamState)
	var sentUp bytes.Buffer
	// The first exchange opens the connection.
	s.ClientData(req)
	h2loopback(tb, s, st, &sentUp)
	start := string(p.c.Start(nil)) + string(p.feed(sentUp.String()))
	resp := p.respond(1, 200, false, "content-type", "text/plain", "content-length", "100")
	s.UpstreamData(append([]byte(start), append(resp, p.body(1, strings.Repeat("x", 100), true)...)...))
	h2loopback(tb, s, st, nil)
	if *st == nil {
		tb.Fatal("connection not pooled")
	}
	resps := make([][]byte, n)
	for i := range resps {
		id := uint32(3 + 2*i)
		p.feed(string(mustHeadersFor(tb, id)))
		r := p.respond(id, 200, false, "content-type", "text/plain", "content-length", "100")
		resps[i] = append(r, p.body(id, strings.Repeat("x", 100), true)...)
	}
	return s, st, func(i int) {
		s.ClientData(req)
		h2loopback(tb, s, st, nil)
		s.UpstreamData(resps[i])
		h2loopback(tb, s, st, nil)
	}
}

// TestH2UpstreamExchangeDoesNotAllocate runs keep-alive exchanges over a
// pooled HTTP/2 upstream connection.
func TestH2UpstreamExchangeDoesNotAllocate(t *testing.T) {
	const runs = 200
	s, st, run := h2Bench(t, runs+4)
	i := 0
	for range 3 {
		run(i)
		i++
	}
	if n := testing.AllocsPerRun(runs, func() { run(i); i++ }); n != 0 {
		t.Fatalf("%v allocations per exchange over HTTP/2", n)
	}
	if !s.Idle() || *st == nil {
		t.Fatal("session not idle with the connection pooled after the exchanges")
	}
}

// BenchmarkH2UpstreamExchange is BenchmarkKeepAliveExchange with an H2C
// backend group: one request and its 100-byte response as an HTTP/2 stream
// on a pooled upstream connection.
func BenchmarkH2UpstreamExchange(b *testing.B) {
	const n = 8000 // within the connection window the backend was given
	_, _, run := h2Bench(b, n)
	run(0)
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if i == n {
			b.StopTimer()
			_, _, run = h2Bench(b, n)
			run(0)
			i = 1
			b.StartTimer()
		}
		run(i)
		i++
	}
}

// mustHeadersFor returns a request HEADERS frame opening stream id, so that
// the test backend accepts the response it writes on it.
func mustHeadersFor(t testing.TB, id uint32) []byte {
	t.Helper()
	var e http2.Encoder
	blk := e.BeginBlock(nil)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", "/"}} {
		blk = e.AppendField(blk, []byte(f[0]), []byte(f[1]), false)
	}
	return http2.AppendHeaders(nil, id, http2.HeadersParams{EndStream: true, EndHeaders: true}, blk)
}

// h2loopback is loopback for an HTTP/2 upstream: releases keep the
// connection's state, connects reuse it.
func h2loopback(t testing.TB, s *Session, st **UpstreamState, sentUp *bytes.Buffer) {
	for {
		a, ok := s.Next()
		if !ok {
			return
		}
		switch a.Kind {
		case ActConnectUpstream:
			reused := *st != nil
			if reused {
				s.AttachUpstream(*st)
				*st = nil
			}
			s.UpstreamConnected(reused, nil)
		case ActReleaseUpstream:
			*st = s.DetachUpstream()
		case ActSendClient:
			s.Sent(Client, len(a.Data), nil)
		case ActSendUpstream:
			if sentUp != nil && sentUp.Len() < 1<<16 {
				sentUp.Write(a.Data)
			}
			s.Sent(Upstream, len(a.Data), nil)
		case ActCloseClient, ActCloseUpstream:
			t.Fatalf("unexpected %v", a.Kind)
		}
	}
}

func TestH2UpstreamIdleGoAwayNotReused(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	h.upstream(string(p.respond(1, 200, true)))
	st := h.s.DetachUpstream()
	if st == nil {
		t.Fatal("connection not pooled")
	}
	if st.IdleData(http2.AppendGoAway(nil, 1, http2.ErrCodeNo, nil)) {
		t.Fatal("a pooled connection that got GOAWAY is still offered for reuse")
	}
	st.Free()
}

func TestH2UpstreamResponseHeaderTimeout(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	// The backend acknowledges everything but never answers.
	h.advance(DefaultResponseHeaderTimeout + time.Second)
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 504 ") {
		t.Fatalf("client got %q, want 504", got)
	}
	if h.closedUp != 1 {
		t.Fatalf("closed %d upstream connections, want 1", h.closedUp)
	}
}

func TestH2UpstreamExpectContinue(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	// The stream is open: the proxy lets the client send its body.
	h.expectClient("HTTP/1.1 100 Continue\r\n\r\n")
	if p.ends[1] || p.header(1, "expect") != "" {
		t.Fatalf("stream ended %v, expect forwarded %q", p.ends[1], p.header(1, "expect"))
	}
	h.client("data")
	p.feed(h.takeUpstream())
	if p.data[1].String() != "data" || !p.ends[1] {
		t.Fatalf("body %q, ended %v", p.data[1], p.ends[1])
	}
	// The backend's own 100 is not passed on a second time.
	resp := p.respond(1, 100, false)
	resp = append(resp, p.respond(1, 201, true)...)
	h.upstream(string(resp))
	h.expectClient("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
}

// TestChunkDecoder decodes chunked bodies split at every offset and with
// small data limits, as the client stream and the windows cut them.
func TestChunkDecoder(t *testing.T) {
	body := "5;ext=1\r\nhello\r\nA \r\n0123456789\r\n1\r\n!\r\n0\r\nX-A: 1\r\nX-B:  two \r\n\r\n"
	for split := 1; split < len(body); split++ {
		for _, maxData := range []int{1, 3, 100} {
			var d chunkDecoder
			var data, trail []byte
			in := []byte(body[:split])
			more := []byte(body[split:])
			for {
				n, b := d.next(in, maxData, &trail)
				data = append(data, b...)
				in = in[n:]
				if d.state == cdDone {
					break
				}
				if n == 0 && len(b) == 0 {
					if len(more) == 0 {
						t.Fatalf("split %d max %d: decoder stuck in state %d", split, maxData, d.state)
					}
					in = append(in, more...)
					more = nil
				}
			}
			if string(data) != "hello0123456789!" || string(trail) != "X-A: 1\r\nX-B:  two \r\n" || len(in)+len(more) != 0 {
				t.Fatalf("split %d max %d: data %q trailers %q, %d bytes left", split, maxData, data, trail, len(in)+len(more))
			}
		}
	}
}

func TestH2UpstreamLengthCompleteBeforeEndStream(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	// The body is complete by its content-length; END_STREAM has not come.
	resp := p.respond(1, 200, false, "content-length", "5")
	resp = append(resp, p.body(1, "hello", false)...)
	h.upstream(string(resp))
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	// The stream is reset so that the connection can be pooled.
	p.feed(h.takeUpstream())
	last := p.evs[len(p.evs)-1]
	if last.Kind != http2.EventReset || last.StreamID != 1 || last.Code != http2.ErrCodeCancel {
		t.Fatalf("backend got %+v, want RST_STREAM(CANCEL) on stream 1", last)
	}
	if h.released != 1 || h.closedUp != 0 {
		t.Fatalf("released %d, closed %d", h.released, h.closedUp)
	}
}

func TestH2UpstreamNoBodyResponses(t *testing.T) {
	for _, c := range []struct {
		method string
		status int
		want   string
	}{
		{"HEAD", 200, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"},
		{"GET", 204, "HTTP/1.1 204 No Content\r\n\r\n"},
		{"GET", 304, "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n"},
	} {
		h := newH2Harness(t)
		p := newH2Peer(t, http2.Config{})
		h.client(c.method + " / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		h.h2Start(p)
		p.feed(h.takeUpstream())
		var resp []byte
		switch c.status {
		case 200:
			resp = p.respond(1, 200, false, "content-length", "42")
			resp = append(resp, p.body(1, "", true)...)
		case 304:
			resp = p.respond(1, 304, true, "etag", `"x"`)
		default:
			resp = p.respond(1, c.status, true)
		}
		h.upstream(string(resp))
		h.expectClient(c.want)
		if h.released != 1 {
			t.Fatalf("%s %d: released %d, want 1", c.method, c.status, h.released)
		}
	}
}

func TestH2UpstreamLargeResponseHead(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	p.feed(h.takeUpstream())
	var fields []string
	for i := range 150 {
		fields = append(fields, "set-cookie", fmt.Sprintf("c%03d=%s", i, strings.Repeat("v", 200)))
	}
	resp := p.respond(1, 200, false, append(fields, "content-length", "2")...)
	resp = append(resp, p.body(1, "ok", true)...)
	h.upstream(string(resp))
	got := h.takeClient()
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\nok") || strings.Count(got, "set-cookie: ") != 150 {
		t.Fatalf("client got %d bytes: %.200q...", len(got), got)
	}
	if h.released != 1 {
		t.Fatalf("released %d, want 1", h.released)
	}
}

// A backend that pings with its reply (grpc-go does, for its bandwidth
// estimate) gets the acknowledgement with the next request, in the same
// send: the reply releases the connection at once.
func TestH2UpstreamPingWithReplyAckedWithNextRequest(t *testing.T) {
	h := newH2Harness(t)
	p := newH2Peer(t, http2.Config{})
	h.client("GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.h2Start(p)
	if got := p.feed(h.takeUpstream()); len(got) > 0 {
		h.upstream(string(got))
	}
	// As grpc-go writes it: the PING, then the reply with its trailers.
	resp := http2.AppendPing(nil, false, [8]byte{7})
	resp = append(resp, p.respond(1, 200, false, "content-type", "application/grpc")...)
	resp = append(resp, p.body(1, "msg", false)...)
	resp = append(resp, p.trailers(1, "grpc-status", "0")...)
	h.takeLog()
	h.upstream(string(resp))
	h.expectClient("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n3\r\nmsg\r\n0\r\ngrpc-status: 0\r\n\r\n")
	if up := h.takeUpstream(); up != "" {
		t.Fatalf("sent %q after the reply; want nothing until the next request", up)
	}
	if h.released != 1 {
		t.Fatalf("released %d upstream connections, want 1 (actions: %s)", h.released, h.takeLog())
	}
	st := h.s.DetachUpstream()
	evs := len(p.evs)
	h.client("GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.s.AttachUpstream(st)
	h.connect(true, nil)
	sends := h.takeLog()
	p.feed(h.takeUpstream())
	if ev := p.evs[evs]; ev.Kind != http2.EventPingAck || ev.Data[0] != 7 {
		t.Fatalf("backend got %+v first, want the PING acknowledged", ev)
	}
	if p.header(3, ":path") != "/b" {
		t.Fatalf("stream 3: %v", p.hdrs[3])
	}
	if n := strings.Count(sends, "SendUpstream"); n != 1 {
		t.Fatalf("%d upstream sends for the acknowledgement and the request, want 1: %s", n, sends)
	}
}
