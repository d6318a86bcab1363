//go:build linux

package uring

import (
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/tlsconn"
)

// Listener states in a worker.
const (
	lFree    uint8 = iota
	lActive        // serving: multishot accept armed or waiting to be re-armed
	lClosing       // accept cancelled; the socket is closed on its final completion
)

// wlistener is a worker's view of one bound address: its own socket and
// the multishot accept on it.
type wlistener struct {
	bs      *boundSock
	fd      int
	gen     uint32
	state   uint8
	armed   bool
	retryAt int64 // when to re-arm an accept that ended (0: not waiting)
	// es is the address served, whose connection count (engine.Admit)
	// holds the sessions accepted here; sessions counts them. The entry is
	// not reused while it has sessions, so a session's slot.lis stays valid
	// after its listener closes.
	es       *engine.Slot
	sessions int32
	// The tlsconn server of an HTTPS listener's configuration tlsFor.
	tlsFor *compiled.Listener
	tlsSrv *tlsconn.Server
}

func (w *worker) acceptUD(k int32) uint64 { return iouring.Pack(opAccept, w.lis[k].gen, uint32(k)) }

// syncListeners reconciles the worker's listeners with the engine's bound
// addresses: it adopts the sockets of new ones and closes those of removed
// ones (or all, when draining or stopping). Sessions accepted on a removed
// listener are asked to drain.
func (w *worker) syncListeners() {
	e := w.e
	e.mu.Lock()
	w.lisSeen = e.lisVersion.Load()
	want := !w.draining && !e.stopping.Load() && !e.draining.Load()
	w.closed = w.closed[:0]
	for k := range w.lis {
		l := &w.lis[k]
		if l.state == lActive && (!want || l.bs.removed || l.bs.fds[w.id] < 0) {
			w.closeListenerLocked(int32(k))
			w.closed = append(w.closed, int32(k))
		}
	}
	if want {
		for _, bs := range e.socks {
			if bs.removed || bs.adopted[w.id] || bs.fds[w.id] < 0 {
				continue
			}
			bs.adopted[w.id] = true
			k := w.newListener(bs)
			w.armAccept(k)
		}
	}
	e.mu.Unlock()
	for _, k := range w.closed {
		for i := int32(0); i < w.slots.n; i++ {
			sl := w.slots.at(i)
			if sl.state == stOpen && sl.lis == k && !sl.vs() {
				w.cDrain(sl)
				w.run(i)
			}
		}
	}
}

// newListener takes a free listener entry for bs.
func (w *worker) newListener(bs *boundSock) int32 {
	k := -1
	for j := range w.lis {
		if w.lis[j].state == lFree && w.lis[j].sessions == 0 {
			k = j
			break
		}
	}
	if k < 0 {
		w.lis = append(w.lis, wlistener{})
		k = len(w.lis) - 1
	}
	l := &w.lis[k]
	*l = wlistener{bs: bs, es: bs.slot, fd: bs.fds[w.id], gen: iouring.NextGen(l.gen), state: lActive}
	return int32(k)
}

func (w *worker) armAccept(k int32) {
	l := &w.lis[k]
	if _, err := w.ring.PrepareAcceptMultishot(l.fd, w.acceptUD(k)); err != nil {
		w.log.Error(err, "cannot arm accept", "address", l.bs.addr.String())
		l.retryAt = w.now + int64(acceptRetry)
		return
	}
	l.armed = true
	l.retryAt = 0
}

// closeListenerLocked stops listener k; e.mu is held.
func (w *worker) closeListenerLocked(k int32) {
	l := &w.lis[k]
	l.state = lClosing
	if l.armed {
		if _, err := w.ring.PrepareCancel(w.acceptUD(k), cancelUD); err == nil {
			return
		}
		// The shutdown done by Apply or Drain also ends the accept;
		// the socket is closed on its final completion.
		if l.bs.fds[w.id] >= 0 {
			_ = unix.Shutdown(l.fd, unix.SHUT_RD)
		}
		return
	}
	w.finishListenerLocked(k)
}

