//go:build linux

package uring

import (
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// HTTP/2 connections.
//
// A client connection whose session sees the HTTP/2 preface
// (ActStartHTTP2) is served by a proxy.H2Conn from then on: its slot keeps
// the socket (and TLS layer) and its h2 points to the connection state,
// which takes the received bytes and whose actions (sends, close, timer)
// the slot performs like a session's. Each stream is served by a session in
// a slot of its own (a stream slot: vs set, no client socket), with its own
// upstream connection and timer, run by the same code as a connection's
// slot; its client is the H2Conn, which feeds it the request and frames
// its response. Running a stream slot (after one of its completions) runs
// the connection's slot afterwards, which frames what the stream queued;
// running the connection's slot runs the stream slots it has news for.

// h2conn is the HTTP/2 state of a connection's slot.
type h2conn struct {
	h     proxy.H2Conn
	slots []int32 // its stream slots
}

// startH2 performs ActStartHTTP2 for slot i: the slot's session ends and
// an H2Conn takes the connection over, with the bytes received so far.
func (w *worker) startH2(i int32, sl *slot, data []byte) {
	if sl.state != stOpen || sl.h2 != nil {
		return
	}
	var p *h2conn
	if n := len(w.h2free); n > 0 {
		p = w.h2free[n-1]
		w.h2free = w.h2free[:n-1]
	} else {
		p = &h2conn{}
	}
	es := w.lis[sl.lis].bs.slot
	p.h.Open(w.pw, &es.Listener, w.peer(int(sl.sk.fd)), sl.tlsi != 0, data)
	sl.s.Close()
	sl.h2 = p
}

// next returns the next action of slot i: its session's, or for an HTTP/2
// connection its H2Conn's, after running the stream slots it has news for.
func (w *worker) next(i int32, sl *slot) (proxy.Action, bool) {
	p := sl.h2
	if p == nil {
		return sl.s.Next()
	}
	for {
		if a, ok := p.h.Next(); ok {
			return a, true
		}
		st := p.h.NextStream()
		if st == nil {
			return proxy.Action{}, false
		}
		j := st.Tag
		if st.Session() == nil {
			j = w.openStream(i, sl, st)
		}
		if j >= 0 && j < w.slots.n {
			if ss := w.slots.at(j); ss.vs && ss.state == stOpen {
				w.runSlot(j, ss)
			}
		}
		p.h.Flush()
	}
}

// openStream gives stream st of the HTTP/2 connection in slot pi a slot.
func (w *worker) openStream(pi int32, ps *slot, st *proxy.H2Stream) int32 {
	var i int32
	if n := len(w.free); n > 0 {
		i = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		i = w.slots.grow()
	}
	sl := w.slots.at(i)
	sl.gen = iouring.NextGen(sl.gen)
	sl.sk = newSock(-1)
	sl.deadline = 0
	sl.up = -1
	sl.hidx = -1
	sl.lis = ps.lis
	sl.tlsi = 0
	sl.state = stOpen
	sl.pend = pendNone
	sl.vs = true
	sl.parent = pi
	st.Tag = i
	ps.h2.slots = append(ps.h2.slots, i)
	sl.s.OpenStream(st)
	return i
}

// closeStream releases stream slot i (its session closed the stream, or
// the connection is going away).
func (w *worker) closeStream(i int32, sl *slot) {
	if sl.state != stOpen {
		return
	}
	w.clearTimer(sl)
	if sl.up >= 0 {
		w.abandonUp(sl.up)
		sl.up = -1
	}
	sl.pend = pendNone
	sl.state = stFree
	sl.vs = false
	sl.s.Close()
	if ps := w.slots.at(sl.parent); ps.h2 != nil {
		s := ps.h2.slots
		for k, j := range s {
			if j == i {
				s[k] = s[len(s)-1]
				ps.h2.slots = s[:len(s)-1]
				break
			}
		}
	}
	w.free = append(w.free, i)
}

// closeH2 releases an HTTP/2 connection's state once its slot closes:
// its streams' slots first.
func (w *worker) closeH2(sl *slot) {
	p := sl.h2
	if p == nil {
		return
	}
	for len(p.slots) > 0 {
		j := p.slots[len(p.slots)-1]
		if ss := w.slots.at(j); ss.vs && ss.state == stOpen {
			w.closeStream(j, ss)
		} else {
			p.slots = p.slots[:len(p.slots)-1]
		}
	}
	p.h.Close()
	sl.h2 = nil
	w.h2free = append(w.h2free, p)
}

// Client-side events of a slot: to its session, or to its H2Conn.

func (w *worker) cData(sl *slot, p []byte) int {
	if sl.h2 != nil {
		return sl.h2.h.ClientData(p)
	}
	return sl.s.ClientData(p)
}

func (w *worker) cEOF(sl *slot) {
	if sl.h2 != nil {
		sl.h2.h.ClientEOF()
		return
	}
	sl.s.ClientEOF()
}

func (w *worker) cWant(sl *slot) bool {
	if sl.h2 != nil {
		return sl.h2.h.WantClientData()
	}
	return sl.s.WantClientData()
}

func (w *worker) cSent(sl *slot, n int, err error) {
	if sl.h2 != nil {
		sl.h2.h.Sent(n, err)
		return
	}
	sl.s.Sent(proxy.Client, n, err)
}

func (w *worker) cProgress(sl *slot) {
	if sl.h2 != nil {
		sl.h2.h.SendProgress()
		return
	}
	sl.s.SendProgress(proxy.Client)
}

func (w *worker) cTimer(sl *slot) {
	if sl.h2 != nil {
		sl.h2.h.Timer(w.now)
		return
	}
	sl.s.Timer(w.now)
}

func (w *worker) cDrain(sl *slot) {
	if sl.h2 != nil {
		sl.h2.h.Drain()
		return
	}
	sl.s.Drain()
}
