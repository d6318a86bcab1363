package netpoll

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// worker is one of the engine's workers: its sockets' connections share its
// pickers, exchange pool, upstream pool and counters.
type worker struct {
	id       int
	e        *Engine
	pw       *proxy.Worker
	metrics  *metrics.Worker
	pool     *upstreamPool
	sessions sessionCaches // TLS sessions of backends, per group TLS
	bufs     sync.Pool     // read buffers
	xbufs    lockedBufs

	mu    sync.Mutex
	conns map[*conn]struct{}
}

func newWorker(e *Engine, id int) *worker {
	w := &worker{id: id, e: e, metrics: e.reg.Worker(id), conns: map[*conn]struct{}{}}
	size := e.opts.Proxy.BufferSize
	w.metrics.SetMemoryBudget(e.opts.Limits.MemoryBudget, connCost)
	w.xbufs.s = engine.BufStack{Size: size, New: func() []byte { return make([]byte, size) }, Metrics: w.metrics}
	w.xbufs.now = e.now
	xp := &exchangePool{}
	xp.p.New = func() any { return proxy.NewExchange(proxy.Buffers{}) }
	pk := &lockedPickers{p: proxy.NewPickers(uint64(id+1) * 0x9e3779b97f4a7c15)}
	po := e.opts.Proxy
	po.AccessLog = e.opts.AccessLog.Worker(id)
	w.pw = proxy.NewWorker(w.metrics, pk, xp, e.now, po)
	w.pw.Seed = uint32(id+1) * 0x85ebca6b
	w.pw.Buffers = &w.xbufs
	w.pool = &upstreamPool{w: w, idle: map[poolKey][]*upConn{}}
	rb := e.opts.ReadBufferSize
	w.bufs.New = func() any { b := make([]byte, rb); return &b }
	return w
}

// getBuf returns a read buffer; putBuf gives it back, and dropBuf counts
// one left to a reading goroutine (and then the collector). Read buffers
// lent count in the worker's buffer bytes in use, which its memory budget
// reads; free ones are the sync.Pool's, which the collector empties.
func (w *worker) getBuf() *[]byte {
	w.metrics.BufferBytes(int64(w.e.opts.ReadBufferSize), 0)
	return w.bufs.Get().(*[]byte)
}

func (w *worker) putBuf(b *[]byte) {
	w.metrics.BufferBytes(-int64(w.e.opts.ReadBufferSize), 0)
	w.bufs.Put(b)
}

func (w *worker) dropBuf() { w.metrics.BufferBytes(-int64(w.e.opts.ReadBufferSize), 0) }

// lockedPickers shares a worker's pickers between its goroutines.
type lockedPickers struct {
	mu sync.Mutex
	p  *proxy.Pickers
}

func (l *lockedPickers) Pick(g *compiled.Group, key []byte, avoid balancer.Bitset) (proxy.Endpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p.Pick(g, key, avoid)
}

func (l *lockedPickers) Done(ep proxy.Endpoint) {
	if ep.Picker == nil {
		return
	}
	l.mu.Lock()
	l.p.Done(ep)
	l.mu.Unlock()
}

// exchangePool lends exchanges through a sync.Pool.
type exchangePool struct{ p sync.Pool }

func (x *exchangePool) Get() *proxy.Exchange   { return x.p.Get().(*proxy.Exchange) }
func (x *exchangePool) Put(ex *proxy.Exchange) { x.p.Put(ex) }

// connCost is what a memory budget counts per open client connection
// besides its buffers: its goroutine's stack, session and bookkeeping.
const connCost = 8 << 10

// lockedBufs is the worker's proxy.BufferPool, shared by its connections'
// goroutines: buffers are Go heap memory, dropped for the garbage collector
// once left free for Limits.ReleaseAfter (trim).
type lockedBufs struct {
	mu  sync.Mutex
	s   engine.BufStack
	now func() int64
}

// GetBuffer implements proxy.BufferPool.
func (l *lockedBufs) GetBuffer() []byte {
	l.mu.Lock()
	b := l.s.Get()
	l.mu.Unlock()
	return b
}

