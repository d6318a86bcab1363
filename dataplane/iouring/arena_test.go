//go:build linux

package iouring

import (
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

func TestArenaAlloc(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{ArenaSize: 4096})
	defer closeRing(t, r)
	a, err := r.NewArena(1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size() != 4096 {
		t.Fatalf("size %d, want one page", a.Size())
	}
	b1, err := a.Alloc(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := a.Alloc(10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if p := uintptr(unsafe.Pointer(&b2[0])); p%64 != 0 {
		t.Errorf("alignment: %#x", p)
	}
	if cap(b1) != 3 || len(b2) != 10 {
		t.Errorf("len/cap: %d/%d", cap(b1), len(b2))
	}
	if !a.Contains(b2) || a.Contains(make([]byte, 4)) {
		t.Error("Contains")
	}
	if _, err := a.Alloc(8192, 0); !errors.Is(err, ErrArenaFull) {
		t.Errorf("oversized alloc: %v", err)
	}
	if _, err := a.Alloc(8, 3); err == nil {
		t.Error("non power-of-two alignment accepted")
	}

	ts, err := a.NewTimespec()
	if err != nil {
		t.Fatal(err)
	}
	ts.Set(1500 * time.Millisecond)
	if ts.Sec != 1 || ts.Nsec != 5e8 {
		t.Errorf("timespec %+v", *ts)
	}

	sa, err := a.NewSockaddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"127.0.0.1:8080", "[::1]:443", "[::ffff:10.0.0.1]:1"} {
		ap := netip.MustParseAddrPort(s)
		if err := sa.Set(ap); err != nil {
			t.Fatal(err)
		}
		got, ok := sa.AddrPort()
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !ok || got != want {
			t.Errorf("sockaddr %v round trip: %v", ap, got)
		}
	}
	if sa.Set(netip.AddrPort{}) == nil {
		t.Error("invalid address accepted")
	}
}

func TestMsgSet(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{})
	defer closeRing(t, r)
	a := r.Arena()
	m, err := a.NewMsg(3)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := a.Alloc(4, 1)
	b2, _ := a.Alloc(6, 1)
	b3, _ := a.Alloc(5, 1)
	if err := m.Set(b1, b2, b3); err != nil {
		t.Fatal(err)
	}
	if m.hdr.iovlen != 3 || m.iov[1].base != addrOf(b2) || m.iov[1].len != 6 {
		t.Fatalf("after set: iovlen %d iov[1] %+v", m.hdr.iovlen, m.iov[1])
	}
	if err := m.Set(b1, b2, b3, b1); err == nil {
		t.Error("too many buffers accepted")
	}
}

// TestRejectForeignMemory checks that Go heap memory never reaches the kernel.
func TestRejectForeignMemory(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{})
	defer closeRing(t, r)
	heap := make([]byte, 64)
	if _, err := r.PrepareSend(0, heap, 0, 1); !errors.Is(err, ErrNotRingMemory) {
		t.Errorf("send from heap: %v", err)
	}
	if _, err := r.PrepareRecv(0, heap, 1); !errors.Is(err, ErrNotRingMemory) {
		t.Errorf("recv into heap: %v", err)
	}
	// A slice straddling the end of the arena is rejected too.
	a := r.Arena()
	tail := a.mem[a.Size()-8:]
	if _, err := r.PrepareSend(0, tail[:8], 0, 1); err != nil {
		t.Errorf("last 8 bytes of arena rejected: %v", err)
	}
	if r.ownsRange(uintptr(unsafe.Pointer(unsafe.SliceData(tail))), 9) {
		t.Error("range past the arena end accepted")
	}
	var ts Timespec
	if _, err := r.PrepareLinkTimeout(&ts, 1); !errors.Is(err, ErrNotRingMemory) {
		t.Errorf("heap timespec: %v", err)
	}
	var sa Sockaddr
	_ = sa.Set(loopback)
	if _, err := r.PrepareConnect(0, &sa, 1); !errors.Is(err, ErrNotRingMemory) {
		t.Errorf("heap sockaddr: %v", err)
	}
	if _, err := r.PrepareSend(0, nil, 0, 1); err == nil {
		t.Error("empty send accepted")
	}
	// Only the accepted send above was queued; drain it (fd 0 send fails).
	if got := r.InFlight(); got != 1 {
		t.Errorf("in flight %d, want 1", got)
	}
	collect(t, r, 1, 5*time.Second)
}
