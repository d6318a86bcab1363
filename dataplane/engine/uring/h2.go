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
	h      proxy.H2Conn
	slots  []int32 // its stream slots
	queued bool    // in w.h2out
}

// startH2 performs ActStartHTTP2 for slot i: the slot's session ends and
// an H2Conn takes the connection over, with the bytes received so far.
func (w *worker) startH2(i int32, sl *slot, data []byte) {
	if sl.state != stOpen || sl.sk.flags&fH2 != 0 {
		return
	}
	var p *h2conn
	if n := len(w.h2free); n > 0 {
		p = w.h2free[n-1]
		w.h2free = w.h2free[:n-1]
	} else {
		p = &h2conn{}
	}
	p.h.OpenFrom(&sl.s, data)
	// The frames of every stream that progressed in a batch of completions
	// go out in one send, started after the batch (flushH2).
	p.h.DeferSends(true)
	p.queued = false
	sl.s.Close()
	sl.sk.flags |= fH2
	w.h2s[sl] = p
}

// flushH2 starts the sends HTTP/2 connections held during the batch of
// completions just handled.
func (w *worker) flushH2() {
	for k := 0; k < len(w.h2out); k++ {
		i := w.h2out[k]
		sl := w.slots.at(i)
		p := w.h2Of(sl)
		if p == nil || !p.queued {
			continue
		}
		p.queued = false
		if sl.state != stOpen {
			continue
		}
		p.h.FlushSends()
		w.runSlot(i, sl)
	}
	w.h2out = w.h2out[:0]
}

// h2Of returns the HTTP/2 state of a connection's slot, nil if none.
func (w *worker) h2Of(sl *slot) *h2conn {
	if sl.sk.flags&fH2 != 0 {
		return w.h2s[sl]
	}
	return nil
}

// vs reports whether sl is a stream slot.
func (sl *slot) vs() bool { return sl.sk.flags&fStream != 0 }

// parent returns the slot of a stream slot's connection.
func (sl *slot) parent() int32 { return sl.lis }

// next returns the next action of slot i: its session's, or for an HTTP/2
// connection its H2Conn's, after running the stream slots it has news for.
func (w *worker) next(i int32, sl *slot) (proxy.Action, bool) {
	p := w.h2Of(sl)
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
			if ss := w.slots.at(j); ss.vs() && ss.state == stOpen {
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
	sl.lis = pi
	sl.sk.flags = fStream
	sl.tlsi = 0
	sl.state = stOpen
	sl.pend = pendNone
	st.Tag = i
	p := w.h2Of(ps)
	p.slots = append(p.slots, i)
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
	pi := sl.parent()
	sl.sk.flags = 0
	sl.s.Close()
	if p := w.h2Of(w.slots.at(pi)); p != nil {
		s := p.slots
		for k, j := range s {
			if j == i {
				s[k] = s[len(s)-1]
				p.slots = s[:len(s)-1]
				break
			}
		}
	}
	w.free = append(w.free, i)
}

// closeH2 releases an HTTP/2 connection's state once its slot closes:
// its streams' slots first.
func (w *worker) closeH2(sl *slot) {
	p := w.h2Of(sl)
	if p == nil {
		return
	}
	for len(p.slots) > 0 {
		j := p.slots[len(p.slots)-1]
		if ss := w.slots.at(j); ss.vs() && ss.state == stOpen {
			w.closeStream(j, ss)
		} else {
			p.slots = p.slots[:len(p.slots)-1]
		}
	}
	p.h.Close()
	p.queued = false
	sl.sk.flags &^= fH2
	delete(w.h2s, sl)
	w.h2free = append(w.h2free, p)
}

// deadlineOf returns the timer deadline slot sl asks for.
func (w *worker) deadlineOf(sl *slot) int64 {
	if p := w.h2Of(sl); p != nil {
		return p.h.Deadline()
	}
	return sl.s.Deadline()
}

// Client-side events of a slot: to its session, or to its H2Conn.

func (w *worker) cData(sl *slot, b []byte) int {
	if p := w.h2Of(sl); p != nil {
		return p.h.ClientData(b)
	}
	return sl.s.ClientData(b)
}

func (w *worker) cEOF(sl *slot) {
	if p := w.h2Of(sl); p != nil {
		p.h.ClientEOF()
		return
	}
	sl.s.ClientEOF()
}

func (w *worker) cWant(sl *slot) bool {
	if p := w.h2Of(sl); p != nil {
		return p.h.WantClientData()
	}
	return sl.s.WantClientData()
}

func (w *worker) cSent(sl *slot, n int, err error) {
	if p := w.h2Of(sl); p != nil {
		p.h.Sent(n, err)
		return
	}
	sl.s.Sent(proxy.Client, n, err)
}

func (w *worker) cProgress(sl *slot) {
	if p := w.h2Of(sl); p != nil {
		p.h.SendProgress()
		return
	}
	sl.s.SendProgress(proxy.Client)
}

func (w *worker) cTimer(sl *slot) {
	if p := w.h2Of(sl); p != nil {
		p.h.Timer(w.now)
		return
	}
	sl.s.Timer(w.now)
}

func (w *worker) cShed(sl *slot) bool {
	if p := w.h2Of(sl); p != nil {
		return p.h.Shed()
	}
	return sl.s.Shed()
}

func (w *worker) cDrain(sl *slot) {
	if p := w.h2Of(sl); p != nil {
		p.h.Drain()
		return
	}
	sl.s.Drain()
}
