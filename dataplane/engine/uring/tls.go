//go:build linux

package uring

import (
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/tlsconn"
)

// TLS on HTTPS listeners, and on TLS listeners' terminating routes. A
// connection accepted on an HTTPS listener gets a tlsState between its
// socket and its Session at accept; one on a TLS listener gets it when its
// session asks for it (ActTerminateTLS, tlsStart), fed first the bytes the
// session read the ClientHello from: received ciphertext goes to
// the tlsconn.Conn (fed to the handshake goroutine, then opened record by
// record in a buffer lent by the exchange pool), plaintext to
// Session.ClientData; the session's sends queue as plaintext and are sealed,
// in order, into one send buffer (also lent by the pool, so it goes to the
// kernel without a copy), one send in flight at a time; a send's completion
// reports Sent for the plaintext sends it carried. The session is opened at
// accept, so its request head timeout covers the handshake.

// DefaultMaxHandshakes bounds the handshakes in progress per worker (each holds a
// goroutine and up to some 40 KB). A connection over it closes the oldest
// handshake in progress: an honest handshake takes a round trip, so the
// oldest are those whose client stalled, and stalled clients cannot keep new
// ones from starting (they would if new connections waited for a place).
const DefaultMaxHandshakes = 256

// hsFeedMax bounds the bytes fed to a handshake: a client may send its
// first request right after its Finished, before the worker hears that the
// handshake is over, and what comes after is left in the socket's stash
// until then (tlsconn would fail a handshake fed over its own limit).
const hsFeedMax = tlsconn.DefaultMaxHandshakeInput / 2

// tlsBufMin is the smallest TLS buffer: a receive buffer must hold a whole
// record for Open to make progress.
const tlsBufMin = tlsconn.MaxRecordLen

// tlsState is the TLS layer of one client connection.
type tlsState struct {
	c *tlsconn.Conn
	// in[inR:inW] is ciphertext received and not opened yet; in is lent
	// only while it holds bytes.
	in       []byte
	inR, inW int
	// plain is opened application data the session has not taken yet.
	plain []byte
	// outBuf is the send buffer, lent while a send is in flight.
	outBuf []byte
	// q holds the session's sends (plaintext) not reported yet, oldest
	// first: sealed of them are wholly in the send in flight, and qoff
	// bytes of the next one were sealed already.
	q      [maxSegs][]byte
	qh, qn uint8
	sealed uint8
	qoff   int
	alert  error // the fatal error to answer with an alert

	fed                 int // bytes fed to the handshake
	inPooled, outPooled bool
	hs                  bool // handshake in progress
	counted             bool // counted in worker.handshakes
	aborted             bool // the handshake was ended unfinished (tlsAbort)
	busy                bool // a send of outBuf is queued or in flight
	eof                 bool // close_notify received
	fatal               bool // TLS failed: the connection closes
	notify              bool // send close_notify once the queued data is sealed
	notified            bool
	shut                bool // half-close once close_notify is sent
}

// tlsNotes is the queue of connections whose handshake goroutine has news
// (tlsconn.Options.Notify), drained by the worker when woken.
type tlsNotes struct {
	mu    sync.Mutex
	conns []*tlsconn.Conn
}

// tlsNotify is the Notify of the worker's tlsconn servers: called from a
// handshake goroutine, it queues c and wakes the worker, never blocking
// for longer than the queue's lock.
func (w *worker) tlsNotify(c *tlsconn.Conn) {
	w.notes.mu.Lock()
	w.notes.conns = append(w.notes.conns, c)
	w.notes.mu.Unlock()
	w.wake()
}

// drainNotes runs the sessions whose handshake progressed.
func (w *worker) drainNotes() {
	w.notes.mu.Lock()
	w.noteBuf, w.notes.conns = w.notes.conns, w.noteBuf[:0]
	w.notes.mu.Unlock()
	for _, c := range w.noteBuf {
		if ui, ok := w.upTLSConns[c]; ok {
			w.upTLSStep(ui, w.ups.at(ui))
			continue
		}
		i, ok := w.tlsConns[c]
		if !ok {
			continue
		}
		if sl := w.slots.at(i); sl.state == stOpen && sl.tlsi != 0 && w.tlsOf(sl).c == c {
			w.run(i)
		}
	}
	clear(w.noteBuf)
}

