//go:build linux

package iouring

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// mustRing creates a ring on the calling (locked) thread. Callers must defer
// closeRing on the same goroutine.
func mustRing(t testing.TB, entries uint32, opts Options) *Ring {
	t.Helper()
	r, err := New(entries, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func closeRing(t testing.TB, r *Ring) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// collect waits until n completions have been gathered or timeout elapses.
func collect(t testing.TB, r *Ring, n int, timeout time.Duration) []CQE {
	t.Helper()
	var out []CQE
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d of %d completions before timeout: %+v", len(out), n, out)
		}
		if err := r.SubmitAndWait(left); err != nil {
			t.Fatalf("SubmitAndWait: %v", err)
		}
		out = append(out, r.Completions()...)
	}
	return out
}

// expectNone checks that no completion arrives within d.
func expectNone(t testing.TB, r *Ring, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := r.SubmitAndWait(time.Until(deadline)); err != nil {
			t.Fatalf("SubmitAndWait: %v", err)
		}
		if c := r.Completions(); len(c) > 0 {
			t.Fatalf("unexpected completions: %+v", c)
		}
	}
}

func byUserData(cs []CQE, ud uint64) []CQE {
	var out []CQE
	for _, c := range cs {
		if c.UserData == ud {
			out = append(out, c)
		}
	}
	return out
}

func one(t testing.TB, cs []CQE, ud uint64) CQE {
	t.Helper()
	m := byUserData(cs, ud)
	if len(m) != 1 {
		t.Fatalf("want exactly one completion for %#x, got %+v (all: %+v)", ud, m, cs)
	}
	return m[0]
}

// listen returns a listening socket on 127.0.0.1 and its address.
func listen(t testing.TB) (int, netip.AddrPort) {
	t.Helper()
	fd, err := ListenTCP(loopback, 128)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	ap, err := LocalAddr(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, ap
}

// tcpPair returns a server-side fd (accepted with plain accept4) and a
// connected Go client.
func tcpPair(t testing.TB) (int, net.Conn) {
	t.Helper()
	lfd, ap := listen(t)
	c, err := net.Dial("tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, c
}

func errnoRes(e unix.Errno) int32 { return -int32(e) }
