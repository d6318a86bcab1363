//go:build linux

package uring

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
	"github.com/flaxlb/flax/dataplane/tlsconn"
)

// Ring and buffer sizing of one worker.
const (
	sqEntries        = 2048
	cqEntries        = 16384
	bufCount         = 1024    // provided receive buffers
	bufSize          = 8 << 10 // bytes per provided buffer
	miscArenaSize    = 256 << 10
	scratchSize      = 16 << 10
	scratchArenaBufs = 256         // scratch buffers per reserved arena
	maxWait          = time.Second // longest SubmitAndWait, so housekeeping runs
	sweepInterval    = time.Second // idle upstream pool expiry check
	acceptRetry      = 50 * time.Millisecond
	shedInterval     = 100 * time.Millisecond // between passes closing idle connections over the budget
	lingerTimeout    = 2 * time.Second
	defaultConnect   = 5 * time.Second
)

// Operation codes in user_data (see the package documentation).
const (
	opWake uint8 = iota + 1
	opAccept
	opCRecv
	opCSend
	opCClose
	opCShut
	opURecv
	opUSend
	opUConnect
	opULinkTimeout
	opUClose
	opUShut
	opCancel
)

// testBufCount overrides bufCount for tests that starve the buffer ring.
var testBufCount atomic.Int32

// cancelUD tags cancel requests; their completions are ignored.
var cancelUD = iouring.Pack(opCancel, 0, 0)

// worker is one engine worker. Everything but activeN and waker is used by
// the worker's own goroutine (locked to its OS thread) only.
type worker struct {
	e       *Engine
	id      int
	log     logr.Logger
	metrics *metrics.Worker

	waker   atomic.Pointer[iouring.Waker]
	activeN atomic.Int64 // client connections not yet released, for Drain
	tid     atomic.Int32 // the worker thread's id (benchmarks read its CPU time)

	ring *iouring.Ring
	br   *iouring.BufRing
	pw   *proxy.Worker
	xp   *exchangePool
	mem  arenaAlloc

	// Sessions (client connections, and HTTP/2 streams: h2.go).
	slots  slab[slot]
	h2s    map[*slot]*h2conn // HTTP/2 connections' states
	h2free []*h2conn
	h2out  []int32 // HTTP/2 connections' slots with output held for the end of the batch
	// Shared HTTP/2 upstream connections (link.go): their upstream slots,
	// and scratch for the links with frames to send and the sessions to run.
	linkUps []int32
	dirty   []*proxy.H2Link
	tags    []int32
	tagsB   []int32
	free    []int32
	heap    []int32 // timer min-heap of slot indexes, by slot.deadline

	// Upstream connections.
	ups    slab[upConn]
	upFree []int32
	pool   upstreamPool

	// Send queues and scratch buffers.
	sends    []*sendState
	sendFree []int32
	scratch  engine.BufStack // copies of sends not in ring memory
	// Arenas of the scratch buffers, the last one being carved.
	scratchArenas []*iouring.Arena
	scratchArena  *iouring.Arena

	// Receive stashes: per provided buffer, the next buffer of the same
	// stash and the number of bytes it holds.
	bnext []uint16
	blen  []uint32

	starved  []starvedRef
	starveAt int // free buffers needed to re-arm starved receives

	lis     []wlistener
	lisSeen uint64
	closed  []int32 // scratch: listeners closed by the last sync

	now       int64
	nextSweep int64
	nextShed  int64 // earliest time of the next pass closing idle connections
	draining  bool
	forced    bool

	// TLS (HTTPS listeners): handshake news from their goroutines, the
	// slot of each connection, the handshakes in progress (count, and in
	// start order from hsOrder[hsHead], ended ones among them), recycled
	// states and a scratch buffer for alerts.
	notes      tlsNotes
	noteBuf    []*tlsconn.Conn
	tlsConns   map[*tlsconn.Conn]int32
	tlsStates  slab[tlsState] // referred to by slot.tlsi
	tlsFreeIdx []uint32
	handshakes int
	hsOrder    []starvedRef
	hsHead     int
	tlsScratch []byte
	// TLS to backends (uptls.go): the upstream slot of each connection in
	// its handshake, and the client side per group TLS configuration.
	upTLSConns map[*tlsconn.Conn]int32
	tlsClients map[string]*tlsClient

	// getpeername scratch (heap, so syscalls may point at it).
	rsa    unix.RawSockaddrAny
	rsaLen uint32
}

