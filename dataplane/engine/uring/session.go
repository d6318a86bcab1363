//go:build linux

package uring

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Slot states.
const (
	stFree       uint8 = iota
	stOpen             // serving
	stLingerWait       // ActCloseClient with Linger: waiting for the queued client sends
	stLinger           // write side shut down; discarding input until EOF or the deadline
	stClosed           // close queued; waiting for the slot's last completions
)

// Deferred events, delivered once the action queue is drained.
const (
	pendNone   uint8 = iota
	pendReused       // UpstreamConnected(true, nil): a pooled connection was attached
	pendFailed       // UpstreamConnected(false, pendErr): the connect could not start
)

// slot is one client connection: its Session and the engine's state for
// the client socket. The upstream connection in use, if any, is up.
type slot struct {
	s        proxy.Session
	sk       sock
	deadline int64 // timer: the session's (stOpen) or the linger deadline
	gen      uint32
	up       int32  // index in worker.ups, -1 when none
	hidx     int32  // position in the timer heap, -1 when not armed
	lis      int32  // listener the connection was accepted on (a stream slot: its connection's slot)
	tlsi     uint32 // TLS layer (HTTPS listeners, terminating TLS routes): index+1 in worker.tlsStates, 0 when none
	state    uint8
	pend     uint8
	pendErr  uint16 // errno of pendFailed
}

func (w *worker) cRecvUD(i int32, sl *slot) uint64 { return iouring.Pack(opCRecv, sl.gen, uint32(i)) }

func (w *worker) cSendUD(i int32, sl *slot) uint64 { return iouring.Pack(opCSend, sl.gen, uint32(i)) }

// openSession starts serving a connection accepted on listener k.
func (w *worker) openSession(fd int, k int32) {
	var i int32
	if n := len(w.free); n > 0 {
		i = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		i = w.slots.grow()
	}
	sl := w.slots.at(i)
	sl.gen = iouring.NextGen(sl.gen)
	sl.sk = newSock(fd)
	sl.deadline = 0
	sl.up = -1
	sl.hidx = -1
	sl.lis = k
	w.lis[k].sessions++
	sl.state = stOpen
	sl.pend = pendNone
	w.activeN.Add(1)
	es := w.lis[k].bs.slot
	secure := false
	if l := es.Listener.Load(); l != nil && l.Protocol == compiled.ProtocolHTTPS && l.TLS != nil {
		w.tlsOpen(i, sl, k, l)
		secure = true
	}
	sl.s.Open(w.pw, &es.Listener, w.peer(fd), secure)
	w.run(i)
}

// peer returns the remote address of a connected socket.
func (w *worker) peer(fd int) netip.AddrPort {
	w.rsaLen = unix.SizeofSockaddrAny
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd),
		uintptr(unsafe.Pointer(&w.rsa)), uintptr(unsafe.Pointer(&w.rsaLen)))
	if errno != 0 {
		return netip.AddrPort{}
	}
	switch w.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&w.rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(&sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&w.rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), netPort(&sa.Port))
	}
	return netip.AddrPort{}
}

// netPort decodes a port stored in network byte order.
func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// run performs the actions of session i, delivers deferred events and
// buffered input, and repeats until the session has nothing more to do;
// then it starts queued sends and arms the receives the session wants.
// Every event handed to a session is followed by run.
func (w *worker) run(i int32) {
	sl := w.slots.at(i)
	if sl.vs() {
		// A stream slot: then its connection frames what it queued.
		p := sl.parent()
		w.runSlot(i, sl)
		if ps := w.slots.at(p); ps.sk.flags&fH2 != 0 && ps.state == stOpen {
			w.h2Of(ps).h.Flush()
			w.runSlot(p, ps)
		}
		return
	}
	w.runSlot(i, sl)
}

// runSlot is run for one slot.
func (w *worker) runSlot(i int32, sl *slot) {
	for sl.state != stFree {
		for {
			a, ok := w.next(i, sl)
			if !ok {
				break
			}
			w.act(i, sl, a)
		}
		if p := sl.pend; p != pendNone {
			sl.pend = pendNone
			if p == pendReused {
				sl.s.UpstreamConnected(true, nil)
			} else {
				sl.s.UpstreamConnected(false, unix.Errno(sl.pendErr))
			}
			continue
		}
		if t := w.tlsOf(sl); t != nil && sl.state == stOpen && t.fatal {
			w.tlsFail(i, sl)
			continue
		}
		if sl.state == stOpen && w.pump(sl) {
			continue
		}
		break
	}
	if t := w.tlsOf(sl); t != nil && sl.state == stOpen {
		w.tlsFlush(i, sl)
		if t.fatal {
			w.tlsFail(i, sl)
		}
	}
	if p := w.h2Of(sl); p != nil && !p.queued && p.h.SendReady() {
		p.queued = true
		w.h2out = append(w.h2out, i)
	}
	switch sl.state {
	case stOpen:
		if !sl.vs() {
			w.kick(&sl.sk, w.cSendUD(i, sl))
		}
		if sl.up >= 0 {
			u := w.ups.at(sl.up)
			if u.state == upOwned {
				if t := w.upTLSOf(u); t != nil {
					w.upTLSFlush(sl.up, u, t)
				}
				w.kick(&u.sk, w.uSendUD(sl.up, u))
			}
		}
		w.syncRecv(i, sl)
	case stLingerWait:
		w.kick(&sl.sk, w.cSendUD(i, sl))
	}
}

