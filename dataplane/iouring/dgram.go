//go:build linux

package iouring

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Datagram sockets: a multishot recvmsg that picks a provided buffer per
// datagram and writes the sender's address and control messages into it
// (struct io_uring_recvmsg_out), and sendmsg with an address and control
// messages of their own, all in ring memory.

// RecvmsgOutSize is the size of struct io_uring_recvmsg_out, the header the
// kernel writes at the start of each buffer a multishot recvmsg fills.
const RecvmsgOutSize = 16

// RecvmsgHdr is the msghdr of a multishot recvmsg, in an arena: it tells the
// kernel how much room each buffer keeps for the sender's address and for
// control messages (the payload takes the rest).
type RecvmsgHdr struct {
	hdr        *msghdr
	namelen    int
	controllen int
}

// NewRecvmsgHdr allocates the msghdr of a multishot recvmsg that keeps
// namelen bytes for the sender's address (unix.SizeofSockaddrInet6 holds
// either family) and controllen bytes for control messages (0 for none).
func (a *Arena) NewRecvmsgHdr(namelen, controllen int) (*RecvmsgHdr, error) {
	if namelen < 0 || namelen > 128 || controllen < 0 || controllen > 4096 {
		return nil, fmt.Errorf("uring: new recvmsg header: invalid name %d or control %d length", namelen, controllen)
	}
	hp, err := a.allocPtr(unsafe.Sizeof(msghdr{}), 8)
	if err != nil {
		return nil, err
	}
	h := (*msghdr)(hp)
	h.namelen = uint32(namelen)
	h.controllen = uint64(controllen)
	return &RecvmsgHdr{hdr: h, namelen: namelen, controllen: controllen}, nil
}

// PrepareRecvmsgMultishot arms a multishot recvmsg on datagram socket fd
// (IORING_RECV_MULTISHOT + IOSQE_BUFFER_SELECT from br): each datagram posts
// one CQE whose buffer (CQE.BufferID) holds an io_uring_recvmsg_out header,
// the sender's address, the control messages and the payload; decode it with
// ParseRecvmsg. Res is the number of bytes used in the buffer. It stays armed
// while CQEs carry F_MORE; the final CQE lacks it, for example with -ENOBUFS
// when br ran dry: recycle buffers and re-arm (the datagrams wait in the
// socket meanwhile).
func (r *Ring) PrepareRecvmsgMultishot(fd int, h *RecvmsgHdr, br *BufRing, userData uint64) (*SQE, error) {
	const what = "prepare recvmsg multishot"
	if err := r.checkBufRing(what, br); err != nil {
		return nil, err
	}
	if h == nil || h.hdr == nil || !r.ownsRange(uintptr(unsafe.Pointer(h.hdr)), unsafe.Sizeof(*h.hdr)) {
		return nil, fmt.Errorf("uring: %s: msghdr: %w", what, ErrNotRingMemory)
	}
	if RecvmsgOutSize+h.namelen+h.controllen >= int(br.size) {
		return nil, fmt.Errorf("uring: %s: buffers of %d bytes leave no room for a payload", what, br.size)
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpRecvmsg
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(h.hdr)))
	s.Len = 1
	s.Flags = giouring.SqeBufferSelect
	s.IoPrio = giouring.RecvMultishot
	s.BufIG = br.bgid
	s.UserData = userData
	return s, nil
}

// Recvmsg is one datagram a multishot recvmsg wrote into a buffer.
type Recvmsg struct {
	// Name is the sender's address as the kernel wrote it (a sockaddr).
	Name []byte
	// Control holds the control messages (cmsghdr sequence).
	Control []byte
	// Payload is the datagram, whole unless Truncated.
	Payload []byte
	// Truncated is set when the datagram did not fit the buffer
	// (MSG_TRUNC): Payload is its beginning only.
	Truncated bool
}

