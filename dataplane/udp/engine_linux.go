package udp

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Options configure an Engine.
type Options struct {
	// Workers is the number of sockets (and loops) per UDP listener, at
	// least 1; the daemon passes its worker count.
	Workers int
	// AccessLog, when set, receives a line per ended flow; the loops of
	// worker i log through AccessLog.Worker(i), so it must have Workers
	// workers.
	AccessLog *accesslog.Logger
	// Log receives the engine's events.
	Log logr.Logger
	// IOUring serves the loops on io_uring rings when this kernel allows
	// (a probe at New: multishot recvmsg with provided buffer rings), and
	// on epoll otherwise; the daemon sets it when its connection engine is
	// the io_uring one.
	IOUring bool
	// RingBuffers is the provided buffer count of each io_uring loop
	// (DefaultRingBuffers when 0); a power of two.
	RingBuffers int
}

// Engine serves the UDP listeners of a configuration (engine.Split hands it
// only those). It implements engine.Engine.
type Engine struct {
	opts Options
	reg  *metrics.Registry
	cur  atomic.Pointer[compiled.Config]

	mu      sync.Mutex
	set     engine.ListenerSet
	bound   map[*engine.Slot][]*loop
	running bool
	seeds   uint64
	wg      sync.WaitGroup

	uring    bool   // loops serve on io_uring
	fallback string // why not, when Options.IOUring asked for it
}

var _ engine.Engine = (*Engine)(nil)

// New returns an Engine counting into reg.
func New(reg *metrics.Registry, opts Options) (*Engine, error) {
	if opts.Workers < 1 {
		return nil, fmt.Errorf("udp engine: workers must be at least 1, got %d", opts.Workers)
	}
	if reg.Workers() < opts.Workers {
		return nil, fmt.Errorf("udp engine: metrics registry has %d workers, want %d", reg.Workers(), opts.Workers)
	}
	if b := opts.RingBuffers; b < 0 || b&(b-1) != 0 {
		return nil, fmt.Errorf("udp engine: ring buffers must be a power of two, got %d", b)
	}
	e := &Engine{opts: opts, reg: reg, bound: map[*engine.Slot][]*loop{}}
	if opts.IOUring {
		if err := probeUring(); err != nil {
			e.fallback = err.Error()
			opts.Log.Info("UDP listeners are served on epoll: io_uring multishot recvmsg unavailable", "reason", e.fallback)
		} else {
			e.uring = true
		}
	}
	return e, nil
}

// Driver names what the loops wait on: "io_uring" or "epoll", and when
// io_uring was asked for but is not used, why.
func (e *Engine) Driver() (name, fallback string) {
	if e.uring {
		return "io_uring", ""
	}
	return "epoll", e.fallback
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return "udp" }

// Current implements engine.Engine.
func (e *Engine) Current() *compiled.Config { return e.cur.Load() }

// Apply binds the sockets of new UDP listeners (one per worker), hands kept
// addresses their new listener (flows keep their endpoints; new flows, the
// idle timeout and the bound follow the new config) and ends the listeners
// that are gone with their flows.
func (e *Engine) Apply(cfg *compiled.Config) ([]engine.ListenerStatus, error) {
	for _, l := range cfg.Listeners {
		if l.Protocol != compiled.ProtocolUDP {
			return nil, fmt.Errorf("udp engine: listener %s is %s, not UDP", l.Name, l.Protocol)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	plan := e.set.Plan(cfg)
	bindErr := map[netip.AddrPort]error{}
	var bound []engine.Binding
	for _, b := range plan.Bind {
		b.Slot.Listener.Store(b.Listener)
		loops, err := e.bind(b.Slot)
		if err != nil {
			bindErr[b.Slot.Addr] = err
			e.opts.Log.Error(err, "UDP listener not bound", "listener", b.Listener.Name, "address", b.Slot.Addr.String())
			continue
		}
		e.bound[b.Slot] = loops
		bound = append(bound, b)
	}
	for _, s := range plan.Close {
		for _, l := range e.bound[s] {
			e.retire(l)
		}
		delete(e.bound, s)
	}
	e.set.Commit(plan, bound)
	if e.running {
		for _, b := range bound {
			e.start(e.bound[b.Slot])
		}
	}
	e.cur.Store(cfg)
	return engine.Statuses(cfg, plan, bindErr), nil
}

// bind opens the sockets of one listener, one per worker, all or none.
func (e *Engine) bind(s *engine.Slot) ([]*loop, error) {
	loops := make([]*loop, 0, e.opts.Workers)
	for i := range e.opts.Workers {
		fd, err := bindListener(s.Addr)
		if err == nil {
			e.seeds++
			var l *loop
			l, err = newLoop(s, fd, e.reg.Worker(i), e.opts.AccessLog.Worker(i), e.seeds, e.opts.Log, e.uring, e.opts.RingBuffers)
			if err == nil {
				loops = append(loops, l)
				continue
			}
		}
		for _, l := range loops {
			l.closeAll()
		}
		return nil, fmt.Errorf("bind UDP %s: %w", s.Addr, err)
	}
	return loops, nil
}

// start runs loops (e.mu held).
func (e *Engine) start(loops []*loop) {
	for _, l := range loops {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run()
		}()
	}
}

// retire stops a loop, or closes it when it never ran (e.mu held).
func (e *Engine) retire(l *loop) {
	if e.running {
		l.stop()
		return
	}
	l.closeAll()
}

// Run implements engine.Engine: the loops serve until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return fmt.Errorf("udp engine: already running")
	}
	e.running = true
	for _, loops := range e.bound {
		e.start(loops)
	}
	e.mu.Unlock()
	<-ctx.Done()
	e.stopAll()
	e.wg.Wait()
	return nil
}

// Drain implements engine.Engine. Datagrams have nothing in flight to let
// finish: the sockets close at once, ending every flow.
func (e *Engine) Drain(context.Context) error {
	e.stopAll()
	e.wg.Wait()
	return nil
}

// stopAll stops every loop and forgets the bound addresses.
func (e *Engine) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s, loops := range e.bound {
		for _, l := range loops {
			e.retire(l)
		}
		delete(e.bound, s)
	}
	e.set = engine.ListenerSet{}
}
