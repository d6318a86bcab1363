// Command hostilebench is `make bench-hostile`'s hostile-load benchmark: it runs
// attacks, each bounded in connection count and duration, against HTTP/1.1 reverse
// proxies on loopback and prints, per attack, one markdown table with the proxies side
// by side.
//
// The proxies are flax-dataplane on io_uring, flax-dataplane on netpoll (both in
// `proxy` mode, except for the silent-backend attack, which needs a second route and
// runs `run --config` with the same single-listener config plus a /silent route) and
// nginx (a generated config in a temp dir, its own prefix, not a daemon, stock timeouts
// unless -timeout, worker_connections set to -cap). All sit in front of the same small Go HTTP backend,
// which this program serves itself in a child process. Each proxy is started fresh for
// each attack, alone, pinned to -proxy-cpu; the backend, the attackers and the probe
// client run on -load-cpu.
//
// Attacks:
//
//	slowloris    -conns connections send a request head one byte every -interval
//	slow-body    -conns POSTs announce a large Content-Length, then one byte every -interval
//	silent       -conns requests routed to a second backend that accepts and never answers
//	stalled      -stalled-conns requests for a -large-size response, never read
//	one-byte     -flood-conns connections each send one byte and close
//	conn-flood   -cap+-over-cap idle connections held open, more than the proxy's cap
//
// For each attack and proxy the table reports the proxy's resident memory (its process
// tree's VmRSS) idle before the attack, at its peak during the attack and -settle after
// the attack's connections are closed; the share of a normal client's requests (one
// every 100 ms, a new connection each, -probe-timeout each) that got a 200 during the
// attack; when the proxy released the attacker's connections (closed them or answered
// them), or how many were still open at the end of the bound; and the proxy's sockets
// on the listen port still open after the settle time (a leak when not 0).
//
// -timeout sets every proxy's client and upstream timeouts alike (flax through its
// proxy flags or, for the silent attack, its config), and -cap both nginx's
// worker_connections and flax's --max-connections; -flax-args adds other flags. The machine is shared and noisy; the figures are for comparing the
// proxies within one run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

// Ports on 127.0.0.1, away from loadbench's 18080/18090.
const (
	listenAddr  = "127.0.0.1:18180"
	backendAddr = "127.0.0.1:18190"
	silentAddr  = "127.0.0.1:18191"
)

type config struct {
	flaxBin      string
	flaxArgs     []string
	proxyCPU     int
	loadCPU      int
	duration     time.Duration // bound of each attack
	settle       time.Duration // wait after the attack before "RSS after"
	interval     time.Duration // slowloris / slow-body byte interval
	conns        int           // slowloris, slow-body, silent connections
	stalledConns int
	largeSize    int64
	floodConns   int // one-byte flood connections
	capConns     int // nginx worker_connections; conn-flood opens capConns+overCap
	overCap      int
	probeTimeout time.Duration
	timeout      time.Duration // 0: each proxy's own defaults
}

type proxy struct {
	name  string
	start func(dir string, c *config, silentRoute bool) (*exec.Cmd, error)
}

func main() {
	var c config
	var flaxArgs, only, attacks string
	var quick bool
	var backendMode bool
	flag.StringVar(&c.flaxBin, "flax", "bin/flax-dataplane", "flax-dataplane binary")
	flag.StringVar(&flaxArgs, "flax-args", "", "extra flags for flax-dataplane, space-separated (e.g. timeouts or a connection cap)")
	flag.IntVar(&c.proxyCPU, "proxy-cpu", 0, "CPU the proxy under test is pinned to")
	flag.IntVar(&c.loadCPU, "load-cpu", 1, "CPU the backend, the attackers and the probe client are pinned to")
	flag.DurationVar(&c.duration, "duration", 8*time.Second, "bound of each attack")
	flag.DurationVar(&c.settle, "settle", 3*time.Second, "wait after an attack's connections are closed before reading RSS after")
	flag.DurationVar(&c.interval, "interval", 2*time.Second, "slowloris and slow-body: time between two bytes")
	flag.IntVar(&c.conns, "conns", 500, "slowloris, slow-body and silent: attacker connections")
	flag.IntVar(&c.stalledConns, "stalled-conns", 50, "stalled: connections requesting a large response and never reading it")
	flag.Int64Var(&c.largeSize, "large-size", 16<<20, "stalled: response size in bytes")
	flag.IntVar(&c.floodConns, "flood-conns", 5000, "one-byte: connections that send one byte and close")
	flag.IntVar(&c.capConns, "cap", 1024, "connection cap: nginx worker_connections; conn-flood opens cap+over-cap connections")
	flag.IntVar(&c.overCap, "over-cap", 1024, "conn-flood: connections beyond the cap")
	flag.DurationVar(&c.timeout, "timeout", 0, "every proxy's client and upstream timeouts: nginx's client_header, client_body, send, proxy_read and proxy_send; flax's request head, request body idle, send stall, response header and response body idle (0: each proxy's defaults, 60s for most of both)")
	flag.DurationVar(&c.probeTimeout, "probe-timeout", 2*time.Second, "timeout of one probe request")
	flag.StringVar(&only, "only", "", "comma-separated subset of proxies (flax-uring,flax-netpoll,nginx)")
	flag.StringVar(&attacks, "attacks", "", "comma-separated subset of attacks (slowloris,slow-body,silent,stalled,one-byte,conn-flood)")
	flag.BoolVar(&quick, "quick", false, "smoke run (about a minute): shorter attacks, fewer connections")
	flag.BoolVar(&backendMode, "serve-backend", false, "internal: serve the backend and the silent backend")
	flag.Parse()
	if backendMode {
		if err := serveBackends(backendAddr, silentAddr); err != nil {
			fmt.Fprintln(os.Stderr, "hostilebench backend:", err)
			os.Exit(1)
		}
		return
	}
	if quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("duration", func() { c.duration = 2 * time.Second })
		def("settle", func() { c.settle = time.Second })
		def("interval", func() { c.interval = 500 * time.Millisecond })
		def("conns", func() { c.conns = 100 })
		def("stalled-conns", func() { c.stalledConns = 10 })
		def("large-size", func() { c.largeSize = 4 << 20 })
		def("flood-conns", func() { c.floodConns = 1000 })
		def("cap", func() { c.capConns = 256 })
		def("over-cap", func() { c.overCap = 256 })
	}
	c.flaxArgs = strings.Fields(flaxArgs)
	if err := run(&c, only, attacks); err != nil {
		fmt.Fprintln(os.Stderr, "hostilebench:", err)
		os.Exit(1)
	}
}

