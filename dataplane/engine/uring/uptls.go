//go:build linux

package uring

import (
	"crypto/tls"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
	"github.com/flaxlb/flax/dataplane/tlsconn"
)

// TLS to backends. A connection to an endpoint of a group with TLS
// (compiled.Group.TLS) gets a tlsState, as a client connection on an HTTPS
// listener does, once its TCP connect completes: a tlsconn client handshake
// (crypto/tls in a short-lived goroutine, fed what the socket receives, its
// output sent by the worker) bounded by the group's connect timeout. The
// session hears UpstreamConnected only when the handshake is over, so a
// certificate the group's checks reject is a connect failure like a refused
// connect (502 or a retry, counted by outlier detection). Afterwards the
// response bytes are copied into a receive buffer lent by the exchange pool
// and opened there before they reach the session, and the session's sends
// queue as plaintext, sealed in order into one send buffer from the same
// pool. Records start on crypto/tls (tlsconn.Client): it reads the server's
// first session ticket into the worker's cache for the group, so the next
// connections to the same endpoint resume; then tlsconn's record layer
// takes over (TLS 1.3).
// Pooled connections keep their TLS state and are found again only by a
// target of the same endpoint and group TLS (compiled.Group.TLSKey).

// tlsSessionCacheSize bounds the session tickets a worker keeps per group
// TLS configuration: one per endpoint.
const tlsSessionCacheSize = 256

// tlsClientIdle is how long a worker keeps the client configuration (and
// session cache) of a group TLS configuration no connection has used.
const tlsClientIdle = 10 * time.Minute

// tlsClient is a worker's client side for one group TLS configuration.
type tlsClient struct {
	cl      *tlsconn.Client
	cache   tls.ClientSessionCache
	timeout time.Duration
	used    int64
}

// tlsClientFor returns the worker's client for group g's TLS: new
// configurations with the same key (the same settings) share it and its
// session cache.
func (w *worker) tlsClientFor(g *compiled.Group) *tlsconn.Client {
	timeout := connectTimeout(g)
	c := w.tlsClients[g.TLSKey]
	if c == nil {
		c = &tlsClient{cache: tls.NewLRUClientSessionCache(tlsSessionCacheSize)}
		w.tlsClients[g.TLSKey] = c
	}
	if c.cl == nil || c.timeout != timeout {
		c.cl = tlsconn.NewClient(g.TLS, c.cache, tlsconn.Options{HandshakeTimeout: timeout, Notify: w.tlsNotify})
		c.timeout = timeout
	}
	c.used = w.now
	return c.cl
}

// sweepTLSClients forgets the client configurations unused for
// tlsClientIdle.
func (w *worker) sweepTLSClients() {
	for k, c := range w.tlsClients {
		if w.now-c.used > int64(tlsClientIdle) {
			delete(w.tlsClients, k)
		}
	}
}

// connectTimeout is the group's connect timeout, which bounds the TCP
// connect and then the TLS handshake.
func connectTimeout(g *compiled.Group) time.Duration {
	if g != nil && g.ConnectTimeout > 0 {
		return g.ConnectTimeout
	}
	return defaultConnect
}

// upTLSOf returns u's TLS layer, nil when it has none.
func (w *worker) upTLSOf(u *upConn) *tlsState {
	if u.tlsi == 0 {
		return nil
	}
	return w.tlsStates.at(int32(u.tlsi - 1))
}

// upTLSStart starts the handshake of connection ui, whose TCP connect just
// completed; it stays upConnecting until the handshake ends (upTLSStep).
func (w *worker) upTLSStart(ui int32, u *upConn) {
	t, ti := w.tlsGet()
	t.c = w.tlsClientFor(u.grp).NewConn(u.addr.String())
	t.hs = true
	u.tlsi = ti
	w.upTLSConns[t.c] = ui
	t.c.Start()
	if u.sk.flags&fEOF != 0 {
		t.c.CloseRead() // no receive could be armed: the handshake fails
	}
}

// upTLSStep moves a handshake on: its end, or its output sent.
func (w *worker) upTLSStep(ui int32, u *upConn) {
	t := w.upTLSOf(u)
	if t == nil || u.state != upConnecting || !t.hs {
		return
	}
	if done, err := t.c.Done(); done {
		if err != nil {
			w.upTLSFailed(ui, u, err)
			return
		}
		w.upTLSEstablished(ui, u, t)
		return
	}
	w.upTLSFlush(ui, u, t)
}

