package netpoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
	"github.com/flaxlb/flax/dataplane/tlsconn"
)

// maxGather bounds the sends gathered into one writev.
const maxGather = 8

// lingerBytes bounds the input discarded by a lingering close.
const lingerBytes = 1 << 20

// event is the outcome of a pump's read.
type event struct {
	side proxy.Side
	gen  uint64
	buf  *[]byte
	n    int
	err  error
}

// pump reads one side of a connection on its own goroutine, one read per
// permit, while the driver waits for both sides.
type pump struct {
	gen         uint64
	permit      chan *[]byte
	outstanding bool
}

// conn serves one client connection: the driver goroutine runs serve and
// owns everything below except where noted.
type conn struct {
	w      *worker
	e      *Engine
	slot   *engine.Slot
	raw    net.Conn // the accepted socket; safe to close from any goroutine
	client net.Conn // raw, or the TLS connection over it
	tcp    *net.TCPConn
	s      proxy.Session

	up    *upConn
	upGen uint64
	upMu  sync.Mutex // guards upNC, read by forceClose
	upNC  net.Conn

	rbuf  [2]*[]byte // read buffer of each side, while in use
	pend  [2][]byte  // bytes read but not yet taken by the session
	eof   [2]bool    // EOF (or read error) to report once pend is taken
	pumps [2]*pump
	rdl   [2]time.Time // read deadline last set on each side

	events   chan event
	done     chan struct{}
	kickCh   chan struct{}
	timer    *time.Timer
	drained  bool
	drainAck atomic.Bool // the session knows about the drain
	shedReq  atomic.Bool // the worker asks an idle connection to close (askShed)
	closed   bool

	wbufs net.Buffers
	wtmp  net.Buffers // consumed by WriteTo
	wlens [maxGather]int

	h2    atomic.Pointer[h2conn] // the HTTP/2 state, once the client spoke HTTP/2 (h2.go)
	h2pre []byte                 // ActStartHTTP2's bytes: the loop hands over to serveH2
	h2p   *h2conn                // a stream conn's connection (h2.go), nil for a connection
	tag   int32                  // a stream conn's index in h2p.streams
	// parked is set while a stream conn's goroutine waits for its next
	// stream (h2.go), quit when it is to end instead.
	parked, quit bool
	// reading is set while a stream conn reads its upstream on the driver
	// (unlocked): only then does a kick need a read deadline to reach it.
	reading atomic.Bool

	stall   *stallConn      // under the TLS connection, when client is one
	rawc    syscall.RawConn // of tcp, for waitReadable
	readyFn func(uintptr) bool
}

func (w *worker) newConn(c net.Conn, sl *engine.Slot) *conn {
	return &conn{
		w: w, e: w.e, slot: sl, raw: c,
		events: make(chan event, 2),
		done:   make(chan struct{}),
		kickCh: make(chan struct{}, 1),
		wbufs:  make(net.Buffers, 0, maxGather),
	}
}

// kick wakes the driver to notice that the engine drains. It may be called
// from any goroutine.
func (c *conn) kick() {
	if c.drainAck.Load() || c.raw == nil {
		return
	}
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
	now := time.Now()
	c.raw.SetReadDeadline(now)
	c.upMu.Lock()
	if c.upNC != nil {
		c.upNC.SetReadDeadline(now)
	}
	c.upMu.Unlock()
}

// askShed asks the driver to close the connection if it is idle, as a
// worker over its memory budget does. It may be called from any goroutine.
func (c *conn) askShed() {
	if c.shedReq.Swap(true) {
		return
	}
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
	c.raw.SetReadDeadline(time.Now())
}

// forceClose closes both connections. It may be called from any goroutine;
// the driver then fails its I/O and cleans up.
func (c *conn) forceClose() {
	if c.raw != nil {
		c.raw.Close()
	}
	if p := c.h2.Load(); p != nil {
		p.mu.Lock()
		for _, sc := range p.streams {
			if sc != nil {
				sc.forceClose()
			}
		}
		p.mu.Unlock()
	}
	c.upMu.Lock()
	if c.upNC != nil {
		c.upNC.Close()
	}
	c.upMu.Unlock()
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
}

