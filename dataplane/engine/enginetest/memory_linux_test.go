package enginetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

// startLimitedProxy runs an engine of kind k with n workers and limits lim in
// front of an "ok" backend; snapshot edits the snapshot YAML (nil: none). It
// returns the engine and the listener's port.
func startLimitedProxy(t *testing.T, k kind, n int, lim engine.Limits, log *logr.Logger, snapshot func(string) string) (*testEngine, int) {
	t.Helper()
	te := startLimited(t, k, n, lim, log)
	be := StartBackend(t, okHandler)
	port := FreePort(t)
	y := HTTPSnapshot(port, []string{be.Addr()}, "", "", "")
	if snapshot != nil {
		y = snapshot(y)
	}
	te.apply(CompileYAML(t, te.reg, y))
	return te, port
}

// request sends a GET on c and returns the response's status, or an error
// when the connection ends or stalls without one.
func request(c net.Conn, br *bufio.Reader) (int, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// mustServe opens a connection and fails the test unless a GET on it is
// answered 200; the connection stays open (keep-alive).
func mustServe(t *testing.T, port int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := Dial(t, port)
	br := bufio.NewReader(c)
	if st, err := request(c, br); err != nil || st != http.StatusOK {
		t.Fatalf("GET: status %d, %v", st, err)
	}
	return c, br
}

// eventuallyServed polls until a new connection is served 200.
func eventuallyServed(t *testing.T, port int, what string) {
	t.Helper()
	WaitFor(t, what, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		st, err := request(c, bufio.NewReader(c))
		return err == nil && st == http.StatusOK
	})
}

// closedAtOnce asserts that the server closes c without a byte, well before
// the 3 s a connection left in the backlog would wait here.
func closedAtOnce(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n > 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection over the limit: read %d bytes, %v; want it closed at once", n, err)
	}
}

// memSample is the process's memory at one moment.
type memSample struct {
	heap, rss   int64 // Go heap in use after a collection; resident set
	inUse, free int64 // engine buffer bytes
}

func sampleMemory(t *testing.T, reg *metrics.Registry) memSample {
	t.Helper()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	inUse, free := reg.BufferBytes()
	return memSample{heap: int64(ms.HeapInuse), rss: pages * int64(os.Getpagesize()), inUse: inUse, free: free}
}

func (m memSample) String() string {
	return fmt.Sprintf("Go heap in use %.1f MiB, RSS %.1f MiB, buffers in use %.1f MiB, free %.1f MiB",
		float64(m.heap)/(1<<20), float64(m.rss)/(1<<20), float64(m.inUse)/(1<<20), float64(m.free)/(1<<20))
}

