//go:build linux

package uring

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Idle connection memory: the DESIGN's target is at most 512 B of userland
// memory per idle keep-alive connection, measured at 15,000 connections.
const (
	idleConnTarget = 15000 // connections at the last step
	idleConnBudget = 512   // bytes per idle connection
	fdMargin       = 256   // descriptors the test process needs besides the connections
)

// TestIdleConnectionMemory opens idle keep-alive connections to a one-worker
// engine in steps up to 15,000 and asserts that each costs the engine at most
// 512 B. A child process holds the client ends (each process here may open
// 20,000 files): it opens connections in steps, each makes one request (so it
// has borrowed and given back an Exchange) and stays open, and this process
// measures itself after each step.
//
// The figure asserted is the slope of the Go heap in use (runtime.MemStats
// HeapInuse after a GC that returns free pages), fitted by least squares over
// the steps, so that fixed costs (rings, provided buffers, arenas, the test's
// own backend) cancel. That is the userland memory the engine spends per idle
// connection: an idle connection holds only its slab slot (Session and engine
// state), its timer heap entry and its free-list entry, all on the Go heap. It
// holds no arena memory: Exchanges go back to the pool when a connection goes
// idle. Socket buffers are kernel memory, outside any userland figure.
//
// The RSS slope is the whole process seen from outside, the way nginx's and
// HAProxy's figures are measured. It adds the Go runtime's metadata for the
// heap (span structures and the like) and moves by whole pages, so it varies
// between runs: 507-519 B here with the heap slope at 486 B every time. It is
// logged and only bounded: more than 256 B above the heap slope means memory
// held per connection outside the Go heap (say an arena allocation per
// connection), which the heap figure cannot see.
func TestIdleConnectionMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("memory figures mean nothing under the race detector (shadow memory, instrumented allocations); make test measures them")
	}
	conns := idleConnTarget
	if limit := raiseFileLimit(t); limit < uint64(conns+fdMargin) {
		conns = int(limit) - fdMargin
		t.Logf("RLIMIT_NOFILE allows %d descriptors: measuring at %d connections instead of %d", limit, conns, idleConnTarget)
		if conns < 2000 {
			t.Fatalf("RLIMIT_NOFILE of %d is too low to measure connection memory", limit)
		}
	}
	steps := []int{conns / 15, conns / 3, conns * 2 / 3, conns}

	// Idle keep-alive connections must outlive the test on a loaded machine.
	te := startEngine(t, 1, proxy.Options{IdleTimeout: 10 * time.Minute})
	be := startRawBackend(t)
	port := enginetest.FreePort(t)
	if st := te.apply(t, enginetest.CompileYAML(t, te.reg, snapshotYAML(port, []netip.AddrPort{be.addr}, deadAddr(t), ""))); !st[0].Bound {
		t.Fatalf("statuses: %+v", st)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionClients$", "-test.v")
	cmd.Env = append(os.Environ(), "FLAX_CONNMEM_CLIENT="+addr, "FLAX_CONNMEM_STEPS="+joinInts(steps))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var childErr strings.Builder
	cmd.Stderr = &childErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childOut []string
	var points []memPoint
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		childOut = append(childOut, line)
		n, ok := strings.CutPrefix(line, "OPEN ")
		if !ok {
			continue
		}
		open, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("child: %q", line)
		}
		p := measureIdle(t, te, open)
		if len(points) > 0 {
			prev := points[len(points)-1]
			d := float64(p.conns - prev.conns)
			t.Logf("%6d idle connections: heap in use %5.1f MiB, RSS %5.1f MiB; since %d: heap %4.0f B/conn, RSS %4.0f B/conn",
				p.conns, mib(p.heap), mib(p.rss), prev.conns, (p.heap-prev.heap)/d, (p.rss-prev.rss)/d)
		} else {
			t.Logf("%6d idle connections: heap in use %5.1f MiB, RSS %5.1f MiB", p.conns, mib(p.heap), mib(p.rss))
		}
		points = append(points, p)
		fmt.Fprintln(stdin, "next")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || len(points) != len(steps) {
		t.Fatalf("client process: %v after %d of %d steps\nstdout:\n%s\nstderr:\n%s",
			err, len(points), len(steps), strings.Join(childOut, "\n"), childErr.String())
	}

	heap := slope(points, func(p memPoint) float64 { return p.heap })
	rss := slope(points, func(p memPoint) float64 { return p.rss })
	t.Logf("per idle connection (least-squares slope, %d to %d connections): heap %.0f B, RSS %.0f B; target ≤ %d B",
		steps[0], conns, heap, rss, idleConnBudget)
	if heap > idleConnBudget {
		t.Errorf("an idle keep-alive connection costs %.0f B of heap, more than the %d B target", heap, idleConnBudget)
	}
	if rss > heap+256 {
		t.Errorf("the process's RSS grows by %.0f B per idle connection, %.0f B more than its heap: memory is held per connection outside the Go heap", rss, rss-heap)
	}
	if heap < 100 {
		t.Errorf("an idle keep-alive connection costs %.0f B of heap: too little to be true (are the connections held?)", heap)
	}
}

// memPoint is the process's memory with conns idle connections open.
type memPoint struct {
	conns     int
	heap, rss float64
}

// measureIdle waits until the engine holds conns connections, none of them
// busy, and measures the process.
func measureIdle(t *testing.T, te *testEngine, conns int) memPoint {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		te.mu.Lock()
		n := active(te.workers)
		te.mu.Unlock()
		if n == int64(conns) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine holds %d client connections, want %d", n, conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the worker finish its last completions
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memPoint{conns: conns, heap: float64(ms.HeapInuse), rss: float64(vmRSS(t))}
}

// slope fits y = a + b·conns by least squares and returns b.
func slope(points []memPoint, y func(memPoint) float64) float64 {
	var sx, sy, sxx, sxy float64
	for _, p := range points {
		x := float64(p.conns)
		sx += x
		sy += y(p)
		sxx += x * x
		sxy += x * y(p)
	}
	n := float64(len(points))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func mib(b float64) float64 { return b / (1 << 20) }

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard one and returns it.
// (The Go runtime does so at start already, in the child too; this keeps the
// test right whatever starts it.)
func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Max, err)
		}
	}
	return lim.Cur
}

func vmRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestIdleConnectionClients is the child of TestIdleConnectionMemory.
func TestIdleConnectionClients(t *testing.T) {
	addr := os.Getenv("FLAX_CONNMEM_CLIENT")
	if addr == "" {
		t.Skip("helper process of TestIdleConnectionMemory; it runs only when started by that test")
	}
	var steps []int
	for _, s := range strings.Split(os.Getenv("FLAX_CONNMEM_STEPS"), ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("FLAX_CONNMEM_STEPS: %v", err)
		}
		steps = append(steps, n)
	}
	in := bufio.NewReader(os.Stdin)
	req := []byte("GET /direct HTTP/1.1\r\nHost: x\r\n\r\n")
	var conns []net.Conn
	buf := make([]byte, 4096)
	for _, target := range steps {
		for len(conns) < target {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := 0
			for !strings.Contains(string(buf[:got]), "direct body\n") {
				n, err := c.Read(buf[got:])
				if err != nil {
					t.Fatalf("connection %d: %v", len(conns), err)
				}
				got += n
			}
			conns = append(conns, c)
		}
		fmt.Printf("OPEN %d\n", len(conns))
		if _, err := in.ReadString('\n'); err != nil {
			t.Fatalf("the parent went away: %v", err)
		}
	}
	// Exiting closes stdout, which ends the parent's loop.
}
