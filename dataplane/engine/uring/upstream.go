//go:build linux

package uring

import (
	"net/netip"

	"golang.org/x/sys/unix"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Upstream connection states.
const (
	upFree       uint8 = iota
	upConnecting       // connect (with its linked timeout) in flight
	upOwned            // connected and used by session owner
	upIdle             // connected, in the keep-alive pool, receive armed
	upClosed           // close queued; waiting for the last completions
	upShared           // connected, an HTTP/2 link's (link.go), receive armed
)

// sqeIOLink is IOSQE_IO_LINK, cleared again if the linked timeout cannot
// be queued behind a connect.
const sqeIOLink = 1 << 2

// upConn is one upstream connection. It has its own slot and generation,
// independent of the sessions, so its receive stays armed while it moves
// between a session and the keep-alive pool: completions find the current
// owner through owner.
type upConn struct {
	sk      sock
	addr    netip.AddrPort
	grp     *compiled.Group
	gc      *metrics.GroupCounters // non-nil while counted as an open connection
	sa      *iouring.Sockaddr      // connect address, in ring memory
	ts      *iouring.Timespec      // connect timeout, in ring memory
	expires int64                  // idle expiry while pooled
	st      *proxy.UpstreamState   // protocol state kept while pooled (HTTP/2), else nil
	tlsKey  string                 // the group's TLS (compiled.Group.TLSKey), part of the pool key
	tlsi    uint32                 // TLS layer: index+1 in worker.tlsStates, 0 when none (uptls.go)
	link    *proxy.H2Link          // the link of a shared HTTP/2 connection (link.go), else nil
	gen     uint32
	owner   int32 // session slot while upOwned or upConnecting, else -1
	ep      int32 // pool endpoint while upIdle
	prev    int32
	next    int32
	state   uint8
}

func (w *worker) uRecvUD(ui int32, u *upConn) uint64 { return iouring.Pack(opURecv, u.gen, uint32(ui)) }

func (w *worker) uSendUD(ui int32, u *upConn) uint64 { return iouring.Pack(opUSend, u.gen, uint32(ui)) }

// allocUp takes a free upstream slot, with its ring memory.
func (w *worker) allocUp() (int32, *upConn, error) {
	var ui int32
	if n := len(w.upFree); n > 0 {
		ui = w.upFree[n-1]
		w.upFree = w.upFree[:n-1]
	} else {
		ui = w.ups.grow()
	}
	u := w.ups.at(ui)
	if u.sa == nil {
		sa, err := with(&w.mem, (*iouring.Arena).NewSockaddr)
		if err != nil {
			w.upFree = append(w.upFree, ui)
			return 0, nil, err
		}
		u.sa = sa
	}
	if u.ts == nil {
		ts, err := with(&w.mem, (*iouring.Arena).NewTimespec)
		if err != nil {
			w.upFree = append(w.upFree, ui)
			return 0, nil, err
		}
		u.ts = ts
	}
	u.gen = iouring.NextGen(u.gen)
	u.owner, u.ep, u.prev, u.next = -1, -1, -1, -1
	u.gc, u.grp, u.expires, u.st, u.tlsKey, u.link = nil, nil, 0, nil, "", nil
	return ui, u, nil
}

// connect performs ActConnectUpstream for session i: a pooled connection
// to the target when there is one (and the target is not Fresh), else a
// new socket and an asynchronous connect bounded by the group's connect
// timeout (a linked timeout).
func (w *worker) connect(i int32, sl *slot) {
	t := sl.s.Target()
	if sl.up >= 0 {
		w.abandonUp(sl.up)
		sl.up = -1
	}
	if t.Shared && !w.draining {
		w.linkConnect(i, sl, t)
		return
	}
	key := poolKey{addr: t.Addr}
	if t.Group != nil {
		key.tls = t.Group.TLSKey
	}
	if !t.Fresh && !w.draining {
		if ui := w.pool.take(w, key); ui >= 0 {
			u := w.ups.at(ui)
			u.state, u.owner, u.grp = upOwned, i, t.Group
			sl.s.AttachUpstream(u.st)
			u.st = nil
			sl.up = ui
			sl.pend = pendReused
			return
		}
	}
	ui, u, err := w.newUp(t)
	if err != nil {
		w.connectFailed(sl, err)
		return
	}
	u.owner, u.tlsKey = i, key.tls
	if err := w.startConnect(ui, u, t); err != nil {
		w.abortConnect(ui, u, sl, err)
		return
	}
	sl.up = ui
}

// newUp opens a socket for a connection to t in a new upstream slot, in
// state upConnecting with no owner.
func (w *worker) newUp(t proxy.Target) (int32, *upConn, error) {
	fd, err := iouring.NewTCPSocket(t.Addr)
	if err != nil {
		return 0, nil, err
	}
	ui, u, err := w.allocUp()
	if err != nil {
		_ = unix.Close(fd)
		return 0, nil, err
	}
	u.sk = newSock(fd)
	u.state, u.addr, u.grp = upConnecting, t.Addr, t.Group
	return ui, u, nil
}

// startConnect queues the connect of upstream connection ui to t, bounded
// by the group's connect timeout (a linked timeout).
func (w *worker) startConnect(ui int32, u *upConn, t proxy.Target) error {
	if err := u.sa.Set(t.Addr); err != nil {
		return err
	}
	u.ts.Set(connectTimeout(t.Group))
	if err := w.ring.Reserve(2); err != nil {
		return err
	}
	sqe, err := w.ring.PrepareConnect(int(u.sk.fd), u.sa, iouring.Pack(opUConnect, u.gen, uint32(ui)))
	if err != nil {
		return err
	}
	u.sk.ops++
	sqe.Link()
	if _, err := w.ring.PrepareLinkTimeout(u.ts, iouring.Pack(opULinkTimeout, u.gen, uint32(ui))); err != nil {
		sqe.Flags &^= sqeIOLink
		w.log.Error(err, "cannot bound upstream connect")
	} else {
		u.sk.ops++
	}
	return nil
}

// connectFailed defers UpstreamConnected(false, err) until the session's
// actions are drained.
func (w *worker) connectFailed(sl *slot, err error) {
	errno := unix.EIO
	if e, ok := errnoIn(err); ok {
		errno = e
	}
	sl.pend = pendFailed
	sl.pendErr = uint16(errno)
}

func (w *worker) abortConnect(ui int32, u *upConn, sl *slot, err error) {
	w.log.Error(err, "cannot start upstream connect")
	w.closeUp(ui, u)
	w.connectFailed(sl, err)
}

// errnoIn finds an errno in err's chain without allocating.
func errnoIn(err error) (unix.Errno, bool) {
	for err != nil {
		if e, ok := err.(unix.Errno); ok { //nolint:errorlint // walks the chain itself
			return e, true
		}
		u, ok := err.(interface{ Unwrap() error }) //nolint:errorlint // walks the chain itself
		if !ok {
			return 0, false
		}
		err = u.Unwrap()
	}
	return 0, false
}

// upOf validates a completion's upstream slot and generation.
func (w *worker) upOf(gen uint32, ui int32) *upConn {
	if ui < 0 || ui >= w.ups.n {
		return nil
	}
	u := w.ups.at(ui)
	if u.gen != gen || u.state == upFree {
		return nil
	}
	return u
}

// ownerOf returns the session using u, or nil.
func (w *worker) ownerOf(ui int32, u *upConn) *slot {
	if u.owner < 0 {
		return nil
	}
	sl := w.slots.at(u.owner)
	if sl.state != stOpen || sl.up != ui {
		return nil
	}
	return sl
}

// onUpConnect handles a connect completion.
func (w *worker) onUpConnect(c iouring.CQE, gen uint32, ui int32) {
	u := w.upOf(gen, ui)
	if u == nil {
		return
	}
	u.sk.ops--
	if u.state != upConnecting {
		w.maybeFreeUp(ui, u)
		return
	}
	if u.link != nil {
		w.linkConnected(ui, u, c.Res)
		return
	}
	owner := u.owner
	sl := w.ownerOf(ui, u)
	if c.Res == 0 {
		if !w.armRecv(&u.sk, w.uRecvUD(ui, u)) {
			u.sk.flags |= fEOF
		}
		if sl == nil {
			w.closeUp(ui, u)
			return
		}
		if u.grp != nil && u.grp.TLS != nil {
			w.upTLSStart(ui, u) // the session hears of the connect after the handshake
			return
		}
		w.upConnected(ui, u)
		return
	}
	errno := errnoOf(c.Res)
	if errno == unix.ECANCELED {
		errno = unix.ETIMEDOUT // the linked timeout fired
	}
	w.closeUp(ui, u)
	if sl != nil {
		sl.up = -1
		sl.s.UpstreamConnected(false, errno)
		w.run(owner)
	}
}

// onUpRecv handles a multishot receive completion on an upstream socket.
func (w *worker) onUpRecv(c iouring.CQE, gen uint32, ui int32) {
	u := w.upOf(gen, ui)
	if u == nil {
		if c.HasBuffer() {
			w.dropBuffer(c)
		}
		return
	}
	sk := &u.sk
	final := !c.More()
	if final {
		sk.flags &^= fArmed | fCancel
		sk.ops--
	}
	var (
		buf []byte
		bid uint16
		has bool
	)
	if c.HasBuffer() {
		buf, bid, has = w.br.Buffer(c)
	}
	switch u.state {
	case upConnecting:
		if t := w.upTLSOf(u); t != nil && t.hs {
			w.upRecvHS(c, ui, u, t, buf, bid, has)
			return
		}
		if has {
			w.recycle(bid)
		}
		w.maybeFreeUp(ui, u)
	case upOwned:
		sl := w.ownerOf(ui, u)
		if sl == nil {
			if has {
				w.recycle(bid)
			}
			w.closeUp(ui, u)
			return
		}
		switch {
		case has:
			w.offer(sl, sk, proxy.Upstream, buf, bid, w.uRecvUD(ui, u))
		case c.Res == 0:
			sk.flags |= fEOF
		case c.Res < 0:
			w.recvError(sk, c.Res, starvedRef{idx: ui, gen: gen, up: true})
		}
		w.run(u.owner)
	case upShared:
		if !has && c.Res == -int32(unix.ENOBUFS) {
			w.recvError(sk, c.Res, starvedRef{idx: ui, gen: gen, up: true})
			return
		}
		w.linkRecv(c, ui, u, buf, bid, has, final)
	case upIdle:
		// A pooled connection: bytes, EOF or an error all mean it cannot
		// be reused, except HTTP/2 control frames (UpstreamState.IdleData).
		if has {
			var ok bool
			if t := w.upTLSOf(u); t != nil {
				ok = w.upTLSIdle(u, t, buf)
			} else {
				ok = u.st.IdleData(buf)
			}
			w.recycle(bid)
			if !ok || (final && !w.armRecv(sk, w.uRecvUD(ui, u))) {
				w.closeUp(ui, u)
			}
			return
		}
		if c.Res == -int32(unix.ECANCELED) {
			if final && !w.armRecv(sk, w.uRecvUD(ui, u)) {
				w.closeUp(ui, u)
			}
			return
		}
		w.closeUp(ui, u)
	default:
		if has {
			w.recycle(bid)
		}
		w.maybeFreeUp(ui, u)
	}
}

// onUpSend handles a send completion on an upstream socket.
func (w *worker) onUpSend(c iouring.CQE, gen uint32, ui int32) {
	u := w.upOf(gen, ui)
	if u == nil {
		return
	}
	sk := &u.sk
	sk.ops--
	if u.state == upShared {
		w.linkSent(c, ui, u)
		return
	}
	var lens [maxSegs]int
	k, err := w.sendDone(sk, c.Res, &lens)
	if t := w.upTLSOf(u); t != nil && (u.state == upOwned || u.state == upConnecting) {
		w.upTLSSendDone(ui, u, t, c.Res, k, err)
		return
	}
	if u.state != upOwned {
		w.maybeFreeUp(ui, u)
		return
	}
	owner := u.owner
	for j := 0; j < k; j++ {
		sl := w.ownerOf(ui, u)
		if sl == nil {
			return
		}
		sl.s.Sent(proxy.Upstream, lens[j], err)
		w.run(owner)
	}
	if k == 0 {
		if sl := w.ownerOf(ui, u); sl != nil {
			if c.Res > 0 {
				sl.s.SendProgress(proxy.Upstream)
			}
			w.run(owner)
		}
	}
}

// onUpOp handles the completion of a linked timeout, close or shutdown on
// an upstream socket.
func (w *worker) onUpOp(_ iouring.CQE, gen uint32, ui int32) {
	u := w.upOf(gen, ui)
	if u == nil {
		return
	}
	u.sk.ops--
	w.maybeFreeUp(ui, u)
}

// release performs ActReleaseUpstream: a clean connection goes to the
// keep-alive pool with a receive armed (so a server close is noticed),
// anything else is closed.
func (w *worker) release(sl *slot) {
	ui := sl.up
	if ui < 0 {
		return
	}
	sl.up = -1
	u := w.ups.at(ui)
	u.owner = -1
	u.st = sl.s.DetachUpstream()
	sk := &u.sk
	if u.state != upOwned || w.draining || sk.hasStash() || w.sendsPending(sk) ||
		sk.flags&(fEOF|fStarved|fShut|fShutPending|fClosed) != 0 || !w.upTLSPoolable(u) {
		w.closeUp(ui, u)
		return
	}
	maxIdle, idle := dataplanev1.DefaultMaxIdlePerEndpoint, dataplanev1.DefaultIdleTimeout
	if g := u.grp; g != nil {
		maxIdle, idle = g.MaxIdlePerEndpoint, g.IdleTimeout
	}
	expires := int64(1<<63 - 1) // no idle timeout: kept until the endpoint closes it
	if idle > 0 {
		expires = w.now + int64(idle)
	}
	if maxIdle <= 0 || !w.pool.put(w, ui, u, maxIdle, expires) {
		w.closeUp(ui, u)
		return
	}
	u.state = upIdle
	w.releaseSendState(sk)
	if sk.flags&fArmed == 0 && !w.armRecv(sk, w.uRecvUD(ui, u)) {
		w.closeUp(ui, u)
	}
}

// abandonUp closes the upstream connection a session let go of
// (ActCloseUpstream, or the session closing); no further event reaches the
// session for it.
func (w *worker) abandonUp(ui int32) {
	u := w.ups.at(ui)
	u.owner = -1
	if u.state != upClosed && u.state != upFree {
		w.closeUp(ui, u)
	}
}

// closeUp closes an upstream connection in any state.
func (w *worker) closeUp(ui int32, u *upConn) {
	if u.state == upClosed || u.state == upFree {
		return
	}
	if u.state == upIdle {
		w.pool.unlink(w, ui, u)
	}
	if u.link != nil {
		w.forgetLink(ui, u)
	}
	w.uncount(u)
	u.st.Free()
	u.st = nil
	if t := w.upTLSOf(u); t != nil {
		t.c.Abort() // a handshake in progress ends
	}
	w.closeSock(&u.sk, iouring.Pack(opUClose, u.gen, uint32(ui)))
	u.state, u.owner, u.grp = upClosed, -1, nil
	w.maybeFreeUp(ui, u)
}

// uncount removes u from its group's open connection gauge.
func (w *worker) uncount(u *upConn) {
	if u.gc != nil {
		w.metrics.UpstreamConn(u.gc, -1)
		u.gc = nil
	}
}

// maybeFreeUp releases a closed upstream slot once its operations are done.
func (w *worker) maybeFreeUp(ui int32, u *upConn) {
	if u.state != upClosed || u.sk.ops > 0 {
		return
	}
	w.freeSendState(&u.sk)
	w.upTLSRelease(u)
	u.state = upFree
	w.upFree = append(w.upFree, ui)
}

// poolKey is what a pooled connection may be reused for: its endpoint and
// its group's TLS (compiled.Group.TLSKey, "" for plain TCP), so that a
// connection verified for one group's names never serves a group that
// checks others, nor a plain one.
type poolKey struct {
	addr netip.AddrPort
	tls  string
}

// upstreamPool is a worker's keep-alive pool: per endpoint address and TLS
// a list of idle connections, most recently used first; the oldest expire
// first.
type upstreamPool struct {
	idx    map[poolKey]int32
	eps    []epList
	epFree []int32
}

type epList struct {
	key        poolKey
	head, tail int32
	n          int
	used       bool
}

func (p *upstreamPool) init() { p.idx = map[poolKey]int32{} }

// take removes and returns the most recently pooled connection for key, or
// -1.
func (p *upstreamPool) take(w *worker, key poolKey) int32 {
	e, ok := p.idx[key]
	if !ok || p.eps[e].n == 0 {
		return -1
	}
	ui := p.eps[e].head
	p.unlink(w, ui, w.ups.at(ui))
	return ui
}

// put adds u at the front of its endpoint's list unless the list holds
// maxIdle connections already.
func (p *upstreamPool) put(w *worker, ui int32, u *upConn, maxIdle int, expires int64) bool {
	key := poolKey{addr: u.addr, tls: u.tlsKey}
	e, ok := p.idx[key]
	if !ok {
		if n := len(p.epFree); n > 0 {
			e = p.epFree[n-1]
			p.epFree = p.epFree[:n-1]
		} else {
			e = int32(len(p.eps))
			p.eps = append(p.eps, epList{})
		}
		p.eps[e] = epList{key: key, head: -1, tail: -1, used: true}
		p.idx[key] = e
	}
	l := &p.eps[e]
	if l.n >= maxIdle {
		return false
	}
	u.ep, u.expires, u.prev, u.next = e, expires, -1, l.head
	if l.head >= 0 {
		w.ups.at(l.head).prev = ui
	} else {
		l.tail = ui
	}
	l.head = ui
	l.n++
	return true
}

// unlink removes pooled connection ui from its endpoint's list.
func (p *upstreamPool) unlink(w *worker, ui int32, u *upConn) {
	l := &p.eps[u.ep]
	if u.prev >= 0 {
		w.ups.at(u.prev).next = u.next
	} else {
		l.head = u.next
	}
	if u.next >= 0 {
		w.ups.at(u.next).prev = u.prev
	} else {
		l.tail = u.prev
	}
	l.n--
	u.ep, u.prev, u.next = -1, -1, -1
}

// sweep closes pooled connections idle past their expiry and forgets
// endpoints without idle connections.
func (p *upstreamPool) sweep(w *worker, now int64) {
	for e := range p.eps {
		l := &p.eps[e]
		if !l.used {
			continue
		}
		for l.tail >= 0 {
			ui := l.tail
			u := w.ups.at(ui)
			if u.expires > now {
				break
			}
			w.closeUp(ui, u)
		}
		if l.n == 0 {
			delete(p.idx, l.key)
			*l = epList{}
			p.epFree = append(p.epFree, int32(e))
		}
	}
}

// closeAll closes every pooled connection.
func (p *upstreamPool) closeAll(w *worker) {
	for e := range p.eps {
		l := &p.eps[e]
		for l.used && l.head >= 0 {
			ui := l.head
			w.closeUp(ui, w.ups.at(ui))
		}
	}
}
