// Package daemon is the dataplane process: it picks the I/O engine (io_uring when the
// probe passes, else the portable netpoll engine), compiles each snapshot it is given and
// swaps it into the engine, takes the endpoint-only fast path, runs the admin server and
// the optional JSON access log (dataplane/accesslog, reopened by ReopenAccessLog on
// SIGHUP), and drains on shutdown. cmd/flax-dataplane feeds it from a YAML file, the controller's gRPC
// socket (through snapshot.Adapt) or a one-line proxy command; programs that embed Flax
// can do the same, or build a snapshot with dataplane/lb and change a backend group's
// endpoints at run time through a Pool. The daemon does not link gRPC.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/admin"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/engine/uring"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/health"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
	"github.com/flaxlb/flax/dataplane/tracing"
	"github.com/flaxlb/flax/dataplane/udp"
)

// Engine names accepted by Options.Engine.
const (
	EngineAuto    = "auto"
	EngineUring   = "uring"
	EngineNetpoll = "netpoll"
)

// DefaultHTTPSEngine is the engine of HTTPS listeners when Options.HTTPSEngine is empty:
// the io_uring workers, which spend half the CPU of a netpoll engine per request on
// keep-alive connections (DESIGN.md, "TLS on the io_uring workers").
const DefaultHTTPSEngine = EngineUring

// Options configure a Daemon.
type Options struct {
	// Workers is the number of worker threads; 0 means the CPUs this process may use.
	Workers int
	// Engine is EngineAuto, EngineUring or EngineNetpoll.
	Engine string
	// HTTPSEngine says which engine terminates TLS on HTTPS listeners when the
	// io_uring engine runs: EngineUring (its workers, dataplane/tlsconn) or
	// EngineNetpoll (a netpoll engine beside it, crypto/tls per connection);
	// empty means DefaultHTTPSEngine. The netpoll engine always serves its own.
	HTTPSEngine string
	// AdminAddr is the admin server's address; empty disables it.
	AdminAddr string
	// Pprof mounts pprof on the admin server.
	Pprof bool
	// RuntimeAPI says who may use the admin server's runtime API (/backends: list,
	// add, remove and drain backends, see Pool): RuntimeAPILoopback (also "", the
	// default) for loopback clients only, RuntimeAPIAny for every client,
	// RuntimeAPIOff for none.
	RuntimeAPI string
	// AdminReusePort binds the admin address with SO_REUSEPORT, so that a dataplane
	// replacing this one on the same node can start before this one exits.
	AdminReusePort bool
	// DrainGrace is how long /readyz fails before listeners stop accepting, so that
	// load balancers in front notice first.
	DrainGrace time.Duration
	// DrainTimeout bounds the wait for in-flight requests after listeners close.
	DrainTimeout time.Duration
	// AccessLog is the file the JSON access log is appended to, accesslog.Stdout ("-")
	// for the standard output; empty disables it.
	AccessLog string
	// Proxy tunes the sessions of both engines (head limits, trusted hops);
	// zero fields take their defaults (proxy.Options).
	Proxy proxy.Options
	// MaxConnections caps the client connections open on the node at once
	// (connections over it are accepted and closed at once); 0 means
	// engine.DefaultMaxConnections (derived from RLIMIT_NOFILE), a negative
	// value no cap.
	MaxConnections int64
	// MemoryBudget is each worker's memory budget in bytes, past which it
	// sheds load (see metrics.Pressure); 0 means engine.DefaultMemoryBudget
	// (half the cgroup's or the machine's memory, shared by the workers), a
	// negative value none.
	MemoryBudget int64
	// Filters is the registry the extension filters a snapshot names are
	// resolved in; nil means filter.Default.
	Filters *filter.Registry
	// Log receives structured logs.
	Log logr.Logger
	// NewEngine, when set, creates the engine the daemon runs instead of choosing one
	// (Engine is then ignored): an engine of the program's own, or one of Flax's with
	// options beyond these (netpoll.New with its own netpoll.Options, say).
	NewEngine func(EngineDeps) (engine.Engine, error)
}