// tlsServer returns the tlsconn server of listener k's current
// configuration l: a new configuration (new certificates) gets a new server
// for the handshakes that follow, established connections keep their keys.
func (w *worker) tlsServer(k int32, l *compiled.Listener) *tlsconn.Server {
	wl := &w.lis[k]
	if wl.tlsFor != l {
		head := w.e.opts.Proxy.HeaderTimeout
		if l.Timeouts.RequestHead > 0 {
			head = l.Timeouts.RequestHead
		}
		// The session's head timer closes a slow handshake first; this is a
		// backstop for the goroutine.
		wl.tlsSrv = tlsconn.NewServer(l.TLS, tlsconn.Options{HandshakeTimeout: head + time.Second, Notify: w.tlsNotify})
		wl.tlsFor = l
	}
	return wl.tlsSrv
}

// tlsOpen gives slot i, accepted on listener k, its TLS layer.
func (w *worker) tlsOpen(i int32, sl *slot, k int32, l *compiled.Listener) {
	t, ti := w.tlsGet()
	t.c = w.tlsServer(k, l).NewConn()
	t.hs = true
	maxHandshakes := w.e.opts.MaxHandshakes
	for w.handshakes >= maxHandshakes && w.evictHandshake() {
	}
	t.counted = true
	w.handshakes++
	if len(w.hsOrder)-w.hsHead > 2*maxHandshakes+64 {
		w.compactHandshakes()
	}
	w.hsOrder = append(w.hsOrder, starvedRef{idx: i, gen: sl.gen})
	w.tlsConns[t.c] = i
	sl.tlsi = ti
}

// tlsStart gives slot i, whose TLS listener chose a terminating route
// (ActTerminateTLS), its TLS layer and feeds it the bytes the session
// received so far; what the socket's stash still holds follows through
// tlsPump. The session hears of the handshake's end (TLSEstablished) from
// tlsPump, and a failed handshake closes the connection as on HTTPS.
func (w *worker) tlsStart(i int32, sl *slot, data []byte) {
	if sl.state != stOpen {
		return
	}
	l := sl.s.Listener()
	if l == nil || l.TLS == nil || sl.tlsi != 0 {
		w.log.Error(nil, "TLS termination asked for without a TLS configuration, closing the connection")
		w.hardClose(i, sl)
		return
	}
	w.tlsOpen(i, sl, sl.lis, l)
	t := w.tlsOf(sl)
	if len(data) > hsFeedMax {
		t.fatal = true
		return
	}
	if err := t.c.Feed(data); err != nil {
		t.fatal = true
		return
	}
	t.fed = len(data)
}

// tlsRelease ends slot sl's TLS layer (the connection is closed and its
// last operation completed).
func (w *worker) tlsRelease(sl *slot) {
	t := w.tlsOf(sl)
	if t == nil {
		return
	}
	ti := sl.tlsi
	sl.tlsi = 0
	t.c.Abort()
	w.tlsUncount(t)
	delete(w.tlsConns, t.c)
	w.tlsPutIn(t)
	w.tlsPutOut(t)
	*t = tlsState{}
	w.tlsFreeIdx = append(w.tlsFreeIdx, ti)
}

// tlsAbort stops a handshake in progress at once (the connection closes)
// and counts it failed, as a handshake that returned an error is: the client
// may have left on an alert sent before the handshake's end was seen here.
func (w *worker) tlsAbort(sl *slot) {
	if t := w.tlsOf(sl); t != nil && t.hs && !t.aborted {
		t.aborted = true
		t.c.Abort()
		w.tlsUncount(t)
		sl.s.TLSHandshake(false)
	}
}

// tlsUncount takes a handshake that ended out of worker.handshakes.
func (w *worker) tlsUncount(t *tlsState) {
	if t.counted {
		t.counted = false
		w.handshakes--
	}
}

// hsLive reports whether r is a handshake still in progress and counted.
func (w *worker) hsLive(r starvedRef) (*slot, bool) {
	sl := w.slotOf(r.gen, r.idx)
	if sl == nil || sl.state != stOpen {
		return nil, false
	}
	t := w.tlsOf(sl)
	return sl, t != nil && t.hs && t.counted
}

// evictHandshake closes the oldest handshake in progress and reports
// whether there was one.
func (w *worker) evictHandshake() bool {
	for w.hsHead < len(w.hsOrder) {
		r := w.hsOrder[w.hsHead]
		w.hsHead++
		if sl, ok := w.hsLive(r); ok {
			w.hardClose(r.idx, sl)
			return true
		}
	}
	w.hsOrder, w.hsHead = w.hsOrder[:0], 0
	return false
}

// compactHandshakes drops the entries of ended handshakes from the list of
// handshakes in start order.
func (w *worker) compactHandshakes() {
	k := 0
	for _, r := range w.hsOrder[w.hsHead:] {
		if _, ok := w.hsLive(r); ok {
			w.hsOrder[k] = r
			k++
		}
	}
	clear(w.hsOrder[k:])
	w.hsOrder, w.hsHead = w.hsOrder[:k], 0
}

