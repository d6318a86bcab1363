//go:build linux

package iouring

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

func sockaddrOf(ap netip.AddrPort) (unix.Sockaddr, int, error) {
	addr := ap.Addr()
	switch {
	case addr.Is4() || addr.Is4In6():
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: addr.Unmap().As4()}, unix.AF_INET, nil
	case addr.Is6():
		sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: addr.As16()}
		if z := addr.Zone(); z != "" {
			ifi, err := netInterfaceIndex(z)
			if err != nil {
				return nil, 0, err
			}
			sa.ZoneId = ifi
		}
		return sa, unix.AF_INET6, nil
	}
	return nil, 0, fmt.Errorf("invalid address %v", ap)
}

// ListenTCP creates a listening TCP socket bound to addr with SO_REUSEADDR
// and SO_REUSEPORT (so every worker can own a listener on the same port and
// the kernel spreads connections across them) and close-on-exec. The socket is
// left blocking: io_uring does not need O_NONBLOCK.
func ListenTCP(addr netip.AddrPort, backlog int) (fd int, err error) {
	sa, family, err := sockaddrOf(addr)
	if err != nil {
		return -1, fmt.Errorf("uring: listen %v: %w", addr, err)
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("uring: listen %v: socket: %w", addr, err)
	}
	defer func() {
		if err != nil {
			_ = unix.Close(fd)
			fd = -1
		}
	}()
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, fmt.Errorf("uring: listen %v: SO_REUSEADDR: %w", addr, err)
	}
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return -1, fmt.Errorf("uring: listen %v: SO_REUSEPORT: %w", addr, err)
	}
	if err = unix.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("uring: listen %v: bind: %w", addr, err)
	}
	if backlog <= 0 {
		backlog = unix.SOMAXCONN
	}
	if err = unix.Listen(fd, backlog); err != nil {
		return -1, fmt.Errorf("uring: listen %v: %w", addr, err)
	}
	return fd, nil
}

// NewTCPSocket creates an unconnected TCP socket of the right address family
// for connecting to addr (with Ring.PrepareConnect), close-on-exec and with
// TCP_NODELAY set.
func NewTCPSocket(addr netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		family = unix.AF_INET
	} else if !a.Is6() {
		return -1, fmt.Errorf("uring: new tcp socket: invalid address %v", addr)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("uring: new tcp socket: %w", err)
	}
	if err := SetNoDelay(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("uring: new tcp socket: %w", err)
	}
	return fd, nil
}

// SetNoDelay sets or clears TCP_NODELAY on fd.
func SetNoDelay(fd int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v); err != nil {
		return fmt.Errorf("uring: set TCP_NODELAY on fd %d: %w", fd, err)
	}
	return nil
}

// LocalAddr returns the address fd is bound to (for example the port the
// kernel picked for a listener bound to port 0).
func LocalAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("uring: getsockname fd %d: %w", fd, err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("uring: getsockname fd %d: unexpected address family", fd)
}

// netInterfaceIndex resolves an IPv6 zone (interface name or number).
func netInterfaceIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("ipv6 zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}