// PutBuffer implements proxy.BufferPool.
func (l *lockedBufs) PutBuffer(b []byte) {
	now := l.now()
	l.mu.Lock()
	l.s.Put(b, now)
	l.mu.Unlock()
}

// trim drops the buffers left free since cutoff or longer.
func (l *lockedBufs) trim(cutoff int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Trim(cutoff)
}

// housekeep runs the worker's periodic work until ctx is done: it gives
// back buffers left unused for Limits.ReleaseAfter, and closes idle
// keep-alive connections while the worker is past the first level of its
// memory budget.
func (w *worker) housekeep(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	nextTrim := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if w.metrics.Pressure() >= metrics.PressureCloseIdle {
				w.shedIdle()
			}
			if now.After(nextTrim) {
				nextTrim = now.Add(time.Second)
				if w.xbufs.trim(w.e.now()-int64(w.e.opts.Limits.ReleaseDelay())) > 0 {
					// Dropped buffers are garbage: let the collector
					// find them and give the pages back now rather than
					// whenever the scavenger gets to them.
					engine.ReturnHeap()
				}
			}
		}
	}
}

// shedIdle asks every connection to close if it is an idle keep-alive
// connection (each does it on its own goroutine, see conn.loop).
func (w *worker) shedIdle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.conns {
		c.askShed()
	}
}

// accept serves one listening socket until it is closed.
func (w *worker) accept(ctx context.Context, ln net.Listener, sl *engine.Slot) {
	delay := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			// Out of descriptors and the like: back off and retry (the
			// connection waits in the backlog meanwhile).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if engine.FdExhausted(err) {
				w.metrics.Overflow(engine.ListenerCounters(w.metrics, sl), metrics.OverflowFdExhausted)
				if ok, suppressed := w.e.fdLog.Allow(); ok {
					w.e.log.Error(err, "accept failed: out of file descriptors; raise the open files limit (RLIMIT_NOFILE) or lower --max-connections",
						"address", sl.Addr.String(), "worker", w.id, "suppressed", suppressed)
				}
			} else if ok, suppressed := w.e.acceptLog.Allow(); ok {
				w.e.log.Error(err, "accept failed", "address", sl.Addr.String(), "worker", w.id, "suppressed", suppressed)
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if w.e.draining.Load() || ctx.Err() != nil {
			c.Close()
			continue
		}
		if !engine.AdmitConn(w.metrics, w.e.opts.Limits.Connections, sl) {
			c.Close() // refused: closed at once, not left in the backlog
			continue
		}
		cn := w.newConn(c, sl)
		w.e.conns.Add(1)
		go func() {
			defer w.e.conns.Done()
			defer engine.Release(w.e.opts.Limits.Connections, sl)
			cn.serve()
		}()
	}
}

func (w *worker) track(c *conn) {
	w.mu.Lock()
	w.conns[c] = struct{}{}
	w.mu.Unlock()
}

func (w *worker) untrack(c *conn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
}

// kickConns tells every connection that the engine drains.
func (w *worker) kickConns() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.conns {
		c.kick()
	}
}

// closeConns closes every connection.
func (w *worker) closeConns() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.conns {
		c.forceClose()
	}
}

// maxSessionCaches bounds the session caches of a worker; past it they
// start over.
const maxSessionCaches = 256

// sessionCacheSize bounds the sessions of one cache: one per endpoint.
const sessionCacheSize = 256

// sessionCaches are a worker's TLS session caches, one per group TLS
// configuration (compiled.Group.TLSKey, so a new configuration with the
// same settings keeps them), so that new connections to a backend resume.
type sessionCaches struct {
	mu sync.Mutex
	m  map[string]tls.ClientSessionCache
}

// get returns the cache of TLS configuration key.
func (s *sessionCaches) get(key string) tls.ClientSessionCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[key]
	if c == nil {
		if s.m == nil || len(s.m) >= maxSessionCaches {
			s.m = map[string]tls.ClientSessionCache{}
		}
		c = tls.NewLRUClientSessionCache(sessionCacheSize)
		s.m[key] = c
	}
	return c
}