// tlsBuf lends a TLS buffer: an exchange pool buffer (ring memory, sent
// without a copy) when those can hold a record, else a heap one.
func (w *worker) tlsBuf() ([]byte, bool) {
	if w.xp.size >= tlsBufMin {
		if b := w.xp.GetBuffer(); b != nil {
			return b, true
		}
	}
	return make([]byte, tlsBufMin), false
}

func (w *worker) tlsPutIn(t *tlsState) {
	if t.in != nil && t.inPooled {
		w.xp.PutBuffer(t.in)
	}
	t.in, t.inR, t.inW, t.inPooled = nil, 0, 0, false
}

func (w *worker) tlsPutOut(t *tlsState) {
	if t.outBuf != nil && t.outPooled {
		w.xp.PutBuffer(t.outBuf)
	}
	t.outBuf, t.outPooled = nil, false
}

// tlsIn takes received bytes for the TLS layer and returns how many it
// took: during the handshake, up to hsFeedMax in all; after it, as many as
// the receive buffer has room for.
func (w *worker) tlsIn(sl *slot, p []byte) int {
	t := w.tlsOf(sl)
	if t.fatal || t.eof {
		return len(p) // nothing more is read
	}
	if t.hs {
		k := min(len(p), hsFeedMax-t.fed)
		if k <= 0 {
			return 0
		}
		if err := t.c.Feed(p[:k]); err != nil {
			t.fatal = true
			return len(p)
		}
		t.fed += k
		return k
	}
	return w.tlsTake(t, p)
}

// tlsTake copies received ciphertext into t's receive buffer (lent when it
// has none) and returns how many bytes it had room for.
func (w *worker) tlsTake(t *tlsState, p []byte) int {
	if t.in == nil {
		t.in, t.inPooled = w.tlsBuf()
		t.inR, t.inW = 0, 0
	}
	if len(t.in)-t.inW < len(p) && t.inR > 0 && len(t.plain) == 0 {
		t.inW = copy(t.in, t.in[t.inR:t.inW])
		t.inR = 0
	}
	n := copy(t.in[t.inW:], p)
	t.inW += n
	return n
}

// tlsWant reports whether the TLS layer wants to receive.
func (w *worker) tlsWant(sl *slot) bool {
	t := w.tlsOf(sl)
	switch {
	case t.fatal || t.eof:
		return false
	case t.hs:
		return t.fed < hsFeedMax
	}
	return t.room()
}

// room reports whether t's receive buffer can take more ciphertext.
func (t *tlsState) room() bool {
	return t.in == nil || t.inW < len(t.in) || (t.inR > 0 && len(t.plain) == 0)
}

// tlsPump moves the client side of a TLS connection one step: the end of
// the handshake, plaintext to the session, the next record opened, stashed
// ciphertext taken in, or the end of the stream. It reports whether it did
// something.
func (w *worker) tlsPump(sl *slot) bool {
	t := w.tlsOf(sl)
	sk := &sl.sk
	if t.fatal {
		return false
	}
	if t.hs {
		done, err := t.c.Done()
		if done {
			sl.s.TLSHandshake(err == nil)
			if err == nil {
				sl.s.TLSServerName(t.c.ConnectionState().ServerName)
			}
			w.tlsEstablished(t, err)
			if !t.fatal {
				// A TLS listener's session now connects its route.
				sl.s.TLSEstablished()
			}
			return true
		}
		if sk.hasStash() {
			m := w.tlsIn(sl, w.stashBytes(sk))
			w.stashConsume(sk, m)
			return m > 0
		}
		if sk.flags&(fEOF|fEOFDone) == fEOF {
			// The client left during the handshake.
			sk.flags |= fEOFDone
			t.c.CloseRead()
			w.cEOF(sl)
			return true
		}
		return false
	}
	if len(t.plain) > 0 {
		if !w.cWant(sl) {
			return false
		}
		n := w.cData(sl, t.plain)
		t.plain = t.plain[n:]
		return n > 0
	}
	if !t.eof {
		if w.tlsOpenNext(t) {
			return true
		}
		if sk.hasStash() && w.tlsWant(sl) {
			m := w.tlsIn(sl, w.stashBytes(sk))
			w.stashConsume(sk, m)
			if m > 0 {
				return true
			}
		}
	}
	if (t.eof || (sk.flags&fEOF != 0 && !sk.hasStash())) && sk.flags&fEOFDone == 0 {
		sk.flags |= fEOFDone
		w.cEOF(sl)
		return true
	}
	return false
}

