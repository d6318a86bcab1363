package engine

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// Limits bound what an engine holds: client connections, and each worker's
// memory. The zero value means no connection cap and no memory budget.
type Limits struct {
	// Connections is the node-wide count of open client connections and its
	// cap (the --max-connections flag); engines given the same counter share
	// the cap. Nil means no cap. Listeners may set a cap of their own
	// (compiled.Listener.MaxConnections). Connections over a cap are
	// accepted and closed at once.
	Connections *ConnCounter
	// MemoryBudget is each worker's memory budget in bytes (the
	// --memory-budget flag): see metrics.Worker.Pressure for the load shed
	// as a worker nears and passes it. Zero means none.
	MemoryBudget int64
	// ReleaseAfter is how long buffer memory stays unused before a worker
	// gives it back to the kernel. Zero means DefaultReleaseAfter.
	ReleaseAfter time.Duration
}

// DefaultReleaseAfter is the default Limits.ReleaseAfter: long enough that
// a steady load, or bursts closer together, keeps its buffers.
const DefaultReleaseAfter = 10 * time.Second

// ReleaseDelay returns ReleaseAfter, or its default.
func (l Limits) ReleaseDelay() time.Duration {
	if l.ReleaseAfter > 0 {
		return l.ReleaseAfter
	}
	return DefaultReleaseAfter
}

// ConnCounter counts open client connections against a cap. It is safe for
// concurrent use.
type ConnCounter struct {
	max  int64
	open atomic.Int64
}

// NewConnCounter returns a counter capped at max connections (0: no cap).
func NewConnCounter(max int64) *ConnCounter { return &ConnCounter{max: max} }

// Max returns the cap, 0 when there is none.
func (c *ConnCounter) Max() int64 {
	if c == nil {
		return 0
	}
	return c.max
}

// Open returns the number of connections counted.
func (c *ConnCounter) Open() int64 {
	if c == nil {
		return 0
	}
	return c.open.Load()
}

func (c *ConnCounter) acquire() bool {
	if c == nil {
		return true
	}
	if n := c.open.Add(1); c.max > 0 && n > c.max {
		c.open.Add(-1)
		return false
	}
	return true
}

func (c *ConnCounter) release() {
	if c != nil {
		c.open.Add(-1)
	}
}

// Admit counts a new client connection on sl against the node-wide cap of c
// (may be nil) and the cap of the listener served on sl. It reports false,
// counting nothing, when the connection is over either cap; otherwise the
// engine calls Release once the connection is closed.
func Admit(c *ConnCounter, sl *Slot) bool {
	if !c.acquire() {
		return false
	}
	var max int64
	if l := sl.Listener.Load(); l != nil {
		max = l.MaxConnections
	}
	if n := sl.conns.Add(1); max > 0 && n > max {
		sl.conns.Add(-1)
		c.release()
		return false
	}
	return true
}

// AdmitConn decides whether a connection accepted on sl by the worker whose
// metrics are m is served: not when the worker is past the refuse level of its
// memory budget (an overload action), nor when it is over the node-wide cap c or
// the listener's (an overflow); both are counted. A connection admitted is
// counted until Release.
func AdmitConn(m *metrics.Worker, c *ConnCounter, sl *Slot) bool {
	if m.Pressure() >= metrics.PressureRefuseConnections {
		m.OverloadAction(metrics.OverloadRefuseConnection)
		return false
	}
	if !Admit(c, sl) {
		m.Overflow(ListenerCounters(m, sl), metrics.OverflowCap)
		return false
	}
	return true
}

// ListenerCounters returns m's counters of the listener served on sl, nil when
// the slot serves none.
func ListenerCounters(m *metrics.Worker, sl *Slot) *metrics.ListenerCounters {
	if l := sl.Listener.Load(); l != nil {
		return m.Listener(l.Stats)
	}
	return nil
}

// Release uncounts a connection that Admit counted.
func Release(c *ConnCounter, sl *Slot) {
	sl.conns.Add(-1)
	c.release()
}

// ReservedFds are the file descriptors DefaultMaxConnections leaves for what
// is not a proxied connection: listening sockets (one per address and
// worker), rings and their eventfds, health-check, mirror and admin
// connections, the access log, the config file and its watcher, the
// controller's socket, and the Go runtime's own.
const ReservedFds = 256

// DefaultMaxConnections returns the default node-wide connection cap,
// derived from the process's limit on open files (RLIMIT_NOFILE, whose soft
// limit the Go runtime raises to the hard one at start): each proxied
// connection needs a second descriptor for its upstream connection, so the
// cap is (limit - ReservedFds) / 2, and at least 1. It returns 0 (no cap)
// when the limit cannot be read or is infinite.
func DefaultMaxConnections() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return MaxConnectionsFor(rl.Cur)
}

// MaxConnectionsFor returns the connection cap DefaultMaxConnections derives
// from an open files limit.
func MaxConnectionsFor(nofile uint64) int64 {
	if nofile == ^uint64(0) || nofile > 1<<40 {
		return 0
	}
	if nofile <= 2*ReservedFds {
		// A tiny limit: keep a share for the reserve rather than none.
		return max(1, int64(nofile)/4)
	}
	return int64(nofile-ReservedFds) / 2
}

// MinMemoryBudget is the smallest default budget per worker.
const MinMemoryBudget = 16 << 20

// DefaultMemoryBudget returns the default memory budget of each of workers
// workers: half of the memory available to the process (the cgroup's
// memory limit when there is one, else the machine's memory), shared
// equally, and at least MinMemoryBudget. The other half is left for the
// kernel's socket buffers, the Go heap and everything that is not a
// connection buffer. It returns 0 (no budget) when neither can be read.
func DefaultMemoryBudget(workers int) int64 {
	total := cgroupMemoryLimit()
	if total <= 0 {
		total = machineMemory()
	}
	if total <= 0 {
		return 0
	}
	return max(MinMemoryBudget, total/2/int64(max(workers, 1)))
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2,
// then v1); 0 when there is none.
func cgroupMemoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 { // "max", or v1's "unlimited" (a huge value)
			return 0
		}
		return v
	}
	return 0
}

// machineMemory reads MemTotal from /proc/meminfo; 0 when it cannot.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// FdExhausted reports whether err says the process or the system is out of
// file descriptors (EMFILE, ENFILE).
func FdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// LogLimiter lets one log line through per interval and counts the others,
// for conditions that can repeat thousands of times a second (an accept
// failing for lack of descriptors). It is safe for concurrent use.
type LogLimiter struct {
	// Every is the interval; zero means 10 seconds.
	Every      time.Duration
	next       atomic.Int64 // unix nanoseconds from which the next line may go
	suppressed atomic.Int64
}

// Allow reports whether a line may be logged now, and how many were
// suppressed since the last one that was.
func (l *LogLimiter) Allow() (ok bool, suppressed int64) {
	every := l.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	now := time.Now().UnixNano()
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(every)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