// upTLSFailed ends connection ui whose handshake failed; its session sees a
// failed connect.
func (w *worker) upTLSFailed(ui int32, u *upConn, err error) {
	owner := u.owner
	sl := w.ownerOf(ui, u)
	w.closeUp(ui, u)
	if sl != nil {
		sl.up = -1
		sl.s.UpstreamConnected(false, err)
		w.run(owner)
	}
}

// upTLSEstablished hands connection ui, its handshake done, to its session.
func (w *worker) upTLSEstablished(ui int32, u *upConn, t *tlsState) {
	t.hs = false
	// What the server sent after its Finished (a session ticket, at times)
	// is the first ciphertext to open.
	if in := t.c.Leftover(nil); len(in) > 0 {
		if n := w.tlsTake(t, in); n < len(in) {
			w.upTLSFailed(ui, u, unix.EPROTO)
			return
		}
	}
	w.upTLSFlush(ui, u, t) // the client's Finished
	if t.fatal {
		w.upTLSFailed(ui, u, t.alert)
		return
	}
	w.upConnected(ui, u)
}

// upConnected marks connection ui connected and tells its session, which
// may have gone meanwhile.
func (w *worker) upConnected(ui int32, u *upConn) {
	u.state = upOwned
	if u.grp != nil {
		if gc := w.metrics.Group(u.grp.Stats); gc != nil {
			w.metrics.UpstreamConn(gc, 1)
			u.gc = gc
		}
	}
	owner := u.owner
	sl := w.ownerOf(ui, u)
	if sl == nil {
		w.closeUp(ui, u)
		return
	}
	sl.s.UpstreamConnected(false, nil)
	w.run(owner)
}

// upTLSFlush seals what connection ui has queued and sends it, unless a
// send is in flight; a close_notify asked for is followed by the
// half-close. A sealing failure shuts the socket down, so the session sees
// the connection end.
func (w *worker) upTLSFlush(ui int32, u *upConn, t *tlsState) {
	if t.busy || t.fatal || u.sk.flags&fClosed != 0 {
		return
	}
	if t.hs || t.sealed < t.qn || (t.notify && !t.notified) || t.c.HasPending() {
		out := w.tlsSeal(t)
		if t.fatal {
			_ = unix.Shutdown(int(u.sk.fd), unix.SHUT_RDWR)
			return
		}
		if len(out) == 0 {
			w.tlsPutOut(t)
		} else {
			t.busy = true
			w.queueSend(&u.sk, out)
			w.kick(&u.sk, w.uSendUD(ui, u))
		}
	}
	if t.shut && t.notified && t.sealed == t.qn {
		t.shut = false
		w.shutdownWhenSent(&u.sk)
	}
}

// upTLSIn takes bytes received on connection ui while it handshakes: they
// feed the handshake.
func (w *worker) upTLSIn(ui int32, u *upConn, t *tlsState, buf []byte) {
	if t.fatal {
		return
	}
	if err := t.c.Feed(buf); err != nil {
		w.upTLSFailed(ui, u, err)
		return
	}
	w.upTLSStep(ui, u)
}

// upTLSSendDone accounts the completion of a send of connection ui's TLS
// buffer (k segments completed, err its failure).
func (w *worker) upTLSSendDone(ui int32, u *upConn, t *tlsState, res int32, k int, err error) {
	if u.state == upConnecting {
		if k == 0 && err == nil {
			return
		}
		t.busy = false
		w.tlsPutOut(t)
		if err != nil {
			w.upTLSFailed(ui, u, err)
			return
		}
		w.upTLSStep(ui, u)
		return
	}
	owner := u.owner
	sl := w.ownerOf(ui, u)
	if sl == nil {
		return
	}
	if k == 0 && err == nil {
		if res > 0 && t.qn > 0 {
			sl.s.SendProgress(proxy.Upstream)
		}
		w.run(owner)
		return
	}
	var lens [maxSegs]int
	n := w.tlsSendComplete(t, err, &lens)
	if err != nil {
		sl.s.Sent(proxy.Upstream, 0, err)
		w.run(owner)
		return
	}
	if n == 0 && t.qn > 0 {
		sl.s.SendProgress(proxy.Upstream) // part of a long send went out
	}
	for j := 0; j < n; j++ {
		if w.ownerOf(ui, u) == nil {
			return
		}
		sl.s.Sent(proxy.Upstream, lens[j], nil)
		w.run(owner)
	}
	if n == 0 {
		w.run(owner)
	}
}