// tlsOpenNext opens the next record of the ciphertext t holds: its
// plaintext becomes t.plain, a close_notify sets t.eof, a failure t.fatal
// and t.alert. It reports whether anything happened; when nothing did and
// the receive buffer is empty, the buffer goes back to the pool.
func (w *worker) tlsOpenNext(t *tlsState) bool {
	var in []byte
	if t.in != nil {
		in = t.in[t.inR:t.inW]
	}
	var p []byte
	var n int
	var err error
	if !t.c.RecordLayer() {
		// crypto/tls (TLS 1.2, and the client side) takes all it is given:
		// give it more only once what it holds is read, so its queue stays
		// bounded.
		p, _, err = t.c.Open(nil)
	}
	if err == nil && len(p) == 0 {
		p, n, err = t.c.Open(in)
	}
	t.inR += n
	switch {
	case errors.Is(err, io.EOF):
		t.eof = true
		return true
	case err != nil:
		t.fatal, t.alert = true, err
		return true
	}
	if n > 0 || len(p) > 0 {
		// p may lie in t.in (opened in place): t.in[:t.inR] stays as it
		// is until the session has taken p.
		t.plain = p
		return true
	}
	if t.in != nil && t.inR == t.inW {
		w.tlsPutIn(t) // nothing left: the buffer goes back
	}
	return false
}

// tlsEstablished ends the handshake phase: on success the bytes the client
// sent after its Finished become the first ciphertext to open.
func (w *worker) tlsEstablished(t *tlsState, err error) bool {
	t.hs = false
	w.tlsUncount(t)
	if err != nil {
		t.fatal = true
		return true
	}
	t.in, t.inPooled = w.tlsBuf()
	in := t.c.Leftover(t.in[:0])
	if cap(in) != cap(t.in) {
		// More than a buffer arrived with the handshake: keep it on the heap.
		if t.inPooled {
			w.xp.PutBuffer(t.in)
		}
		t.inPooled = false
	}
	t.in, t.inR, t.inW = in[:cap(in)], 0, len(in)
	return true
}

// tlsQueue queues a session send for sealing.
func (w *worker) tlsQueue(t *tlsState, data []byte) {
	if t.qn == maxSegs {
		// Cannot happen with the proxy's limits; fail the connection
		// rather than lose data.
		w.log.Error(nil, "TLS send queue overflow, closing the connection")
		t.fatal = true
		return
	}
	t.q[(t.qh+t.qn)%maxSegs] = data
	t.qn++
}

// tlsFlush seals what is queued into the send buffer and queues it on the
// socket, unless a send is already in flight: handshake output, the
// session's sends (a response head and body in one record when they fit),
// records the record layer made itself, close_notify when asked for.
func (w *worker) tlsFlush(i int32, sl *slot) {
	t := w.tlsOf(sl)
	if t.busy || t.fatal {
		return
	}
	if !t.hs && t.sealed == t.qn && (!t.notify || t.notified) && !t.c.HasPending() {
		w.tlsShut(i, sl, t) // nothing to seal
		return
	}
	out := w.tlsSeal(t)
	if t.fatal {
		return
	}
	if len(out) == 0 {
		w.tlsPutOut(t)
	} else {
		t.busy = true
		w.queueSend(&sl.sk, out)
	}
	w.tlsShut(i, sl, t)
}

// tlsSeal seals into t's send buffer (lent when it has none) what is to go
// out, in order: handshake output, the queued sends (a response head and
// body in one record when they fit), records the TLS layer made itself,
// close_notify when asked for. It returns the bytes to send; a failure
// sets t.fatal.
func (w *worker) tlsSeal(t *tlsState) []byte {
	if t.outBuf == nil {
		t.outBuf, t.outPooled = w.tlsBuf()
	}
	out := t.c.Output(t.outBuf[:0])
	if !t.hs {
		for t.sealed < t.qn {
			room := cap(out) - len(out)
			k := room - t.c.SealedLen(0) - tlsconn.RecordOverhead*(room/tlsconn.MaxPlaintext+1)
			if k <= 0 {
				break
			}
			a := t.q[(t.qh+t.sealed)%maxSegs][t.qoff:]
			var b []byte
			two := false
			if len(a) < k && t.sealed+1 < t.qn {
				if next := t.q[(t.qh+t.sealed+1)%maxSegs]; len(a)+len(next) <= k {
					b, two = next, true
				}
			}
			whole := len(a) <= k
			if !whole {
				a = a[:k]
			}
			var err error
			if out, err = t.c.Seal(out, a, b); err != nil {
				t.fatal, t.alert = true, err
				return out
			}
			switch {
			case two:
				t.sealed += 2
				t.qoff = 0
			case whole:
				t.sealed++
				t.qoff = 0
			default:
				t.qoff += k
			}
			if !whole {
				break
			}
		}
		if t.sealed == t.qn && t.qoff == 0 {
			if t.c.HasPending() {
				out = t.c.AppendPending(out)
			}
			if t.notify && !t.notified {
				out = t.c.CloseNotify(out)
				t.notified = true
			}
		}
	}
	return out
}