// act performs one action of session i.
func (w *worker) act(i int32, sl *slot, a proxy.Action) {
	switch a.Kind {
	case proxy.ActSendClient:
		if sl.state == stOpen {
			if t := w.tlsOf(sl); t != nil {
				w.tlsQueue(t, a.Data)
			} else {
				w.queueSend(&sl.sk, a.Data)
			}
		}
	case proxy.ActSendUpstream:
		if sl.up >= 0 {
			u := w.ups.at(sl.up)
			if t := w.upTLSOf(u); t != nil {
				w.tlsQueue(t, a.Data)
			} else {
				w.queueSend(&u.sk, a.Data)
			}
		}
	case proxy.ActConnectUpstream:
		w.connect(i, sl)
	case proxy.ActReleaseUpstream:
		w.release(sl)
	case proxy.ActCloseUpstream:
		if sl.up >= 0 {
			w.abandonUp(sl.up)
			sl.up = -1
		}
		sl.pend = pendNone
	case proxy.ActShutdownUpstream:
		if sl.up >= 0 {
			u := w.ups.at(sl.up)
			if t := w.upTLSOf(u); t != nil {
				// close_notify first, after the data queued before it.
				t.notify, t.shut = true, true
			} else {
				w.shutdownWhenSent(&u.sk)
			}
		}
	case proxy.ActShutdownClient:
		if t := w.tlsOf(sl); t != nil {
			// close_notify first, after the data queued before it.
			t.notify, t.shut = true, true
		} else {
			w.shutdownWhenSent(&sl.sk)
		}
	case proxy.ActCloseClient:
		w.closeClient(i, sl, a.Linger)
	case proxy.ActArmTimer:
		if sl.state == stOpen {
			w.setTimer(sl, i, w.deadlineOf(sl))
		}
	case proxy.ActStartTunnel:
		// Nothing to do: the session keeps forwarding what it is given.
	case proxy.ActTerminateTLS:
		w.tlsStart(i, sl, a.Data)
	case proxy.ActStartHTTP2:
		w.startH2(i, sl, a.Data)
	}
}

// pump hands the session one piece of buffered input (or a pending EOF)
// that it can take now, and reports whether it did.
func (w *worker) pump(sl *slot) bool {
	sk := &sl.sk
	if sl.tlsi != 0 {
		if w.tlsPump(sl) {
			return true
		}
	} else if sk.hasStash() {
		if w.cWant(sl) {
			n := w.cData(sl, w.stashBytes(sk))
			w.stashConsume(sk, n)
			if n > 0 {
				return true
			}
		}
	} else if sk.flags&(fEOF|fEOFDone) == fEOF {
		sk.flags |= fEOFDone
		w.cEOF(sl)
		return true
	}
	if sl.up < 0 {
		return false
	}
	u := w.ups.at(sl.up)
	if u.state != upOwned {
		return false
	}
	if t := w.upTLSOf(u); t != nil {
		return w.upTLSPump(sl, u, t)
	}
	sk = &u.sk
	if sk.hasStash() {
		if sl.s.WantUpstreamData() {
			n := sl.s.UpstreamData(w.stashBytes(sk))
			w.stashConsume(sk, n)
			if n > 0 {
				return true
			}
		}
	} else if sk.flags&(fEOF|fEOFDone) == fEOF {
		sk.flags |= fEOFDone
		sl.s.UpstreamEOF()
		return true
	}
	return false
}

// syncRecv arms the receives session i wants and lacks.
func (w *worker) syncRecv(i int32, sl *slot) {
	sk := &sl.sk
	if sk.flags&(fArmed|fEOF|fStarved|fClosed) == 0 && !sk.hasStash() && w.wantClient(sl) {
		w.armRecv(sk, w.cRecvUD(i, sl))
	}
	if sl.up < 0 {
		return
	}
	u := w.ups.at(sl.up)
	sk = &u.sk
	if u.state == upOwned && sk.flags&(fArmed|fEOF|fStarved|fClosed) == 0 && !sk.hasStash() && w.wantUpstream(sl, u) {
		w.armRecv(sk, w.uRecvUD(sl.up, u))
	}
}

