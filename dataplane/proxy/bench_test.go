package proxy

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// loopback performs a session's actions the way an engine would, with an
// upstream that is always connected and sends that complete at once.
func loopback(tb testing.TB, s *Session) (toClient, toUpstream int) {
	for {
		a, ok := s.Next()
		if !ok {
			return
		}
		switch a.Kind {
		case ActConnectUpstream:
			s.UpstreamConnected(true, nil)
		case ActSendClient:
			toClient += len(a.Data)
			s.Sent(Client, len(a.Data), nil)
		case ActSendUpstream:
			toUpstream += len(a.Data)
			s.Sent(Upstream, len(a.Data), nil)
		case ActCloseClient, ActCloseUpstream:
			tb.Fatalf("unexpected %v", a.Kind)
		}
	}
}

// loopbackSession returns a session open on cfg's first listener, with a
// worker of default options whose clock moves 1µs per reading.
func loopbackSession(tb testing.TB, cfg *compiled.Config, reg *metrics.Registry) *Session {
	return loopbackSessionWith(tb, cfg, reg, NewPickers(0))
}

// loopbackSessionWith is loopbackSession with the worker's endpoint picker.
func loopbackSessionWith(tb testing.TB, cfg *compiled.Config, reg *metrics.Registry, ep EndpointPicker) *Session {
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	now := int64(1)
	w := NewWorker(reg.Worker(0), ep, nil, func() int64 { now += 1000; return now }, Options{})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(tb, s)
	return s
}

// keepAliveExchange returns a function that runs req and resp through s as
// one keep-alive exchange, with every action performed at once (loopback).
func keepAliveExchange(tb testing.TB, s *Session, req, resp string) func() {
	q, r := []byte(req), []byte(resp)
	return func() {
		s.ClientData(q)
		loopback(tb, s)
		s.UpstreamData(r)
		loopback(tb, s)
	}
}

func benchSession(tb testing.TB) (*Session, func() (int, int)) {
	cfg, reg := compileTest(tb, testSnapshot)
	s := loopbackSession(tb, cfg, reg)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nServer: up\r\n\r\n" + strings.Repeat("x", 100))
	return s, func() (int, int) {
		s.ClientData(req)
		c1, u1 := loopback(tb, s)
		s.UpstreamData(resp)
		c2, u2 := loopback(tb, s)
		return c1 + c2, u1 + u2
	}
}

func TestExchangeDoesNotAllocate(t *testing.T) {
	s, exchange := benchSession(t)
	for range 3 {
		exchange()
	}
	if c, u := exchange(); c < 100 || u < 50 {
		t.Fatalf("exchange sent %d bytes to the client and %d upstream", c, u)
	}
	if n := testing.AllocsPerRun(1000, func() { exchange() }); n != 0 {
		t.Fatalf("%v allocations per keep-alive exchange", n)
	}
	if !s.Idle() {
		t.Fatal("session not idle after the exchange")
	}
}

// BenchmarkKeepAliveExchange runs one request and its 100-byte response
// through a keep-alive session.
func BenchmarkKeepAliveExchange(b *testing.B) {
	_, exchange := benchSession(b)
	exchange()
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
}

// BenchmarkPipelined runs 16 pipelined requests per client read.
func BenchmarkPipelined(b *testing.B) {
	cfg, reg := compileTest(b, testSnapshot)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { return 1 }, Options{})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(b, s)
	req := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 16))
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	b.ReportAllocs()
	for b.Loop() {
		s.ClientData(req)
		loopback(b, s)
		for range 16 {
			s.UpstreamData(resp)
			loopback(b, s)
		}
	}
}

// BenchmarkTrustedLargeResponseHead runs exchanges behind one trusted hop
// (the client address parsed from X-Forwarded-For, Forwarded appended) whose
// response head, 150 Set-Cookie fields, needs the worker's large buffers.
func BenchmarkTrustedLargeResponseHead(b *testing.B) {
	cfg, reg := compileTest(b, testSnapshot)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { return 1 }, Options{TrustedHops: 1})
	s := new(Session)
	s.Open(w, slot, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	loopback(b, s)
	req := []byte("GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.9, 2001:db8::1\r\nForwarded: for=203.0.113.9, for=\"[2001:db8::1]\"\r\n\r\n")
	full := []byte(cookieHead(150) + "ok")
	run := func() {
		s.ClientData(req)
		loopback(b, s)
		sent := 0
		for r := full; len(r) > 0; {
			n := s.UpstreamData(r)
			c, _ := loopback(b, s)
			sent += c
			if n == 0 {
				b.Fatal("the session takes no more of the response head")
			}
			r = r[n:]
		}
		if sent != len(full) {
			b.Fatalf("client got %d bytes, want %d", sent, len(full))
		}
	}
	run()
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