func (c *conn) serve() {
	c.w.track(c)
	defer c.w.untrack(c)
	l := c.slot.Listener.Load()
	if l == nil || c.e.draining.Load() {
		c.raw.Close()
		return
	}
	c.client = c.raw
	secure := false
	if l.Protocol == compiled.ProtocolHTTPS && l.TLS != nil {
		c.stall = &stallConn{Conn: c.raw, c: c}
		tc := tls.Server(c.stall, l.TLS)
		// The handshake counts against the request head timeout.
		head := c.e.opts.Proxy.HeaderTimeout
		if l.Timeouts.RequestHead > 0 {
			head = l.Timeouts.RequestHead
		}
		tc.SetDeadline(time.Now().Add(head))
		if err := tc.Handshake(); err != nil {
			c.e.log.V(1).Info("tls handshake failed", "listener", l.Name, "remote", c.raw.RemoteAddr().String(), "error", err.Error())
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				c.w.metrics.TLSHandshake(c.w.metrics.Listener(l.Stats), false)
			}
			c.raw.Close()
			return
		}
		c.w.metrics.TLSHandshake(c.w.metrics.Listener(l.Stats), true)
		tc.SetDeadline(time.Time{})
		c.client = tc
		secure = true
	} else {
		c.tcp, _ = c.raw.(*net.TCPConn)
	}
	var remote netip.AddrPort
	if ta, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	c.s.Open(c.w.pw, &c.slot.Listener, remote, secure)
	if tc, ok := c.client.(*tls.Conn); ok {
		c.s.TLSServerName(tc.ConnectionState().ServerName)
	}
	c.loop()
	if c.h2pre != nil {
		c.serveH2(c.h2pre)
	}
	c.cleanup()
}

// drainable is what a connection's driver drains and sheds: its Session, or
// its H2Conn once it serves HTTP/2.
type drainable interface {
	Drain()
	Shed() bool
}

// drainOrShed passes on an engine drain (once) or a pending shed request to
// m, and reports whether it did either.
func (c *conn) drainOrShed(m drainable) bool {
	if c.e.draining.Load() && !c.drained {
		c.drained = true
		c.drainAck.Store(true)
		m.Drain()
		return true
	}
	if c.shedReq.Swap(false) && m.Shed() {
		c.w.metrics.OverloadAction(metrics.OverloadCloseIdle)
		return true
	}
	return false
}

// loop drives the session until it closes the client connection.
func (c *conn) loop() {
	for {
		if c.h2p != nil {
			c.h2p.poke()
		}
		if c.perform() {
			if c.h2pre != nil {
				return
			}
			continue
		}
		if c.closed {
			return
		}
		if c.drainOrShed(&c.s) {
			continue
		}
		if c.offer() {
			continue
		}
		if !c.wait() {
			c.e.log.Error(nil, "session stalled: closing connection", "remote", c.raw.RemoteAddr().String())
			c.closeClient(false)
			return
		}
	}
}

// perform carries out the session's queued actions and reports whether
// there were any.
func (c *conn) perform() bool {
	did := false
	for {
		a, ok := c.s.Next()
		if !ok {
			return did
		}
		did = true
		switch a.Kind {
		case proxy.ActSendClient:
			c.send(proxy.Client, a)
		case proxy.ActSendUpstream:
			c.send(proxy.Upstream, a)
		case proxy.ActConnectUpstream:
			c.connect()
		case proxy.ActReleaseUpstream:
			c.detach(true)
		case proxy.ActCloseUpstream:
			c.detach(false)
		case proxy.ActShutdownUpstream:
			if c.up != nil {
				closeWrite(c.up.Conn)
			}
		case proxy.ActShutdownClient:
			closeWrite(c.client)
		case proxy.ActCloseClient:
			c.closeClient(a.Linger)
		case proxy.ActArmTimer, proxy.ActStartTunnel:
			// The driver reads the deadline from the session when it
			// waits, and tunnels need nothing special.
		case proxy.ActTerminateTLS:
			c.terminateTLS(a.Data)
		case proxy.ActStartHTTP2:
			c.h2pre = a.Data
			return true
		}
	}
}