func newWorker(e *Engine, id int) *worker {
	return &worker{
		e:          e,
		id:         id,
		log:        e.log.WithValues("worker", id),
		metrics:    e.reg.Worker(id),
		tlsConns:   map[*tlsconn.Conn]int32{},
		upTLSConns: map[*tlsconn.Conn]int32{},
		tlsClients: map[string]*tlsClient{},
		h2s:        map[*slot]*h2conn{},
	}
}

// connCost is what a memory budget counts per open client connection
// besides its buffers: its session, engine state and send bookkeeping.
const connCost = 2 << 10

// wake interrupts the worker's wait; any goroutine may call it.
func (w *worker) wake() {
	if wk := w.waker.Load(); wk != nil {
		_ = wk.Wake()
	}
}

// serve is the worker goroutine: it locks its OS thread, pins it, builds its
// ring and serves until the engine stops.
func (w *worker) serve() (err error) {
	// The thread's CPU affinity is changed, so it is never unlocked: it
	// exits together with the goroutine.
	runtime.LockOSThread()
	w.tid.Store(int32(unix.Gettid()))
	if cpus := w.e.cpus; len(cpus) > 0 {
		var set unix.CPUSet
		set.Set(cpus[w.id%len(cpus)])
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.log.V(1).Info("cannot pin worker thread", "cpu", cpus[w.id%len(cpus)], "error", err.Error())
		}
	}
	if err := w.setup(); err != nil {
		if w.ring != nil {
			_ = w.ring.Close()
		}
		return fmt.Errorf("io_uring engine: worker %d: %w", w.id, err)
	}
	defer func() {
		// A bug must not leave a worker half alive: stop the engine with
		// an error (the teardown below runs first).
		if p := recover(); p != nil {
			err = fmt.Errorf("io_uring engine: worker %d panicked: %v", w.id, p)
			w.log.Error(err, "worker panicked", "stack", string(debug.Stack()))
		}
	}()
	defer w.teardown()
	return w.loop()
}

func (w *worker) setup() error {
	r, err := iouring.New(sqEntries, iouring.Options{CQEntries: cqEntries, ArenaSize: 64 << 10})
	if err != nil {
		return err
	}
	w.ring = r
	nbuf := bufCount
	if n := testBufCount.Load(); n > 0 {
		nbuf = int(n)
	}
	if w.br, err = r.NewBufRing(0, nbuf, bufSize); err != nil {
		return err
	}
	w.starveAt = max(1, nbuf/8)
	w.mem = arenaAlloc{r: r}
	w.scratch = engine.BufStack{Size: scratchSize, New: w.newScratch, Release: w.releaseScratch}
	w.bnext = make([]uint16, nbuf)
	w.blen = make([]uint32, nbuf)
	w.metrics.SetMemoryBudget(w.e.opts.Limits.MemoryBudget, connCost)
	w.xp = newExchangePool(w, w.e.opts.Proxy.BufferSize)
	seed := uint64(w.id+1) * 0x9e3779b97f4a7c15
	po := w.e.opts.Proxy
	po.AccessLog = w.e.opts.AccessLog.Worker(w.id)
	w.pw = proxy.NewWorker(w.metrics, proxy.NewPickers(seed), w.xp, w.e.now, po)
	w.pw.Seed = uint32(w.id+1) * 0x85ebca6b
	// Bytes that move are timed with the time of their batch of
	// completions (the timeouts of progress are seconds long).
	w.pw.Coarse = w.coarse
	w.pw.Buffers = w.xp
	w.pool.init()
	w.now = w.e.now()
	w.nextSweep = w.now + int64(sweepInterval)
	wk, err := r.NewWaker(iouring.Pack(opWake, 0, 0))
	if err != nil {
		return err
	}
	// Publish the waker before the first listener sync: an Apply either
	// committed before the sync (the sync sees it) or finds the waker.
	w.waker.Store(wk)
	w.syncListeners()
	return nil
}

