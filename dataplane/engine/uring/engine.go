//go:build linux

package uring

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Name is the engine's name in metrics and logs.
const Name = "io_uring"

// ErrHTTPS is the bind error reported for listeners that terminate TLS
// (HTTPS, and TLS listeners with a terminating route) when Options.HTTPS is
// off: they are left to the netpoll engine.
var ErrHTTPS = errors.New("listeners that terminate TLS are served by the netpoll engine")

// Options configure an Engine. The zero value is usable.
type Options struct {
	// Workers is the number of worker threads. Zero means Metrics.Workers()
	// when Metrics is set, else GOMAXPROCS as the process started. It may not exceed
	// Metrics.Workers().
	Workers int
	// Metrics receives the per-worker counters; nil creates a registry of
	// Workers workers.
	Metrics *metrics.Registry
	// Log receives the engine's logs (never one per request).
	Log logr.Logger
	// Proxy tunes the sessions (buffer size, timeouts, limits).
	Proxy proxy.Options
	// AccessLog, when set, receives a line per finished request; worker i
	// logs through AccessLog.Worker(i).
	AccessLog *accesslog.Logger
	// Limits cap the client connections and each worker's memory.
	Limits engine.Limits
	// HTTPS makes the workers serve HTTPS listeners, and TLS listeners with
	// a terminating route, themselves (TLS by dataplane/tlsconn, see
	// tls.go). Off, those are reported as not bound with ErrHTTPS, for
	// engine.Split to give them to netpoll.
	HTTPS bool
	// MaxHandshakes bounds the TLS handshakes in progress per worker; one more
	// closes the oldest (see tls.go). Zero means DefaultMaxHandshakes.
	MaxHandshakes int
}

// Engine is the io_uring engine: N workers, each a locked OS thread pinned
// to one CPU with its own ring, listeners, sessions and upstream pool. See
// the package documentation. Create it with New; it implements
// engine.Engine.
type Engine struct {
	opts  Options
	log   logr.Logger
	reg   *metrics.Registry
	start time.Time
	cpus  []int

	cfg engine.ConfigHolder

	mu      sync.Mutex // guards the fields below and every listener fd close
	set     engine.ListenerSet
	socks   map[*engine.Slot]*boundSock
	workers []*worker // nil unless running
	running bool

	lisVersion atomic.Uint64 // bumped whenever socks changes
	draining   atomic.Bool
	stopping   atomic.Bool
	forceClose atomic.Bool

	// copiedSends counts sends whose data was not ring memory and went
	// through a scratch buffer (direct response bodies); proxied traffic
	// never does.
	copiedSends atomic.Uint64
	// recvPauses counts receives cancelled because a session's buffer was
	// full (flow control); starvations counts receives that ran out of
	// provided buffers.
	recvPauses, starvations atomic.Uint64

	fdLog engine.LogLimiter // accepts failing for lack of descriptors
}

var _ engine.Engine = (*Engine)(nil)

// boundSock is one listener address bound by Apply: one SO_REUSEPORT socket
// per worker. A worker adopts its socket when it starts serving it and from
// then on closes it itself (under Engine.mu); sockets never adopted are
// closed by Apply, Drain or Run's teardown.
type boundSock struct {
	slot    *engine.Slot
	addr    netip.AddrPort // actually bound (the kernel's port when Slot.Addr has port 0)
	fds     []int          // per worker; -1 once closed
	adopted []bool
	removed bool
}

// New checks that io_uring is usable (iouring.Probe) and returns an engine.
// When it is not, the error wraps iouring.ErrUnsupported.
func New(opts Options) (*Engine, error) {
	if err := iouring.Probe(); err != nil {
		return nil, fmt.Errorf("io_uring engine: %w", err)
	}
	reg := opts.Metrics
	if opts.MaxHandshakes <= 0 {
		opts.MaxHandshakes = DefaultMaxHandshakes
	}
	if opts.Workers <= 0 {
		if reg != nil {
			opts.Workers = reg.Workers()
		} else {
			opts.Workers = startProcs
		}
	}
	if reg == nil {
		reg = metrics.NewRegistry(opts.Workers)
		opts.Metrics = reg
	}
	if opts.Workers > reg.Workers() {
		return nil, fmt.Errorf("io_uring engine: %d workers but the metrics registry has %d", opts.Workers, reg.Workers())
	}
	reserveP(opts.Workers)
	opts.Proxy = opts.Proxy.Normalized()
	e := &Engine{
		opts:  opts,
		log:   opts.Log,
		reg:   reg,
		start: time.Now(),
		socks: map[*engine.Slot]*boundSock{},
		cpus:  allowedCPUs(),
	}
	return e, nil
}