// poolKey is what a pooled upstream connection may be reused for: its
// endpoint and its group's TLS (compiled.Group.TLSKey; "" for plain TCP).
type poolKey struct {
	addr netip.AddrPort
	tls  string
}

// upConn is an upstream connection.
type upConn struct {
	net.Conn
	key       poolKey
	group     *metrics.GroupCounters
	idle      time.Duration // idle timeout in the pool
	maxIdle   int
	idleSince time.Time
	rawc      syscall.RawConn
	peekFn    func(uintptr)
	isAlive   bool
	st        *proxy.UpstreamState // protocol state kept while pooled (HTTP/2), else nil
}

// upstreamPool keeps a worker's idle upstream connections per endpoint.
type upstreamPool struct {
	w    *worker
	mu   sync.Mutex
	idle map[poolKey][]*upConn
	shut bool
}

// get returns an idle connection for key that still looks usable, or nil.
func (p *upstreamPool) get(key poolKey) *upConn {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[key] = list[:len(list)-1]
		p.mu.Unlock()
		if (uc.idle == 0 || time.Since(uc.idleSince) < uc.idle) && uc.alive() {
			return uc
		}
		p.discard(uc)
	}
}

// put keeps uc for reuse, or closes it when the endpoint's pool is full.
func (p *upstreamPool) put(uc *upConn) {
	p.mu.Lock()
	list := p.idle[uc.key]
	if p.shut || len(list) >= uc.maxIdle {
		p.mu.Unlock()
		p.discard(uc)
		return
	}
	uc.idleSince = time.Now()
	uc.SetDeadline(time.Time{})
	p.idle[uc.key] = append(list, uc)
	p.mu.Unlock()
}

// discard closes an upstream connection.
func (p *upstreamPool) discard(uc *upConn) {
	uc.st.Free()
	uc.st = nil
	uc.Close()
	p.w.metrics.UpstreamConn(uc.group, -1)
}

// reap closes connections idle for longer than their timeout until ctx is
// done.
func (p *upstreamPool) reap(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var expired []*upConn
		p.mu.Lock()
		for addr, list := range p.idle {
			keep := list[:0]
			for _, uc := range list {
				if uc.idle > 0 && time.Since(uc.idleSince) >= uc.idle {
					expired = append(expired, uc)
				} else {
					keep = append(keep, uc)
				}
			}
			clear(list[len(keep):])
			if len(keep) == 0 {
				delete(p.idle, addr)
			} else {
				p.idle[addr] = keep
			}
		}
		p.mu.Unlock()
		for _, uc := range expired {
			p.discard(uc)
		}
	}
}

// closeAll closes every idle connection and stops pooling.
func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	var all []*upConn
	for _, list := range p.idle {
		all = append(all, list...)
	}
	p.idle = map[poolKey][]*upConn{}
	p.shut = true
	p.mu.Unlock()
	for _, uc := range all {
		p.discard(uc)
	}
}

// alive reports whether an idle connection has neither been closed by its
// peer nor received unexpected bytes, by peeking without blocking.
func (uc *upConn) alive() bool {
	if uc.rawc == nil {
		return true
	}
	uc.isAlive = false
	err := uc.rawc.Control(uc.peekFn)
	return uc.isAlive && err == nil
}

// peekAlive is alive's callback. Only "nothing to read" means alive: EOF
// (0 bytes), unexpected bytes and errors do not, except HTTP/2 control
// frames on a connection with protocol state, which it reads and hands to
// the state (proxy.UpstreamState.IdleData).
func (uc *upConn) peekAlive(fd uintptr) {
	n, errno := peek(fd)
	if n > 0 && errno == 0 && uc.st != nil {
		var b [512]byte
		for {
			k, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN {
				uc.isAlive = true
				return
			}
			if e != 0 || k == 0 || !uc.st.IdleData(b[:k]) {
				return
			}
		}
	}
	uc.isAlive = errno == unix.EAGAIN
}
