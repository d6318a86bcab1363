package udp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bindListener binds a non-blocking UDP socket to addr with SO_REUSEPORT, so
// that every worker binds its own. An IPv4 address gets an IPv4 socket; any
// other (the unspecified IPv6 address included) a dual-stack IPv6 one.
func bindListener(addr netip.AddrPort) (int, error) {
	family := familyOf(addr.Addr())
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return -1, fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return -1, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if addr.Addr().IsUnspecified() {
		if err := wantPktinfo(fd, family); err != nil {
			return -1, fmt.Errorf("packet info: %w", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(addr, family)); err != nil {
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	ok = true
	return fd, nil
}

// dialUpstream opens a UDP socket connected to addr, non-blocking for epoll,
// blocking for io_uring.
func dialUpstream(addr netip.AddrPort, nonblock bool) (int, error) {
	family := familyOf(addr.Addr())
	typ := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if nonblock {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(family, typ, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, sockaddr(addr, family)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", addr, err)
	}
	return fd, nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func sockaddr(addr netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
}

// rawAddr is a socket address the kernel reads or writes in a syscall; it
// lives in the loop (heap), never on a goroutine stack.
type rawAddr struct {
	sa  unix.RawSockaddrInet6 // large enough for either family
	len uint32
}

// addrPort decodes the address the kernel wrote into a.
func (a *rawAddr) addrPort() netip.AddrPort {
	switch a.sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.sa.Addr), port(a.sa.Port))
	}
	return netip.AddrPort{}
}

// set encodes addr for a socket of family into a.
func (a *rawAddr) set(addr netip.AddrPort, family int) {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], addr.Port())
	if family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.Addr().As4()}
		sa4.Port = *(*uint16)(unsafe.Pointer(&p))
		a.len = unix.SizeofSockaddrInet4
		return
	}
	a.sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.Addr().As16()}
	a.sa.Port = *(*uint16)(unsafe.Pointer(&p))
	a.len = unix.SizeofSockaddrInet6
}

// port decodes a port in network byte order as the raw sockaddr holds it.
func port(raw uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&raw))
	return binary.BigEndian.Uint16(b[:])
}

// recvFrom receives one datagram on fd into buf and its sender into from,
// without allocating.
func recvFrom(fd int, buf []byte, from *rawAddr) (int, unix.Errno) {
	from.len = unix.SizeofSockaddrInet6
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		0, uintptr(unsafe.Pointer(&from.sa)), uintptr(unsafe.Pointer(&from.len)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// sendTo sends p as one datagram on fd to to, without allocating.
func sendTo(fd int, p []byte, to *rawAddr) unix.Errno {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(ptr), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&to.sa)), uintptr(to.len))
	return e
}

// readUpstream reads one datagram from a connected socket into buf.
func readUpstream(fd int, buf []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// writeUpstream sends p as one datagram on a connected socket (send, not
// write: write may send nothing for an empty datagram).
func writeUpstream(fd int, p []byte) unix.Errno {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(ptr), uintptr(len(p)), 0, 0, 0)
	return e
}

// A listener socket bound to the unspecified address receives datagrams sent
// to any of the node's addresses, and its replies must leave from the address
// each client sent to (a client's connected socket drops anything else): such
// sockets ask for the destination of every datagram (IP_PKTINFO,
// IPV6_RECVPKTINFO) and set it as the source of the flow's replies.

// wantPktinfo asks fd, a listener socket of family bound to the unspecified
// address, for the destination address of the datagrams it receives.
func wantPktinfo(fd, family int) error {
	if family == unix.AF_INET {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
}

// msgBuf is the recvmsg and sendmsg state of a loop, in its heap memory.
type msgBuf struct {
	hdr unix.Msghdr
	iov unix.Iovec
	oob [128]byte
}

// source is the control message that sets the source address of a reply: the
// address a flow's client sent to. Empty on sockets bound to one address.
type source struct {
	ctl [64]byte
	n   int
}

// recvMsg receives one datagram on fd into buf, its sender into from and, when
// the socket reports it, its destination as a source for replies into src.
func recvMsg(fd int, buf []byte, from *rawAddr, m *msgBuf, src *source) (int, unix.Errno) {
	from.len = unix.SizeofSockaddrInet6
	m.iov.Base = &buf[0]
	m.iov.SetLen(len(buf))
	m.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&from.sa)), Namelen: from.len, Iov: &m.iov, Iovlen: 1, Control: &m.oob[0]}
	m.hdr.SetControllen(len(m.oob))
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdr)), 0)
	if e != 0 {
		return 0, e
	}
	from.len = m.hdr.Namelen
	src.parse(m.oob[:m.hdr.Controllen])
	return int(n), 0
}

// parse sets s from the control messages of a received datagram: its
// destination address (IP_PKTINFO, IPV6_PKTINFO) as the source of replies;
// empty when they carry none.
func (s *source) parse(oob []byte) {
	s.n = 0
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			s.set(unix.IPPROTO_IP, unix.IP_PKTINFO, unsafe.Pointer(&unix.Inet4Pktinfo{Spec_dst: in.Addr}), unix.SizeofInet4Pktinfo)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			s.set(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Pointer(&unix.Inet6Pktinfo{Addr: in.Addr}), unix.SizeofInet6Pktinfo)
		}
		space := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if space > len(oob) {
			break
		}
		oob = oob[space:]
	}
}

// set makes s one control message of level and typ carrying the n bytes at p.
func (s *source) set(level, typ int32, p unsafe.Pointer, n int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&s.ctl[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(n))
	copy(s.ctl[unix.CmsgLen(0):], unsafe.Slice((*byte)(p), n))
	s.n = unix.CmsgSpace(n)
}

// sendMsg sends p as one datagram on fd to to, from src's address when set.
func sendMsg(fd int, p []byte, to *rawAddr, src *source, m *msgBuf) unix.Errno {
	if src.n == 0 {
		return sendTo(fd, p, to)
	}
	m.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&to.sa)), Namelen: to.len, Iov: &m.iov, Iovlen: 1, Control: &src.ctl[0]}
	m.hdr.SetControllen(src.n)
	if len(p) > 0 {
		m.iov.Base = &p[0]
	} else {
		m.iov.Base = nil
	}
	m.iov.SetLen(len(p))
	_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdr)), 0)
	return e
}
