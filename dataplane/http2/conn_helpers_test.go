package http2

import (
	"errors"
	"testing"
)

// peer plays the other side of a Conn with hand-written frames.
type peer struct {
	t   *testing.T
	c   *Conn
	enc Encoder
	err error // connection error from the last feed
}

// newServerPeer returns a server Conn that has read the preface and an
// empty SETTINGS frame and whose own SETTINGS were acknowledged.
func newServerPeer(t *testing.T, cfg Config) *peer {
	p := &peer{t: t, c: NewConn(RoleServer, cfg)}
	p.c.Start(nil)
	b := append([]byte(ClientPreface), AppendSettings(nil, nil)...)
	b = AppendSettingsAck(b)
	p.mustFeed(b)
	p.frames() // drop the SETTINGS ack
	return p
}

func newClientPeer(t *testing.T, cfg Config) *peer {
	p := &peer{t: t, c: NewConn(RoleClient, cfg)}
	p.c.Start(nil)
	p.mustFeed(AppendSettingsAck(AppendSettings(nil, nil)))
	p.frames()
	return p
}

// feed hands b to Next until it is consumed, collecting events; a
// connection error is kept in p.err.
func (p *peer) feed(b []byte) []Event {
	var evs []Event
	p.err = nil
	for len(b) > 0 {
		ev, n, err := p.c.Next(b)
		if err != nil {
			p.err = err
			return evs
		}
		if n == 0 {
			p.t.Fatalf("Next consumed nothing of %d bytes", len(b))
		}
		b = b[n:]
		if ev.Kind != EventNone {
			evs = append(evs, ev)
		}
	}
	return evs
}

func (p *peer) mustFeed(b []byte) []Event {
	p.t.Helper()
	evs := p.feed(b)
	if p.err != nil {
		p.t.Fatalf("connection error: %v", p.err)
	}
	return evs
}

// frames parses what the Conn queued for sending.
func (p *peer) frames() []Frame {
	b := p.c.AppendPending(nil)
	var out []Frame
	for len(b) > 0 {
		f, n, err := ReadFrame(b, MaxMaxFrameSize)
		if err != nil {
			p.t.Fatalf("Conn wrote a bad frame: %v", err)
		}
		out = append(out, f)
		b = b[n:]
	}
	return out
}

// expectConnError checks that the last feed ended the connection with code
// and queued a GOAWAY carrying it.
func (p *peer) expectConnError(code ErrCode) {
	p.t.Helper()
	var e *Error
	if !errors.As(p.err, &e) || e.Stream || e.Code != code {
		p.t.Fatalf("error %v, want connection error %v", p.err, code)
	}
	for _, f := range p.frames() {
		if f.Type == FrameGoAway {
			if f.Code != code {
				p.t.Fatalf("GOAWAY %v, want %v", f.Code, code)
			}
			return
		}
	}
	p.t.Fatal("no GOAWAY queued")
}

// expectReset checks that a RST_STREAM with code was queued for id.
func (p *peer) expectReset(id uint32, code ErrCode) {
	p.t.Helper()
	if p.err != nil {
		p.t.Fatalf("connection error %v, want stream error", p.err)
	}
	for _, f := range p.frames() {
		if f.Type == FrameRSTStream && f.StreamID == id {
			if f.Code != code {
				p.t.Fatalf("RST_STREAM %v, want %v", f.Code, code)
			}
			return
		}
	}
	p.t.Fatalf("no RST_STREAM for stream %d", id)
}

// block encodes fields given as name, value pairs.
func (p *peer) block(kv ...string) []byte {
	b := p.enc.BeginBlock(nil)
	for i := 0; i < len(kv); i += 2 {
		// Raw names: the test controls case, so no lowercasing here.
		b = appendVarInt(b, 4, 0, 0)
		b = appendString(b, []byte(kv[i]))
		b = appendString(b, []byte(kv[i+1]))
	}
	return b
}

var getReq = []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", "example.com"}

func (p *peer) headers(id uint32, endStream bool, kv ...string) []byte {
	return AppendHeaders(nil, id, HeadersParams{EndStream: endStream, EndHeaders: true}, p.block(kv...))
}

func eventKinds(evs []Event) []EventKind {
	var k []EventKind
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return k
}