// startProcs is GOMAXPROCS as the process started: the default number of
// workers, which reserveP's raise must not grow for the next engine.
var startProcs = runtime.GOMAXPROCS(0)

// reserveP makes sure the Go runtime has a P beyond the workers' own. A worker
// is a goroutine locked to its thread that spends its idle time inside
// io_uring_enter, a syscall holding its P; the runtime hands such a P to
// other goroutines only when sysmon retakes it, which an idle sysmon does
// up to 10 ms late. With GOMAXPROCS equal to the workers (the default when
// there is one worker per allowed CPU), TLS handshakes (a goroutine each),
// health probes and the control connection waited for that: full
// handshakes through one worker took twice nginx's latency at the same CPU
// per handshake (loadbench -handshakes: 0.56x nginx's handshakes per second
// with one P, 1.12x with two). An explicit GOMAXPROCS in the environment is
// left alone.
func reserveP(workers int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if runtime.GOMAXPROCS(0) <= workers {
		runtime.GOMAXPROCS(workers + 1)
	}
}

// allowedCPUs lists the CPUs this process may run on, in order.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Current implements engine.Engine.
func (e *Engine) Current() *compiled.Config { return e.cfg.Load() }

// now is the workers' clock: nanoseconds since the engine was created.
func (e *Engine) now() int64 { return int64(time.Since(e.start)) }