// EngineDeps is what the daemon hands Options.NewEngine: the engine must count in
// Metrics (the admin server's /metrics and the runtime API read it), log finished
// requests to AccessLog when it is not nil, and honour Limits.
type EngineDeps struct {
	Workers   int
	Proxy     proxy.Options
	Metrics   *metrics.Registry
	AccessLog *accesslog.Logger
	Limits    engine.Limits
	Log       logr.Logger
}

// Daemon runs one dataplane.
type Daemon struct {
	opts    Options
	log     logr.Logger
	metrics *metrics.Registry
	admin   *admin.Server
	engine  engine.Engine
	health  *health.Manager
	mirrors *netpoll.MirrorSender
	alog    *accesslog.Logger
	spans   *tracing.Exporter
	// udpDriver is what the UDP loops wait on ("io_uring" or "epoll"; ""
	// when UDP listeners are not served).
	udpDriver string

	mu      sync.Mutex // serialises Apply, ApplyEndpoints and Pool changes
	current *dataplanev1.Snapshot
	config  *compiled.Config
	pools   map[string]*Pool // by backend group, created by Pool

	// applied, serving and draining make up Ready.
	applied  atomic.Bool
	serving  atomic.Bool
	draining atomic.Bool
}

// Ready returns nil when the dataplane serves traffic on its own: a config is
// applied (its listeners are bound, see Apply), the engine runs and the dataplane is
// not draining. Otherwise it says why not. /readyz and the socket's health service
// answer with it.
func (d *Daemon) Ready() error {
	switch {
	case d.draining.Load():
		return errors.New("draining")
	case !d.applied.Load():
		return errors.New("no config applied yet")
	case !d.serving.Load():
		return errors.New("engine not started yet")
	}
	return nil
}

// limitsFor returns the engine limits of opts, with their defaults.
func limitsFor(opts Options) engine.Limits {
	var lim engine.Limits
	switch n := opts.MaxConnections; {
	case n > 0:
		lim.Connections = engine.NewConnCounter(n)
	case n == 0:
		lim.Connections = engine.NewConnCounter(engine.DefaultMaxConnections())
	default:
		lim.Connections = engine.NewConnCounter(0) // counted, no cap
	}
	switch b := opts.MemoryBudget; {
	case b > 0:
		lim.MemoryBudget = b
	case b == 0:
		lim.MemoryBudget = engine.DefaultMemoryBudget(opts.Workers)
	}
	return lim
}

// startProcs is GOMAXPROCS as the process started (the CPUs it may use), the
// default number of workers: the io_uring engine raises GOMAXPROCS above its
// workers, which must not grow the next daemon's share.
var startProcs = runtime.GOMAXPROCS(0)