// wantUpstream reports whether slot sl wants to receive from its upstream
// connection u: the session wants data, or, on TLS, the receive buffer has
// room (records are opened as the session takes their plaintext).
func (w *worker) wantUpstream(sl *slot, u *upConn) bool {
	if t := w.upTLSOf(u); t != nil {
		return !t.eof && !t.fatal && t.room()
	}
	return sl.s.WantUpstreamData()
}

// wantClient reports whether slot sl wants to receive from its client.
func (w *worker) wantClient(sl *slot) bool {
	if sl.tlsi != 0 {
		return w.tlsWant(sl)
	}
	return w.cWant(sl)
}

// closeClient performs ActCloseClient.
func (w *worker) closeClient(i int32, sl *slot, linger bool) {
	if sl.state != stOpen {
		return
	}
	if sl.vs() {
		w.closeStream(i, sl)
		return
	}
	if sl.up >= 0 {
		w.abandonUp(sl.up)
		sl.up = -1
	}
	sl.pend = pendNone
	if !linger {
		w.hardClose(i, sl)
		return
	}
	w.stashFree(&sl.sk)
	if t := w.tlsOf(sl); t != nil {
		w.tlsAbort(sl)
		if !t.hs {
			t.notify = true
			w.tlsFlush(i, sl)
		}
	}
	if w.sendsPending(&sl.sk) {
		sl.state = stLingerWait
		w.setTimer(sl, i, w.now+int64(lingerTimeout))
		return
	}
	w.startLinger(i, sl)
}

// startLinger half-closes the client and discards its input until EOF or
// the linger deadline, so that a reply already sent is not destroyed by a
// reset caused by unread input.
func (w *worker) startLinger(i int32, sl *slot) {
	sl.state = stLinger
	sk := &sl.sk
	if sk.flags&(fEOF|fStarved) != 0 || unix.Shutdown(int(sk.fd), unix.SHUT_WR) != nil {
		w.hardClose(i, sl)
		return
	}
	w.setTimer(sl, i, w.now+int64(lingerTimeout))
	if sk.flags&fArmed == 0 && !w.armRecv(sk, w.cRecvUD(i, sl)) {
		w.hardClose(i, sl)
	}
}

// hardClose closes the client connection now and releases the slot once
// its last operation has completed.
func (w *worker) hardClose(i int32, sl *slot) {
	switch sl.state {
	case stFree, stClosed:
		return
	}
	if sl.vs() {
		w.closeStream(i, sl)
		return
	}
	w.closeH2(sl)
	w.clearTimer(sl)
	w.tlsAbort(sl)
	if sl.up >= 0 {
		w.abandonUp(sl.up)
		sl.up = -1
	}
	sl.pend = pendNone
	w.closeSock(&sl.sk, iouring.Pack(opCClose, sl.gen, uint32(i)))
	sl.state = stClosed
	w.maybeFinalize(i, sl)
}

// maybeFinalize releases a closed slot whose operations have all
// completed: nothing the kernel might still touch refers to the session's
// Exchange any more, so the session can give it back.
func (w *worker) maybeFinalize(i int32, sl *slot) {
	if sl.state != stClosed || sl.sk.ops > 0 {
		return
	}
	w.freeSendState(&sl.sk)
	sl.s.Close()
	w.tlsRelease(sl)
	sl.state = stFree
	w.free = append(w.free, i)
	w.activeN.Add(-1)
	w.releaseConn(sl.lis)
}

// slotOf validates a completion's slot and generation.
func (w *worker) slotOf(gen uint32, i int32) *slot {
	if i < 0 || i >= w.slots.n {
		return nil
	}
	sl := w.slots.at(i)
	if sl.gen != gen || sl.state == stFree {
		return nil
	}
	return sl
}

// onClientRecv handles a multishot receive completion on a client socket.
func (w *worker) onClientRecv(c iouring.CQE, gen uint32, i int32) {
	sl := w.slotOf(gen, i)
	if sl == nil {
		if c.HasBuffer() {
			w.dropBuffer(c)
		}
		return
	}
	sk := &sl.sk
	final := !c.More()
	if final {
		sk.flags &^= fArmed | fCancel
		sk.ops--
	}
	switch {
	case c.HasBuffer():
		if buf, bid, ok := w.br.Buffer(c); ok {
			if sl.state == stOpen {
				w.offer(sl, sk, proxy.Client, buf, bid, w.cRecvUD(i, sl))
			} else {
				w.recycle(bid)
			}
		}
	case c.Res == 0:
		sk.flags |= fEOF
	case c.Res < 0:
		w.recvError(sk, c.Res, starvedRef{idx: i, gen: gen})
	}
	switch sl.state {
	case stOpen:
		w.run(i)
	case stLinger:
		if sk.flags&(fEOF|fStarved) != 0 {
			w.hardClose(i, sl)
		} else if final && !w.armRecv(sk, w.cRecvUD(i, sl)) {
			w.hardClose(i, sl)
		}
	case stClosed:
		w.maybeFinalize(i, sl)
	}
}