// send writes a send action, and the sends of the same kind queued right
// after it, with one writev, then reports each completion.
func (c *conn) send(side proxy.Side, a proxy.Action) {
	var nc net.Conn = c.client
	if side == proxy.Upstream {
		if c.up == nil {
			c.s.Sent(side, 0, net.ErrClosed)
			return
		}
		nc = c.up.Conn
	}
	c.wbufs = append(c.wbufs[:0], a.Data)
	c.wlens[0] = len(a.Data)
	for len(c.wbufs) < maxGather {
		b, ok := c.s.Peek()
		if !ok || b.Kind != a.Kind {
			break
		}
		c.s.Next()
		c.wlens[len(c.wbufs)] = len(b.Data)
		c.wbufs = append(c.wbufs, b.Data)
	}
	n := len(c.wbufs)
	c.wtmp = c.wbufs
	var err error
	tlsc := side == proxy.Client && c.stall != nil
	if tlsc {
		c.stall.sending.Store(true)
	}
	for {
		c.setWriteDeadline(nc)
		var m int64
		c.unlock()
		m, err = c.wtmp.WriteTo(nc)
		c.lock()
		if err == nil || tlsc || !c.resumeWrite(side, m > 0, err) {
			break
		}
	}
	if tlsc {
		c.stall.sending.Store(false)
	}
	clear(c.wbufs[:n])
	for i := 0; i < n; i++ {
		if err != nil {
			c.s.Sent(side, 0, err)
			return
		}
		c.s.Sent(side, c.wlens[i], nil)
	}
}

// Writes and the send stall timeout: a write blocks the driver, so its
// deadline is the session's (which, while a send is in flight, includes
// the send stall timeout). When it passes, resumeWrite reports the bytes
// written meanwhile as progress and the deadline to the session, and the
// write goes on, with the session's new deadline, for as long as the
// session still waits for it. A client that reads slowly but steadily is
// thus never cut; one that stops is, a send stall timeout (at most two)
// after its last progress.

// setWriteDeadline sets nc's write deadline to the session's deadline (or
// WriteTimeout from now if it has none).
func (c *conn) setWriteDeadline(nc net.Conn) {
	if d := c.s.Deadline(); d != 0 {
		nc.SetWriteDeadline(c.e.timeAt(d))
		return
	}
	nc.SetWriteDeadline(time.Now().Add(c.e.opts.WriteTimeout))
}

// resumeWrite handles a write to side that failed with err after writing
// some bytes (progressed) or none: it reports whether to go on writing.
func (c *conn) resumeWrite(side proxy.Side, progressed bool, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if progressed {
		c.s.SendProgress(side)
	}
	c.fireTimer()
	return c.s.Sending(side)
}

// stallConn is the socket under a TLS client connection: its writes go on
// past their deadline while the client makes progress, as resumeWrite
// decides (a timed out TLS write cannot be resumed, so the TLS layer
// must not see the timeout).
type stallConn struct {
	net.Conn
	c *conn
	// sending is set while the driver writes through the TLS connection:
	// only then may a write resume (a write of the TLS layer from a
	// pump's Read must not touch the session).
	sending atomic.Bool
}

func (sc *stallConn) Write(p []byte) (int, error) {
	n := 0
	for {
		m, err := sc.Conn.Write(p[n:])
		n += m
		if err == nil || !sc.sending.Load() || !sc.c.resumeWrite(proxy.Client, m > 0, err) {
			return n, err
		}
		sc.c.setWriteDeadline(sc.Conn)
	}
}

