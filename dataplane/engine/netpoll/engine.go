package netpoll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Defaults for zero Options fields.
const (
	DefaultReadBufferSize = 32 << 10
	DefaultWriteTimeout   = 60 * time.Second
	DefaultLingerTimeout  = 2 * time.Second
)

// Options configure an Engine. Zero fields take their defaults.
type Options struct {
	// Workers is the number of workers; it defaults to, and may not
	// exceed, the number of workers of the metrics registry.
	Workers int
	// Proxy tunes the sessions.
	Proxy proxy.Options
	// AccessLog, when set, receives a line per finished request; worker i
	// logs through AccessLog.Worker(i).
	AccessLog *accesslog.Logger
	// ReadBufferSize is the size of each read buffer.
	ReadBufferSize int
	// WriteTimeout bounds a write when the session has no deadline (it
	// always has one while it sends: the send stall timeout of
	// proxy.Options and the listener, or a wait on the upstream).
	WriteTimeout time.Duration
	// LingerTimeout bounds how long input is discarded after a reply sent
	// to a client that may still be sending.
	LingerTimeout time.Duration
	// Logger receives the engine's logs.
	Logger logr.Logger
	// Limits cap the client connections and each worker's memory.
	Limits engine.Limits
}

// Engine is the netpoll engine. Create it with New.
type Engine struct {
	opts  Options
	log   logr.Logger
	reg   *metrics.Registry
	start time.Time

	cfg     engine.ConfigHolder
	workers []*worker

	mu      sync.Mutex // guards the fields below
	set     engine.ListenerSet
	socks   map[*engine.Slot][]net.Listener
	running bool
	runCtx  context.Context

	draining  atomic.Bool
	fdLog     engine.LogLimiter // accepts failing for lack of descriptors
	acceptLog engine.LogLimiter // other accept failures
	conns     sync.WaitGroup    // connection goroutines
	loops     sync.WaitGroup    // accept loops and reapers
}

var _ engine.Engine = (*Engine)(nil)

// New returns an engine counting in reg.
func New(reg *metrics.Registry, opts Options) (*Engine, error) {
	if opts.Workers <= 0 {
		opts.Workers = reg.Workers()
	}
	if opts.Workers > reg.Workers() {
		return nil, fmt.Errorf("netpoll engine: %d workers but the metrics registry has %d", opts.Workers, reg.Workers())
	}
	if opts.ReadBufferSize <= 0 {
		opts.ReadBufferSize = DefaultReadBufferSize
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.LingerTimeout <= 0 {
		opts.LingerTimeout = DefaultLingerTimeout
	}
	opts.Proxy = opts.Proxy.Normalized()
	e := &Engine{opts: opts, log: opts.Logger, reg: reg, start: time.Now(), socks: map[*engine.Slot][]net.Listener{}}
	for i := range opts.Workers {
		e.workers = append(e.workers, newWorker(e, i))
	}
	return e, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return "netpoll" }

// Current implements engine.Engine.
func (e *Engine) Current() *compiled.Config { return e.cfg.Load() }

// now is the workers' clock: nanoseconds since the engine started.
func (e *Engine) now() int64 { return int64(time.Since(e.start)) }

// timeAt converts a worker clock deadline to a time.
func (e *Engine) timeAt(d int64) time.Time { return e.start.Add(time.Duration(d)) }

// Apply implements engine.Engine.
func (e *Engine) Apply(cfg *compiled.Config) ([]engine.ListenerStatus, error) {
	if cfg == nil {
		return nil, errors.New("netpoll engine: apply: nil configuration")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining.Load() {
		return nil, errors.New("netpoll engine: apply: engine is draining")
	}
	plan := e.set.Plan(cfg)
	bindErr := map[netip.AddrPort]error{}
	var bound []engine.Binding
	for _, b := range plan.Bind {
		lns, err := e.bind(b.Slot.Addr)
		if err != nil {
			bindErr[b.Slot.Addr] = err
			e.log.Error(err, "listener not bound", "listener", b.Listener.Name, "address", b.Slot.Addr.String())
			continue
		}
		e.socks[b.Slot] = lns
		bound = append(bound, b)
		e.log.Info("listener bound", "listener", b.Listener.Name, "address", b.Slot.Addr.String(), "protocol", b.Listener.Protocol.String())
	}
	e.cfg.Store(cfg)
	e.set.Commit(plan, bound)
	for _, sl := range plan.Close {
		for _, ln := range e.socks[sl] {
			ln.Close()
		}
		delete(e.socks, sl)
		e.log.Info("listener closed", "address", sl.Addr.String())
	}
	if e.running && !e.draining.Load() {
		for _, b := range bound {
			e.serveSlot(b.Slot)
		}
	}
	return engine.Statuses(cfg, plan, bindErr), nil
}

// bind opens one SO_REUSEPORT socket per worker on addr.
func (e *Engine) bind(addr netip.AddrPort) ([]net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	lns := make([]net.Listener, 0, len(e.workers))
	for range e.workers {
		ln, err := lc.Listen(context.Background(), "tcp", addr.String())
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("bind %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// serveSlot starts the accept loops of a slot; e.mu is held.
func (e *Engine) serveSlot(sl *engine.Slot) {
	for i, ln := range e.socks[sl] {
		w := e.workers[i]
		e.loops.Add(1)
		go func() {
			defer e.loops.Done()
			w.accept(e.runCtx, ln, sl)
		}()
	}
}

// Run implements engine.Engine.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("netpoll engine: already running")
	}
	e.running = true
	e.runCtx = ctx
	for _, sl := range e.set.Slots() {
		e.serveSlot(sl)
	}
	for _, w := range e.workers {
		e.loops.Add(1)
		go func() {
			defer e.loops.Done()
			w.pool.reap(ctx)
		}()
		e.loops.Add(1)
		go func() {
			defer e.loops.Done()
			w.housekeep(ctx)
		}()
	}
	e.mu.Unlock()

	<-ctx.Done()
	e.closeListeners()
	for _, w := range e.workers {
		w.closeConns()
	}
	e.conns.Wait()
	e.loops.Wait()
	for _, w := range e.workers {
		w.pool.closeAll()
	}
	e.mu.Lock()
	e.running = false
	e.mu.Unlock()
	return nil
}

// closeListeners closes every listening socket (the slots stay, so that a
// later Apply after a restart would rebind them).
func (e *Engine) closeListeners() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for sl, lns := range e.socks {
		for _, ln := range lns {
			ln.Close()
		}
		delete(e.socks, sl)
	}
	e.set = engine.ListenerSet{}
}

// Drain implements engine.Engine.
func (e *Engine) Drain(ctx context.Context) error {
	e.draining.Store(true)
	e.closeListeners()
	for _, w := range e.workers {
		w.kickConns()
		w.pool.closeAll()
	}
	done := make(chan struct{})
	go func() {
		e.conns.Wait()
		close(done)
	}()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			for _, w := range e.workers {
				w.closeConns()
			}
			<-done
			return ctx.Err()
		case <-t.C:
			// Connections accepted just before the listeners closed.
			for _, w := range e.workers {
				w.kickConns()
			}
		}
	}
}