// coarse returns the time the current batch of completions arrived.
func (w *worker) coarse() int64 { return w.now }

// loop is the worker's event loop: the engine's requests first (they are
// signalled through the Waker, which is published before the loop starts,
// so none is missed), then one SubmitAndWait, the whole batch of
// completions, timers and housekeeping.
func (w *worker) loop() error {
	e := w.e
	for {
		if e.lisVersion.Load() != w.lisSeen {
			w.syncListeners()
		}
		if e.draining.Load() && !w.draining {
			w.startDrain()
		}
		if e.forceClose.Load() && !w.forced {
			w.forced = true
			w.closeAll()
		}
		if e.stopping.Load() {
			return nil
		}
		w.flushLinks()
		w.flushH2()
		w.br.Publish()
		if err := w.ring.SubmitAndWait(w.waitTimeout()); err != nil {
			return fmt.Errorf("io_uring engine: worker %d: %w", w.id, err)
		}
		w.now = e.now()
		for _, c := range w.ring.Completions() {
			w.dispatch(c)
		}
		w.now = e.now()
		w.fireTimers()
		if w.now >= w.nextSweep {
			w.nextSweep = w.now + int64(sweepInterval)
			w.pool.sweep(w, w.now)
			w.sweepLinks(w.now)
			w.sweepTLSClients()
			cutoff := w.now - int64(e.opts.Limits.ReleaseDelay())
			w.xp.trim(cutoff)
			w.scratch.Trim(cutoff)
		}
		if w.now >= w.nextShed && w.metrics.Pressure() >= metrics.PressureCloseIdle {
			w.nextShed = w.now + int64(shedInterval)
			w.shedIdle()
		}
		if len(w.starved) > 0 {
			w.rearmStarved()
		}
		w.rearmListeners()
	}
}

// waitTimeout is the time until the nearest session deadline, at most
// maxWait.
func (w *worker) waitTimeout() time.Duration {
	d := maxWait
	if len(w.heap) > 0 {
		left := time.Duration(w.slots.at(w.heap[0]).deadline - w.e.now())
		if left < d {
			d = left
		}
	}
	for k := range w.lis {
		if l := &w.lis[k]; l.state == lActive && !l.armed && l.retryAt != 0 {
			if left := time.Duration(l.retryAt - w.e.now()); left < d {
				d = left
			}
		}
	}
	if d <= 0 {
		return 0
	}
	return d
}

// dispatch routes one completion to its owner.
func (w *worker) dispatch(c iouring.CQE) {
	op, gen, idx := iouring.Unpack(c.UserData)
	switch op {
	case opWake:
		if wk := w.waker.Load(); wk != nil {
			if err := wk.Handle(c); err != nil {
				w.log.Error(err, "waker failed")
			}
		}
		w.drainNotes()
	case opAccept:
		w.onAccept(c, gen, int32(idx))
	case opCRecv:
		w.onClientRecv(c, gen, int32(idx))
	case opCSend:
		w.onClientSend(c, gen, int32(idx))
	case opCClose, opCShut:
		w.onClientOp(c, gen, int32(idx))
	case opURecv:
		w.onUpRecv(c, gen, int32(idx))
	case opUSend:
		w.onUpSend(c, gen, int32(idx))
	case opUConnect:
		w.onUpConnect(c, gen, int32(idx))
	case opULinkTimeout, opUClose, opUShut:
		w.onUpOp(c, gen, int32(idx))
	default:
		if c.HasBuffer() {
			w.dropBuffer(c)
		}
	}
}