// terminateTLS performs ActTerminateTLS: a crypto/tls server handshake on
// the client connection, with the certificates of the listener the session
// routed with, reading first the bytes the session read the ClientHello
// from, then those read but not taken, then the socket. The handshake runs
// on the driver, bounded by the session's deadline (the request head
// timeout); afterwards the client is the TLS connection, as on an HTTPS
// listener, and the session hears TLSEstablished.
func (c *conn) terminateTLS(data []byte) {
	const cl = proxy.Client
	l := c.s.Listener()
	if l == nil || l.TLS == nil || c.stall != nil {
		c.e.log.Error(nil, "TLS termination asked for without a TLS configuration, closing the connection")
		c.closeClient(false)
		return
	}
	if p := c.pumps[cl]; p != nil && p.outstanding {
		// Cannot happen: the session had no upstream while it read the
		// ClientHello, so the client was read on the driver.
		c.e.log.Error(nil, "TLS termination with a client read in flight, closing the connection")
		c.closeClient(false)
		return
	}
	pre := make([]byte, 0, len(data)+len(c.pend[cl]))
	pre = append(append(pre, data...), c.pend[cl]...)
	c.pend[cl], c.eof[cl] = nil, false
	c.releaseBuf(cl)
	c.stall = &stallConn{Conn: &replayConn{Conn: c.raw, pre: pre}, c: c}
	tc := tls.Server(c.stall, l.TLS)
	dl := time.Now().Add(c.e.opts.Proxy.HeaderTimeout)
	if d := c.s.Deadline(); d != 0 {
		dl = c.e.timeAt(d)
	}
	tc.SetDeadline(dl)
	if err := tc.Handshake(); err != nil {
		c.e.log.V(1).Info("tls handshake failed", "listener", l.Name, "remote", c.raw.RemoteAddr().String(), "error", err.Error())
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.fireTimer() // the session counts and logs the head timeout
		} else {
			c.w.metrics.TLSHandshake(c.w.metrics.Listener(l.Stats), false)
		}
		c.closeClient(false)
		return
	}
	c.w.metrics.TLSHandshake(c.w.metrics.Listener(l.Stats), true)
	tc.SetDeadline(time.Time{})
	c.rdl[cl] = time.Time{}
	c.client = tc
	c.tcp = nil
	c.s.TLSEstablished()
}

