//go:build linux

package iouring

import (
	"fmt"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Compile-time check: the package encodes pointers as 64-bit SQE fields and
// mirrors 64-bit kernel structures (msghdr, iovec).
var _ [unsafe.Sizeof(uintptr(0)) - 8]byte

// Arena is a bump allocator over an anonymous mmap region owned by a Ring.
// Everything the kernel accesses asynchronously on the ring's behalf comes
// from an Arena (or a BufRing), never from the Go heap or a goroutine stack.
// Allocations are never freed individually: a worker carves per-slot
// structures out of an arena once and reuses them. The memory is unmapped by
// Ring.Close. Arena memory must not hold Go pointers.
type Arena struct {
	mem  []byte
	off  int
	base uintptr
}

func newArena(size int) (*Arena, error) {
	if size <= 0 {
		return nil, fmt.Errorf("invalid size %d", size)
	}
	page := os.Getpagesize()
	size = (size + page - 1) &^ (page - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return &Arena{mem: mem, base: uintptr(unsafe.Pointer(unsafe.SliceData(mem)))}, nil
}

func (a *Arena) free() error {
	if a.mem == nil {
		return nil
	}
	err := unix.Munmap(a.mem)
	a.mem, a.base, a.off = nil, 0, 0
	if err != nil {
		return fmt.Errorf("uring: free arena: %w", err)
	}
	return nil
}

// Alloc returns size zeroed bytes aligned to align (a power of two; 0 means
// 16). The returned slice's capacity equals its length, so appending to it
// moves the data to the Go heap and makes it unusable for the ring.
func (a *Arena) Alloc(size, align int) ([]byte, error) {
	if a.mem == nil {
		return nil, fmt.Errorf("uring: arena alloc: %w", ErrClosed)
	}
	if align == 0 {
		align = 16
	}
	if size <= 0 || align < 0 || align&(align-1) != 0 {
		return nil, fmt.Errorf("uring: arena alloc: invalid size %d or alignment %d", size, align)
	}
	start := (a.off + align - 1) &^ (align - 1)
	if start > len(a.mem) || size > len(a.mem)-start {
		return nil, fmt.Errorf("uring: arena alloc %d bytes (%d of %d used): %w", size, a.off, len(a.mem), ErrArenaFull)
	}
	a.off = start + size
	return a.mem[start : start+size : start+size], nil
}

// Size is the arena's capacity in bytes.
func (a *Arena) Size() int { return len(a.mem) }

// Contains reports whether b lies entirely inside the arena.
func (a *Arena) Contains(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	return a.containsRange(uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
}

func (a *Arena) containsRange(p, n uintptr) bool {
	return a.mem != nil && p >= a.base && n <= uintptr(len(a.mem)) && p-a.base <= uintptr(len(a.mem))-n
}

func (a *Arena) allocPtr(size, align uintptr) (unsafe.Pointer, error) {
	b, err := a.Alloc(int(size), int(align))
	if err != nil {
		return nil, err
	}
	return unsafe.Pointer(unsafe.SliceData(b)), nil
}

// Timespec mirrors the kernel's struct __kernel_timespec. Obtain one from
// Arena.NewTimespec; PrepareLinkTimeout rejects any other.
type Timespec struct {
	Sec  int64
	Nsec int64
}

// Set stores d (negative durations are clamped to zero).
func (t *Timespec) Set(d time.Duration) {
	if d < 0 {
		d = 0
	}
	t.Sec = int64(d / time.Second)
	t.Nsec = int64(d % time.Second)
}

// NewTimespec allocates a zero Timespec in the arena.
func (a *Arena) NewTimespec() (*Timespec, error) {
	p, err := a.allocPtr(unsafe.Sizeof(Timespec{}), unsafe.Alignof(Timespec{}))
	if err != nil {
		return nil, err
	}
	return (*Timespec)(p), nil
}

// Sockaddr is a socket address stored in an arena, suitable for
// Ring.PrepareConnect. It holds an IPv4 or IPv6 address.
type Sockaddr struct {
	raw unix.RawSockaddrAny
	n   uint32
}

// NewSockaddr allocates an empty Sockaddr in the arena.
func (a *Arena) NewSockaddr() (*Sockaddr, error) {
	p, err := a.allocPtr(unsafe.Sizeof(Sockaddr{}), 8)
	if err != nil {
		return nil, err
	}
	return (*Sockaddr)(p), nil
}

// Set stores ap. IPv4-mapped IPv6 addresses are stored as IPv4.
func (s *Sockaddr) Set(ap netip.AddrPort) error {
	addr := ap.Addr().Unmap()
	port := ap.Port()
	s.raw = unix.RawSockaddrAny{}
	switch {
	case addr.Is4():
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
		sa.Family = unix.AF_INET
		putPort(&sa.Port, port)
		sa.Addr = addr.As4()
		s.n = unix.SizeofSockaddrInet4
	case addr.Is6():
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.raw))
		sa.Family = unix.AF_INET6
		putPort(&sa.Port, port)
		sa.Addr = addr.As16()
		if z := addr.Zone(); z != "" {
			id, err := netInterfaceIndex(z)
			if err != nil {
				s.raw, s.n = unix.RawSockaddrAny{}, 0
				return fmt.Errorf("uring: sockaddr: %w", err)
			}
			sa.Scope_id = id
		}
		s.n = unix.SizeofSockaddrInet6
	default:
		s.n = 0
		return fmt.Errorf("uring: sockaddr: invalid address %v", ap)
	}
	return nil
}

// AddrPort decodes the stored address; ok is false when none is set.
func (s *Sockaddr) AddrPort() (ap netip.AddrPort, ok bool) {
	switch s.raw.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port)), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.raw))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), getPort(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// msghdr and iovec mirror the 64-bit kernel layouts with integer fields so
// that no Go pointer is ever stored in arena memory.
type msghdr struct {
	name       uint64
	namelen    uint32
	_          uint32
	iov        uint64
	iovlen     uint64
	control    uint64
	controllen uint64
	flags      int32
	_          int32
}

type iovec struct {
	base uint64
	len  uint64
}

// Msg is a msghdr plus an iovec array, both in an arena, for
// Ring.PrepareSendmsg (vectored sends). The Msg value itself may live in the
// Go heap; only the structures it points to are seen by the kernel.
type Msg struct {
	hdr *msghdr
	iov []iovec
}

// NewMsg allocates a msghdr with room for maxIov iovecs.
func (a *Arena) NewMsg(maxIov int) (*Msg, error) {
	if maxIov <= 0 || maxIov > 1024 {
		return nil, fmt.Errorf("uring: new msg: invalid iovec count %d", maxIov)
	}
	hp, err := a.allocPtr(unsafe.Sizeof(msghdr{}), 8)
	if err != nil {
		return nil, err
	}
	ip, err := a.allocPtr(uintptr(maxIov)*unsafe.Sizeof(iovec{}), 8)
	if err != nil {
		return nil, err
	}
	m := &Msg{hdr: (*msghdr)(hp), iov: unsafe.Slice((*iovec)(ip), maxIov)}
	m.hdr.iov = uint64(uintptr(ip))
	return m, nil
}

// Set points the message at bufs (which must be ring memory; PrepareSendmsg
// verifies it). It fails if len(bufs) exceeds the capacity given to NewMsg.
// Set does not retain bufs.
func (m *Msg) Set(bufs ...[]byte) error {
	if len(bufs) > len(m.iov) {
		return fmt.Errorf("uring: msg set: %d buffers exceed capacity %d", len(bufs), len(m.iov))
	}
	for i, b := range bufs {
		m.iov[i] = iovec{base: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), len: uint64(len(b))}
	}
	m.hdr.iovlen = uint64(len(bufs))
	return nil
}