// TestOneByteFloodMemoryReturns opens many connections that each send one byte
// of a request and then close, and asserts that the memory they took comes
// back: each borrowed a session buffer while its byte was buffered, the
// buffers return to the pools when the connections close, and the pools give
// them back to the system once unused for Limits.ReleaseAfter (on io_uring
// the arena pages are released with MADV_DONTNEED; on netpoll the buffers are
// dropped for the collector), so the Go heap and the resident set return near
// where they were before the flood.
func TestOneByteFloodMemoryReturns(t *testing.T) {
	if raceEnabled {
		t.Skip("memory figures mean nothing under the race detector")
	}
	forEachEngine(t, func(t *testing.T, k kind) {
		const n = 2000
		te, port := startLimitedProxy(t, k, workers, engine.Limits{ReleaseAfter: 200 * time.Millisecond}, nil, nil)
		c, _ := mustServe(t, port) // fixed costs (rings, pools, the upstream connection) paid before the baseline
		c.Close()
		WaitFor(t, "the first connection's buffers back", 5*time.Second, func() bool { in, _ := te.reg.BufferBytes(); return in == 0 })
		base := sampleMemory(t, te.reg)

		conns := make([]net.Conn, 0, n)
		for range n {
			c := Dial(t, port)
			if _, err := c.Write([]byte("G")); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		WaitFor(t, "a buffer lent per connection", 20*time.Second, func() bool {
			in, _ := te.reg.BufferBytes()
			return in >= n*limitedBufferSize
		})
		peak := sampleMemory(t, te.reg)
		for _, c := range conns {
			c.Close()
		}
		WaitFor(t, "every buffer back in the pools", 20*time.Second, func() bool { in, _ := te.reg.BufferBytes(); return in == 0 })
		WaitFor(t, "every free buffer given back", 20*time.Second, func() bool { _, free := te.reg.BufferBytes(); return free == 0 })
		after := sampleMemory(t, te.reg)
		t.Logf("before:           %v", base)
		t.Logf("%d one-byte conns: %v", n, peak)
		t.Logf("after close:      %v", after)

		buffers := int64(n * limitedBufferSize)
		// What is left is the runtime's own: goroutine stacks and pooled
		// read buffers (netpoll), the sessions' slab (io_uring).
		if d := after.heap - base.heap; d > buffers/4 {
			t.Errorf("Go heap %d KiB above its level before the flood (the flood's buffers were %d KiB)", d>>10, buffers>>10)
		}
		if d := after.rss - base.rss; d > buffers/2 {
			t.Errorf("RSS %d KiB above its level before the flood (the flood's buffers were %d KiB)", d>>10, buffers>>10)
		}
		eventuallyServed(t, port, "a request served after the flood")
	})
}

// TestConnectionCap asserts that a connection over the listener's cap
// (listeners[].maxConnections) or the node-wide cap (Limits.Connections) is
// accepted and closed at once, counted as an overflow of its listener, and
// that the cap frees up when a connection closes.
func TestConnectionCap(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		for _, tc := range []struct {
			name     string
			lim      engine.Limits
			snapshot func(string) string
		}{
			{name: "listener", snapshot: func(y string) string {
				return strings.Replace(y, "  protocol: HTTP\n", "  protocol: HTTP\n  maxConnections: 2\n", 1)
			}},
			{name: "node", lim: engine.Limits{Connections: engine.NewConnCounter(2)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				te, port := startLimitedProxy(t, k, workers, tc.lim, nil, tc.snapshot)
				a, _ := mustServe(t, port)
				mustServe(t, port)
				closedAtOnce(t, Dial(t, port))
				if got := te.reg.Overflows(te.reg.ListenerID("web"), metrics.OverflowCap); got < 1 {
					t.Errorf("cap overflows counted: %d, want at least 1", got)
				}
				a.Close()
				eventuallyServed(t, port, "a connection served once one under the cap closed")
			})
		}
	})
}

// TestMemoryBudgetShedOrder fills a one-worker engine's memory budget with a
// request head in progress and asserts the shedding order: the idle keep-alive connection is closed, a new connection is
// accepted and closed at once, and the request is answered 503; each action is
// counted, and the worker's memory use returns to zero once the load is gone.
func TestMemoryBudgetShedOrder(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		te, port := startLimitedProxy(t, k, 1, engine.Limits{MemoryBudget: 1 << 30}, nil, nil)
		idle, ibr := mustServe(t, port) // under the budget: served, then idle
		// The budget counts a cost per connection, which depends on the
		// engine, and the buffers lent. Size it so that one connection
		// holding one buffer fills it.
		w := te.reg.Worker(0)
		var cost int64
		WaitFor(t, "the idle connection's buffers back", 5*time.Second, func() bool {
			cost = w.MemoryUsed()
			in, _ := te.reg.BufferBytes()
			return in == 0 && cost > 0
		})
		w.SetMemoryBudget(limitedBufferSize+cost, cost)

		x := Dial(t, port)
		if _, err := io.WriteString(x, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, "the worker over its budget", 5*time.Second, func() bool {
			return te.reg.Worker(0).Pressure() == metrics.PressureRejectRequests
		})

		// 1. The idle connection is closed.
		_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := ibr.ReadByte(); err == nil {
			t.Fatalf("idle connection got %q, want it closed", b)
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("idle connection not closed over the budget")
		}
		// 2. A new connection is refused.
		closedAtOnce(t, Dial(t, port))
		// 3. The request is answered 503.
		if _, err := io.WriteString(x, "Host: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, _ := ReadResponse(t, bufio.NewReader(x), http.MethodGet)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("request over the budget: status %d, want 503", resp.StatusCode)
		}
		for _, a := range []metrics.OverloadAction{metrics.OverloadCloseIdle, metrics.OverloadRefuseConnection, metrics.OverloadRejectRequest} {
			if got := te.reg.OverloadActions(a); got < 1 {
				t.Errorf("overload action %s counted %d times, want at least 1", a, got)
			}
		}
		x.Close()
		WaitFor(t, "the worker's memory use back to zero", 5*time.Second, func() bool {
			return w.MemoryUsed() == 0 && w.Pressure() == metrics.PressureNone
		})
	})
}