// finishListenerLocked closes listener k's socket; e.mu is held.
func (w *worker) finishListenerLocked(k int32) {
	l := &w.lis[k]
	if l.bs.fds[w.id] >= 0 {
		_ = unix.Close(l.fd)
		l.bs.fds[w.id] = -1
	}
	l.state = lFree
	l.bs = nil
	l.fd = -1
}

// onAccept handles a multishot accept completion of listener k.
func (w *worker) onAccept(c iouring.CQE, gen uint32, k int32) {
	if int(k) >= len(w.lis) || w.lis[k].gen != gen || w.lis[k].state == lFree {
		if c.Res >= 0 {
			_ = unix.Close(int(c.Res))
		}
		return
	}
	l := &w.lis[k]
	if c.Res >= 0 {
		fd := int(c.Res)
		if l.state != lActive || w.draining {
			_ = unix.Close(fd)
		} else if engine.AdmitConn(w.metrics, w.e.opts.Limits.Connections, l.bs.slot) {
			w.openSession(fd, k)
		} else {
			_ = unix.Close(fd) // refused: closed at once, not left in the backlog
		}
	} else if engine.FdExhausted(errnoOf(c.Res)) {
		w.fdExhausted(l.bs.slot, errnoOf(c.Res))
	}
	if c.More() {
		return
	}
	l.armed = false
	if l.state == lClosing {
		w.e.mu.Lock()
		w.finishListenerLocked(k)
		w.e.mu.Unlock()
		return
	}
	// The accept ended (an error such as EMFILE, or the socket was shut
	// down by Apply or Drain, which the next sync will notice): re-arm
	// after a pause.
	if c.Res < 0 && c.Res != -int32(unix.ECANCELED) && !engine.FdExhausted(errnoOf(c.Res)) {
		w.log.V(1).Info("accept ended", "address", l.bs.addr.String(), "error", errnoOf(c.Res).Error())
	}
	l.retryAt = w.now + int64(acceptRetry)
}

// rearmListeners re-arms accepts whose pause is over.
func (w *worker) rearmListeners() {
	for k := range w.lis {
		l := &w.lis[k]
		if l.state == lActive && !l.armed && l.retryAt != 0 && w.now >= l.retryAt {
			if w.e.lisVersion.Load() != w.lisSeen {
				return // sync first: the listener may be gone
			}
			w.armAccept(int32(k))
		}
	}
}

// releaseConn uncounts a session accepted on listener k once its slot is
// freed.
func (w *worker) releaseConn(k int32) {
	l := &w.lis[k]
	engine.Release(w.e.opts.Limits.Connections, l.es)
	l.sessions--
	if l.sessions == 0 && l.state == lFree {
		l.es = nil
	}
}

// fdExhausted counts an accept that failed for lack of descriptors and logs
// it, at most once per interval for the engine; the accept is re-armed
// after a pause (the connection waits in the backlog meanwhile).
func (w *worker) fdExhausted(sl *engine.Slot, err error) {
	w.metrics.Overflow(engine.ListenerCounters(w.metrics, sl), metrics.OverflowFdExhausted)
	if ok, suppressed := w.e.fdLog.Allow(); ok {
		w.log.Error(err, "accept failed: out of file descriptors; raise the open files limit (RLIMIT_NOFILE) or lower --max-connections",
			"address", sl.Addr.String(), "suppressed", suppressed)
	}
}

// shedIdle closes the idle keep-alive connections of the worker, the first
// overload action past its memory budget (metrics.PressureCloseIdle).
func (w *worker) shedIdle() {
	for i := int32(0); i < w.slots.n; i++ {
		sl := w.slots.at(i)
		if sl.state == stOpen && w.cShed(sl) {
			w.metrics.OverloadAction(metrics.OverloadCloseIdle)
			w.run(i)
		}
	}
}