// New selects the engine and prepares the admin server; Run starts them.
func New(opts Options) (*Daemon, error) {
	if opts.Workers <= 0 {
		opts.Workers = startProcs
	}
	if opts.Engine == "" {
		opts.Engine = EngineAuto
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	switch opts.RuntimeAPI {
	case "", RuntimeAPILoopback, RuntimeAPIAny, RuntimeAPIOff:
	default:
		return nil, fmt.Errorf("runtime API access %q: want %s, %s or %s", opts.RuntimeAPI, RuntimeAPILoopback, RuntimeAPIAny, RuntimeAPIOff)
	}
	d := &Daemon{
		opts: opts, log: opts.Log, metrics: metrics.NewRegistry(opts.Workers),
		health:  health.NewManager(health.Options{Logger: opts.Log.WithName("health")}),
		mirrors: netpoll.NewMirrorSender(netpoll.MirrorOptions{}),
		spans:   tracing.New(tracing.Options{Workers: opts.Workers, Log: opts.Log.WithName("tracing")}),
	}
	if opts.AccessLog != "" {
		al, err := accesslog.New(accesslog.Options{Path: opts.AccessLog, Workers: opts.Workers, Log: opts.Log.WithName("accesslog")})
		if err != nil {
			return nil, err
		}
		d.alog = al
	}
	lim := limitsFor(opts)
	d.log.Info("limits", "maxConnections", lim.Connections.Max(), "memoryBudgetPerWorker", lim.MemoryBudget)
	if opts.HTTPSEngine == "" {
		opts.HTTPSEngine = DefaultHTTPSEngine
	}
	if opts.HTTPSEngine != EngineUring && opts.HTTPSEngine != EngineNetpoll {
		return nil, fmt.Errorf("unknown HTTPS engine %q (want %s or %s)", opts.HTTPSEngine, EngineUring, EngineNetpoll)
	}
	var eng engine.Engine
	var why string
	var err error
	if opts.NewEngine != nil {
		eng, err = opts.NewEngine(EngineDeps{Workers: opts.Workers, Proxy: opts.Proxy, Metrics: d.metrics, AccessLog: d.alog, Limits: lim, Log: opts.Log})
		if err == nil && eng == nil {
			err = errors.New("new engine: Options.NewEngine returned nil")
		}
	} else {
		eng, why, err = selectEngine(opts.Engine, opts.HTTPSEngine == EngineUring, opts.Workers, opts.Proxy, d.metrics, d.alog, lim, opts.Log)
	}
	if err != nil {
		_ = d.alog.Close()
		return nil, err
	}
	// UDP listeners have their own engine beside the connection engines.
	// They are served on io_uring with the io_uring engine, when the kernel
	// has what they need, and on epoll otherwise.
	if u, uerr := udp.New(d.metrics, udp.Options{Workers: opts.Workers, AccessLog: d.alog, Log: opts.Log.WithName("udp"), IOUring: eng.Name() == uring.Name}); uerr == nil {
		eng = engine.WithUDP(eng, u)
		if dr, ok := engine.Engine(u).(interface{ Driver() (string, string) }); ok {
			d.udpDriver, _ = dr.Driver()
			d.log.Info("UDP listeners", "driver", d.udpDriver)
		}
	} else {
		d.log.Info("UDP listeners will not be served", "reason", uerr.Error())
	}
	d.engine = eng
	d.metrics.SetEngine(eng.Name(), why)
	if why != "" {
		d.log.Info("io_uring unavailable, using the portable engine", "engine", eng.Name(), "reason", why)
	} else {
		d.log.Info("engine selected", "engine", eng.Name(), "workers", opts.Workers)
	}
	if opts.AdminAddr != "" {
		var routes []admin.Route
		if opts.RuntimeAPI != RuntimeAPIOff {
			routes = d.runtimeRoutes(opts.RuntimeAPI != RuntimeAPIAny)
		}
		collectors := []prometheus.Collector{d.metrics, d.spans}
		if d.alog != nil {
			collectors = append(collectors, d.alog)
		}
		a, err := admin.New(admin.Options{
			Addr:       opts.AdminAddr,
			Collectors: collectors,
			ConfigDump: d.configDump,
			Pprof:      opts.Pprof,
			ReusePort:  opts.AdminReusePort,
			Ready:      d.Ready,
			Routes:     routes,
		})
		if err != nil {
			_ = d.alog.Close()
			return nil, err
		}
		d.admin = a
	}
	return d, nil
}

// EngineName returns the engine in use.
func (d *Daemon) EngineName() string { return d.engine.Name() }

// Metrics returns the dataplane's counters.
func (d *Daemon) Metrics() *metrics.Registry { return d.metrics }

// ReopenAccessLog reopens the access log file, for log rotation (SIGHUP). It does
// nothing when the log is off or goes to stdout.
func (d *Daemon) ReopenAccessLog() error {
	if d.alog == nil {
		return nil
	}
	if err := d.alog.Reopen(); err != nil {
		d.log.Error(err, "access log not reopened", "path", d.opts.AccessLog)
		return err
	}
	d.log.V(1).Info("access log reopened", "path", d.opts.AccessLog)
	return nil
}

// ReopenOnSignal calls ReopenAccessLog whenever one of sigs arrives, until ctx ends.
// Catching the signal also keeps it from terminating the process.
func (d *Daemon) ReopenOnSignal(ctx context.Context, sigs ...os.Signal) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			_ = d.ReopenAccessLog()
		}
	}
}

