// Command loadbench is `make bench`'s load benchmark: it measures HTTP/1.1 reverse
// proxies side by side on loopback and prints one table.
//
// A fixed backend (nginx answering 100 bytes) runs on one core with wrk; each proxy in
// turn (flax on io_uring, flax on the portable netpoll engine, nginx, HAProxy; all with
// upstream keep-alive) runs alone on the other core. For each it reports requests/s,
// latency p50/p99 from wrk, and the proxy's CPU time per request read from /proc, plus
// each figure's ratio to nginx's. The machine is shared and noisy, so only the ratios of
// one run mean much.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
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

type proxy struct {
	name  string
	start func(dir string, listen, backend string) (*exec.Cmd, error)
}

func main() {
	flaxBin := flag.String("flax", "bin/flax-dataplane", "flax-dataplane binary")
	duration := flag.Duration("duration", 10*time.Second, "wrk run time per proxy")
	conns := flag.Int("connections", 64, "wrk connections")
	proxyCPU := flag.Int("proxy-cpu", 0, "CPU the proxy under test is pinned to")
	loadCPU := flag.Int("load-cpu", 1, "CPU wrk and the backend are pinned to")
	only := flag.String("only", "", "comma-separated subset of proxies to run (flax-uring,flax-netpoll,nginx,haproxy)")
	flag.Parse()
	if err := run(*flaxBin, *duration, *conns, *proxyCPU, *loadCPU, *only); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run(flaxBin string, d time.Duration, conns, proxyCPU, loadCPU int, only string) error {
	for _, tool := range []string{"nginx", "haproxy", "wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install nginx-light haproxy wrk util-linux): %w", tool, err)
		}
	}
	flaxBin, err := filepath.Abs(flaxBin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "flax-loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	const backend = "127.0.0.1:18090"
	const listen = "127.0.0.1:18080"
	be, err := startNginx(filepath.Join(dir, "backend"), loadCPU, fmt.Sprintf(`
server { listen %s backlog=4096; access_log off; keepalive_requests 1000000;
  location / { default_type text/plain; return 200 "%s"; } }`, backend, strings.Repeat("x", 99)+"\n"))
	if err != nil {
		return fmt.Errorf("start backend: %w", err)
	}
	defer stop(be)
	if err := waitListen(backend); err != nil {
		return err
	}

	proxies := []proxy{
		{"flax-uring", func(_ string, l, b string) (*exec.Cmd, error) {
			return startPinned(proxyCPU, flaxBin, "proxy", "--listen", l, "--to", b, "--workers", "1", "--engine", "uring")
		}},
		{"flax-netpoll", func(_ string, l, b string) (*exec.Cmd, error) {
			return startPinned(proxyCPU, flaxBin, "proxy", "--listen", l, "--to", b, "--workers", "1", "--engine", "netpoll")
		}},
		{"nginx", func(dir string, l, b string) (*exec.Cmd, error) {
			return startNginx(filepath.Join(dir, "nginx"), proxyCPU, fmt.Sprintf(`
upstream be { server %s; keepalive 128; keepalive_requests 1000000; }
server { listen %s backlog=4096; access_log off; keepalive_requests 1000000;
  location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }`, b, l))
		}},
		{"haproxy", func(dir string, l, b string) (*exec.Cmd, error) {
			cfg := filepath.Join(dir, "haproxy.cfg")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, l, b)), 0o644); err != nil {
				return nil, err
			}
			return startPinned(proxyCPU, "haproxy", "-db", "-f", cfg)
		}},
	}

	var results []result
	for _, p := range proxies {
		if only != "" && !strings.Contains(","+only+",", ","+p.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "loadbench: %s: starting, then wrk -c%d for %s\n", p.name, conns, d)
		r := measure(p, dir, listen, backend, d, conns, loadCPU)
		if r.skipped != "" {
			fmt.Fprintf(os.Stderr, "loadbench: %s: skipped: %s\n", p.name, r.skipped)
		}
		results = append(results, r)
	}
	printTable(results, proxyCPU, conns, d)
	return nil
}

