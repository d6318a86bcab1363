package netpoll

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/flaxlb/flax/dataplane/proxy"
)

// HTTP/2 connections.
//
// A client connection whose session sees the HTTP/2 preface
// (ActStartHTTP2) is served by a proxy.H2Conn on its driver goroutine
// (serveH2). Each stream's session runs on a conn of its own (a stream
// conn: no client socket, h2 set), with its own goroutine, upstream
// connection and timer, through the same loop as a connection's session.
// The H2Conn and the stream sessions share one mutex: every goroutine
// holds it while it touches them and lets go of it only around blocking
// I/O and waits. Whoever changes something kicks whom it concerns: a
// stream that queued response bytes kicks the driver, which writes them;
// the driver (or a stream) that fed a stream's session kicks the stream.
//
// A stream conn whose stream ended while others are open waits (parked)
// for the next stream of its connection, with its goroutine, grown stack,
// channels and timer: a goroutine and conn per stream cost more than the
// stream's own work (stack growth alone was a fifth of the CPU under
// h2load -m20). The parked ones end when the connection has no stream
// open or ends.

// h2conn is the HTTP/2 state of a client connection.
type h2conn struct {
	c       *conn
	mu      sync.Mutex
	h       proxy.H2Conn
	streams []*conn // by H2Stream.Tag
	free    []int32
	idle    []*conn // parked stream conns
	closing bool    // the connection is ending: no stream conn parks
	wg      sync.WaitGroup
}

// maxParked bounds the stream conns a connection keeps parked.
const maxParked = 64

// lock and unlock guard a stream conn's session (no-ops for a connection).
func (c *conn) lock() {
	if c.h2p != nil {
		c.h2p.mu.Lock()
	}
}

func (c *conn) unlock() {
	if c.h2p != nil {
		c.h2p.mu.Unlock()
	}
}

// serveH2 serves the connection with HTTP/2 once its session asked for it
// with ActStartHTTP2 (pre: the bytes the session received).
func (c *conn) serveH2(pre []byte) {
	p := &h2conn{c: c}
	p.mu.Lock()
	p.h.OpenFrom(&c.s, pre)
	// Streams frame their output; the driver sends it, after letting the
	// other streams that are ready run, so that one write carries theirs.
	p.h.DeferSends(true)
	c.s.Close()
	c.h2.Store(p)
	const cl = proxy.Client
	for {
		p.dispatch()
		if p.perform() {
			continue
		}
		if c.closed {
			break
		}
		if p.h.SendReady() {
			p.mu.Unlock()
			runtime.Gosched()
			p.mu.Lock()
			p.h.FlushSends()
			continue
		}
		if c.drainOrShed(&p.h) {
			continue
		}
		if len(c.pend[cl]) > 0 && p.h.WantClientData() {
			n := p.h.ClientData(c.pend[cl])
			c.pend[cl] = c.pend[cl][n:]
			if len(c.pend[cl]) == 0 {
				c.releaseBuf(cl)
			}
			continue
		}
		if len(c.pend[cl]) == 0 && c.eof[cl] {
			c.eof[cl] = false
			p.h.ClientEOF()
			continue
		}
		p.wait()
	}
	// The streams were ended before ActCloseClient; wait for their
	// goroutines to let go of their sessions.
	p.closing = true
	p.releaseParked()
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	p.h.Close()
	p.mu.Unlock()
}

// dispatch starts the new streams and kicks those with news.
func (p *h2conn) dispatch() {
	for st := p.h.NextStream(); st != nil; st = p.h.NextStream() {
		if st.Session() != nil {
			if st.Tag >= 0 && int(st.Tag) < len(p.streams) && p.streams[st.Tag] != nil {
				p.streams[st.Tag].kickStream()
			}
			continue
		}
		var sc *conn
		if n := len(p.idle); n > 0 {
			sc = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		} else {
			c := p.c
			sc = &conn{
				w: c.w, e: c.e, slot: c.slot, h2p: p,
				events: make(chan event, 2),
				done:   make(chan struct{}),
				kickCh: make(chan struct{}, 1),
				wbufs:  make(net.Buffers, 0, maxGather),
			}
		}
		var i int32
		if n := len(p.free); n > 0 {
			i = p.free[n-1]
			p.free = p.free[:n-1]
		} else {
			i = int32(len(p.streams))
			p.streams = append(p.streams, nil)
		}
		p.streams[i] = sc
		st.Tag = i
		sc.tag = i
		sc.s.OpenStream(st)
		if sc.parked {
			sc.parked = false
			sc.kickStream()
			continue
		}
		p.wg.Add(1)
		go sc.serveStream()
	}
}

