// Command loadbench is `make bench`'s load benchmark: it measures HTTP/1.1 reverse
// proxies side by side on loopback and prints one table.
//
// A fixed backend (nginx answering 100 bytes) runs on one core with wrk; each proxy in
// turn (flax on io_uring, flax on the portable netpoll engine, nginx, HAProxy; all with
// upstream keep-alive) runs alone on the other core. For each it reports requests/s,
// latency p50/p99 from wrk, and the proxy's CPU time per request read from /proc, plus
// each figure's ratio to nginx's.
//
// The machine is shared and noisy, with slow and fast periods lasting minutes, so the
// proxies take turns in short slots (-duration) for several rounds (-rounds), in an
// order that rotates every round, and a ratio to nginx is taken within each round
// (each proxy's slot against nginx's slot of the same round): the table shows the
// median over rounds of those paired ratios, and each round's, next to the medians of
// the raw figures.
//
// With -https the proxies terminate TLS (a self-signed ECDSA P-256 certificate made for
// the run) and wrk connects over https, keeping its connections: the figures are the
// record layer's, one handshake per connection. flax-uring then serves TLS on its
// io_uring workers (--https-engine uring); flax-uring-split is the io_uring engine with
// HTTPS handed to a netpoll engine beside it (--https-engine netpoll).
//
// With -handshakes the proxies terminate TLS as with -https, and the load is full
// handshakes: a Go client in this process (pinned to the load CPU with the backend)
// keeps 64 connections in progress, each dialing, completing a TLS 1.3 handshake
// (X25519, the proxy's ECDSA P-256 certificate) without session resumption (no
// session cache: wrk and h2load resume sessions when they reconnect), sending one GET
// with Connection: close and reading the response. The table gives handshakes per
// second, a whole connection's latency, proxy CPU per handshake and handshakes per
// CPU-second, with ratios to nginx's.
//
// With -h2 the load is HTTP/2: h2load (nghttp2-client) with 16 connections of up to 20
// concurrent streams each, over cleartext with prior knowledge (h2c), or with -https
// over TLS negotiating h2 by ALPN; nginx listens with http2, HAProxy with proto h2 (alpn
// h2 over TLS), flax serves HTTP/2 by default. The upstream side stays HTTP/1.1 with
// keep-alive. h2load reports no latency percentiles: p50 and p99 are left out.
//
// With -grpc the load is gRPC unary calls over h2c (h2load, as with -h2) through each
// proxy to an h2c gRPC backend; grpc.go says how each proxy is set up.
//
// With -tls-passthrough the backend (nginx) terminates TLS and the proxies forward the
// TLS bytes unchanged, choosing the backend by the ClientHello's server name: flax on a
// TLS listener (run --config, a passthrough route per name and a catch-all), HAProxy in
// mode tcp waiting for the ClientHello and routing on req.ssl_sni. nginx as a proxy
// would need its stream module (not in nginx-light), so the ratios are to HAProxy's.
// wrk keeps its connections: the figures are the tunnel's per request, one ClientHello
// read and one backend connect per connection.
//
// With -backend-tls the backend (nginx) serves over TLS 1.3 and the proxies connect to
// it with TLS, verifying its certificate, on keep-alive connections: flax on an HTTP
// listener (run --config) whose group has tls, nginx with proxy_ssl (verify, session
// reuse). wrk speaks plain HTTP to the proxies: the figures are the origination of TLS,
// sealing each request and opening each response, one handshake per upstream
// connection. Ratios are to nginx's.
//
// With -udp the load is UDP datagrams through a UDP listener to a UDP echo
// backend: flax on io_uring and on epoll, nginx with its stream module; udp.go
// says how.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

type result struct {
	name      string
	rps       float64
	p50, p99  time.Duration
	cpuPerReq time.Duration
	requests  float64
	errors    string
	skipped   string
}

const nginxEvents = "events { worker_connections 20000; }"

type proxy struct {
	name  string
	start func(dir string, listen, backend string) (*exec.Cmd, error)
}

