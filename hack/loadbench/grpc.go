package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

// The -grpc benchmark: gRPC unary calls over h2c through each proxy to an h2c
// backend, grpc-go's health service (grpc.health.v1.Health/Check, an empty request
// and a two-byte answer with grpc-status in the trailers), run by this program
// (-serve-grpc) pinned to the load core. h2load sends each call as a POST of the
// five-byte gRPC frame of the empty request. The proxies speak h2c on both sides:
// flax with a backend group of protocol H2C (run --config), nginx with grpc_pass and
// an upstream keep-alive pool, HAProxy with proto h2 on its bind and server lines.

// grpcCallPath is the method every call invokes.
const grpcCallPath = "/grpc.health.v1.Health/Check"

// serveGRPC runs the gRPC backend on addr until the process is killed.
func serveGRPC(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer()) // "" is SERVING
	return s.Serve(ln)
}

// runGRPC is the -grpc benchmark.
func runGRPC(flaxBin string, d time.Duration, rounds, proxyCPU, loadCPU int, only string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	flaxBin, dir, err := setUp(flaxBin, "nginx", "haproxy", "h2load", "taskset")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Ports of their own, so that this benchmark may run beside the others.
	const backend = "127.0.0.1:18290"
	const listen = "127.0.0.1:18280"
	be, err := benchproc.StartPinned(loadCPU, self, "-serve-grpc", backend)
	if err != nil {
		return fmt.Errorf("start the gRPC backend: %w", err)
	}
	defer benchproc.Stop(be)
	if err := benchproc.WaitListen(backend); err != nil {
		return err
	}
	// The empty HealthCheckRequest as a gRPC message: uncompressed, length 0.
	body := filepath.Join(dir, "call.bin")
	if err := os.WriteFile(body, make([]byte, 5), 0o644); err != nil {
		return err
	}
	useH2, scheme = true, "http"
	h2loadPath = grpcCallPath
	backendDesc = "backend grpc-go health service (" + grpcCallPath + ")"
	h2loadArgs = []string{"-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"}

	cfg, err := writeFlaxConfig(dir, "flax-grpc.yaml", listen, backend, `listeners:
- name: grpc
  address: 127.0.0.1
  port: {port}
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: health
      backends: [{backendGroup: be, weight: 1}]
backendGroups:
- name: be
  protocol: H2C
  endpoints: [{endpoint}]
`)
	if err != nil {
		return err
	}
	proxies := append(flaxFromConfig(flaxBin, cfg, proxyCPU), []proxy{
		{"nginx", func(dir string, l, b string) (*exec.Cmd, error) {
			return benchproc.StartNginx(filepath.Join(dir, "nginx"), proxyCPU, nginxEvents, fmt.Sprintf(`
upstream be { server %s; keepalive 128; keepalive_requests 1000000; }
server { listen %s backlog=4096 http2; access_log off; keepalive_requests 1000000;
  location / { grpc_pass grpc://be; } }`, b, l))
		}},
		{"haproxy", func(dir string, l, b string) (*exec.Cmd, error) {
			return startHAProxy(dir, proxyCPU, fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s proto h2
  default_backend be
backend be
  server s1 %s proto h2
`, l, b))
		}},
	}...)
	runRounds(picked(proxies, only), dir, listen, backend, d, rounds, 0, proxyCPU, loadCPU, "nginx")
	return nil
}