// releaseParked ends the parked stream conns' goroutines. The mutex is
// held.
func (p *h2conn) releaseParked() {
	for i, sc := range p.idle {
		sc.parked, sc.quit = false, true
		sc.kickStream()
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}

// recycle readies a stream conn whose stream ended for the next one: its
// goroutine, channels, write buffers and timer stay. The upstream
// generation goes on counting, so that a read of the last stream's
// upstream still under way is recognised as stale. The mutex is held.
func (c *conn) recycle() {
	*c = conn{
		w: c.w, e: c.e, slot: c.slot, h2p: c.h2p,
		upGen:  c.upGen,
		events: c.events,
		done:   make(chan struct{}),
		kickCh: c.kickCh,
		timer:  c.timer,
		wbufs:  c.wbufs[:0],
		parked: true,
	}
	for {
		select {
		case <-c.kickCh:
		case <-c.events:
		default:
			return
		}
	}
}

// perform carries out the connection's actions; it reports whether there
// were any.
func (p *h2conn) perform() bool {
	c := p.c
	did := false
	for {
		a, ok := p.h.Next()
		if !ok {
			return did
		}
		did = true
		switch a.Kind {
		case proxy.ActSendClient:
			p.write(a.Data)
		case proxy.ActCloseClient:
			c.closeClient(a.Linger)
		}
	}
}

// write sends the connection's output, unlocked, going on past the send
// stall deadline while bytes move.
func (p *h2conn) write(b []byte) {
	c := p.c
	stall := c.e.opts.Proxy.SendStallTimeout
	if l := c.slot.Listener.Load(); l != nil && l.Timeouts.SendStall > 0 {
		stall = l.Timeouts.SendStall
	}
	if stall <= 0 {
		stall = c.e.opts.WriteTimeout
	}
	p.mu.Unlock()
	total := 0
	var err error
	for total < len(b) {
		c.client.SetWriteDeadline(time.Now().Add(stall))
		var n int
		n, err = c.client.Write(b[total:])
		total += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || c.stall != nil {
			break
		}
		err = nil
	}
	p.mu.Lock()
	if err != nil {
		p.h.Sent(0, err)
		return
	}
	p.h.Sent(total, nil)
}

// wait blocks until the client sends, a stream kicks, or the timer fires.
func (p *h2conn) wait() {
	c := p.c
	const cl = proxy.Client
	if len(c.pend[cl]) == 0 && !c.eof[cl] && p.h.WantClientData() {
		c.permit(cl)
	}
	var timerC <-chan time.Time
	if d := p.h.Deadline(); d != 0 {
		if c.timer == nil {
			c.timer = time.NewTimer(time.Until(c.e.timeAt(d)))
		} else {
			c.timer.Reset(time.Until(c.e.timeAt(d)))
		}
		timerC = c.timer.C
	}
	p.mu.Unlock()
	var ev event
	got := false
	fired := false
	select {
	case ev = <-c.events:
		got = true
	case <-timerC:
		timerC = nil
		fired = true
	case <-c.kickCh:
	}
	if timerC != nil {
		c.timer.Stop()
	}
	p.mu.Lock()
	if got {
		if pm := c.pumps[ev.side]; pm != nil {
			pm.outstanding = false
		}
		if ev.n > 0 {
			b := (*ev.buf)[:ev.n]
			n := p.h.ClientData(b)
			c.pend[cl] = b[n:]
		}
		switch {
		case errors.Is(ev.err, os.ErrDeadlineExceeded):
			// A kick (drain, shed) interrupted the read.
			c.raw.SetReadDeadline(time.Time{})
		case ev.err != nil:
			c.eof[cl] = true
		}
		c.releaseBuf(cl)
	}
	if fired {
		if now := c.e.now(); now >= p.h.Deadline() && p.h.Deadline() != 0 {
			p.h.Timer(now)
		}
	}
}

// serveStream is a stream conn's goroutine: it serves its stream, then
// the next ones dispatch gives it while it is parked.
func (c *conn) serveStream() {
	p := c.h2p
	p.mu.Lock()
	for {
		c.loop()
		c.cleanup()
		p.streams[c.tag] = nil
		p.free = append(p.free, c.tag)
		park := !p.closing && len(p.idle) < maxParked
		if park {
			c.recycle()
			p.idle = append(p.idle, c)
		}
		p.poke()
		if p.h.Streams() == 0 {
			// The connection is idle: it keeps no goroutine.
			p.releaseParked()
		}
		for c.parked {
			p.mu.Unlock()
			<-c.kickCh
			p.mu.Lock()
		}
		if !park || c.quit {
			break
		}
	}
	p.mu.Unlock()
	p.wg.Done()
}

// poke lets the connection act on what a stream session did, and wakes
// whom it concerns. The mutex is held.
func (p *h2conn) poke() {
	p.h.Flush()
	p.dispatch()
	if p.h.Actions() || p.h.Streams() == 0 || p.h.SendReady() {
		p.c.kickStream()
	}
}

// kickStream wakes a stream conn's goroutine (or the connection's driver):
// a read of its upstream in progress returns at once.
func (c *conn) kickStream() {
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
	if !c.reading.Load() {
		// Not in a read: it sees the kick before it reads (directRead
		// checks under the mutex the kicker holds).
		return
	}
	c.upMu.Lock()
	if c.upNC != nil {
		c.upNC.SetReadDeadline(time.Now())
	}
	c.upMu.Unlock()
}
