package engine

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
)

func TestAdmitCaps(t *testing.T) {
	c := NewConnCounter(3)
	a, b := &Slot{}, &Slot{}
	a.Listener.Store(&compiled.Listener{Name: "a", MaxConnections: 2})
	b.Listener.Store(&compiled.Listener{Name: "b"})
	for i := range 2 {
		if !Admit(c, a) {
			t.Fatalf("connection %d under both caps refused", i+1)
		}
	}
	if Admit(c, a) {
		t.Fatal("third connection admitted on a listener capped at 2")
	}
	if !Admit(c, b) {
		t.Fatal("connection refused on a listener without a cap, under the node-wide cap")
	}
	if Admit(c, b) {
		t.Fatal("fourth connection admitted under a node-wide cap of 3")
	}
	if c.Open() != 3 || a.Conns() != 2 || b.Conns() != 1 {
		t.Fatalf("counted %d open (a %d, b %d), want 3 (2, 1): refusals must count nothing", c.Open(), a.Conns(), b.Conns())
	}
	Release(c, a)
	if !Admit(c, b) {
		t.Fatal("connection refused after one was released")
	}
	// No node-wide counter: only the listener's cap applies (a has one
	// connection left open).
	if !Admit(nil, b) || !Admit(nil, a) || Admit(nil, a) {
		t.Fatal("with no node-wide counter: want b admitted, and a admitted up to its cap only")
	}
}

func TestMaxConnectionsFor(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int64
	}{
		{1024, (1024 - ReservedFds) / 2},
		{20000, (20000 - ReservedFds) / 2},
		{1 << 20, (1<<20 - ReservedFds) / 2},
		{100, 25},
		{2, 1},
		{^uint64(0), 0},
	} {
		if got := MaxConnectionsFor(tc.nofile); got != tc.want {
			t.Errorf("MaxConnectionsFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		if got, want := DefaultMaxConnections(), MaxConnectionsFor(rl.Cur); got != want {
			t.Errorf("DefaultMaxConnections() = %d, want %d for RLIMIT_NOFILE %d", got, want, rl.Cur)
		}
	}
}

func TestDefaultMemoryBudget(t *testing.T) {
	one, four := DefaultMemoryBudget(1), DefaultMemoryBudget(4)
	if one == 0 {
		t.Skip("neither a cgroup limit nor /proc/meminfo is readable here")
	}
	if one < MinMemoryBudget || four < MinMemoryBudget || (four > MinMemoryBudget && four*4 > one+4) {
		t.Fatalf("budget for 1 worker %d, for 4 workers %d: want the memory shared equally, at least %d", one, four, MinMemoryBudget)
	}
}

func TestLogLimiter(t *testing.T) {
	l := LogLimiter{Every: 100 * time.Millisecond}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("first line: allowed %v, suppressed %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.Allow(); ok {
			t.Fatalf("line %d allowed within the interval", i)
		}
	}
	time.Sleep(150 * time.Millisecond)
	if ok, n := l.Allow(); !ok || n != 5 {
		t.Fatalf("after the interval: allowed %v, suppressed %d; want true, 5", ok, n)
	}
}

func TestFdExhausted(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.EMFILE, true},
		{fmt.Errorf("accept: %w", syscall.ENFILE), true},
		{syscall.ECONNABORTED, false},
		{nil, false},
	} {
		if got := FdExhausted(tc.err); got != tc.want {
			t.Errorf("FdExhausted(%v) = %v", tc.err, got)
		}
	}
}