func main() {
	flaxBin := flag.String("flax", "bin/flax-dataplane", "flax-dataplane binary")
	duration := flag.Duration("duration", 3*time.Second, "wrk run time of one proxy's slot in a round")
	rounds := flag.Int("rounds", 5, "rounds: every proxy takes one slot per round, in an order rotated every round")
	conns := flag.Int("connections", 64, "wrk connections")
	proxyCPU := flag.Int("proxy-cpu", 0, "CPU the proxy under test is pinned to")
	loadCPU := flag.Int("load-cpu", 1, "CPU wrk and the backend are pinned to")
	only := flag.String("only", "", "comma-separated subset of proxies to run (flax-uring,flax-netpoll,nginx,haproxy; flax-uring-base with -flax-base; flax-uring-split with -https)")
	flaxBase := flag.String("flax-base", "", "another flax-dataplane binary (say, built from the commit before a change) that takes its own io_uring slot, flax-uring-base, in every round: the change's cost is its ratio to nginx next to the base's")
	https := flag.Bool("https", false, "terminate TLS in the proxies and load them over https (keep-alive connections)")
	h2 := flag.Bool("h2", false, "load the proxies with HTTP/2: h2load -c16 -m20 (h2c with prior knowledge; over TLS with ALPN h2 with -https)")
	handshakes := flag.Bool("handshakes", false, "full TLS 1.3 handshakes: a client without session cache opens a connection per request (implies -https); reports handshakes per CPU-second")
	grpcBench := flag.Bool("grpc", false, "load the proxies with gRPC unary calls (h2load -c16 -m20 over h2c) to an h2c gRPC backend; ratios to nginx (grpc_pass)")
	serveGRPCAddr := flag.String("serve-grpc", "", "internal: serve the -grpc benchmark's gRPC backend on this address")
	udpBench := flag.Bool("udp", false, "UDP datagrams through a UDP listener to a UDP echo: flax on io_uring and on epoll, nginx's stream module (udp); exchanges per CPU-second, ratios to nginx")
	serveUDPEchoAddr := flag.String("serve-udp-echo", "", "internal: serve the -udp benchmark's UDP echo on this address")
	backendTLS := flag.Bool("backend-tls", false, "TLS from the proxies to the backend (nginx over TLS 1.3), plain HTTP from wrk; flax-uring, flax-netpoll and nginx, ratios to nginx")
	passthrough := flag.Bool("tls-passthrough", false, "TLS terminated by the backend, passed through by the proxies routing on SNI (flax TLS listener, HAProxy mode tcp with req.ssl_sni); ratios to HAProxy")
	flag.Parse()
	if *flaxBase != "" {
		b, err := filepath.Abs(*flaxBase)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(2)
		}
		baseBin = b
	}
	if *serveUDPEchoAddr != "" {
		if err := serveUDPEcho(*serveUDPEchoAddr); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if *udpBench {
		if *https || *passthrough || *h2 || *handshakes || *grpcBench || *backendTLS {
			fmt.Fprintln(os.Stderr, "loadbench: -udp excludes the other benchmarks")
			os.Exit(2)
		}
		if err := runUDP(*flaxBin, *duration, *rounds, *proxyCPU, *loadCPU, *only); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if *serveGRPCAddr != "" {
		if err := serveGRPC(*serveGRPCAddr); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if *grpcBench {
		if *https || *passthrough || *h2 || *handshakes {
			fmt.Fprintln(os.Stderr, "loadbench: -grpc excludes -https, -h2, -handshakes and -tls-passthrough")
			os.Exit(2)
		}
		if err := runGRPC(*flaxBin, *duration, *rounds, *proxyCPU, *loadCPU, *only); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if *h2 && *passthrough {
		fmt.Fprintln(os.Stderr, "loadbench: -h2 and -tls-passthrough exclude each other")
		os.Exit(2)
	}
	useH2 = *h2
	useHandshakes = *handshakes
	if *handshakes && (*h2 || *passthrough) {
		fmt.Fprintln(os.Stderr, "loadbench: -handshakes excludes -h2 and -tls-passthrough")
		os.Exit(2)
	}
	if *handshakes {
		*https = true
		if err := pinForHandshakes(*loadCPU); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
	}
	if *https && *passthrough {
		fmt.Fprintln(os.Stderr, "loadbench: -https and -tls-passthrough exclude each other")
		os.Exit(2)
	}
	if *backendTLS {
		if *https || *passthrough || *h2 {
			fmt.Fprintln(os.Stderr, "loadbench: -backend-tls excludes -https, -h2 and -tls-passthrough")
			os.Exit(2)
		}
		if err := runBackendTLS(*flaxBin, *duration, *rounds, *conns, *proxyCPU, *loadCPU, *only); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if *passthrough {
		if err := runPassthrough(*flaxBin, *duration, *rounds, *conns, *proxyCPU, *loadCPU, *only); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*flaxBin, *flaxBase, *duration, *rounds, *conns, *proxyCPU, *loadCPU, *only, *https); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run(flaxBin, flaxBase string, d time.Duration, rounds, conns, proxyCPU, loadCPU int, only string, https bool) error {
	tools := []string{"nginx", "haproxy", "wrk", "taskset"}
	if useH2 {
		tools = append(tools, "h2load")
	}
	flaxBin, dir, err := setUp(flaxBin, tools...)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	const backend = "127.0.0.1:18090"
	const listen = "127.0.0.1:18080"
	be, err := startReplyBackend(dir, loadCPU, backend, "", "")
	if err != nil {
		return err
	}
	defer benchproc.Stop(be)

	// TLS settings of each proxy, empty without -https.
	var flaxTLS []string
	var nginxTLS, haproxyTLS string
	scheme = "http"
	if https {
		certFile, keyFile, bothFile, err := writeCert(dir)
		if err != nil {
			return err
		}
		flaxTLS = []string{"--tls-cert", certFile, "--tls-key", keyFile}
		// nginx 1.22 leaves TLS 1.3 out of its default protocols.
		nginxTLS = fmt.Sprintf(" ssl; ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.2 TLSv1.3", certFile, keyFile)
		haproxyTLS = " ssl crt " + bothFile
		scheme = "https"
	}
	if useH2 {
		// nginx 1.22 syntax (listen ... http2); HAProxy takes h2c with proto h2,
		// h2 over TLS by ALPN.
		nginxTLS = " http2" + nginxTLS
		if https {
			haproxyTLS += " alpn h2,http/1.1"
		} else {
			haproxyTLS += " proto h2"
		}
	}
	flax := func(args ...string) func(string, string, string) (*exec.Cmd, error) {
		return func(_ string, l, b string) (*exec.Cmd, error) {
			a := append([]string{"proxy", "--listen", l, "--to", b, "--workers", "1"}, args...)
			return benchproc.StartPinned(proxyCPU, flaxBin, append(a, flaxTLS...)...)
		}
	}
	proxies := []proxy{
		{"flax-uring", flax("--engine", "uring", "--https-engine", "uring")},
		{"flax-netpoll", flax("--engine", "netpoll")},
		{"nginx", func(dir string, l, b string) (*exec.Cmd, error) {
			return benchproc.StartNginx(filepath.Join(dir, "nginx"), proxyCPU, nginxEvents, fmt.Sprintf(`
upstream be { server %s; keepalive 128; keepalive_requests 1000000; }
server { listen %s backlog=4096%s; access_log off; keepalive_requests 1000000;
  location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }`, b, l, nginxTLS))
		}},
		{"haproxy", func(dir string, l, b string) (*exec.Cmd, error) {
			return startHAProxy(dir, proxyCPU, fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s%s
  default_backend be
backend be
  server s1 %s
`, l, haproxyTLS, b))
		}},
	}

	if https {
		proxies = slices.Insert(proxies, 1, proxy{"flax-uring-split", flax("--engine", "uring", "--https-engine", "netpoll")})
	}
	if flaxBase != "" {
		base, err := filepath.Abs(flaxBase)
		if err != nil {
			return err
		}
		proxies = append(proxies, proxy{"flax-uring-base", func(_ string, l, b string) (*exec.Cmd, error) {
			a := append([]string{"proxy", "--listen", l, "--to", b, "--workers", "1", "--engine", "uring"}, flaxTLS...)
			return benchproc.StartPinned(proxyCPU, base, a...)
		}})
	}
	runRounds(picked(proxies, only), dir, listen, backend, d, rounds, conns, proxyCPU, loadCPU, "nginx")
	return nil
}

// debianPackages names the Debian package of each tool the benchmarks run.
var debianPackages = map[string]string{
	"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk", "h2load": "nghttp2-client", "taskset": "util-linux",
}

// setUp checks that tools are installed, makes flaxBin absolute and creates the
// run's temporary folder, which the caller removes.
func setUp(flaxBin string, tools ...string) (bin, dir string, err error) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return "", "", fmt.Errorf("%s not found (apt-get install %s): %w", tool, debianPackages[tool], err)
		}
	}
	if bin, err = filepath.Abs(flaxBin); err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "flax-loadbench-")
	return bin, dir, err
}

// flaxFromConfig returns flax on each engine as a proxy of the benchmark, run from
// the configuration file cfg with one worker on cpu and no admin server.
func flaxFromConfig(bin, cfg string, cpu int) []proxy {
	flax := func(engine string) func(string, string, string) (*exec.Cmd, error) {
		return func(string, string, string) (*exec.Cmd, error) {
			return benchproc.StartPinned(cpu, bin, "run", "--config", cfg, "--workers", "1", "--engine", engine, "--admin-address", "")
		}
	}
	ps := []proxy{{"flax-uring", flax("uring")}, {"flax-netpoll", flax("netpoll")}}
	if baseBin != "" {
		ps = append(ps, proxy{"flax-uring-base", func(string, string, string) (*exec.Cmd, error) {
			return benchproc.StartPinned(cpu, baseBin, "run", "--config", cfg, "--workers", "1", "--engine", "uring", "--admin-address", "")
		}})
	}
	return ps
}

// startReplyBackend starts the nginx backend of the HTTP passes on addr, pinned
// to cpu, and waits until it listens: 100-byte replies on keep-alive
// connections. listenOpts follows the address in its listen line (" ssl"),
// directives go in its server block (certificates).
func startReplyBackend(dir string, cpu int, addr, listenOpts, directives string) (*exec.Cmd, error) {
	be, err := benchproc.StartNginx(filepath.Join(dir, "backend"), cpu, nginxEvents, fmt.Sprintf(`
server { listen %s%s backlog=4096; %s access_log off; keepalive_requests 1000000;
  location / { default_type text/plain; return 200 "%s"; } }`, addr, listenOpts, directives, strings.Repeat("x", 99)+"\n"))
	if err != nil {
		return nil, fmt.Errorf("start backend: %w", err)
	}
	if err := benchproc.WaitListen(addr); err != nil {
		benchproc.Stop(be)
		return nil, err
	}
	return be, nil
}

// writeFlaxConfig writes the flax configuration file name in dir from yaml,
// in which {port} stands for the port of listen and {endpoint} for backend as
// an endpoint ({address: ..., port: ...}), and returns its path.
func writeFlaxConfig(dir, name, listen, backend, yaml string) (string, error) {
	host, port, _ := strings.Cut(backend, ":")
	_, lport, _ := strings.Cut(listen, ":")
	yaml = strings.NewReplacer("{port}", lport, "{endpoint}", fmt.Sprintf("{address: %s, port: %s}", host, port)).Replace(yaml)
	cfg := filepath.Join(dir, name)
	return cfg, os.WriteFile(cfg, []byte(yaml), 0o644)
}

// baseBin is -flax-base made absolute: the passes that run flax from a
// configuration file give it a slot of its own, flax-uring-base.
var baseBin string

// startHAProxy starts HAProxy on cpu with one thread, the defaults and sections of
// config after its global section, written into dir.
func startHAProxy(dir string, cpu int, config string) (*exec.Cmd, error) {
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte("global\n  nbthread 1\n  maxconn 8000\n"+config), 0o644); err != nil {
		return nil, err
	}
	return benchproc.StartPinned(cpu, "haproxy", "-db", "-f", cfg)
}

// picked returns the proxies only names (all when empty).
func picked(proxies []proxy, only string) []proxy {
	var out []proxy
	for _, p := range proxies {
		if only == "" || strings.Contains(","+only+",", ","+p.name+",") {
			out = append(out, p)
		}
	}
	return out
}

// runRounds measures every proxy once per round, in an order rotated every round, and
// prints the table of ratios to ref's slot.
func runRounds(picked []proxy, dir, listen, backend string, d time.Duration, n, conns, proxyCPU, loadCPU int, ref string) {
	var all [][]result
	for round := range max(n, 1) {
		var rs []result
		for i := range picked {
			p := picked[(i+round)%len(picked)]
			what := fmt.Sprintf("wrk -c%d", conns)
			if useH2 {
				what = fmt.Sprintf("h2load -c%d -m%d", h2loadClients, h2loadStreams)
			}
			if useHandshakes {
				what = fmt.Sprintf("%d connections of full handshakes", handshakeConns)
			}
			if useUDP {
				what = fmt.Sprintf("%d UDP clients of %d datagrams in flight", udpClients, udpWindow)
			}
			fmt.Fprintf(os.Stderr, "loadbench: round %d/%d: %s: starting, then %s for %s\n", round+1, n, p.name, what, d)
			r := measure(p, dir, listen, backend, d, conns, loadCPU)
			if r.skipped != "" {
				fmt.Fprintf(os.Stderr, "loadbench: %s: skipped: %s\n", p.name, r.skipped)
			}
			rs = append(rs, r)
		}
		all = append(all, rs)
	}
	printTable(summarize(all, names(picked), ref), proxyCPU, conns, d, len(all), ref)
}

func names(ps []proxy) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.name)
	}
	return n
}

func measure(p proxy, dir, listen, backend string, d time.Duration, conns, loadCPU int) result {
	r := result{name: p.name}
	sub := filepath.Join(dir, p.name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	// flax binds with SO_REUSEPORT: a listener of another process on the port (another
	// run of this benchmark on a shared machine) would silently take a share of the
	// connections.
	free := portFree
	if useUDP {
		free = udpPortFree
	}
	if err := free(listen); err != nil {
		r.skipped = err.Error()
		return r
	}
	cmd, err := p.start(sub, listen, backend)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer benchproc.Stop(cmd)
	if useUDP {
		return measureUDP(r, cmd, listen, d)
	}
	if err := benchproc.WaitListen(listen); err != nil {
		r.skipped = err.Error()
		return r
	}
	if useHandshakes {
		return measureHandshakes(r, cmd.Process.Pid, listen, d)
	}
	// Warm up connections and pools, then measure.
	if _, err := load(loadCPU, listen, conns, 2*time.Second); err != nil {
		r.skipped = err.Error()
		return r
	}
	cpu0, err := benchproc.TreeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	out, err := load(loadCPU, listen, conns, d)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	cpu1, err := benchproc.TreeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	if useH2 {
		parseH2load(out, &r)
	} else {
		parseWrk(out, &r)
	}
	if r.requests > 0 {
		r.cpuPerReq = time.Duration(float64(cpu1-cpu0) / r.requests)
	}
	return r
}

// portFree fails when some process listens on addr.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use by another process (another benchmark run?): %w", addr, err)
	}
	return l.Close()
}

// measureHandshakes is measure's -handshakes part, once the proxy (pid) listens.
func measureHandshakes(r result, pid int, listen string, d time.Duration) result {
	// Warm up the upstream pool and the proxy's code paths.
	if st := handshakeLoad(listen, time.Second); st.ok == 0 {
		r.skipped = fmt.Sprintf("no handshake completed while warming up: %v", st.firstErr)
		return r
	}
	cpu0, err := benchproc.TreeCPU(pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	st := handshakeLoad(listen, d)
	cpu1, err := benchproc.TreeCPU(pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	st.fill(&r)
	if r.requests > 0 {
		r.cpuPerReq = time.Duration(float64(cpu1-cpu0) / r.requests)
	}
	return r
}

var (
	reqRe   = regexp.MustCompile(`(\d+) requests in`)
	rpsRe   = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latRe   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	errorRe = regexp.MustCompile(`(?m)^\s+(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

func parseWrk(out string, r *result) {
	if m := reqRe.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := rpsRe.FindStringSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range latRe.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		lat := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	var errs []string
	for _, m := range errorRe.FindAllStringSubmatch(out, -1) {
		errs = append(errs, strings.TrimSpace(m[1]))
	}
	r.errors = strings.Join(errs, "; ")
}

// load runs the load generator: wrk, or h2load with -h2.
func load(cpu int, addr string, conns int, d time.Duration) (string, error) {
	if useH2 {
		return h2load(cpu, addr, d)
	}
	return wrk(cpu, addr, conns, d)
}

// backendDesc says what the backend answers, for the table's title.
var backendDesc = "backend nginx 100 B replies"

// useH2 is -h2 (or -grpc).
var useH2 bool

// h2loadPath is the path h2load requests, h2loadArgs its further options (-grpc's
// request body and fields).
var (
	h2loadPath = "/"
	h2loadArgs []string
)

// HTTP/2 load: h2loadClients connections of up to h2loadStreams streams each.
const h2loadClients, h2loadStreams = 16, 20

func h2load(cpu int, addr string, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	args := append([]string{
		"-c", strconv.Itoa(cpu), "h2load", "-t1",
		"-c" + strconv.Itoa(h2loadClients), "-m" + strconv.Itoa(h2loadStreams), "-D", strconv.Itoa(max(int(d.Seconds()), 1)),
	},
		h2loadArgs...)
	out, err := exec.CommandContext(ctx, "taskset", append(args, scheme+"://"+addr+h2loadPath)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("h2load: %w: %s", err, out)
	}
	return string(out), nil
}

var (
	h2ReqRe    = regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2RpsRe    = regexp.MustCompile(`finished in [\d.]+m?s, ([\d.]+) req/s`)
	h2StatusRe = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads h2load's summary: requests done, req/s, failures.
func parseH2load(out string, r *result) {
	var errs []string
	if m := h2ReqRe.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseFloat(m[1], 64)
		if m[3] != "0" || m[4] != "0" || m[5] != "0" {
			errs = append(errs, fmt.Sprintf("failed %s, errored %s, timeout %s", m[3], m[4], m[5]))
		}
	}
	if m := h2RpsRe.FindStringSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := h2StatusRe.FindStringSubmatch(out); m != nil && (m[3] != "0" || m[4] != "0") {
		errs = append(errs, fmt.Sprintf("non-2xx: %s 4xx, %s 5xx", m[3], m[4]))
	}
	r.errors = strings.Join(errs, "; ")
}

func wrk(cpu int, addr string, conns int, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), "wrk", "-t1",
		"-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", scheme+"://"+addr+"/").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %w: %s", err, out)
	}
	return string(out), nil
}

// summary is one proxy's figures over all rounds: medians of the raw figures, and the
// median and per-round values of the ratios to nginx's slot in the same round.
type summary struct {
	result              // medians of rps, p50, p99, cpuPerReq; errors of every round
	rpsX, cpuX, perCPUX float64
	rpsRounds           []float64
	skippedRounds       int
}

// summarize pairs every proxy's slot with ref's (nginx's) slot of the same round and takes
// medians over the rounds; rounds where either was skipped do not count.
func summarize(rounds [][]result, order []string, ref string) []summary {
	var out []summary
	for _, name := range order {
		s := summary{result: result{name: name}}
		var rps, p50, p99, cpu, rpsX, cpuX, perCPUX []float64
		errs := map[string]bool{}
		for _, rs := range rounds {
			r, base := find(rs, name), find(rs, ref)
			if r == nil || r.skipped != "" {
				s.skippedRounds++
				if r != nil && s.result.skipped == "" {
					s.result.skipped = r.skipped
				}
				continue
			}
			rps, p50, p99, cpu = append(rps, r.rps), append(p50, float64(r.p50)), append(p99, float64(r.p99)), append(cpu, float64(r.cpuPerReq))
			if r.errors != "" {
				errs[r.errors] = true
			}
			if base == nil || base.skipped != "" || base.rps == 0 || base.cpuPerReq == 0 || r.cpuPerReq == 0 {
				continue
			}
			rpsX = append(rpsX, r.rps/base.rps)
			cpuX = append(cpuX, float64(r.cpuPerReq)/float64(base.cpuPerReq))
			perCPUX = append(perCPUX, float64(base.cpuPerReq)/float64(r.cpuPerReq))
		}
		s.rps, s.p50, s.p99, s.cpuPerReq = median(rps), time.Duration(median(p50)), time.Duration(median(p99)), time.Duration(median(cpu))
		s.rpsX, s.cpuX, s.perCPUX, s.rpsRounds = median(rpsX), median(cpuX), median(perCPUX), rpsX
		for e := range errs {
			s.errors = strings.TrimPrefix(s.errors+"; "+e, "; ")
		}
		out = append(out, s)
	}
	return out
}

func find(rs []result, name string) *result {
	for i := range rs {
		if rs[i].name == name {
			return &rs[i]
		}
	}
	return nil
}

// median returns the median of v (the mean of the middle two for an even count), 0
// for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(ss []summary, proxyCPU, conns int, d time.Duration, rounds int, ref string) {
	x := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	loader := fmt.Sprintf("wrk -t1 -c%d", conns)
	if useH2 {
		loader = fmt.Sprintf("HTTP/2: h2load -t1 -c%d -m%d", h2loadClients, h2loadStreams)
	}
	unit := "req"
	if useUDP {
		loader = fmt.Sprintf("UDP: %d clients of %d datagrams of %d bytes in flight (an exchange: a datagram and its reply)", udpClients, udpWindow, udpPayload)
		unit = "xchg"
	}
	if useHandshakes {
		loader = fmt.Sprintf("full TLS 1.3 handshakes (X25519, ECDSA P-256, no resumption), one request per connection, %d at a time", handshakeConns)
		unit = "hs"
	}
	fmt.Printf("\nloopback %s, proxy pinned to CPU %d, %s, %d rounds of one %s slot per proxy, %s\n", scheme, proxyCPU, loader, rounds, d, backendDesc)
	fmt.Printf("medians over the rounds; x: ratio to %s's slot in the same round (median; each round's in the last column)\n", ref)
	fmt.Printf("%-17s %10s %6s %9s %9s %11s %6s %10s %6s  %-30s %s\n", "proxy", unit+"/s", "x", "p50", "p99", "cpu/"+unit, "x", unit+"/cpu-s", "x", unit+"/s x per round", "errors")
	for _, s := range ss {
		if s.rps == 0 {
			fmt.Printf("%-17s skipped: %s\n", s.name, s.result.skipped)
			continue
		}
		var per []string
		for _, v := range s.rpsRounds {
			per = append(per, fmt.Sprintf("%.2f", v))
		}
		lat := func(v time.Duration) string {
			if v == 0 {
				return "-"
			}
			return v.Round(time.Microsecond).String()
		}
		perCPU := "-"
		if s.cpuPerReq > 0 {
			perCPU = fmt.Sprintf("%.0f", float64(time.Second)/float64(s.cpuPerReq))
		}
		fmt.Printf("%-17s %10.0f %6s %9s %9s %9.1fµs %6s %10s %6s  %-30s %s\n", s.name, s.rps, x(s.rpsX),
			lat(s.p50), lat(s.p99),
			float64(s.cpuPerReq)/float64(time.Microsecond), x(s.cpuX), perCPU, x(s.perCPUX), strings.Join(per, " "), s.errors)
	}
}

// scheme is the scheme of wrk's URL: https with -https.
var scheme = "http"

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and its key
// into dir, as PEM files: the certificate, the key, and both in one (HAProxy's form).
func writeCert(dir string) (certFile, keyFile, bothFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "loadbench"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kpem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile, keyFile, bothFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "both.pem")
	for f, b := range map[string][]byte{certFile: cert, keyFile: kpem, bothFile: append(append([]byte{}, cert...), kpem...)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return certFile, keyFile, bothFile, nil
}

// runPassthrough is the -tls-passthrough benchmark: nginx terminates TLS behind the
// proxies, which route the unchanged TLS bytes by server name.
func runPassthrough(flaxBin string, d time.Duration, n, conns, proxyCPU, loadCPU int, only string) error {
	flaxBin, dir, err := setUp(flaxBin, "nginx", "haproxy", "wrk", "taskset")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, _, err := writeCert(dir)
	if err != nil {
		return err
	}
	const backend = "127.0.0.1:18090"
	const listen = "127.0.0.1:18080"
	be, err := startReplyBackend(dir, loadCPU, backend, " ssl", fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s;", certFile, keyFile))
	if err != nil {
		return err
	}
	defer benchproc.Stop(be)
	scheme = "https"
	// wrk sends the URL's host, 127.0.0.1, as its server name: an exact route would need
	// a DNS name, so the catch-all serves it, after a lookup that misses the exact and
	// wildcard names beside it (as HAProxy's req.ssl_sni test misses first).
	cfg, err := writeFlaxConfig(dir, "flax-tls.yaml", listen, backend, `listeners:
- name: tls
  address: 127.0.0.1
  port: {port}
  protocol: TLS
  tlsRoutes:
  - {name: other, hostnames: [other.example.com, "*.example.com"], backends: [{backendGroup: be, weight: 1}]}
  - {name: bench, backends: [{backendGroup: be, weight: 1}]}
backendGroups:
- name: be
  endpoints: [{endpoint}]
`)
	if err != nil {
		return err
	}
	proxies := append(flaxFromConfig(flaxBin, cfg, proxyCPU), []proxy{
		{"haproxy", func(dir string, l, b string) (*exec.Cmd, error) {
			return startHAProxy(dir, proxyCPU, fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s
  tcp-request inspect-delay 10s
  tcp-request content reject unless { req.ssl_hello_type 1 }
  use_backend other if { req.ssl_sni -i other.example.com }
  default_backend be
backend other
  server s1 %s
backend be
  server s1 %s
`, l, b, b))
		}},
	}...)
	runRounds(picked(proxies, only), dir, listen, backend, d, n, conns, proxyCPU, loadCPU, "haproxy")
	return nil
}

// runBackendTLS is the -backend-tls benchmark: nginx serves over TLS 1.3 behind the
// proxies, which connect to it with TLS on keep-alive connections.
func runBackendTLS(flaxBin string, d time.Duration, n, conns, proxyCPU, loadCPU int, only string) error {
	flaxBin, dir, err := setUp(flaxBin, "nginx", "wrk", "taskset")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, _, err := writeCert(dir)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	// Ports of their own, apart from the other modes'.
	const backend = "127.0.0.1:18590"
	const listen = "127.0.0.1:18580"
	be, err := startReplyBackend(dir, loadCPU, backend, " ssl",
		fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.3;", certFile, keyFile))
	if err != nil {
		return err
	}
	defer benchproc.Stop(be)
	backendDesc = "backend nginx over TLS 1.3, 100 B replies"
	cfg, err := writeFlaxConfig(dir, "flax-backend-tls.yaml", listen, backend, fmt.Sprintf(`listeners:
- name: web
  address: 127.0.0.1
  port: {port}
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: all
      matches: [{path: {type: PATH_PREFIX, value: /}}]
      backends: [{backendGroup: be, weight: 1}]
backendGroups:
- name: be
  tls: {serverName: localhost, caCertPem: %s}
  endpoints: [{endpoint}]
`, base64.StdEncoding.EncodeToString(certPEM)))
	if err != nil {
		return err
	}
	proxies := append(flaxFromConfig(flaxBin, cfg, proxyCPU), []proxy{
		{"nginx", func(dir string, l, b string) (*exec.Cmd, error) {
			return benchproc.StartNginx(filepath.Join(dir, "nginx"), proxyCPU, nginxEvents, fmt.Sprintf(`
upstream be { server %s; keepalive 128; keepalive_requests 1000000; }
server { listen %s backlog=4096; access_log off; keepalive_requests 1000000;
  location / { proxy_pass https://be; proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_ssl_server_name on; proxy_ssl_name localhost; proxy_ssl_verify on;
    proxy_ssl_protocols TLSv1.3; proxy_ssl_trusted_certificate %s; proxy_ssl_session_reuse on; } }`, b, l, certFile))
		}},
	}...)
	runRounds(picked(proxies, only), dir, listen, backend, d, n, conns, proxyCPU, loadCPU, "nginx")
	return nil
}
