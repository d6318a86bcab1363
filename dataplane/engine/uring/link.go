//go:build linux

package uring

import (
	"golang.org/x/sys/unix"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Shared HTTP/2 upstream connections (links).
//
// An exchange whose target is Shared (an h2c group without TLS) runs as a
// stream of a proxy.H2Link: the connection is an upConn of state upShared,
// owned by no session, whose receive completions go to the link and whose
// sends take what the link queued, once per batch of completions
// (flushLinks), so that the requests of all the sessions that progressed in
// a batch leave in one send. A session asking for a connection gets a link
// to its endpoint with room for another stream, or one being connected (it
// hears of the connect with the others waiting on it), or a new one. Links
// without streams stay open for the group's idle timeout, and are closed on
// drain. The session detaches itself when it releases or closes its
// upstream; the engine only runs the sessions the link names.

// linkConnect performs ActConnectUpstream for a Shared target.
func (w *worker) linkConnect(i int32, sl *slot, t proxy.Target) {
	for _, ui := range w.linkUps {
		u := w.ups.at(ui)
		if u.addr != t.Addr || u.link == nil || !u.link.HasRoom() {
			continue
		}
		switch u.state {
		case upShared:
			u.grp = t.Group
			sl.s.AttachLink(u.link, i)
			sl.pend = pendReused
			return
		case upConnecting:
			sl.s.AttachLink(u.link, i) // told with the others when it connects
			return
		}
	}
	ui, u, err := w.newUp(t)
	if err != nil {
		w.connectFailed(sl, err)
		return
	}
	u.link = w.pw.NewH2Link(ui)
	w.linkUps = append(w.linkUps, ui)
	sl.s.AttachLink(u.link, i)
	if err := w.startConnect(ui, u, t); err != nil {
		w.log.Error(err, "cannot start upstream connect")
		w.linkConnectFailed(ui, u, unix.EIO)
	}
}

// linkConnected handles the connect completion of a link's connection:
// every session waiting on it is told.
func (w *worker) linkConnected(ui int32, u *upConn, res int32) {
	if res != 0 {
		errno := errnoOf(res)
		if errno == unix.ECANCELED {
			errno = unix.ETIMEDOUT // the linked timeout fired
		}
		w.linkConnectFailed(ui, u, errno)
		return
	}
	if !w.armRecv(&u.sk, w.uRecvUD(ui, u)) {
		w.linkConnectFailed(ui, u, unix.EIO)
		return
	}
	u.state = upShared
	if u.grp != nil {
		if gc := w.metrics.Group(u.grp.Stats); gc != nil {
			w.metrics.UpstreamConn(gc, 1)
			u.gc = gc
		}
	}
	u.link.Start()
	w.tags = u.link.Tags(w.tags[:0])
	for _, i := range w.tags {
		if sl := w.slots.at(i); sl.state == stOpen {
			sl.s.UpstreamConnected(false, nil)
			w.run(i)
		}
	}
}

// linkConnectFailed fails every session waiting on a link's connect and
// closes it.
func (w *worker) linkConnectFailed(ui int32, u *upConn, errno unix.Errno) {
	l := u.link
	w.tags = l.Tags(w.tags[:0])
	w.closeUp(ui, u)
	for _, i := range w.tags {
		if sl := w.slots.at(i); sl.state == stOpen {
			sl.s.UpstreamConnected(false, errno)
			w.run(i)
		}
	}
}

// linkRecv handles a receive completion on a link's connection.
func (w *worker) linkRecv(c iouring.CQE, ui int32, u *upConn, buf []byte, bid uint16, has, final bool) {
	sk := &u.sk
	switch {
	case has:
		u.link.Data(buf)
		w.recycle(bid)
		if final && !w.armRecv(sk, w.uRecvUD(ui, u)) {
			u.link.Fail()
		}
	case c.Res == -int32(unix.ECANCELED) && final:
		if !w.armRecv(sk, w.uRecvUD(ui, u)) {
			u.link.Fail()
		}
	default:
		u.link.Fail() // EOF or an error
	}
	w.linkRun(ui, u)
}

// linkSent handles a send completion on a link's connection.
func (w *worker) linkSent(c iouring.CQE, ui int32, u *upConn) {
	var lens [maxSegs]int
	k, err := w.sendDone(&u.sk, c.Res, &lens)
	if err != nil {
		u.link.Sent(err)
	} else {
		for range k {
			u.link.Sent(nil)
		}
		w.kick(&u.sk, w.uSendUD(ui, u)) // the rest of a partial send
	}
	w.linkRun(ui, u)
}

// linkRun runs the sessions the link has news for, then closes the
// connection if it failed or has no use left.
func (w *worker) linkRun(ui int32, u *upConn) {
	l := u.link
	w.tags = w.runReady(l, w.tags)
	if u.state == upShared && !l.Usable() && l.Streams() == 0 {
		w.closeUp(ui, u)
	}
}

// flushLinks starts the sends of the links that have frames queued, once
// per batch of completions.
func (w *worker) flushLinks() {
	w.dirty = w.pw.Links.TakeDirty(w.dirty)
	for _, l := range w.dirty {
		ui := l.Tag
		u := w.ups.at(ui)
		if u.link != l || u.state != upShared {
			continue
		}
		if b := l.TakeSend(); b != nil {
			w.queueSend(&u.sk, b)
			w.kick(&u.sk, w.uSendUD(ui, u))
		}
	}
}

// sweepLinks closes links idle past their group's idle timeout, idle ones
// that take no new streams (failed, or after a GOAWAY), and every idle one
// while draining.
func (w *worker) sweepLinks(now int64) {
	for k := 0; k < len(w.linkUps); k++ {
		ui := w.linkUps[k]
		u := w.ups.at(ui)
		if u.state != upShared {
			continue
		}
		since := u.link.IdleSince()
		if since == 0 {
			continue
		}
		idle := dataplanev1.DefaultIdleTimeout
		if g := u.grp; g != nil {
			idle = g.IdleTimeout
		}
		if w.draining || !u.link.Usable() || idle > 0 && now-since >= int64(idle) {
			w.closeUp(ui, u)
			k--
		}
	}
}

// closeLinks closes every link's connection (their sessions fail).
func (w *worker) closeLinks() {
	for len(w.linkUps) > 0 {
		ui := w.linkUps[len(w.linkUps)-1]
		w.closeUp(ui, w.ups.at(ui)) // forgetLink fails the streams and drops ui
		if len(w.linkUps) > 0 && w.linkUps[len(w.linkUps)-1] == ui {
			w.linkUps = w.linkUps[:len(w.linkUps)-1]
		}
	}
}

// forgetLink takes a closed connection's link out of the worker's list; the
// link itself is freed when no session is attached any more.
func (w *worker) forgetLink(ui int32, u *upConn) {
	for k, v := range w.linkUps {
		if v == ui {
			w.linkUps = append(w.linkUps[:k], w.linkUps[k+1:]...)
			break
		}
	}
	l := u.link
	u.link = nil
	l.Fail()
	// A scratch of its own: callers may be going through w.tags.
	w.tagsB = w.runReady(l, w.tagsB)
	l.Orphan()
}

// runReady runs the sessions l has news for, listing their slots in
// scratch, which it returns.
func (w *worker) runReady(l *proxy.H2Link, scratch []int32) []int32 {
	scratch = l.TakeReady(scratch[:0])
	for _, i := range scratch {
		if sl := w.slots.at(i); sl.state == stOpen {
			sl.s.LinkNews()
			w.run(i)
		}
	}
	return scratch
}
