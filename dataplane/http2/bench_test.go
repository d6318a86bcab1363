package http2

import "testing"

// pair is a client Conn and a server Conn connected in memory, the way a
// proxy's upstream and downstream halves would be driven.
type pair struct {
	cli, srv       *Conn
	toSrv, toCli   []byte
	inSrv, inCli   []byte
	body, respBody []byte
}

func newPair(tb testing.TB) *pair {
	p := &pair{
		cli: NewConn(RoleClient, Config{}), srv: NewConn(RoleServer, Config{}),
		toSrv: make([]byte, 0, 64<<10), toCli: make([]byte, 0, 64<<10),
		body: make([]byte, 512), respBody: make([]byte, 1024),
	}
	p.toSrv = p.cli.Start(p.toSrv)
	p.toCli = p.srv.Start(p.toCli)
	p.pump(tb, nil)
	return p
}

// pump delivers bytes both ways until neither side has anything to say;
// onEvent handles the events.
func (p *pair) pump(tb testing.TB, onEvent func(srv bool, ev Event)) {
	for len(p.toSrv) > 0 || len(p.toCli) > 0 {
		if len(p.toSrv) > 0 {
			p.inSrv = append(p.inSrv[:0], p.toSrv...)
			p.toSrv = p.toSrv[:0]
			p.feed(tb, p.srv, p.inSrv, true, onEvent)
			p.toCli = p.srv.AppendPending(p.toCli)
		}
		if len(p.toCli) > 0 {
			p.inCli = append(p.inCli[:0], p.toCli...)
			p.toCli = p.toCli[:0]
			p.feed(tb, p.cli, p.inCli, false, onEvent)
			p.toSrv = p.cli.AppendPending(p.toSrv)
		}
	}
}

func (p *pair) feed(tb testing.TB, c *Conn, in []byte, srv bool, onEvent func(bool, Event)) {
	for len(in) > 0 {
		ev, n, err := c.Next(in)
		if err != nil {
			tb.Fatalf("srv=%v: %v", srv, err)
		}
		if n == 0 {
			tb.Fatalf("srv=%v: partial frame in a whole write", srv)
		}
		in = in[n:]
		if ev.Kind != EventNone && onEvent != nil {
			onEvent(srv, ev)
		}
	}
}

// exchange runs one request/response: a POST with a body, a response with
// a body and trailers.
func (p *pair) exchange(tb testing.TB, onEvent func(bool, Event)) {
	c := p.cli
	c.BeginHeaders()
	c.AddHeaderString(":method", "POST")
	c.AddHeaderString(":scheme", "http")
	c.AddHeaderString(":authority", "backend.default.svc")
	c.AddHeaderString(":path", "/api/items")
	c.AddHeaderString("content-type", "application/json")
	id, out, err := c.WriteRequestHeaders(p.toSrv, false)
	if err != nil {
		tb.Fatal(err)
	}
	if p.toSrv, _, err = c.WriteData(out, id, p.body, true); err != nil {
		tb.Fatal(err)
	}
	p.pump(tb, onEvent)
}

func (p *pair) serverHandler(tb testing.TB) func(bool, Event) {
	return func(srv bool, ev Event) {
		switch {
		case srv && ev.Kind == EventData:
			p.srv.Consume(ev.StreamID, len(ev.Data))
			if !ev.EndStream {
				return
			}
			s := p.srv
			s.BeginHeaders()
			s.AddStatus(200)
			s.AddHeaderString("content-type", "application/json")
			out, err := s.WriteHeaders(p.toCli, ev.StreamID, false)
			if err != nil {
				tb.Fatal(err)
			}
			out, _, err = s.WriteData(out, ev.StreamID, p.respBody, false)
			if err != nil {
				tb.Fatal(err)
			}
			s.BeginHeaders()
			s.AddHeaderString("grpc-status", "0")
			if p.toCli, err = s.WriteHeaders(out, ev.StreamID, true); err != nil {
				tb.Fatal(err)
			}
		case !srv && ev.Kind == EventData:
			p.cli.Consume(ev.StreamID, len(ev.Data))
		}
	}
}

// TestSteadyStateNoAllocs: after warm-up, a whole request/response on a
// connection (both Conns: HPACK both ways, flow control, stream slots,
// window updates) allocates nothing.
func TestSteadyStateNoAllocs(t *testing.T) {
	p := newPair(t)
	h := p.serverHandler(t)
	for range 100 {
		p.exchange(t, h)
	}
	allocs := testing.AllocsPerRun(1000, func() { p.exchange(t, h) })
	if allocs != 0 {
		t.Fatalf("%v allocs per exchange", allocs)
	}
	if p.cli.ActiveStreams() != 0 || p.srv.ActiveStreams() != 0 {
		t.Fatal("streams left open")
	}
}

// BenchmarkExchange: one request/response stream on a long-lived
// connection, client and server Conn together.
func BenchmarkExchange(b *testing.B) {
	p := newPair(b)
	h := p.serverHandler(b)
	for range 100 {
		p.exchange(b, h)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.exchange(b, h)
	}
}