// TestAcceptFdExhaustion runs each engine in a child process whose open files
// limit is then lowered, uses up the descriptors left but one, which a client
// connection takes, so that the engine's accept fails with EMFILE, and
// asserts that the failures are counted, logged once per interval, and that
// the engine accepts the waiting connection and new ones once descriptors
// are free (the io_uring engine re-arms its multishot accept).
func TestAcceptFdExhaustion(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		if os.Getenv("FLAX_FD_CHILD") == "" {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptFdExhaustion$/^"+k.name+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "FLAX_FD_CHILD=1")
			out, err := cmd.CombinedOutput()
			switch {
			case strings.Contains(string(out), "--- SKIP: TestAcceptFdExhaustion/"+k.name):
				t.Skipf("child skipped:\n%s", out)
			case err != nil || !strings.Contains(string(out), "--- PASS: TestAcceptFdExhaustion/"+k.name):
				t.Fatalf("child process: %v\n%s", err, out)
			}
			t.Logf("child process:\n%s", out)
			return
		}
		fdExhaustionChild(t, k)
	})
}

func fdExhaustionChild(t *testing.T, k kind) {
	var logged atomic.Int64
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(args, "out of file descriptors") {
			logged.Add(1)
		}
		t.Log(prefix, args)
	}, funcr.Options{})
	te := startLimited(t, k, 1, engine.Limits{}, &log)
	be := StartBackend(t, okHandler)
	port := FreePort(t)
	cfg := CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", ""))

	// Lower the limit before the listener is bound: an io_uring accept
	// takes the limit in force when it is armed.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = uint64(len(fds) + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d descriptors open, RLIMIT_NOFILE lowered to %d", len(fds), rl.Cur)
	te.apply(cfg)
	mustServe(t, port)

	// Take every descriptor left, then free one for a client connection:
	// the engine has none left to accept it with.
	var fill []*os.File
	for {
		f, err := os.Open("/dev/null")
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	if len(fill) == 0 {
		t.Fatal("no descriptor left to fill")
	}
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		t.Fatalf("dial with the last descriptor: %v", err)
	}
	id := te.reg.ListenerID("web")
	WaitFor(t, "an accept failing for lack of descriptors", 10*time.Second, func() bool {
		return te.reg.Overflows(id, metrics.OverflowFdExhausted) > 0
	})
	time.Sleep(300 * time.Millisecond) // let the accept retry and fail again
	for _, f := range fill {
		f.Close()
	}
	// The connection waited in the listen queue: it is served now.
	if st, err := request(c, bufio.NewReader(c)); err != nil || st != http.StatusOK {
		t.Fatalf("connection accepted once descriptors were free: status %d, %v", st, err)
	}
	c.Close()
	eventuallyServed(t, port, "a connection served once descriptors are free")
	n, lines := te.reg.Overflows(id, metrics.OverflowFdExhausted), logged.Load()
	t.Logf("fd_exhausted overflows %d, log lines %d", n, lines)
	if lines < 1 || lines > 2 {
		t.Errorf("%d log lines about descriptor exhaustion, want 1 (one per 10 s)", lines)
	}
	if n <= uint64(lines) {
		t.Errorf("fd_exhausted overflows %d not above the log lines %d: the accept was not retried", n, lines)
	}
}
