//go:build linux

package uring

import (
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// sock flags.
const (
	fArmed       uint16 = 1 << iota // multishot receive armed (final completion not seen)
	fCancel                         // cancellation of the receive requested
	fEOF                            // the receive reported end of stream or an error
	fEOFDone                        // the EOF was delivered to the session
	fStarved                        // the receive ended with ENOBUFS; waiting for buffers
	fShutPending                    // half-close once the queued sends are done
	fShut                           // write side shut down
	fClosed                         // close queued
	fH2                             // the client connection speaks HTTP/2 (h2.go)
	fStream                         // no socket: the slot serves an HTTP/2 stream (h2.go)
)

// noBuf marks an empty stash (buffer ids are below 32768).
const noBuf = 0xFFFF

// sock is the engine's state for one socket (client or upstream): its
// descriptor, the count of operations in flight on it, its receive flags,
// the received bytes the session has not taken yet (a stash of provided
// buffers, chained through worker.bnext) and its send queue.
type sock struct {
	fd        int32
	ops       int32 // operations whose final completion is outstanding
	send      int32 // index in worker.sends, -1 when none
	stashOff  uint32
	stashHead uint16
	stashTail uint16
	flags     uint16
}

func newSock(fd int) sock {
	return sock{fd: int32(fd), send: -1, stashHead: noBuf, stashTail: noBuf}
}

func (sk *sock) hasStash() bool { return sk.stashHead != noBuf }

// starvedRef names a socket whose receive ran out of provided buffers.
type starvedRef struct {
	idx int32
	gen uint32
	up  bool
}

// armRecv arms a multishot receive on sk.
func (w *worker) armRecv(sk *sock, ud uint64) bool {
	if _, err := w.ring.PrepareRecvMultishot(int(sk.fd), w.br, ud); err != nil {
		w.log.Error(err, "cannot arm receive")
		return false
	}
	sk.flags |= fArmed
	sk.flags &^= fCancel
	sk.ops++
	return true
}

// cancelRecv asks the kernel to stop sk's multishot receive (the session's
// buffer is full); its final completion clears fArmed.
func (w *worker) cancelRecv(sk *sock, ud uint64) {
	if sk.flags&(fArmed|fCancel) != fArmed {
		return
	}
	if _, err := w.ring.PrepareCancel(ud, cancelUD); err != nil {
		w.log.Error(err, "cannot cancel receive")
		return
	}
	sk.flags |= fCancel
	w.e.recvPauses.Add(1)
}

// recvError records a failed receive: ENOBUFS waits for buffers, a
// cancellation is the engine's own doing, anything else ends the stream.
func (w *worker) recvError(sk *sock, res int32, ref starvedRef) {
	switch unix.Errno(-res) {
	case unix.ENOBUFS:
		sk.flags |= fStarved
		w.starved = append(w.starved, ref)
		w.e.starvations.Add(1)
	case unix.ECANCELED:
	default:
		sk.flags |= fEOF
	}
}

// rearmStarved lets sockets starved of provided buffers receive again once
// enough buffers are back.
func (w *worker) rearmStarved() {
	w.br.Publish()
	if w.br.Available() < w.starveAt {
		return
	}
	n := len(w.starved)
	for k := 0; k < n; k++ {
		r := w.starved[k]
		if r.up {
			if r.idx >= w.ups.n {
				continue
			}
			u := w.ups.at(r.idx)
			if u.gen != r.gen || u.state == upFree {
				continue
			}
			u.sk.flags &^= fStarved
			switch u.state {
			case upOwned:
				w.run(u.owner)
			case upIdle:
				if u.sk.flags&fArmed == 0 && !w.armRecv(&u.sk, w.uRecvUD(r.idx, u)) {
					w.closeUp(r.idx, u)
				}
			case upShared:
				if u.sk.flags&fArmed == 0 && !w.armRecv(&u.sk, w.uRecvUD(r.idx, u)) {
					u.link.Fail()
					w.linkRun(r.idx, u)
				}
			case upConnecting: // a TLS handshake
				if u.sk.flags&fArmed == 0 && !w.armRecv(&u.sk, w.uRecvUD(r.idx, u)) {
					if t := w.upTLSOf(u); t != nil {
						t.c.CloseRead()
					}
				}
			}
			continue
		}
		sl := w.slotOf(r.gen, r.idx)
		if sl == nil {
			continue
		}
		sl.sk.flags &^= fStarved
		if sl.state == stOpen {
			w.run(r.idx)
		}
	}
	w.starved = append(w.starved[:0], w.starved[n:]...)
}

// offer hands received bytes (provided buffer bid) to the session, or
// stashes them behind bytes it has not taken yet. What the session does
// not take is stashed and the receive cancelled until it wants more.
func (w *worker) offer(sl *slot, sk *sock, side proxy.Side, buf []byte, bid uint16, recvUD uint64) {
	if sk.hasStash() {
		w.stashPush(sk, bid, 0, len(buf))
		return
	}
	var n int
	switch {
	case side == proxy.Client && sl.tlsi != 0:
		n = w.tlsIn(sl, buf)
	case side == proxy.Client:
		n = w.cData(sl, buf)
	default:
		n = w.upData(sl, buf)
	}
	if n >= len(buf) {
		w.recycle(bid)
		return
	}
	w.stashPush(sk, bid, n, len(buf))
	w.cancelRecv(sk, recvUD)
}

// upData hands bytes received from slot sl's upstream connection to the
// session, or, on TLS, to the TLS layer (taken whole once it failed or
// ended: nothing more is read).
func (w *worker) upData(sl *slot, buf []byte) int {
	if sl.up >= 0 {
		if t := w.upTLSOf(w.ups.at(sl.up)); t != nil {
			if t.fatal || t.eof {
				return len(buf)
			}
			return w.tlsTake(t, buf)
		}
	}
	return sl.s.UpstreamData(buf)
}

func (w *worker) stashPush(sk *sock, bid uint16, off, n int) {
	w.blen[bid] = uint32(n)
	w.bnext[bid] = noBuf
	if sk.stashHead == noBuf {
		sk.stashHead, sk.stashTail, sk.stashOff = bid, bid, uint32(off)
		return
	}
	w.bnext[sk.stashTail] = bid
	sk.stashTail = bid
}

// stashBytes returns the stashed bytes of the first buffer.
func (w *worker) stashBytes(sk *sock) []byte {
	b := sk.stashHead
	return w.br.Bytes(b, int(w.blen[b]))[sk.stashOff:]
}

// stashConsume drops n bytes from the front of the stash.
func (w *worker) stashConsume(sk *sock, n int) {
	b := sk.stashHead
	sk.stashOff += uint32(n)
	if sk.stashOff < w.blen[b] {
		return
	}
	next := w.bnext[b]
	w.recycle(b)
	sk.stashHead, sk.stashOff = next, 0
	if next == noBuf {
		sk.stashTail = noBuf
	}
}

// stashFree recycles every stashed buffer.
func (w *worker) stashFree(sk *sock) {
	for b := sk.stashHead; b != noBuf; {
		next := w.bnext[b]
		w.recycle(b)
		b = next
	}
	sk.stashHead, sk.stashTail, sk.stashOff = noBuf, noBuf, 0
}

// closeSock closes a socket: a send still in flight is stopped first
// (shutdown, so the kernel can no longer copy from memory the session may
// reuse), every operation on it is cancelled, and the close is queued. The
// socket's last completions still arrive and are counted in ops.
func (w *worker) closeSock(sk *sock, closeUD uint64) {
	if sk.flags&fClosed != 0 {
		return
	}
	sk.flags |= fClosed
	fd := int(sk.fd)
	if st := w.sendStateOf(sk); st != nil && st.inflight > 0 {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	w.stashFree(sk)
	w.dropQueued(sk)
	if sk.ops > 0 {
		if _, err := w.ring.PrepareCancelFd(fd, cancelUD); err != nil {
			w.log.Error(err, "cannot cancel socket operations")
		}
	}
	if _, err := w.ring.PrepareClose(fd, closeUD); err != nil {
		_ = unix.Close(fd)
		return
	}
	sk.ops++
}

// shutdownWhenSent half-closes sk once its queued sends are done.
func (w *worker) shutdownWhenSent(sk *sock) {
	if sk.flags&(fShut|fClosed) != 0 {
		return
	}
	sk.flags |= fShutPending
	if !w.sendsPending(sk) {
		w.shutdownNow(sk)
	}
}

// shutdownNow half-closes sk at once, with shutdown(2) rather than an
// io_uring SHUTDOWN: the kernel always runs that one in an io-wq worker,
// which looks the descriptor up by number only then, so when the socket was
// closed meanwhile (a tunnel's upstream is often shut down and closed in one
// batch) it could shut down the next socket given that number, another
// connection's (seen as backends of TLS passthrough tunnels getting EOF
// mid-handshake). shutdown(2) on a TCP socket does not block.
func (w *worker) shutdownNow(sk *sock) {
	sk.flags &^= fShutPending
	sk.flags |= fShut
	_ = unix.Shutdown(int(sk.fd), unix.SHUT_WR)
}

// kick starts sk's next send if none is in flight, or its pending
// half-close once nothing is left to send.
func (w *worker) kick(sk *sock, sendUD uint64) {
	if sk.flags&fClosed != 0 {
		return
	}
	if st := w.sendStateOf(sk); st != nil {
		if st.inflight == 0 && st.n > 0 {
			w.startSend(sk, st, sendUD)
			return
		}
		if st.inflight > 0 || st.n > 0 {
			return
		}
		w.releaseSendState(sk)
	}
	if sk.flags&fShutPending != 0 {
		w.shutdownNow(sk)
	}
}

// Sends.

// maxSegs bounds the sends queued on one socket (a session keeps at most
// four in flight per side).
const maxSegs = 8

// sendState is the send queue of a socket with sends queued or in flight.
// Consecutive sends from ring memory go out as one send or sendmsg; data
// from elsewhere (immutable configuration) is copied into a scratch buffer
// piece by piece.
type sendState struct {
	segs     [maxSegs][]byte
	iov      [maxSegs][]byte
	msg      *iouring.Msg
	scratch  []byte
	off      int // bytes of the first segment already sent
	head, n  uint8
	inflight uint8 // segments covered by the operation in flight, 0 when none
	copied   bool  // the operation in flight sends from scratch
}

func (st *sendState) pop() {
	st.segs[st.head] = nil
	st.head = (st.head + 1) % maxSegs
	st.n--
	st.off = 0
}

func (w *worker) sendStateOf(sk *sock) *sendState {
	if sk.send < 0 {
		return nil
	}
	return w.sends[sk.send]
}

// sendsPending reports whether sends are queued or in flight on sk.
func (w *worker) sendsPending(sk *sock) bool {
	st := w.sendStateOf(sk)
	return st != nil && (st.n > 0 || st.inflight > 0)
}

// queueSend appends data to sk's send queue; kick starts it.
func (w *worker) queueSend(sk *sock, data []byte) {
	if sk.flags&fClosed != 0 {
		return
	}
	st := w.sendStateOf(sk)
	if st == nil {
		var k int32
		if n := len(w.sendFree); n > 0 {
			k = w.sendFree[n-1]
			w.sendFree = w.sendFree[:n-1]
		} else {
			k = int32(len(w.sends))
			w.sends = append(w.sends, &sendState{})
		}
		sk.send = k
		st = w.sends[k]
	}
	if st.n == maxSegs {
		// Cannot happen with the proxy's limits; fail the socket so the
		// session sees an error instead of losing data silently.
		w.log.Error(nil, "send queue overflow, shutting the socket down")
		_ = unix.Shutdown(int(sk.fd), unix.SHUT_RDWR)
		return
	}
	st.segs[(st.head+st.n)%maxSegs] = data
	st.n++
}

// sendFlags are the flags of every send. Not MSG_WAITALL: a send completes
// as soon as the socket took some of its bytes, so that a slow reader's
// progress reaches the session (proxy.Session.SendProgress) and only a
// reader that stopped runs into the send stall timeout; kick resumes the
// rest.
const sendFlags = 0

// startSend issues one send for the front of the queue.
func (w *worker) startSend(sk *sock, st *sendState, ud uint64) {
	fd := int(sk.fd)
	rest := st.segs[st.head][st.off:]
	var err error
	switch {
	case len(rest) == 0:
		// Empty sends complete through a no-op, in order.
		cnt := uint8(1)
		for cnt < st.n && len(st.segs[(st.head+cnt)%maxSegs]) == 0 {
			cnt++
		}
		_, err = w.ring.PrepareNop(ud)
		st.inflight, st.copied = cnt, false
	case !w.xp.owns(st.segs[st.head]):
		if st.scratch == nil {
			st.scratch = w.getScratch()
		}
		if st.scratch == nil {
			err = iouring.ErrArenaFull
			break
		}
		w.e.copiedSends.Add(1)
		k := copy(st.scratch, rest)
		_, err = w.ring.PrepareSend(fd, st.scratch[:k], sendFlags, ud)
		st.inflight, st.copied = 1, true
	default:
		st.iov[0] = rest
		cnt := uint8(1)
		for cnt < st.n {
			s := st.segs[(st.head+cnt)%maxSegs]
			if len(s) == 0 || !w.xp.owns(s) {
				break
			}
			st.iov[cnt] = s
			cnt++
		}
		if cnt == 1 {
			_, err = w.ring.PrepareSend(fd, rest, sendFlags, ud)
		} else {
			if st.msg == nil {
				st.msg, err = with(&w.mem, func(a *iouring.Arena) (*iouring.Msg, error) { return a.NewMsg(maxSegs) })
			}
			if err == nil {
				err = st.msg.Set(st.iov[:cnt]...)
			}
			if err == nil {
				_, err = w.ring.PrepareSendmsg(fd, st.msg, sendFlags, ud)
			}
		}
		for j := range st.iov[:cnt] {
			st.iov[j] = nil
		}
		st.inflight, st.copied = cnt, false
	}
	if err != nil {
		// The ring refused the operation: fail the socket; the session
		// sees the end of its stream and gives up.
		w.log.Error(err, "cannot queue send, shutting the socket down")
		st.inflight = 0
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		return
	}
	sk.ops++
}

// sendDone accounts a send completion: it pops the segments that are now
// completely sent into lens and returns their number, with the error of a
// failed send (all segments it covered fail). Partial progress is kept for
// the next send, which kick starts.
func (w *worker) sendDone(sk *sock, res int32, lens *[maxSegs]int) (int, error) {
	st := w.sendStateOf(sk)
	if st == nil {
		return 0, nil
	}
	cnt := int(st.inflight)
	copied := st.copied
	st.inflight, st.copied = 0, false
	if sk.flags&fClosed != 0 {
		w.freeSendState(sk)
		return 0, nil
	}
	if res < 0 {
		for j := 0; j < cnt && st.n > 0; j++ {
			lens[j] = 0
			st.pop()
		}
		return cnt, errnoOf(res)
	}
	n := int(res)
	k := 0
	if copied {
		st.off += n
		if st.off >= len(st.segs[st.head]) {
			lens[0] = len(st.segs[st.head])
			st.pop()
			k = 1
		}
		return k, nil
	}
	for j := 0; j < cnt && st.n > 0; j++ {
		seg := st.segs[st.head]
		rem := len(seg) - st.off
		if n < rem {
			st.off += n
			break
		}
		n -= rem
		lens[k] = len(seg)
		k++
		st.pop()
	}
	return k, nil
}

// dropQueued forgets the sends not yet issued (the socket is closing).
func (w *worker) dropQueued(sk *sock) {
	st := w.sendStateOf(sk)
	if st == nil {
		return
	}
	if st.inflight == 0 {
		w.freeSendState(sk)
		return
	}
	for st.n > st.inflight {
		st.segs[(st.head+st.n-1)%maxSegs] = nil
		st.n--
	}
}

// releaseSendState returns an empty send queue to the pool.
func (w *worker) releaseSendState(sk *sock) {
	if st := w.sendStateOf(sk); st != nil && st.n == 0 && st.inflight == 0 {
		w.freeSendState(sk)
	}
}

// freeSendState returns sk's send queue (and scratch buffer) to the pool.
func (w *worker) freeSendState(sk *sock) {
	st := w.sendStateOf(sk)
	if st == nil {
		return
	}
	for st.n > 0 {
		st.pop()
	}
	st.head, st.off, st.inflight, st.copied = 0, 0, 0, false
	if st.scratch != nil {
		w.scratch.Put(st.scratch, w.now)
		st.scratch = nil
	}
	w.sendFree = append(w.sendFree, sk.send)
	sk.send = -1
}

// getScratch returns a scratch send buffer in ring memory.
func (w *worker) getScratch() []byte { return w.scratch.Get() }

// newScratch carves a scratch buffer out of a reserved arena (pages taken
// when touched, given back when the buffer is left free: see
// exchangePool.trim); nil when none can be mapped.
func (w *worker) newScratch() []byte {
	if w.scratchArena != nil {
		if b, err := w.scratchArena.Alloc(scratchSize, pageSize); err == nil {
			return b
		}
	}
	a, err := w.ring.ReserveArena(scratchArenaBufs * pageRound(scratchSize))
	if err != nil {
		w.log.Error(err, "cannot allocate a scratch send buffer")
		return nil
	}
	w.scratchArena = a
	w.scratchArenas = append(w.scratchArenas, a)
	b, err := a.Alloc(scratchSize, pageSize)
	if err != nil {
		w.log.Error(err, "cannot allocate a scratch send buffer")
		return nil
	}
	return b
}

// releaseScratch gives a free scratch buffer's pages back to the kernel.
func (w *worker) releaseScratch(b []byte) []byte {
	for _, a := range w.scratchArenas {
		if a.Contains(b) {
			if err := a.Release(b); err != nil {
				w.log.Error(err, "cannot release a scratch buffer")
			}
		}
	}
	return b
}