// ParseRecvmsg decodes buf, the Res bytes of a buffer filled by a multishot
// recvmsg armed with h. ok is false when buf is too short for the header
// and the room h keeps.
func (h *RecvmsgHdr) ParseRecvmsg(buf []byte) (m Recvmsg, ok bool) {
	head := RecvmsgOutSize + h.namelen + h.controllen
	if len(buf) < head {
		return Recvmsg{}, false
	}
	namelen := int(binary.NativeEndian.Uint32(buf[0:]))
	controllen := int(binary.NativeEndian.Uint32(buf[4:]))
	payloadlen := int(binary.NativeEndian.Uint32(buf[8:]))
	flags := binary.NativeEndian.Uint32(buf[12:])
	m.Name = buf[RecvmsgOutSize : RecvmsgOutSize+min(namelen, h.namelen)]
	m.Control = buf[RecvmsgOutSize+h.namelen : RecvmsgOutSize+h.namelen+min(controllen, h.controllen)]
	m.Payload = buf[head : head+min(payloadlen, len(buf)-head)]
	m.Truncated = flags&unix.MSG_TRUNC != 0 || len(m.Payload) < payloadlen
	return m, true
}

// DgramMsgNameLen and DgramMsgControlLen are the room a DgramMsg keeps for a
// destination address and control messages.
const (
	DgramMsgNameLen    = unix.SizeofSockaddrInet6
	DgramMsgControlLen = 64
)

// DgramMsg is a msghdr with one iovec, a destination address and control
// messages, all in an arena, for sending one datagram with PrepareSendDgram.
// The DgramMsg value itself may live in the Go heap.
type DgramMsg struct {
	hdr  *msghdr
	iov  *iovec
	name []byte
	ctl  []byte
}

// NewDgramMsg allocates a DgramMsg.
func (a *Arena) NewDgramMsg() (*DgramMsg, error) {
	hp, err := a.allocPtr(unsafe.Sizeof(msghdr{}), 8)
	if err != nil {
		return nil, err
	}
	ip, err := a.allocPtr(unsafe.Sizeof(iovec{}), 8)
	if err != nil {
		return nil, err
	}
	name, err := a.Alloc(DgramMsgNameLen, 8)
	if err != nil {
		return nil, err
	}
	ctl, err := a.Alloc(DgramMsgControlLen, 8)
	if err != nil {
		return nil, err
	}
	return &DgramMsg{hdr: (*msghdr)(hp), iov: (*iovec)(ip), name: name, ctl: ctl}, nil
}

// Set makes m the datagram payload (ring memory, or empty for an empty
// datagram), sent to name (a raw sockaddr; empty on a connected socket) with
// control messages ctl (empty for none). name and ctl are copied; payload is
// not and must stay untouched until the send completes. It fails when name
// or ctl exceed the room DgramMsg keeps. It does not allocate.
func (m *DgramMsg) Set(payload, name, ctl []byte) error {
	if len(name) > len(m.name) || len(ctl) > len(m.ctl) {
		return fmt.Errorf("uring: datagram message: name of %d or control of %d bytes too long", len(name), len(ctl))
	}
	*m.hdr = msghdr{}
	if len(name) > 0 {
		copy(m.name, name)
		m.hdr.name = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.name))))
		m.hdr.namelen = uint32(len(name))
	}
	if len(ctl) > 0 {
		copy(m.ctl, ctl)
		m.hdr.control = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.ctl))))
		m.hdr.controllen = uint64(len(ctl))
	}
	if len(payload) > 0 {
		*m.iov = iovec{base: addrOf(payload), len: uint64(len(payload))}
		m.hdr.iov = uint64(uintptr(unsafe.Pointer(m.iov)))
		m.hdr.iovlen = 1
	}
	return nil
}

// PrepareSendDgram queues a sendmsg of m on datagram socket fd, with
// MSG_NOSIGNAL. Res is the payload length on success. m and its payload must
// stay unchanged until the CQE arrives.
func (r *Ring) PrepareSendDgram(fd int, m *DgramMsg, userData uint64) (*SQE, error) {
	const what = "prepare send datagram"
	if r.closed {
		return nil, wrapPrep(what, ErrClosed)
	}
	if m == nil || m.hdr == nil || !r.ownsRange(uintptr(unsafe.Pointer(m.hdr)), unsafe.Sizeof(*m.hdr)) ||
		!r.ownsRange(uintptr(unsafe.Pointer(m.iov)), unsafe.Sizeof(*m.iov)) {
		return nil, fmt.Errorf("uring: %s: msghdr: %w", what, ErrNotRingMemory)
	}
	if m.hdr.iovlen == 1 && !r.ownsRange(uintptr(m.iov.base), uintptr(m.iov.len)) {
		return nil, fmt.Errorf("uring: %s: payload: %w", what, ErrNotRingMemory)
	}
	return r.prepSendmsg(what, fd, m.hdr, 0, userData)
}