func selected(list, name string) bool {
	return list == "" || strings.Contains(","+list+",", ","+name+",")
}

func run(c *config, only, attackList string) error {
	for _, tool := range []string{"nginx", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install nginx-light util-linux): %w", tool, err)
		}
	}
	var err error
	if c.flaxBin, err = filepath.Abs(c.flaxBin); err != nil {
		return err
	}
	if err := benchproc.PinSelf(c.loadCPU); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "flax-hostilebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	be, err := benchproc.StartPinned(c.loadCPU, self, "-serve-backend")
	if err != nil {
		return fmt.Errorf("start backend: %w", err)
	}
	defer benchproc.Stop(be)
	for _, a := range []string{backendAddr, silentAddr} {
		if err := benchproc.WaitListen(a); err != nil {
			return err
		}
	}

	var results []result
	for _, a := range allAttacks {
		if !selected(attackList, a.name) {
			continue
		}
		for _, p := range proxies() {
			if !selected(only, p.name) {
				continue
			}
			fmt.Fprintf(os.Stderr, "hostilebench: %s against %s\n", a.name, p.name)
			r := measure(c, dir, p, a)
			if r.skipped != "" {
				fmt.Fprintf(os.Stderr, "hostilebench: %s against %s: skipped: %s\n", a.name, p.name, r.skipped)
			}
			results = append(results, r)
		}
	}
	fmt.Print(formatTables(c, results))
	return nil
}

func proxies() []proxy {
	flax := func(engine string) func(string, *config, bool) (*exec.Cmd, error) {
		return func(dir string, c *config, silentRoute bool) (*exec.Cmd, error) {
			log, err := os.Create(filepath.Join(dir, "flax.log"))
			if err != nil {
				return nil, err
			}
			defer log.Close() // the child has its own copy
			common := []string{"--engine", engine, "--workers", "1", "--admin-address=", "--drain-timeout", "1s", "--max-connections", strconv.Itoa(c.capConns)}
			if !silentRoute {
				args := append([]string{"proxy", "--listen", listenAddr, "--to", backendAddr}, common...)
				args = append(args, flaxTimeoutFlags(c.timeout)...)
				return benchproc.StartPinnedTo(log, c.proxyCPU, c.flaxBin, append(args, c.flaxArgs...)...)
			}
			cfg := filepath.Join(dir, "flax.yaml")
			if err := os.WriteFile(cfg, []byte(flaxConfig(listenAddr, backendAddr, silentAddr, c.timeout)), 0o644); err != nil {
				return nil, err
			}
			args := append([]string{"run", "--config", cfg}, common...)
			return benchproc.StartPinnedTo(log, c.proxyCPU, c.flaxBin, append(args, c.flaxArgs...)...)
		}
	}
	return []proxy{
		{"flax-uring", flax("uring")},
		{"flax-netpoll", flax("netpoll")},
		{"nginx", func(dir string, c *config, _ bool) (*exec.Cmd, error) {
			return benchproc.StartNginx(filepath.Join(dir, "nginx"), c.proxyCPU,
				fmt.Sprintf("worker_rlimit_nofile %d; events { worker_connections %d; }", 2*c.capConns+64, c.capConns),
				nginxTimeouts(c.timeout)+nginxServer(listenAddr, backendAddr, silentAddr))
		}},
	}
}