// Apply implements engine.Engine. It binds new addresses at once (one
// SO_REUSEPORT socket per worker), shuts down the sockets of addresses no
// longer configured (so they stop accepting before Apply returns), swaps
// the listeners of the addresses that stay and publishes cfg. Running
// workers pick up the changes through their Waker. Without Options.HTTPS,
// HTTPS listeners are reported as not bound with ErrHTTPS.
func (e *Engine) Apply(cfg *compiled.Config) ([]engine.ListenerStatus, error) {
	if cfg == nil {
		return nil, errors.New("io_uring engine: apply: nil configuration")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining.Load() {
		return nil, errors.New("io_uring engine: apply: engine is draining")
	}
	// The listeners this engine serves; Plan and Statuses read only these.
	served := &compiled.Config{Listeners: make([]*compiled.Listener, 0, len(cfg.Listeners))}
	for _, l := range cfg.Listeners {
		if e.refuses(l) == nil {
			served.Listeners = append(served.Listeners, l)
		}
	}
	plan := e.set.Plan(served)
	bindErr := map[netip.AddrPort]error{}
	var bound []engine.Binding
	for _, b := range plan.Bind {
		bs, err := e.bind(b.Slot)
		if err != nil {
			bindErr[b.Slot.Addr] = err
			e.log.Error(err, "listener not bound", "listener", b.Listener.Name, "address", b.Slot.Addr.String())
			continue
		}
		e.socks[b.Slot] = bs
		bound = append(bound, b)
		e.log.Info("listener bound", "listener", b.Listener.Name, "address", bs.addr.String(),
			"protocol", b.Listener.Protocol.String(), "sockets", len(bs.fds))
	}
	e.cfg.Store(cfg)
	e.set.Commit(plan, bound)
	for _, sl := range plan.Close {
		if bs := e.socks[sl]; bs != nil {
			e.retire(bs)
			delete(e.socks, sl)
			e.log.Info("listener closed", "address", sl.Addr.String())
		}
	}
	if len(bound) > 0 || len(plan.Close) > 0 {
		e.lisVersion.Add(1)
		e.wakeLocked()
	}
	st := engine.Statuses(served, plan, bindErr)
	out := make([]engine.ListenerStatus, 0, len(cfg.Listeners))
	j := 0
	for _, l := range cfg.Listeners {
		if err := e.refuses(l); err != nil {
			out = append(out, engine.ListenerStatus{Name: l.Name, Addr: l.Addr, Err: err})
			continue
		}
		out = append(out, st[j])
		j++
	}
	return out, nil
}

// refuses returns why the engine does not serve listener l (reported as its
// bind error), or nil when it does: listeners that terminate TLS without
// Options.HTTPS (ErrHTTPS).
func (e *Engine) refuses(l *compiled.Listener) error {
	if !e.opts.HTTPS && l.TerminatesTLS() {
		return ErrHTTPS
	}
	return nil
}

// bind opens one listening socket per worker on sl.Addr. With port 0 the
// first socket picks the port and the others join it.
func (e *Engine) bind(sl *engine.Slot) (*boundSock, error) {
	n := e.opts.Workers
	bs := &boundSock{slot: sl, addr: sl.Addr, fds: make([]int, 0, n), adopted: make([]bool, n)}
	for i := 0; i < n; i++ {
		fd, err := iouring.ListenTCP(bs.addr, 0)
		if err == nil {
			err = iouring.SetNoDelay(fd, true) // inherited by accepted sockets
			if err != nil {
				_ = unix.Close(fd)
			}
		}
		if err != nil {
			for _, f := range bs.fds {
				_ = unix.Close(f)
			}
			return nil, fmt.Errorf("bind %s: %w", sl.Addr, err)
		}
		if i == 0 && bs.addr.Port() == 0 {
			if a, err := iouring.LocalAddr(fd); err == nil {
				bs.addr = netip.AddrPortFrom(bs.addr.Addr(), a.Port())
			}
		}
		bs.fds = append(bs.fds, fd)
	}
	return bs, nil
}

// retire stops a bound address: sockets a running worker adopted are shut
// down (the listen queue is dropped and the armed accept fails, so the
// address refuses connections at once) and closed by that worker; the
// others are closed here. e.mu is held.
func (e *Engine) retire(bs *boundSock) {
	bs.removed = true
	for i, fd := range bs.fds {
		if fd < 0 {
			continue
		}
		if bs.adopted[i] {
			_ = unix.Shutdown(fd, unix.SHUT_RD)
			continue
		}
		_ = unix.Close(fd)
		bs.fds[i] = -1
	}
}

// wakeLocked wakes every running worker; e.mu is held.
func (e *Engine) wakeLocked() {
	for _, w := range e.workers {
		w.wake()
	}
}

// Run implements engine.Engine: it starts the workers and serves until ctx
// is done (or a worker fails), then stops the workers, which close every
// connection and their listeners, and returns.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("io_uring engine: already running")
	}
	e.running = true
	e.stopping.Store(false)
	e.forceClose.Store(false)
	ws := make([]*worker, e.opts.Workers)
	for i := range ws {
		ws[i] = newWorker(e, i)
	}
	e.workers = ws
	e.mu.Unlock()

	errc := make(chan error, len(ws))
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.serve(); err != nil {
				errc <- err
			}
		}()
	}
	e.log.Info("io_uring engine running", "workers", len(ws))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		e.log.Error(err, "worker failed, stopping the engine")
	}
	e.stopping.Store(true)
	e.mu.Lock()
	e.wakeLocked()
	e.mu.Unlock()
	wg.Wait()

	e.mu.Lock()
	for sl, bs := range e.socks {
		for i, fd := range bs.fds {
			if fd >= 0 {
				_ = unix.Close(fd)
				bs.fds[i] = -1
			}
		}
		delete(e.socks, sl)
	}
	e.set = engine.ListenerSet{}
	e.lisVersion.Add(1)
	e.workers = nil
	e.running = false
	e.mu.Unlock()
	e.log.Info("io_uring engine stopped")
	return err
}

// Drain implements engine.Engine: listeners stop accepting at once, idle
// keep-alive and pooled connections close, busy sessions are asked to
// finish (Session.Drain). It returns when no client connection is left, or
// when ctx is done: then the remaining connections are closed and the
// error wraps ctx's.
func (e *Engine) Drain(ctx context.Context) error {
	e.mu.Lock()
	e.draining.Store(true)
	for sl, bs := range e.socks {
		e.retire(bs)
		delete(e.socks, sl)
	}
	e.set = engine.ListenerSet{}
	e.lisVersion.Add(1)
	ws := e.workers
	e.wakeLocked()
	e.mu.Unlock()
	if ws == nil {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n := active(ws)
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			e.forceClose.Store(true)
			e.mu.Lock()
			e.wakeLocked()
			e.mu.Unlock()
			deadline := time.Now().Add(2 * time.Second)
			for active(ws) > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return fmt.Errorf("io_uring engine: drain: %d connections were still open: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// active sums the workers' open client connections.
func active(ws []*worker) int64 {
	var n int64
	for _, w := range ws {
		n += w.activeN.Load()
	}
	return n
}
