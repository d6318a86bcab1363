// Package admin serves the dataplane's operational HTTP endpoints: Prometheus /metrics,
// /healthz (the process is alive), /readyz (what Options.Ready says; the daemon's says a
// config is applied, the engine serves and the dataplane is not draining), /config_dump (the snapshot being served, to loopback clients only),
// the routes its user adds (Options.Routes: the daemon's runtime API, /backends) and,
// when enabled, pprof. It runs on Go's net/http, apart from the proxy's workers.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

// Options configures the admin server.
type Options struct {
	// Addr is the listen address, such as 127.0.0.1:9901.
	Addr string
	// Collectors are registered on the server's own Prometheus registry.
	Collectors []prometheus.Collector
	// ConfigDump returns the served config as JSON; nil disables /config_dump.
	ConfigDump func() ([]byte, error)
	// Pprof mounts net/http/pprof under /debug/pprof/.
	Pprof bool
	// ReusePort binds Addr with SO_REUSEPORT, so that a second dataplane of the same
	// user (a DaemonSet pod replacing this one on the same node) can bind it too;
	// the kernel then spreads connections between both. Probes that must judge one
	// process should not go through a shared port.
	ReusePort bool
	// Ready decides /readyz: nil when the dataplane is ready, else why not. Without
	// it, /readyz answers like /healthz.
	Ready func() error
	// Routes are more handlers to serve, such as the daemon's runtime API.
	Routes []Route
}

// Route is a handler the admin server serves besides its own.
type Route struct {
	// Pattern is an http.ServeMux pattern, such as "GET /backends/{group}".
	Pattern string
	// Handler serves it.
	Handler http.Handler
	// LoopbackOnly answers 403 to clients that are not on a loopback address,
	// as /config_dump does.
	LoopbackOnly bool
}

// LoopbackOnly wraps h so that it answers 403 to clients not on a loopback address.
func LoopbackOnly(what string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			http.Error(w, what+" is served to loopback clients only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// fromLoopback reports whether r comes from a loopback address.
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Server is the admin HTTP server.
type Server struct {
	opts Options
	srv  *http.Server
	ln   net.Listener
}

// New creates a server; Start binds it.
func New(opts Options) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range opts.Collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	s := &Server{opts: opts}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", s.readyz)
	if opts.ConfigDump != nil {
		mux.HandleFunc("/config_dump", s.configDump)
	}
	for _, rt := range opts.Routes {
		h := rt.Handler
		if rt.LoopbackOnly {
			h = LoopbackOnly(rt.Pattern, h)
		}
		if err := handle(mux, rt.Pattern, h); err != nil {
			return nil, err
		}
	}
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// handle registers h on mux, returning the error ServeMux panics with (a bad or
// conflicting pattern).
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("admin route %q: %v", pattern, r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Start binds the listen address and serves in the background.
func (s *Server) Start() error {
	var lc net.ListenConfig
	if s.opts.ReusePort {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(context.Background(), "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // Serve only fails when the listener breaks; /healthz then fails too.
		}
	}()
	return nil
}

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler returns the server's handler, for tests that serve requests without a
// socket.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// reusePort sets SO_REUSEPORT on a socket before it is bound.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) configDump(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "config_dump is served to loopback clients only", http.StatusForbidden)
		return
	}
	b, err := s.opts.ConfigDump()
	if err != nil {
		http.Error(w, "config dump: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