// flaxTimeoutFlags are the `flax-dataplane proxy` flags that set its timeouts to d,
// none when d is 0.
func flaxTimeoutFlags(d time.Duration) []string {
	if d <= 0 {
		return nil
	}
	var args []string
	for _, f := range []string{"request-head", "request-body-idle", "send-stall", "response-header", "response-body-idle"} {
		args = append(args, "--"+f+"-timeout", d.String())
	}
	return args
}

// flaxConfig is what `flax-dataplane proxy --listen L --to B` applies (with the
// timeouts flaxTimeoutFlags sets), plus a /silent route to the silent backend.
func flaxConfig(listen, backend, silent string, timeout time.Duration) string {
	host, port := splitAddr(listen)
	bh, bp := splitAddr(backend)
	sh, sp := splitAddr(silent)
	lt, gt := "", ""
	if timeout > 0 {
		d := timeout.String()
		lt = fmt.Sprintf("    timeouts: {requestHead: %[1]s, requestBodyIdle: %[1]s, sendStall: %[1]s}\n", d)
		gt = fmt.Sprintf("    responseHeaderTimeout: %[1]s\n    responseBodyIdleTimeout: %[1]s\n", d)
	}
	return fmt.Sprintf(`listeners:
  - name: proxy
    address: %s
    port: %s
    protocol: HTTP
%s    virtualHosts:
      - name: all
        routes:
          - name: silent
            matches:
              - path: {type: PATH_PREFIX, value: /silent}
            backends:
              - {backendGroup: silent, weight: 1}
          - name: proxy
            matches:
              - path: {type: PATH_PREFIX, value: /}
            backends:
              - {backendGroup: backends, weight: 1}
backendGroups:
  - name: backends
    loadBalancing: {policy: ROUND_ROBIN}
%s    endpoints:
      - {address: %s, port: %s, conditions: {ready: true, serving: true}}
  - name: silent
    loadBalancing: {policy: ROUND_ROBIN}
%s    endpoints:
      - {address: %s, port: %s, conditions: {ready: true, serving: true}}
`, host, port, lt, gt, bh, bp, gt, sh, sp)
}

func nginxServer(listen, backend, silent string) string {
	return fmt.Sprintf(`upstream be { server %s; keepalive 64; }
upstream silent { server %s; }
server { listen %s backlog=4096;
  location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
  location /silent { proxy_pass http://silent; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
		backend, silent, listen)
}

// nginxTimeouts sets nginx's client and upstream timeouts to d, or leaves them at their
// defaults when d is 0.
func nginxTimeouts(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("client_header_timeout %[1]dms; client_body_timeout %[1]dms; send_timeout %[1]dms; proxy_read_timeout %[1]dms; proxy_send_timeout %[1]dms;\n", ms)
}

func splitAddr(a string) (host, port string) {
	i := strings.LastIndexByte(a, ':')
	return a[:i], a[i+1:]
}

// measure starts p, checks that it proxies, runs attack a against it while a probe
// client makes normal requests and RSS is sampled, then closes the attack's
// connections, waits c.settle and reads RSS and the sockets left.
func measure(c *config, dir string, p proxy, a attack) result {
	r := result{attack: a.name, proxy: p.name}
	sub := filepath.Join(dir, a.name+"-"+p.name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	cmd, err := p.start(sub, c, a.name == "silent")
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer benchproc.Stop(cmd)
	if err := benchproc.WaitListen(listenAddr); err != nil {
		r.skipped = err.Error()
		return r
	}
	if err := probeOnce(c.probeTimeout); err != nil {
		r.skipped = "does not proxy: " + err.Error() + "; " + logTail(sub)
		return r
	}
	pid := cmd.Process.Pid
	if r.rssIdle, err = benchproc.TreeRSS(pid); err != nil {
		r.skipped = err.Error()
		return r
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	sampler := startSampler(pid)
	probes := startProbes(ctx, c.probeTimeout)
	out := a.run(ctx, c)
	r.probeOK, r.probeTotal = probes.wait()
	r.rssPeak = sampler.stop()
	r.release = out

	time.Sleep(c.settle)
	if !alive(pid) {
		r.skipped = "proxy exited during the attack: " + logTail(sub)
		return r
	}
	if r.rssAfter, err = benchproc.TreeRSS(pid); err != nil {
		r.skipped = err.Error()
		return r
	}
	r.socketsLeft = countListenSockets(listenPort())
	return r
}

// alive tells whether pid runs (is neither gone nor a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// logTail returns the last line of the proxy's log in dir (flax's output or nginx's
// error log).
func logTail(dir string) string {
	for _, f := range []string{filepath.Join(dir, "flax.log"), filepath.Join(dir, "nginx", "error.log")} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return "log: " + lines[len(lines)-1]
	}
	return "no log"
}