func measure(p proxy, dir, listen, backend string, d time.Duration, conns, loadCPU int) result {
	r := result{name: p.name}
	sub := filepath.Join(dir, p.name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		r.skipped = err.Error()
		return r
	}
	cmd, err := p.start(sub, listen, backend)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer stop(cmd)
	if err := waitListen(listen); err != nil {
		r.skipped = err.Error()
		return r
	}
	// Warm up connections and pools, then measure.
	if _, err := wrk(loadCPU, listen, conns, 2*time.Second); err != nil {
		r.skipped = err.Error()
		return r
	}
	cpu0, err := treeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	out, err := wrk(loadCPU, listen, conns, d)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	cpu1, err := treeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	parseWrk(out, &r)
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

func wrk(cpu int, addr string, conns int, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), "wrk", "-t1",
		"-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %w: %s", err, out)
	}
	return string(out), nil
}

func startPinned(cpu int, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

func startNginx(dir string, cpu int, server string) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off; master_process on; worker_processes 1; user root;
pid %[1]s/nginx.pid; error_log %[1]s/error.log warn;
events { worker_connections 20000; }
http { access_log off; client_body_temp_path %[1]s; proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
%[2]s
}
`, dir, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return startPinned(cpu, "nginx", "-p", dir, "-c", path)
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Let the listening port go before the next proxy binds it.
	time.Sleep(200 * time.Millisecond)
}

func waitListen(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after 10s", addr)
}

// treeCPU returns the user+system CPU time of pid and all its descendants (nginx's
// workers are children of its master; taskset execs in place).
func treeCPU(pid int) (time.Duration, error) {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var total time.Duration
	pids := []int{pid}
	for len(pids) > 0 {
		p := pids[0]
		pids = pids[1:]
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			if p == pid {
				return 0, fmt.Errorf("read cpu time of pid %d: %w", p, err)
			}
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * tick
		kids, err := children(p)
		if err != nil {
			return 0, err
		}
		pids = append(pids, kids...)
	}
	return total, nil
}

func children(pid int) ([]int, error) {
	var out []int
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	for _, t := range tasks {
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Split(bufio.ScanWords)
		for sc.Scan() {
			if c, err := strconv.Atoi(sc.Text()); err == nil {
				out = append(out, c)
			}
		}
		f.Close()
	}
	return out, nil
}

func printTable(rs []result, proxyCPU, conns int, d time.Duration) {
	var base *result
	for i := range rs {
		if rs[i].name == "nginx" && rs[i].skipped == "" {
			base = &rs[i]
		}
	}
	ratio := func(v, b float64) string {
		if base == nil || b == 0 || v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v/b)
	}
	fmt.Printf("\nloopback, proxy pinned to CPU %d, wrk -t1 -c%d -d%s, backend nginx 100 B replies\n", proxyCPU, conns, d)
	fmt.Printf("%-13s %10s %6s %9s %9s %11s %6s %6s  %s\n", "proxy", "req/s", "x", "p50", "p99", "cpu/req", "x", "req/cpu-s x", "errors")
	for _, r := range rs {
		if r.skipped != "" {
			fmt.Printf("%-13s skipped: %s\n", r.name, r.skipped)
			continue
		}
		var brps, bcpu float64
		if base != nil {
			brps, bcpu = base.rps, float64(base.cpuPerReq)
		}
		// Requests per CPU-second relative to nginx: the inverse ratio of CPU per request.
		perCPU := "-"
		if base != nil && r.cpuPerReq > 0 {
			perCPU = fmt.Sprintf("%.2f", bcpu/float64(r.cpuPerReq))
		}
		fmt.Printf("%-13s %10.0f %6s %9s %9s %9.1fµs %6s %6s       %s\n", r.name, r.rps, ratio(r.rps, brps),
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
			float64(r.cpuPerReq)/float64(time.Microsecond), ratio(float64(r.cpuPerReq), bcpu), perCPU, r.errors)
	}
}