// replayConn reads pre before the connection's own bytes: those a TLS
// listener's session read the ClientHello from.
type replayConn struct {
	net.Conn
	pre []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// dialUpstream opens a connection to an endpoint of group g: TCP, then,
// when the group has TLS, a TLS handshake that verifies the endpoint's
// certificate, both within the group's connect timeout. With cache, the
// handshake resumes a session the endpoint gave before and keeps the one
// it gives now.
func dialUpstream(ctx context.Context, g *compiled.Group, addr netip.AddrPort, cache tls.ClientSessionCache) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil || g.TLS == nil {
		return nc, err
	}
	cfg := g.TLS
	if cache != nil {
		cfg = cfg.Clone()
		cfg.ClientSessionCache = tlsconn.PeerSessionCache(cache, addr.String())
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// connect hands the session an upstream connection: an idle pooled one, or
// a new one.
func (c *conn) connect() {
	t := c.s.Target()
	if t.Group == nil {
		c.s.UpstreamConnected(false, errors.New("no backend group"))
		return
	}
	var uc *upConn
	key := poolKey{addr: t.Addr, tls: t.Group.TLSKey}
	if !t.Fresh {
		uc = c.w.pool.get(key)
	}
	reused := uc != nil
	if reused {
		c.s.AttachUpstream(uc.st)
		uc.st = nil
	}
	if uc == nil {
		ctx := c.e.runCtx
		if ctx == nil {
			ctx = context.Background()
		}
		c.unlock()
		var cache tls.ClientSessionCache
		if t.Group.TLS != nil {
			cache = c.w.sessions.get(t.Group.TLSKey)
		}
		nc, err := dialUpstream(ctx, t.Group, t.Addr, cache)
		c.lock()
		if err != nil {
			c.s.UpstreamConnected(false, err)
			return
		}
		gc := c.w.metrics.Group(t.Group.Stats)
		c.w.metrics.UpstreamConn(gc, 1)
		uc = &upConn{Conn: nc, key: key, group: gc, idle: t.Group.IdleTimeout, maxIdle: t.Group.MaxIdlePerEndpoint}
		if sc, ok := nc.(syscall.Conn); ok {
			// Plain TCP only: a TLS connection's socket may hold records
			// (session tickets) that say nothing of its liveness.
			uc.rawc, _ = sc.SyscallConn()
			uc.peekFn = uc.peekAlive
		}
	}
	c.up = uc
	c.upGen++
	c.rdl[proxy.Upstream] = time.Time{}
	c.upMu.Lock()
	c.upNC = uc.Conn
	c.upMu.Unlock()
	c.s.UpstreamConnected(reused, nil)
}

// detach lets go of the upstream connection: back to the pool when keep is
// set and nothing is left over, else closed.
func (c *conn) detach(keep bool) {
	uc := c.up
	if uc == nil {
		return
	}
	c.up = nil
	c.upMu.Lock()
	c.upNC = nil
	c.upMu.Unlock()
	const u = proxy.Upstream
	if p := c.pumps[u]; p != nil {
		close(p.permit)
		if p.outstanding {
			// Its goroutine still reads into the buffer.
			keep = false
			c.rbuf[u] = nil
			c.w.dropBuf()
		}
		c.pumps[u] = nil
	}
	if len(c.pend[u]) > 0 || c.eof[u] {
		keep = false
	}
	c.pend[u], c.eof[u] = nil, false
	c.releaseBuf(u)
	if st := c.s.DetachUpstream(); keep {
		uc.st = st
	} else {
		st.Free()
	}
	if keep {
		c.w.pool.put(uc)
	} else {
		c.w.pool.discard(uc)
	}
}

// closeClient closes the client connection, after discarding input for a
// while when the client may still be sending (so that the reply already
// sent is not destroyed by a reset).
func (c *conn) closeClient(linger bool) {
	if c.closed {
		return
	}
	c.closed = true
	if c.h2p != nil {
		return // a stream conn has no client socket
	}
	if linger {
		closeWrite(c.client)
		c.client.SetReadDeadline(time.Now().Add(c.e.opts.LingerTimeout))
		if p := c.pumps[proxy.Client]; p != nil && p.outstanding {
			c.lingerPump(p)
		} else {
			buf := c.buffer(proxy.Client)
			for total := 0; total < lingerBytes; {
				n, err := c.client.Read(*buf)
				total += n
				if err != nil {
					break
				}
			}
		}
	}
	c.client.SetWriteDeadline(time.Now().Add(time.Second))
	c.client.Close()
}

// lingerPump discards the client's input through its pump.
func (c *conn) lingerPump(p *pump) {
	for total := 0; total < lingerBytes; {
		ev := <-c.events
		if ev.side != proxy.Client {
			continue
		}
		p.outstanding = false
		total += ev.n
		if ev.err != nil {
			return
		}
		p.outstanding = true
		p.permit <- ev.buf
	}
}

// cleanup releases everything once the loop is over.
func (c *conn) cleanup() {
	if !c.closed {
		c.closed = true
		if c.raw != nil {
			c.raw.Close()
		}
	}
	c.detach(false)
	close(c.done)
	if p := c.pumps[proxy.Client]; p != nil {
		close(p.permit)
		if p.outstanding {
			c.rbuf[proxy.Client] = nil
			c.w.dropBuf()
		}
		c.pumps[proxy.Client] = nil
	}
	c.pend[proxy.Client] = nil
	c.releaseBuf(proxy.Client)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.s.Close()
}

// wants reports whether the session takes bytes from side.
func (c *conn) wants(side proxy.Side) bool {
	if side == proxy.Client {
		return c.s.WantClientData()
	}
	return c.up != nil && c.s.WantUpstreamData()
}

// offer hands the session bytes read earlier that it did not take, then
// a pending EOF. It reports whether it did anything.
func (c *conn) offer() bool {
	for side := proxy.Client; side <= proxy.Upstream; side++ {
		if len(c.pend[side]) > 0 {
			if !c.wants(side) {
				continue
			}
			n := c.feed(side, c.pend[side])
			c.pend[side] = c.pend[side][n:]
			if len(c.pend[side]) == 0 {
				c.releaseBuf(side)
			}
			return true
		}
		if c.eof[side] {
			c.eof[side] = false
			if side == proxy.Client {
				c.s.ClientEOF()
			} else {
				c.s.UpstreamEOF()
			}
			return true
		}
	}
	return false
}

func (c *conn) feed(side proxy.Side, p []byte) int {
	if side == proxy.Client {
		return c.s.ClientData(p)
	}
	return c.s.UpstreamData(p)
}

// sideConn returns the connection of side.
func (c *conn) sideConn(side proxy.Side) net.Conn {
	if side == proxy.Client {
		return c.client
	}
	return c.up.Conn
}

// buffer returns side's read buffer, taking one from the pool if needed.
func (c *conn) buffer(side proxy.Side) *[]byte {
	if c.rbuf[side] == nil {
		c.rbuf[side] = c.w.getBuf()
	}
	return c.rbuf[side]
}

// releaseBuf returns side's read buffer to the pool when no read uses it.
func (c *conn) releaseBuf(side proxy.Side) {
	if b := c.rbuf[side]; b != nil && len(c.pend[side]) == 0 {
		if p := c.pumps[side]; p != nil && p.outstanding {
			return
		}
		c.rbuf[side] = nil
		c.w.putBuf(b)
	}
}

// wait blocks until something happens: bytes or EOF from a side the
// session wants, its timer, or a drain. It reports false when there is
// nothing to wait for.
func (c *conn) wait() bool {
	const cl, up = proxy.Client, proxy.Upstream
	wc := len(c.pend[cl]) == 0 && !c.eof[cl] && c.wants(cl)
	wu := len(c.pend[up]) == 0 && !c.eof[up] && c.wants(up)
	outstanding := (c.pumps[cl] != nil && c.pumps[cl].outstanding) || (c.pumps[up] != nil && c.pumps[up].outstanding)
	if !outstanding && !(wc && wu) {
		switch {
		case wc:
			c.directRead(cl)
			return true
		case wu:
			c.directRead(up)
			return true
		}
	}
	if wc {
		c.permit(cl)
	}
	if wu {
		c.permit(up)
	}
	outstanding = (c.pumps[cl] != nil && c.pumps[cl].outstanding) || (c.pumps[up] != nil && c.pumps[up].outstanding)
	var timerC <-chan time.Time
	if d := c.s.Deadline(); d != 0 {
		if c.timer == nil {
			c.timer = time.NewTimer(time.Until(c.e.timeAt(d)))
		} else {
			c.timer.Reset(time.Until(c.e.timeAt(d)))
		}
		timerC = c.timer.C
	} else if !outstanding && c.h2p == nil {
		return false
	}
	c.unlock()
	var ev event
	got, fired := false, false
	select {
	case ev = <-c.events:
		got = true
	case <-timerC:
		timerC = nil
		fired = true
	case <-c.kickCh:
	}
	c.lock()
	if got {
		c.onEvent(ev)
	}
	if fired {
		c.fireTimer()
	}
	if timerC != nil {
		c.timer.Stop()
	}
	return true
}

// directRead reads side on the driver goroutine, until the session's
// deadline.
func (c *conn) directRead(side proxy.Side) {
	nc := c.sideConn(side)
	var dl time.Time
	if d := c.s.Deadline(); d != 0 {
		dl = c.e.timeAt(d)
	}
	if !dl.Equal(c.rdl[side]) {
		nc.SetReadDeadline(dl)
		c.rdl[side] = dl
	}
	if (c.e.draining.Load() && !c.drained) || c.shedReq.Load() {
		// A drain or shed kick may have been overwritten by the deadline
		// above.
		return
	}
	if c.h2p != nil {
		select {
		case <-c.kickCh:
			// A kick the deadline above may have overwritten.
			return
		default:
		}
	}
	if side == proxy.Client && c.tcp != nil && c.rbuf[side] == nil && c.s.Idle() {
		// An idle connection waits for its next request without holding
		// a buffer.
		if err := c.waitReadable(); err != nil {
			c.onRead(side, nil, 0, err)
			return
		}
	}
	buf := c.buffer(side)
	if c.h2p != nil {
		c.reading.Store(true)
	}
	c.unlock()
	n, err := nc.Read(*buf)
	c.lock()
	if c.h2p != nil {
		c.reading.Store(false)
	}
	c.onRead(side, buf, n, err)
}

// permit lets side's pump read once, starting the pump if needed.
func (c *conn) permit(side proxy.Side) {
	p := c.pumps[side]
	if p == nil {
		p = &pump{permit: make(chan *[]byte, 1)}
		if side == proxy.Upstream {
			p.gen = c.upGen
		}
		c.pumps[side] = p
		go c.runPump(side, p.gen, c.sideConn(side), p.permit, c.done)
	}
	if p.outstanding {
		return
	}
	if !c.rdl[side].IsZero() {
		c.sideConn(side).SetReadDeadline(time.Time{})
		c.rdl[side] = time.Time{}
	}
	p.outstanding = true
	p.permit <- c.buffer(side)
}

// runPump is a pump's goroutine; done is that of the conn's session it
// reads for (a stream conn serves one stream after another, each with a
// done of its own).
func (c *conn) runPump(side proxy.Side, gen uint64, nc net.Conn, permit <-chan *[]byte, done <-chan struct{}) {
	for buf := range permit {
		n, err := nc.Read(*buf)
		select {
		case c.events <- event{side: side, gen: gen, buf: buf, n: n, err: err}:
		case <-done:
			return
		}
	}
}

// onEvent handles a pump's read.
func (c *conn) onEvent(ev event) {
	if ev.side == proxy.Upstream && (c.up == nil || ev.gen != c.upGen) {
		// A read of an upstream connection given up since.
		return
	}
	if p := c.pumps[ev.side]; p != nil {
		p.outstanding = false
	}
	c.onRead(ev.side, ev.buf, ev.n, ev.err)
}

// onRead hands the session what a read of side returned.
func (c *conn) onRead(side proxy.Side, buf *[]byte, n int, err error) {
	if n > 0 {
		p := (*buf)[:n]
		k := c.feed(side, p)
		c.pend[side] = p[k:]
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.rdl[side] = time.Time{}
			c.sideConn(side).SetReadDeadline(time.Time{})
			c.fireTimer()
		} else {
			c.eof[side] = true
		}
	}
	c.releaseBuf(side)
}

// fireTimer reports the session's deadline if it has passed.
func (c *conn) fireTimer() {
	if d := c.s.Deadline(); d != 0 {
		if now := c.e.now(); now >= d {
			c.s.Timer(now)
		}
	}
}

// waitReadable blocks until the client has bytes to read, has been closed
// by its peer, or its read deadline passes, without holding a buffer.
func (c *conn) waitReadable() error {
	if c.rawc == nil {
		rc, err := c.tcp.SyscallConn()
		if err != nil {
			return err
		}
		c.rawc = rc
		c.readyFn = c.readable
	}
	return c.rawc.Read(c.readyFn)
}

// readable is waitReadable's callback. The poller is only told about
// readiness that comes after the wait starts, so look at the socket first.
func (c *conn) readable(fd uintptr) bool {
	_, errno := peek(fd)
	return errno != unix.EAGAIN && errno != unix.EINTR
}

// peek looks at one byte of a socket without consuming it or blocking.
func peek(fd uintptr) (int, unix.Errno) {
	var b [1]byte
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return int(n), errno
}

// closeWrite half-closes a connection when it supports it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
