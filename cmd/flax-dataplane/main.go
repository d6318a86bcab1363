// Command flax-dataplane is Flax's proxy. It serves a dataplane snapshot on per-core
// workers (io_uring, or the portable netpoll engine), taken from a YAML file, from the
// Flax controller over a unix socket, or built from a one-line proxy command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/heapfloor"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/lb"
	"github.com/flaxlb/flax/dataplane/proxy"
	"github.com/flaxlb/flax/dataplane/snapshot"
)

const usage = `flax-dataplane: Flax's HTTP/1.1 and TCP proxy.

Usage:
  flax-dataplane run --config FILE [flags]     serve a standalone YAML config (reloads on change and SIGHUP)
  flax-dataplane run --socket PATH [flags]     serve snapshots from the Flax controller over a unix socket
  flax-dataplane proxy --listen ADDR --to ADDR [--to ADDR ...] [--lb POLICY] [flags]
                                               one listener, one backend group: a one-line reverse proxy
                                               (HTTP/1.1 and HTTP/2 to clients; --no-http2 for HTTP/1.1 only)
  flax-dataplane validate --config FILE        check a config file and exit
  flax-dataplane probe --socket PATH [--service readiness|liveness]
                                               ask a dataplane's health over its socket; exits 0 only
                                               when it is SERVING (the chart's exec probes)
  flax-dataplane seccomp-profile (print | install --dir DIR)
                                               the seccomp profile that allows io_uring: print it, or
                                               install it for the kubelet (the chart's init container)

Run 'flax-dataplane COMMAND --help' for a command's flags.

run and proxy take --access-log FILE (or '-' for stdout) to write one JSON line per
finished request (time, listener, route, method, path, protocol, status, bytes,
duration_ms, upstream, backend_group, attempts, client, reason; protocol is HTTP/2.0 for a
request that came on an HTTP/2 stream); SIGHUP reopens the file
after log rotation. Off by default.

Examples:
  flax-dataplane proxy --listen 127.0.0.1:8080 --to 127.0.0.1:9001 --to 127.0.0.1:9002
  flax-dataplane run --config examples/standalone.yaml --admin-address 127.0.0.1:9901
  flax-dataplane proxy --listen 127.0.0.1:8080 --to 127.0.0.1:9001 --access-log /var/log/flax/access.log

At run time, the admin server lists, adds, removes and drains the backends of a group
(loopback clients only unless --runtime-api says otherwise; the proxy command's group
is "backends"):
  curl 127.0.0.1:9901/backends/backends
  curl -X POST '127.0.0.1:9901/backends/backends?address=127.0.0.1:9003'
  curl -X POST '127.0.0.1:9901/backends/backends/drain?address=127.0.0.1:9001'
  curl -X DELETE '127.0.0.1:9901/backends/backends?address=127.0.0.1:9002'
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "flax-dataplane:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("a command is required")
		}
		return nil
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stderr)
	case "proxy":
		return proxyCmd(args[1:], stderr)
	case "validate":
		return validateCmd(args[1:], stdout, stderr)
	case "probe":
		return probeCmd(args[1:], stdout, stderr)
	case "seccomp-profile":
		return seccompCmd(args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// common holds the flags every serving command takes.
type common struct {
	workers      int
	engine       string
	httpsEngine  string
	admin        string
	adminReuse   bool
	pprof        bool
	runtimeAPI   string
	drainGrace   time.Duration
	drainTimeout time.Duration
	verbosity    int
	logFormat    string
	accessLog    string
	trustedHops  int
	reqHeadBytes int
	reqHeaders   int
	resHeadBytes int
	resHeaders   int
	maxConns     int64
	memBudget    int64
	heapFloor    int64
}

func (c *common) bind(fs *flag.FlagSet) {
	fs.IntVar(&c.workers, "workers", 0, "worker threads, one per core (default: the CPUs this process may use)")
	fs.StringVar(&c.engine, "engine", daemon.EngineAuto, "I/O engine: uring, netpoll, or auto (uring when the kernel and seccomp allow it)")
	fs.StringVar(&c.httpsEngine, "https-engine", daemon.DefaultHTTPSEngine, "with the uring engine, who terminates TLS on HTTPS listeners and TLS listeners with a terminating route: uring (its workers) or netpoll (a netpoll engine beside it)")
	fs.StringVar(&c.admin, "admin-address", "127.0.0.1:9901", "admin server address (/metrics, /healthz, /readyz, /config_dump, /backends); empty disables it")
	fs.StringVar(&c.runtimeAPI, "runtime-api", daemon.RuntimeAPILoopback, "who may list, add, remove and drain backends at run time on the admin server (/backends): loopback (clients on a loopback address), any, or off; a later config reload replaces runtime changes")
	fs.BoolVar(&c.adminReuse, "admin-reuse-port", false, "bind the admin address with SO_REUSEPORT, so that a dataplane replacing this one on the node can bind it before this one exits")
	fs.BoolVar(&c.pprof, "pprof", false, "serve pprof on the admin server under /debug/pprof/")
	fs.DurationVar(&c.drainGrace, "drain-grace", 0, "on SIGTERM, how long /readyz fails before listeners stop accepting")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.IntVar(&c.verbosity, "v", 0, "log verbosity (0: changes and errors, 1: every config update)")
	fs.StringVar(&c.logFormat, "log-format", "json", "log line format: json (one JSON object per line) or text (key=value pairs)")
	fs.IntVar(&c.trustedHops, "trusted-hops", 0, "proxies in front of the dataplane whose X-Forwarded-* and Forwarded fields are trusted (0-16), for listeners that set no trustedHops: 0 replaces what clients send; N keeps and appends, and takes the client address N entries from the end of X-Forwarded-For")
	fs.IntVar(&c.reqHeadBytes, "max-request-header-bytes", http1.DefaultMaxHeaderBytes, "longest request head (request line and fields), in bytes; a longer one is answered 431")
	fs.IntVar(&c.reqHeaders, "max-request-headers", http1.DefaultMaxHeaderCount, "most request header fields; more are answered 431")
	fs.IntVar(&c.resHeadBytes, "max-response-header-bytes", http1.DefaultMaxResponseHeaderBytes, "longest response head (status line and fields), in bytes, at most 65535; a longer one is answered 502")
	fs.IntVar(&c.resHeaders, "max-response-headers", http1.DefaultMaxResponseHeaderCount, "most response header fields; more are answered 502")
	fs.Int64Var(&c.maxConns, "max-connections", 0, "client connections open at once on the node; more are accepted and closed at once (0: (RLIMIT_NOFILE - 256) / 2, leaving descriptors for upstream, health check and admin connections; -1: no cap)")
	fs.Int64Var(&c.memBudget, "memory-budget", 0, "memory budget of each worker in bytes; from 80% of it idle keep-alive connections are closed, from 90% new connections refused, from 100% requests answered 503 (0: half the cgroup's or the machine's memory, shared by the workers; -1: none)")
	fs.Int64Var(&c.heapFloor, "gc-heap-floor", heapfloor.DefaultFloor, "smallest heap the Go garbage collector lets grow before it collects, in bytes: a small live heap is collected at this size instead of the runtime's 4 MB (heaps over half of it are collected as with GOGC=100); 0 disables it, and so does GOGC set in the environment")
	fs.StringVar(&c.accessLog, "access-log", "", "append a JSON access log line per request to this file ('-' for stdout; reopened on SIGHUP for log rotation); empty disables it")
}

// proxyOptions returns the session options the flags ask for.
func (c *common) proxyOptions() (proxy.Options, error) {
	if c.trustedHops < 0 || c.trustedHops > dataplanev1.MaxTrustedHops {
		return proxy.Options{}, fmt.Errorf("--trusted-hops must be in 0-%d, got %d", dataplanev1.MaxTrustedHops, c.trustedHops)
	}
	for _, f := range []struct {
		name     string
		v, least int
	}{
		{"max-request-header-bytes", c.reqHeadBytes, 1024},
		{"max-request-headers", c.reqHeaders, 1},
		{"max-response-header-bytes", c.resHeadBytes, 1024},
		{"max-response-headers", c.resHeaders, 1},
	} {
		if f.v < f.least || f.v > http1.MaxHeaderBytesLimit {
			return proxy.Options{}, fmt.Errorf("--%s must be in %d-%d, got %d", f.name, f.least, http1.MaxHeaderBytesLimit, f.v)
		}
	}
	return proxy.Options{
		TrustedHops:    c.trustedHops,
		Limits:         http1.Limits{MaxHeaderBytes: c.reqHeadBytes, MaxHeaderCount: c.reqHeaders},
		ResponseLimits: http1.Limits{MaxHeaderBytes: c.resHeadBytes, MaxHeaderCount: c.resHeaders},
	}, nil
}

func (c *common) daemon(stderr io.Writer) (*daemon.Daemon, logr.Logger, error) {
	log, err := c.logger(stderr)
	if err != nil {
		return nil, log, err
	}
	po, err := c.proxyOptions()
	if err != nil {
		return nil, log, err
	}
	startHeapFloor(c.heapFloor, log)
	d, err := daemon.New(daemon.Options{
		Workers: c.workers, Engine: c.engine, HTTPSEngine: c.httpsEngine, AdminAddr: c.admin, AdminReusePort: c.adminReuse, Pprof: c.pprof, RuntimeAPI: c.runtimeAPI,
		DrainGrace: c.drainGrace, DrainTimeout: c.drainTimeout, AccessLog: c.accessLog, Proxy: po, Log: log,
		MaxConnections: c.maxConns, MemoryBudget: c.memBudget,
	})
	return d, log, err
}

// heapFloorOnce starts the process's heap floor, heapFloorRun, once (tests
// run several commands in one process).
var (
	heapFloorOnce sync.Once
	heapFloorRun  *heapfloor.Floor
)

// startHeapFloor keeps the garbage collector's heap goal at floor bytes or
// more (heapfloor), unless GOGC is set in the environment or floor is 0.
func startHeapFloor(floor int64, log logr.Logger) {
	if os.Getenv("GOGC") != "" || floor <= 0 {
		return
	}
	heapFloorOnce.Do(func() {
		heapFloorRun = heapfloor.Start(floor)
		log.V(1).Info("garbage collector heap floor", "bytes", floor, "gcPercent", heapFloorRun.GCPercent())
	})
}

// logger returns the process logger: one line per entry on stderr, in the
// --log-format chosen, with --v's verbosity. On a bad format it returns the JSON
// logger too, to report the error with.
func (c *common) logger(stderr io.Writer) (logr.Logger, error) {
	write := func(line string) { fmt.Fprintln(stderr, line) }
	opts := funcr.Options{Verbosity: c.verbosity, LogTimestamp: true}
	switch c.logFormat {
	case "json":
		return funcr.NewJSON(write, opts), nil
	case "text":
		return funcr.New(func(prefix, args string) { write(prefix + args) }, opts), nil
	}
	return funcr.NewJSON(write, opts), fmt.Errorf("--log-format %q: must be json or text", c.logFormat)
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: flax-dataplane %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func runCmd(args []string, stderr io.Writer) error {
	fs := newFlagSet("run", "run (--config FILE | --socket PATH) [flags]", stderr)
	var c common
	c.bind(fs)
	file := fs.String("config", "", "standalone config: the YAML form of a dataplane snapshot")
	socket := fs.String("socket", "", "unix socket on which the Flax controller sends snapshots (created with mode 0600)")
	node := fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name, reported to the controller")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*file == "") == (*socket == "") {
		fs.Usage()
		return errors.New("run needs exactly one of --config and --socket")
	}
	d, log, err := c.daemon(stderr)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	// SIGHUP reopens the access log (log rotation) in every mode, and also
	// reloads a --config file.
	go d.ReopenOnSignal(ctx, syscall.SIGHUP)

	if *file != "" {
		w := snapshot.NewWatcher(*file, snapshot.Adapt(d), snapshot.WatcherOptions{Log: log})
		go w.ReloadOnSignal(ctx, syscall.SIGHUP)
		watchErr := make(chan error, 1)
		go func() { watchErr <- w.Run(ctx) }()
		// The first load must succeed before serving.
		for w.Current() == nil {
			select {
			case err := <-watchErr:
				return fmt.Errorf("load %s: %w", *file, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		return d.Run(ctx)
	}
	srv := snapshot.NewServer(snapshot.Adapt(d), snapshot.ServerOptions{NodeName: *node, Engine: d.EngineName(), Log: log, Ready: d.Ready})
	// The socket outlives the drain, so that probes hear "not ready" rather than
	// nothing while the dataplane drains.
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(srvCtx, *socket) }()
	runErr := d.Run(ctx)
	stopSrv()
	if err := <-srvErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("snapshot server on %s: %w", *socket, err)
	}
	return runErr
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func proxyCmd(args []string, stderr io.Writer) error {
	fs := newFlagSet("proxy", "proxy --listen ADDR --to ADDR [--to ADDR ...] [flags]", stderr)
	var c common
	c.bind(fs)
	var o proxyOptions
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to accept HTTP on (IP:port)")
	fs.Var(&o.to, "to", "backend address IP:port (repeat for several)")
	fs.StringVar(&o.lb, "lb", "round-robin", "load-balancing policy: round-robin, weighted-round-robin, least-request, random, ring-hash, maglev")
	fs.StringVar(&o.hashHeader, "hash-header", "", "for ring-hash and maglev: hash on this request header (default: the client's IP)")
	fs.BoolVar(&o.tcp, "tcp", false, "proxy raw TCP instead of HTTP")
	fs.BoolVar(&o.noHTTP2, "no-http2", false, "serve HTTP/1.1 only; by default clients may also speak HTTP/2: cleartext with prior knowledge (h2c), or negotiated with ALPN h2 with --tls-cert")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate chain file: accept HTTPS instead of HTTP (with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&o.rateLimit, "rate-limit", "", "answer 429 to requests over this rate, REQUESTS/INTERVAL (e.g. 100/1s, 5/1m); one bucket for the process, shared by its cores")
	fs.UintVar(&o.rateBurst, "rate-limit-burst", 0, "with --rate-limit: bucket size (default: REQUESTS)")
	fs.BoolVar(&o.ratePerClient, "rate-limit-per-client", false, "with --rate-limit: one bucket per client address")
	fs.DurationVar(&o.requestHead, "request-head-timeout", 0, "HTTP: answer 408 to a request head not received whole in this time (default "+dataplanev1.DefaultRequestHeadTimeout.String()+")")
	fs.DurationVar(&o.requestBodyIdle, "request-body-idle-timeout", 0, "HTTP: give up on a request body when no byte of it comes for this long (default "+dataplanev1.DefaultRequestBodyIdleTimeout.String()+")")
	fs.DurationVar(&o.sendStall, "send-stall-timeout", 0, "close a connection when a send to the client (with --tcp, to either side) makes no progress for this long (default "+dataplanev1.DefaultSendStallTimeout.String()+")")
	fs.DurationVar(&o.keepAliveIdle, "keepalive-idle-timeout", 0, "HTTP: close a keep-alive connection idle this long between requests (default "+dataplanev1.DefaultKeepAliveIdleTimeout.String()+")")
	fs.DurationVar(&o.tunnelIdle, "tunnel-idle-timeout", 0, "close a tunnel (with --tcp every connection; else WebSocket and other upgrades) when nothing moves either way for this long (default "+dataplanev1.DefaultTunnelIdleTimeout.String()+")")
	fs.DurationVar(&o.responseHeader, "response-header-timeout", 0, "HTTP: answer 504 when a backend sends no response head this long after taking the request (default "+dataplanev1.DefaultResponseHeaderTimeout.String()+")")
	fs.DurationVar(&o.responseBodyIdle, "response-body-idle-timeout", 0, "HTTP: close both connections when no byte of a response body comes for this long (default "+dataplanev1.DefaultResponseBodyIdleTimeout.String()+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	snap, err := proxySnapshot(o)
	if err != nil {
		fs.Usage()
		return err
	}
	d, _, err := c.daemon(stderr)
	if err != nil {
		return err
	}
	statuses, err := d.Apply(context.Background(), snap)
	if err != nil {
		return err
	}
	for _, s := range statuses {
		if !s.Bound {
			return fmt.Errorf("listen on %s: %w", s.Addr, s.Err)
		}
	}
	ctx, cancel := signalContext()
	defer cancel()
	go d.ReopenOnSignal(ctx, syscall.SIGHUP)
	return d.Run(ctx)
}

// proxyOptions are the flags of the one-line proxy command.
type proxyOptions struct {
	listen        string
	to            stringList
	lb            string
	hashHeader    string
	tcp           bool
	noHTTP2       bool
	rateLimit     string // REQUESTS/INTERVAL; empty: none
	rateBurst     uint
	ratePerClient bool
	// tlsCert and tlsKey are PEM files: set, the listener is HTTPS.
	tlsCert, tlsKey string

	// Timeouts; zero leaves the dataplane default.
	requestHead, requestBodyIdle, sendStall, keepAliveIdle, tunnelIdle time.Duration
	responseHeader, responseBodyIdle                                   time.Duration
}

// proxySpec turns the flags of the one-line proxy command into the builder's Proxy;
// Snapshot builds and validates it.
func proxySpec(o proxyOptions) (lb.Proxy, error) {
	p := lb.Proxy{
		Listen: o.listen, Backends: o.to, TCP: o.tcp, HashHeader: o.hashHeader,
		RequestHead: o.requestHead, RequestBodyIdle: o.requestBodyIdle, SendStall: o.sendStall, KeepAliveIdle: o.keepAliveIdle,
		TunnelIdle: o.tunnelIdle, ResponseHeader: o.responseHeader, ResponseBodyIdle: o.responseBodyIdle,
	}
	if _, err := netip.ParseAddrPort(o.listen); err != nil {
		return p, fmt.Errorf("--listen %q: want IP:port: %w", o.listen, err)
	}
	if len(o.to) == 0 {
		return p, errors.New("--to: at least one backend address is required")
	}
	for _, t := range o.to {
		if _, err := netip.ParseAddrPort(t); err != nil {
			return p, fmt.Errorf("--to %q: want IP:port: %w", t, err)
		}
	}
	policy, err := lb.ParsePolicy(o.lb)
	if err != nil {
		return p, fmt.Errorf("--lb %w", err)
	}
	p.Policy = policy
	if o.rateLimit != "" {
		if o.tcp {
			return p, errors.New("--rate-limit: HTTP only, not with --tcp")
		}
		if p.RateLimit, err = parseRateLimit(o.rateLimit); err != nil {
			return p, err
		}
		if o.rateBurst > math.MaxUint32 {
			return p, fmt.Errorf("--rate-limit-burst %d: too large", o.rateBurst)
		}
		p.RateLimit.Burst, p.RateLimit.PerClientIp = uint32(o.rateBurst), o.ratePerClient
	} else if o.rateBurst != 0 || o.ratePerClient {
		return p, errors.New("--rate-limit-burst and --rate-limit-per-client need --rate-limit")
	}
	return p, nil
}

// proxySnapshot returns the snapshot of the one-line proxy command.
func proxySnapshot(o proxyOptions) (*dataplanev1.Snapshot, error) {
	p, err := proxySpec(o)
	if err != nil {
		return nil, err
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.noHTTP2 && o.tcp {
		return nil, errors.New("--no-http2: HTTP only, not with --tcp")
	}
	var cert, key []byte
	if o.tlsCert != "" {
		if o.tcp {
			return nil, errors.New("--tls-cert: HTTP only, not with --tcp")
		}
		if cert, err = os.ReadFile(o.tlsCert); err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		if key, err = os.ReadFile(o.tlsKey); err != nil {
			return nil, fmt.Errorf("--tls-key: %w", err)
		}
	}
	snap, err := p.Snapshot()
	if err != nil || (cert == nil && !o.noHTTP2) {
		return snap, err
	}
	l := snap.GetListeners()[0]
	if cert != nil {
		l.Protocol = dataplanev1.Listener_HTTPS
		l.Certificates = []*dataplanev1.TLSCertificate{{CertPem: cert, KeyPem: key}}
	}
	if o.noHTTP2 {
		l.Http2 = &dataplanev1.HTTP2Options{Disabled: true}
	}
	snap.Hash = dataplanev1.Hash(snap)
	if err := dataplanev1.Validate(snap); err != nil {
		return nil, fmt.Errorf("invalid proxy settings: %w", err)
	}
	return snap, nil
}

// parseRateLimit parses --rate-limit, REQUESTS/INTERVAL.
func parseRateLimit(v string) (*dataplanev1.LocalRateLimit, error) {
	n, d, ok := strings.Cut(v, "/")
	requests, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || requests == 0 {
		return nil, fmt.Errorf("--rate-limit %q: want REQUESTS/INTERVAL with REQUESTS at least 1, e.g. 100/1s", v)
	}
	interval, err := time.ParseDuration(d)
	if err != nil {
		return nil, fmt.Errorf("--rate-limit %q: interval: %w", v, err)
	}
	return &dataplanev1.LocalRateLimit{Bucket: "proxy", Requests: uint32(requests), Interval: durationpb.New(interval)}, nil
}

func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "validate --config FILE", stderr)
	file := fs.String("config", "", "standalone config to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		fs.Usage()
		return errors.New("validate needs --config")
	}
	snap, err := dataplanev1.Load(*file)
	if err != nil {
		return err
	}
	if snap.GetHash() == "" {
		snap.Hash = dataplanev1.Hash(snap)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	fmt.Fprintf(stdout, "%s: valid (%d listeners, %d backend groups)\n", *file, len(snap.GetListeners()), len(snap.GetBackendGroups()))
	return nil
}