// dropBuffer recycles the provided buffer of a completion whose data is
// not wanted.
func (w *worker) dropBuffer(c iouring.CQE) {
	if _, bid, ok := w.br.Buffer(c); ok {
		w.recycle(bid)
	}
}

// recycle stages buffer bid for return to the kernel; the loop publishes
// staged buffers before each submit.
func (w *worker) recycle(bid uint16) {
	if err := w.br.Stage(bid); err != nil {
		w.log.Error(err, "buffer recycle failed")
	}
}

// startDrain stops accepting and asks every session to finish.
func (w *worker) startDrain() {
	w.draining = true
	w.syncListeners()
	for i := int32(0); i < w.slots.n; i++ {
		sl := w.slots.at(i)
		if sl.state == stOpen {
			w.cDrain(sl)
			w.run(i)
		}
	}
	w.pool.closeAll(w)
	w.sweepLinks(w.now)
}

// closeAll closes every client connection at once (Drain ran out of time).
func (w *worker) closeAll() {
	for i := int32(0); i < w.slots.n; i++ {
		sl := w.slots.at(i)
		switch sl.state {
		case stOpen, stLingerWait, stLinger:
			w.hardClose(i, sl)
		}
	}
	w.pool.closeAll(w)
	w.closeLinks()
}

// teardown runs when the worker stops: every descriptor is closed
// synchronously, sessions are released, then the ring (which cancels and
// reaps whatever is still in flight before unmapping its memory).
func (w *worker) teardown() {
	// Hand the kernel the SQEs of the last iteration first: they name
	// descriptors by number, and once those are closed below another
	// thread may get the same numbers.
	if err := w.ring.Submit(); err != nil {
		w.log.Error(err, "final submit failed")
	}
	for i := int32(0); i < w.slots.n; i++ {
		sl := w.slots.at(i)
		if sl.state == stFree {
			continue
		}
		if sl.sk.flags&fClosed == 0 {
			_ = unix.Close(int(sl.sk.fd))
			sl.sk.flags |= fClosed
		}
	}
	for i := int32(0); i < w.ups.n; i++ {
		u := w.ups.at(i)
		if u.state == upFree {
			continue
		}
		if u.sk.flags&fClosed == 0 {
			_ = unix.Close(int(u.sk.fd))
			u.sk.flags |= fClosed
		}
		w.uncount(u)
		w.upTLSRelease(u)
		if l := u.link; l != nil {
			// Freed by the last of its sessions to close below.
			u.link = nil
			l.Orphan()
		}
	}
	w.e.mu.Lock()
	for k := range w.lis {
		l := &w.lis[k]
		if l.state != lFree && l.bs.fds[w.id] >= 0 {
			_ = unix.Close(l.bs.fds[w.id])
			l.bs.fds[w.id] = -1
		}
	}
	w.e.mu.Unlock()
	for i := int32(0); i < w.slots.n; i++ {
		// Stream slots first: their connections close their HTTP/2 state.
		if sl := w.slots.at(i); sl.state != stFree && sl.vs() {
			sl.s.Close()
			sl.state = stFree
			sl.sk.flags = 0
		}
	}
	for i := int32(0); i < w.slots.n; i++ {
		sl := w.slots.at(i)
		if sl.state != stFree {
			if p := w.h2Of(sl); p != nil {
				p.h.Close()
				delete(w.h2s, sl)
			}
			sl.s.Close()
			w.tlsRelease(sl)
			sl.state = stFree
			w.activeN.Add(-1)
			w.releaseConn(sl.lis)
		}
	}
	if wk := w.waker.Load(); wk != nil {
		_ = wk.Close()
	}
	if err := w.ring.Close(); err != nil {
		w.log.Error(err, "closing the ring failed")
	}
}

// errnoOf returns the errno of a failed completion, or EIO.
func errnoOf(res int32) unix.Errno {
	if res < 0 {
		return unix.Errno(-res)
	}
	return unix.EIO
}