// upTLSPump moves the upstream side of session sl, on a TLS connection, one
// step: plaintext to the session, the next record opened, stashed
// ciphertext taken in, or the end of the stream (close_notify, the socket's
// end, or a TLS failure, which the session sees as the connection ending).
func (w *worker) upTLSPump(sl *slot, u *upConn, t *tlsState) bool {
	sk := &u.sk
	if len(t.plain) > 0 {
		if !sl.s.WantUpstreamData() {
			return false
		}
		n := sl.s.UpstreamData(t.plain)
		t.plain = t.plain[n:]
		return n > 0
	}
	if !t.eof && !t.fatal {
		if w.tlsOpenNext(t) {
			return true
		}
		if sk.hasStash() && t.room() {
			m := w.tlsTake(t, w.stashBytes(sk))
			w.stashConsume(sk, m)
			if m > 0 {
				return true
			}
		}
	}
	if (t.eof || t.fatal || (sk.flags&fEOF != 0 && !sk.hasStash())) && sk.flags&fEOFDone == 0 {
		sk.flags |= fEOF | fEOFDone // never pooled again
		sl.s.UpstreamEOF()
		return true
	}
	return false
}

// upTLSIdle takes bytes received on pooled connection ui and reports
// whether it stays pooled: session tickets and KeyUpdates without a
// request for ours are read, HTTP/2 control frames go to its state, and
// anything else (data, an alert, a record that fails) ends it.
func (w *worker) upTLSIdle(u *upConn, t *tlsState, buf []byte) bool {
	if w.tlsTake(t, buf) < len(buf) {
		return false
	}
	for w.tlsOpenNext(t) {
		if t.eof || t.fatal {
			return false
		}
		if len(t.plain) > 0 {
			if !u.st.IdleData(t.plain) {
				return false
			}
			t.plain = nil
		}
	}
	return !t.c.HasPending()
}

// upTLSPoolable reports whether u's TLS layer is clean enough for u to be
// pooled: nothing received unread, nothing queued, no close_notify either
// way.
func (w *worker) upTLSPoolable(u *upConn) bool {
	t := w.upTLSOf(u)
	if t == nil {
		return true
	}
	if t.in != nil && t.inR == t.inW && len(t.plain) == 0 {
		w.tlsPutIn(t)
	}
	return !t.hs && !t.fatal && !t.eof && !t.busy && !t.notify && t.qn == 0 && len(t.plain) == 0 && t.in == nil
}

// upTLSRelease ends u's TLS layer once its socket's last operation has
// completed (the kernel no longer reads its send buffer).
func (w *worker) upTLSRelease(u *upConn) {
	t := w.upTLSOf(u)
	if t == nil {
		return
	}
	ti := u.tlsi
	u.tlsi = 0
	t.c.Abort()
	delete(w.upTLSConns, t.c)
	w.tlsPutIn(t)
	w.tlsPutOut(t)
	*t = tlsState{}
	w.tlsFreeIdx = append(w.tlsFreeIdx, ti)
}

// upRecvHS handles a receive completion on connection ui while its TLS
// handshake runs.
func (w *worker) upRecvHS(c iouring.CQE, ui int32, u *upConn, t *tlsState, buf []byte, bid uint16, has bool) {
	final := !c.More()
	switch {
	case has:
		w.upTLSIn(ui, u, t, buf)
		w.recycle(bid)
	case c.Res == -int32(unix.ENOBUFS):
		u.sk.flags |= fStarved
		w.starved = append(w.starved, starvedRef{idx: ui, gen: u.gen, up: true})
		w.e.starvations.Add(1)
		return
	case c.Res == -int32(unix.ECANCELED):
	default:
		// The server closed or the socket failed: the handshake fails.
		u.sk.flags |= fEOF
		t.c.CloseRead()
		return
	}
	if final && u.state == upConnecting && u.sk.flags&(fArmed|fClosed) == 0 && !w.armRecv(&u.sk, w.uRecvUD(ui, u)) {
		t.c.CloseRead()
	}
}