// Apply validates snap (dataplanev1.Validate; a snapshot without a hash gets one),
// compiles it and swaps it into the engine, and reports each listener's state: a
// listener that cannot be bound is reported there, not as an error. On error the
// previous config keeps serving. A full config replaces whatever the runtime API
// (Pool) changed in the previous one. snap must not be modified afterwards: the
// daemon keeps it as its current config. snapshot.Adapt turns a Daemon into the
// snapshot.Applier that the socket server and the file watcher take.
func (d *Daemon) Apply(_ context.Context, snap *dataplanev1.Snapshot) ([]engine.ListenerStatus, error) {
	if snap == nil {
		return nil, errors.New("apply: snapshot is nil")
	}
	if snap.GetHash() == "" {
		snap = proto.CloneOf(snap)
		snap.Hash = dataplanev1.Hash(snap)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		d.metrics.ConfigRejected()
		return nil, fmt.Errorf("snapshot version %d: %w", snap.GetVersion(), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	filters := d.opts.Filters
	if filters == nil {
		filters = filter.Default
	}
	cfg, err := compiled.CompileDeps(snap, compiled.Deps{Metrics: d.metrics, Filters: filters, Spans: d.spans})
	if err != nil {
		d.metrics.ConfigRejected()
		return nil, fmt.Errorf("compile snapshot version %d: %w", snap.GetVersion(), err)
	}
	// Mirrors and health state attach to the new config's groups before any worker
	// sees it; health verdicts carry over by group name and endpoint address, and
	// rate limit buckets by bucket name when their limit is unchanged.
	cfg.SetMirrorSender(d.mirrors)
	d.health.Apply(cfg)
	cfg.KeepState(d.config)
	st, err := d.engine.Apply(cfg)
	if err != nil {
		d.metrics.ConfigRejected()
		return nil, fmt.Errorf("apply snapshot version %d: %w", snap.GetVersion(), err)
	}
	d.current, d.config = snap, cfg
	d.spans.Configure(snap.GetTracing().GetOtlpEndpoint(), snap.GetTracing().GetServiceName())
	d.resetPools()
	d.metrics.ConfigApplied(snap.GetVersion())
	d.applied.Store(true)
	d.log.Info("config applied", "version", snap.GetVersion(), "hash", snap.GetHash(), "listeners", len(cfg.Listeners),
		"backendGroups", len(cfg.Groups), "took", time.Since(start))
	for _, s := range st {
		if !s.Bound {
			d.log.Info("listener not bound", "listener", s.Name, "address", s.Addr.Addr().String(), "port", s.Addr.Port(), "error", s.Err)
		}
	}
	return st, nil
}

// ApplyEndpoints is the fast path: snap must differ from the config last applied
// only in the endpoints of backend group group, which it replaces in the running
// config without recompiling routes. Those endpoints are validated
// (dataplanev1.ValidateGroupEndpoints); the rest of snap is taken as the caller
// says. An error means nothing changed. It replaces what the runtime API (Pool)
// changed in that group; the runtime changes of other groups stay, and Current
// shows them on top of snap (with its own hash).
func (d *Daemon) ApplyEndpoints(_ context.Context, group string, snap *dataplanev1.Snapshot) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.applyEndpointsLocked(group, d.withRuntimeChanges(group, snap)); err != nil {
		return err
	}
	if p := d.pools[group]; p != nil {
		p.reset()
	}
	return nil
}

// withRuntimeChanges returns snap with the endpoints of the groups other than
// group that the runtime API changed taken from the current config (d.mu held),
// so that Current keeps matching what runs; snap itself when there are none.
func (d *Daemon) withRuntimeChanges(group string, snap *dataplanev1.Snapshot) *dataplanev1.Snapshot {
	var out *dataplanev1.Snapshot
	for name, p := range d.pools {
		if !p.changed || name == group {
			continue
		}
		live := groupOf(d.current, name)
		i := slices.IndexFunc(snap.GetBackendGroups(), func(g *dataplanev1.BackendGroup) bool { return g.GetName() == name })
		if live == nil || i < 0 {
			continue
		}
		if out == nil {
			out = dataplanev1.ShallowCopy(snap)
			out.BackendGroups = slices.Clone(snap.GetBackendGroups())
		}
		g := dataplanev1.ShallowCopy(out.BackendGroups[i])
		g.Endpoints = live.GetEndpoints()
		out.BackendGroups[i] = g
	}
	if out == nil {
		return snap
	}
	out.Hash = dataplanev1.Hash(out)
	return out
}

// applyEndpointsLocked is ApplyEndpoints with d.mu held.
func (d *Daemon) applyEndpointsLocked(group string, snap *dataplanev1.Snapshot) error {
	if d.config == nil {
		return errors.New("apply endpoints: no config applied yet")
	}
	if err := dataplanev1.ValidateGroupEndpoints(snap, group); err != nil {
		d.metrics.ConfigRejected()
		return fmt.Errorf("apply endpoints: %w", err)
	}
	eps := groupOf(snap, group).GetEndpoints()
	if err := d.config.UpdateEndpoints(group, eps); err != nil {
		d.metrics.ConfigRejected()
		return err
	}
	d.current = snap
	d.metrics.ConfigApplied(snap.GetVersion())
	d.log.V(1).Info("endpoints updated", "group", group, "endpoints", len(eps), "version", snap.GetVersion())
	return nil
}

// groupOf returns the backend group named name in snap, or nil.
func groupOf(snap *dataplanev1.Snapshot, name string) *dataplanev1.BackendGroup {
	for _, g := range snap.GetBackendGroups() {
		if g.GetName() == name {
			return g
		}
	}
	return nil
}

// Current returns the config being served, with the runtime API's changes, or nil
// before the first Apply. It is shared with the daemon: read it, do not modify it
// (proto.CloneOf gives a copy to change and Apply).
func (d *Daemon) Current() *dataplanev1.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

func (d *Daemon) configDump() ([]byte, error) {
	d.mu.Lock()
	cur := d.current
	d.mu.Unlock()
	if cur == nil {
		return json.Marshal(map[string]string{"error": "no config applied yet"})
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(cur)
}

// Run serves until ctx is cancelled, then drains: /readyz fails, after DrainGrace the
// listeners stop accepting and idle connections close, and in-flight requests get up
// to DrainTimeout to finish.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.mirrors.Close()
	defer d.health.Close()
	if d.admin != nil {
		if err := d.admin.Start(); err != nil {
			return err
		}
		d.log.Info("admin server listening", "address", d.admin.Addr())
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = d.admin.Shutdown(sctx)
		}()
	}
	errc := make(chan error, 1)
	runCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	go func() { errc <- d.engine.Run(runCtx) }()
	spansDone := make(chan struct{})
	go func() {
		defer close(spansDone)
		d.spans.Run(runCtx)
	}()
	defer func() { stopEngine(); <-spansDone }()
	d.serving.Store(true)

	select {
	case err := <-errc:
		_ = d.alog.Close()
		return fmt.Errorf("engine %s stopped: %w", d.engine.Name(), err)
	case <-ctx.Done():
	}
	d.log.Info("draining", "grace", d.opts.DrainGrace, "timeout", d.opts.DrainTimeout)
	d.draining.Store(true)
	if d.opts.DrainGrace > 0 {
		time.Sleep(d.opts.DrainGrace)
	}
	dctx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
	defer cancel()
	if err := d.engine.Drain(dctx); err != nil {
		d.log.Info("drain ended with requests still in flight", "error", err.Error())
	}
	stopEngine()
	<-errc
	if err := d.alog.Close(); err != nil {
		d.log.Error(err, "access log close failed")
	}
	d.log.Info("stopped")
	return nil
}
