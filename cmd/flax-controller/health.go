package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// healthServer serves /healthz and /readyz on a TCP address and on a unix socket.
// The manager's own health server binds only TCP; on a node where a replacement pod
// starts before this one exits, both pods' controllers bind the same 127.0.0.1 port
// (with SO_REUSEPORT), and a probe through it could be answered by either. The socket
// lives in the pod's own volume, so a probe through it judges this controller.
type healthServer struct {
	handler http.Handler
}

// newHealthServer serves the live checks under /healthz and the ready checks under
// /readyz, as controller-runtime's manager does (/readyz/NAME runs one check).
func newHealthServer(live, ready map[string]healthz.Checker) *healthServer {
	mux := http.NewServeMux()
	for path, checks := range map[string]map[string]healthz.Checker{"/healthz": live, "/readyz": ready} {
		h := &healthz.Handler{Checks: checks}
		mux.Handle(path, http.StripPrefix(path, h))
		mux.Handle(path+"/", http.StripPrefix(path, h))
	}
	return &healthServer{handler: mux}
}

// listen opens the TCP address (unless empty or "0") and the unix socket (unless
// empty).
func listen(addr, socket string, reusePort bool) ([]net.Listener, error) {
	var lns []net.Listener
	if addr != "" && addr != "0" {
		lc := net.ListenConfig{}
		if reusePort {
			lc.Control = setReusePort
		}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("health probe listen on %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	if socket != "" {
		// Listen removes a socket left by a previous run and creates the new one
		// with mode 0600: the probe runs as the container's user.
		ln, err := rpc.Listen(socket)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("health probe socket: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// serve serves on lns until ctx is done.
func (h *healthServer) serve(ctx context.Context, lns []net.Listener) {
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 5 * time.Second}
	for _, ln := range lns {
		go func() { _ = srv.Serve(ln) }()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

// setReusePort sets SO_REUSEPORT on a socket before it is bound.
func setReusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// probeCmd is `flax-controller probe`: GET a health path over the controller's unix
// socket; it succeeds only on a 2xx answer. The chart's exec probes run it.
func probeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "the controller's health socket (--health-probe-socket)")
	path := fs.String("path", "/readyz", "path to GET: /readyz or /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		fs.Usage()
		return errors.New("probe needs --socket")
	}
	cl := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *socket)
		},
	}}
	resp, err := cl.Get("http://flax-controller" + *path)
	if err != nil {
		return fmt.Errorf("GET %s on %s: %w", *path, *socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s: %d %s\n", *path, resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: HTTP %d", *path, resp.StatusCode)
	}
	return nil
}