// onClientSend handles a send completion on a client socket.
func (w *worker) onClientSend(c iouring.CQE, gen uint32, i int32) {
	sl := w.slotOf(gen, i)
	if sl == nil {
		return
	}
	sk := &sl.sk
	sk.ops--
	var lens [maxSegs]int
	k, err := w.sendDone(sk, c.Res, &lens)
	switch sl.state {
	case stOpen:
		if sl.tlsi != 0 {
			w.tlsSendDone(i, sl, c.Res, k, err)
			return
		}
		for j := 0; j < k && sl.state == stOpen; j++ {
			w.cSent(sl, lens[j], err)
			w.run(i)
		}
		if k == 0 {
			if c.Res > 0 {
				w.cProgress(sl)
			}
			w.run(i)
		}
	case stLingerWait:
		if sl.tlsi != 0 {
			w.tlsLingerSendDone(i, sl, k, err)
		}
		if err != nil {
			w.hardClose(i, sl)
		} else if !w.sendsPending(sk) {
			w.startLinger(i, sl)
		} else {
			w.kick(sk, w.cSendUD(i, sl))
		}
	case stClosed:
		w.maybeFinalize(i, sl)
	}
}

// onClientOp handles the completion of a close or shutdown of a client
// socket.
func (w *worker) onClientOp(_ iouring.CQE, gen uint32, i int32) {
	sl := w.slotOf(gen, i)
	if sl == nil {
		return
	}
	sl.sk.ops--
	w.maybeFinalize(i, sl)
}

// Timers: a min-heap of slot indexes ordered by slot.deadline, checked once
// per loop iteration; the loop's wait is bounded by the earliest deadline.

// setTimer arms slot i's timer at d (0 disarms it).
func (w *worker) setTimer(sl *slot, i int32, d int64) {
	if d == 0 {
		w.clearTimer(sl)
		return
	}
	sl.deadline = d
	if sl.hidx >= 0 {
		w.heapFix(sl.hidx)
		return
	}
	sl.hidx = int32(len(w.heap))
	w.heap = append(w.heap, i)
	w.heapUp(sl.hidx)
}

// clearTimer disarms a slot's timer.
func (w *worker) clearTimer(sl *slot) {
	if sl.hidx < 0 {
		sl.deadline = 0
		return
	}
	w.heapRemove(sl.hidx)
	sl.deadline = 0
}

// fireTimers delivers every deadline that has passed.
func (w *worker) fireTimers() {
	for len(w.heap) > 0 {
		i := w.heap[0]
		sl := w.slots.at(i)
		if sl.deadline > w.now {
			return
		}
		w.clearTimer(sl)
		switch sl.state {
		case stOpen:
			w.cTimer(sl)
			w.run(i)
		case stLingerWait, stLinger:
			w.hardClose(i, sl)
		}
	}
}

func (w *worker) heapLess(a, b int32) bool {
	return w.slots.at(w.heap[a]).deadline < w.slots.at(w.heap[b]).deadline
}

func (w *worker) heapSwap(a, b int32) {
	h := w.heap
	h[a], h[b] = h[b], h[a]
	w.slots.at(h[a]).hidx = a
	w.slots.at(h[b]).hidx = b
}

func (w *worker) heapUp(j int32) {
	for j > 0 {
		p := (j - 1) / 2
		if !w.heapLess(j, p) {
			return
		}
		w.heapSwap(j, p)
		j = p
	}
}

func (w *worker) heapDown(j int32) bool {
	n := int32(len(w.heap))
	moved := false
	for {
		l := 2*j + 1
		if l >= n {
			return moved
		}
		m := l
		if r := l + 1; r < n && w.heapLess(r, l) {
			m = r
		}
		if !w.heapLess(m, j) {
			return moved
		}
		w.heapSwap(j, m)
		j = m
		moved = true
	}
}

func (w *worker) heapFix(j int32) {
	if !w.heapDown(j) {
		w.heapUp(j)
	}
}

func (w *worker) heapRemove(j int32) {
	last := int32(len(w.heap) - 1)
	if j != last {
		w.heapSwap(j, last)
	}
	w.slots.at(w.heap[last]).hidx = -1
	w.heap = w.heap[:last]
	if j != last {
		w.heapFix(j)
	}
}
