package http2

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// outgoing is a message body (and trailers) waiting for send credit.
type outgoing struct {
	id       uint32
	data     []byte
	trailers [][2]string
}

// loop drives a Conn over a real socket the way an engine would: read,
// feed Next until it wants more, act on events, flush. It is the test
// harness for the differential tests; handle is called for each event.
type loop struct {
	t       testing.TB
	c       *Conn
	nc      net.Conn
	in      []byte
	out     []byte
	pending []outgoing
	handle  func(l *loop, ev Event)
}

func newLoop(t testing.TB, nc net.Conn, role Role, cfg Config, handle func(*loop, Event)) *loop {
	l := &loop{t: t, c: NewConn(role, cfg), nc: nc, handle: handle, in: make([]byte, 0, 64<<10)}
	l.out = l.c.Start(l.out)
	return l
}

// send queues a body (and trailers) on stream id and writes what the
// windows allow.
func (l *loop) send(id uint32, data []byte, trailers [][2]string) {
	l.pending = append(l.pending, outgoing{id: id, data: data, trailers: trailers})
	l.flushBodies()
}

func (l *loop) flushBodies() {
	kept := l.pending[:0]
	for _, p := range l.pending {
		var n int
		var err error
		l.out, n, err = l.c.WriteData(l.out, p.id, p.data, len(p.trailers) == 0)
		if err != nil {
			continue // stream gone (reset)
		}
		p.data = p.data[n:]
		if len(p.data) > 0 {
			kept = append(kept, p)
			continue
		}
		if len(p.trailers) > 0 {
			l.c.BeginHeaders()
			for _, tr := range p.trailers {
				l.c.AddHeaderString(tr[0], tr[1])
			}
			if l.out, err = l.c.WriteHeaders(l.out, p.id, true); err != nil {
				l.t.Errorf("trailers: %v", err)
			}
		}
	}
	l.pending = kept
}

// flush writes the queued control frames and the output buffer.
func (l *loop) flush() error {
	l.out = l.c.AppendPending(l.out)
	if len(l.out) == 0 {
		return nil
	}
	_, err := l.nc.Write(l.out)
	l.out = l.out[:0]
	return err
}

// run reads and handles until the peer closes or stop reports true.
func (l *loop) run(stop func() bool) error {
	buf := make([]byte, 32<<10)
	if err := l.flush(); err != nil {
		return err
	}
	for !stop() {
		n, err := l.nc.Read(buf)
		if n > 0 {
			l.in = append(l.in, buf[:n]...)
			if perr := l.process(); perr != nil {
				_ = l.flush()
				return perr
			}
		}
		if ferr := l.flush(); ferr != nil {
			return ferr
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (l *loop) process() error {
	off := 0
	defer func() { l.in = append(l.in[:0], l.in[off:]...) }()
	for {
		ev, n, err := l.c.Next(l.in[off:])
		off += n
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		switch ev.Kind {
		case EventWindowUpdate, EventSettings:
			l.flushBodies()
		}
		if ev.Kind != EventNone {
			l.handle(l, ev)
		}
	}
}