// tlsShut half-closes the connection once close_notify is sealed after
// everything the session sent (ActShutdownClient).
func (w *worker) tlsShut(i int32, sl *slot, t *tlsState) {
	if t.shut && t.notified && t.sealed == t.qn {
		t.shut = false
		w.shutdownWhenSent(&sl.sk)
	}
}

// tlsSendComplete retires a TLS connection's send buffer once its send
// completed with err, for the client and the upstream side alike: after a
// failure the queued plaintext sends are dropped; otherwise the lengths of
// the session sends it carried go into lens and their number is returned.
func (w *worker) tlsSendComplete(t *tlsState, err error, lens *[maxSegs]int) int {
	t.busy = false
	w.tlsPutOut(t)
	if err != nil {
		for t.qn > 0 {
			w.tlsPop(t)
		}
		t.sealed, t.qoff = 0, 0
		return 0
	}
	n := int(t.sealed)
	for j := range n {
		lens[j] = len(w.tlsPop(t))
	}
	t.sealed = 0
	return n
}

// tlsSendDone accounts the completion of the send of the TLS buffer (k
// segments completed, err its failure) on an open connection and reports
// the session's sends it carried.
func (w *worker) tlsSendDone(i int32, sl *slot, res int32, k int, err error) {
	t := w.tlsOf(sl)
	if k == 0 && err == nil {
		if res > 0 && t.qn > 0 {
			w.cProgress(sl)
		}
		w.run(i)
		return
	}
	var lens [maxSegs]int
	n := w.tlsSendComplete(t, err, &lens)
	if err != nil {
		w.cSent(sl, 0, err)
		w.run(i)
		return
	}
	if n == 0 && t.qn > 0 {
		w.cProgress(sl) // part of a long send went out
	}
	for j := 0; j < n && sl.state == stOpen; j++ {
		w.cSent(sl, lens[j], nil)
		w.run(i)
	}
	if n == 0 {
		w.run(i)
	}
}

// tlsLingerSendDone is tlsSendDone for a connection closing after its
// queued sends (stLingerWait): the session hears nothing any more.
func (w *worker) tlsLingerSendDone(i int32, sl *slot, k int, err error) {
	t := w.tlsOf(sl)
	if k == 0 && err == nil {
		return
	}
	t.busy = false
	w.tlsPutOut(t)
	for range t.sealed {
		w.tlsPop(t)
	}
	t.sealed = 0
	if err == nil {
		w.tlsFlush(i, sl)
	}
}

func (w *worker) tlsPop(t *tlsState) []byte {
	d := t.q[t.qh]
	t.q[t.qh] = nil
	t.qh = (t.qh + 1) % maxSegs
	t.qn--
	return d
}

// tlsFail closes a connection whose TLS failed: its alert (or the one
// crypto/tls made in the handshake) is sent at once when nothing else is
// in flight, without waiting, and the connection closes.
func (w *worker) tlsFail(i int32, sl *slot) {
	t := w.tlsOf(sl)
	out := t.c.Output(w.tlsScratch[:0])
	var te *tlsconn.Error
	if errors.As(t.alert, &te) && !te.Remote {
		out = t.c.AppendAlert(out, te.Alert)
	}
	if len(out) > 0 && !w.sendsPending(&sl.sk) {
		_ = unix.Sendto(int(sl.sk.fd), out, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
	}
	w.tlsScratch = out[:0]
	w.hardClose(i, sl)
}

// tlsOf returns slot sl's TLS layer, nil when it has none.
func (w *worker) tlsOf(sl *slot) *tlsState {
	if sl.tlsi == 0 {
		return nil
	}
	return w.tlsStates.at(int32(sl.tlsi - 1))
}

// tlsGet takes a free TLS state and returns it with its slot reference.
func (w *worker) tlsGet() (*tlsState, uint32) {
	var ti uint32
	if n := len(w.tlsFreeIdx); n > 0 {
		ti = w.tlsFreeIdx[n-1]
		w.tlsFreeIdx = w.tlsFreeIdx[:n-1]
	} else {
		ti = uint32(w.tlsStates.grow()) + 1
	}
	return w.tlsStates.at(int32(ti - 1)), ti
}
