//go:build linux

package iouring

import (
	"fmt"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// SQE is a submission queue entry returned by the Prepare methods, so that
// the caller can adjust its flags (for example Link before a
// PrepareLinkTimeout) before the next submit. Its fields must not be changed
// otherwise: the Prepare methods have validated them.
//
// All Prepare methods fill every SQE field themselves, starting from a zeroed
// entry. giouring's Prepare* helpers are not used: they leave fields from an
// earlier use of the same slot in place (rw_flags, addr3), and several of
// them store the address of a Go stack variable or of a slice header instead
// of the data.
type SQE giouring.SubmissionQueueEntry

// Link sets IOSQE_IO_LINK: the next SQE starts only after this one succeeds
// (a PrepareLinkTimeout placed next bounds this operation's duration).
func (s *SQE) Link() *SQE { s.Flags |= giouring.SqeIOLink; return s }

// sqe grabs a free SQE, submitting pending ones first if the queue is full,
// zeroes it and counts it as in flight.
func (r *Ring) sqe() (*SQE, error) {
	if r.closed {
		return nil, ErrClosed
	}
	s := r.ring.GetSQE()
	if s == nil {
		r.last = nil
		if _, err := r.ring.Submit(); err != nil {
			if err = r.enterErr("flush full submission queue", err); err != nil {
				return nil, err
			}
		}
		if s = r.ring.GetSQE(); s == nil {
			return nil, ErrSQFull
		}
	}
	*s = giouring.SubmissionQueueEntry{}
	r.inflight++
	r.last = (*SQE)(s)
	return r.last, nil
}

// Reserve makes sure at least n SQEs can be prepared without an intermediate
// submit, submitting the pending ones if needed. Call Reserve(2) before an
// operation followed by PrepareLinkTimeout so the pair is never split.
func (r *Ring) Reserve(n int) error {
	if r.closed {
		return fmt.Errorf("uring: reserve: %w", ErrClosed)
	}
	if n <= 0 || n > int(r.sqSize) {
		return fmt.Errorf("uring: reserve: %d SQEs out of range [1, %d]", n, r.sqSize)
	}
	if int(r.ring.SQSpaceLeft()) >= n {
		return nil
	}
	if err := r.Submit(); err != nil {
		return err
	}
	if int(r.ring.SQSpaceLeft()) < n {
		return fmt.Errorf("uring: reserve: %w", ErrSQFull)
	}
	return nil
}

func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func (r *Ring) checkBuf(what string, b []byte) error {
	if r.closed {
		return fmt.Errorf("uring: %s: %w", what, ErrClosed)
	}
	if len(b) == 0 || len(b) > 1<<31-1 {
		return fmt.Errorf("uring: %s: invalid buffer length %d", what, len(b))
	}
	if !r.owns(b) {
		return fmt.Errorf("uring: %s: %w", what, ErrNotRingMemory)
	}
	return nil
}

func (r *Ring) checkTimespec(what string, ts *Timespec) error {
	if ts == nil || !r.ownsRange(uintptr(unsafe.Pointer(ts)), unsafe.Sizeof(*ts)) {
		return fmt.Errorf("uring: %s: timespec: %w", what, ErrNotRingMemory)
	}
	if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= 1e9 {
		return fmt.Errorf("uring: %s: invalid timespec %d.%09d", what, ts.Sec, ts.Nsec)
	}
	return nil
}

func (r *Ring) checkBufRing(what string, br *BufRing) error {
	if br == nil || br.r != r || br.mem == nil {
		return fmt.Errorf("uring: %s: buffer ring is closed or belongs to another ring", what)
	}
	return nil
}

func wrapPrep(what string, err error) error {
	return fmt.Errorf("uring: %s: %w", what, err)
}

// PrepareNop queues a no-op that completes with res 0.
func (r *Ring) PrepareNop(userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare nop", err)
	}
	s.OpCode = giouring.OpNop
	s.Fd = -1
	s.UserData = userData
	return s, nil
}

// PrepareAcceptMultishot arms a multishot accept (IORING_ACCEPT_MULTISHOT)
// on listening socket fd. Every accepted connection posts a CQE whose Res is
// the new fd (created with SOCK_CLOEXEC) and which carries F_MORE while the
// accept stays armed. A CQE without F_MORE (for example after an error such
// as EMFILE) means it must be re-armed.
func (r *Ring) PrepareAcceptMultishot(fd int, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare accept", err)
	}
	s.OpCode = giouring.OpAccept
	s.Fd = int32(fd)
	s.IoPrio = giouring.AcceptMultishot
	s.OpcodeFlags = unix.SOCK_CLOEXEC
	s.UserData = userData
	return s, nil
}

// PrepareRecvMultishot arms a multishot receive on fd that picks buffers from
// br (IOSQE_BUFFER_SELECT + IORING_RECV_MULTISHOT). Each CQE carries Res bytes
// in the buffer named by CQE.BufferID. Res == 0 is end of stream. The receive
// stays armed while CQEs carry F_MORE; the final CQE lacks it, for example
// with -ENOBUFS when br ran dry: recycle buffers and re-arm.
func (r *Ring) PrepareRecvMultishot(fd int, br *BufRing, userData uint64) (*SQE, error) {
	const what = "prepare recv multishot"
	if err := r.checkBufRing(what, br); err != nil {
		return nil, err
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpRecv
	s.Fd = int32(fd)
	s.Flags = giouring.SqeBufferSelect
	s.IoPrio = giouring.RecvMultishot
	s.BufIG = br.bgid
	s.UserData = userData
	return s, nil
}

// PrepareRecv queues a single receive on fd into buf, which must be ring
// memory.
func (r *Ring) PrepareRecv(fd int, buf []byte, userData uint64) (*SQE, error) {
	const what = "prepare recv"
	if err := r.checkBuf(what, buf); err != nil {
		return nil, err
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpRecv
	s.Fd = int32(fd)
	s.Addr = addrOf(buf)
	s.Len = uint32(len(buf))
	s.UserData = userData
	return s, nil
}

// PrepareRead queues a read(2) of up to len(buf) bytes from fd into buf, which
// must be ring memory. The file offset is not used (non-seekable files).
func (r *Ring) PrepareRead(fd int, buf []byte, userData uint64) (*SQE, error) {
	const what = "prepare read"
	if err := r.checkBuf(what, buf); err != nil {
		return nil, err
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpRead
	s.Fd = int32(fd)
	s.Addr = addrOf(buf)
	s.Len = uint32(len(buf))
	s.Off = ^uint64(0) // -1: current position, valid for pipes/eventfds/sockets
	s.UserData = userData
	return s, nil
}

// PrepareSend queues a send of buf (ring memory: an arena or a buffer taken
// from a BufRing) on fd. MSG_NOSIGNAL is always added to msgFlags so a
// closed peer yields -EPIPE instead of SIGPIPE. Res may be short; resend the
// rest. buf must not be modified or recycled until the CQE arrives.
func (r *Ring) PrepareSend(fd int, buf []byte, msgFlags int, userData uint64) (*SQE, error) {
	const what = "prepare send"
	if err := r.checkBuf(what, buf); err != nil {
		return nil, err
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpSend
	s.Fd = int32(fd)
	s.Addr = addrOf(buf)
	s.Len = uint32(len(buf))
	s.OpcodeFlags = uint32(msgFlags | unix.MSG_NOSIGNAL)
	s.UserData = userData
	return s, nil
}

// PrepareSendmsg queues a vectored send of m (see Arena.NewMsg and Msg.Set)
// on fd, with MSG_NOSIGNAL added to msgFlags. Every iovec must point into
// ring memory. m must stay unchanged until the CQE arrives.
func (r *Ring) PrepareSendmsg(fd int, m *Msg, msgFlags int, userData uint64) (*SQE, error) {
	const what = "prepare sendmsg"
	if r.closed {
		return nil, wrapPrep(what, ErrClosed)
	}
	if m == nil || m.hdr == nil ||
		!r.ownsRange(uintptr(unsafe.Pointer(m.hdr)), unsafe.Sizeof(*m.hdr)) ||
		m.hdr.iovlen > uint64(len(m.iov)) ||
		!r.ownsRange(uintptr(unsafe.Pointer(unsafe.SliceData(m.iov))), uintptr(len(m.iov))*unsafe.Sizeof(iovec{})) {
		return nil, fmt.Errorf("uring: %s: msghdr: %w", what, ErrNotRingMemory)
	}
	if m.hdr.iovlen == 0 {
		return nil, fmt.Errorf("uring: %s: empty message", what)
	}
	for _, v := range m.iov[:m.hdr.iovlen] {
		if !r.ownsRange(uintptr(v.base), uintptr(v.len)) {
			return nil, fmt.Errorf("uring: %s: iovec: %w", what, ErrNotRingMemory)
		}
	}
	return r.prepSendmsg(what, fd, m.hdr, msgFlags, userData)
}

// prepSendmsg queues a sendmsg of the checked header hdr on fd, with
// MSG_NOSIGNAL added to msgFlags.
func (r *Ring) prepSendmsg(what string, fd int, hdr *msghdr, msgFlags int, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpSendmsg
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(hdr)))
	s.Len = 1
	s.OpcodeFlags = uint32(msgFlags | unix.MSG_NOSIGNAL)
	s.UserData = userData
	return s, nil
}

// PrepareConnect queues a connect of socket fd to sa, which must come from one
// of the ring's arenas. Res is 0 on success or a negated errno such as
// -ECONNREFUSED.
func (r *Ring) PrepareConnect(fd int, sa *Sockaddr, userData uint64) (*SQE, error) {
	const what = "prepare connect"
	if r.closed {
		return nil, wrapPrep(what, ErrClosed)
	}
	if sa == nil || !r.ownsRange(uintptr(unsafe.Pointer(sa)), unsafe.Sizeof(*sa)) {
		return nil, fmt.Errorf("uring: %s: sockaddr: %w", what, ErrNotRingMemory)
	}
	if sa.n == 0 {
		return nil, fmt.Errorf("uring: %s: sockaddr not set", what)
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpConnect
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(&sa.raw)))
	s.Off = uint64(sa.n) // addr2 carries the address length by value
	s.UserData = userData
	return s, nil
}

// PrepareClose queues close(fd). Closing an fd does not cancel operations
// still armed on it (they hold their own file reference): cancel them first
// (PrepareCancelFd) or let them finish.
func (r *Ring) PrepareClose(fd int, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare close", err)
	}
	s.OpCode = giouring.OpClose
	s.Fd = int32(fd)
	s.UserData = userData
	return s, nil
}

// PrepareShutdown queues shutdown(fd, how) with how one of unix.SHUT_RD,
// SHUT_WR or SHUT_RDWR.
func (r *Ring) PrepareShutdown(fd int, how int, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare shutdown", err)
	}
	s.OpCode = giouring.OpShutdown
	s.Fd = int32(fd)
	s.Len = uint32(how)
	s.UserData = userData
	return s, nil
}

// PrepareCancel queues cancellation of the in-flight operation whose
// user_data is target. Its own CQE has Res 0 when found and cancelled,
// -ENOENT when nothing matched and -EALREADY when the operation was already
// running; the cancelled operation completes with -ECANCELED.
func (r *Ring) PrepareCancel(target uint64, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare cancel", err)
	}
	s.OpCode = giouring.OpAsyncCancel
	s.Fd = -1
	s.Addr = target
	s.UserData = userData
	return s, nil
}

// PrepareCancelFd queues cancellation of every in-flight operation on fd.
// Res is the number of operations cancelled, or -ENOENT.
func (r *Ring) PrepareCancelFd(fd int, userData uint64) (*SQE, error) {
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep("prepare cancel fd", err)
	}
	s.OpCode = giouring.OpAsyncCancel
	s.Fd = int32(fd)
	s.OpcodeFlags = giouring.AsyncCancelFd | giouring.AsyncCancelAll
	s.UserData = userData
	return s, nil
}

// PrepareLinkTimeout bounds the operation prepared just before it, which must
// have been marked with SQE.Link. If ts (ring memory, relative) expires first
// the operation completes with -ECANCELED and this CQE with -ETIME; if the
// operation finishes first this CQE has -ECANCELED.
func (r *Ring) PrepareLinkTimeout(ts *Timespec, userData uint64) (*SQE, error) {
	const what = "prepare link timeout"
	if err := r.checkTimespec(what, ts); err != nil {
		return nil, err
	}
	if r.last == nil || r.last.Flags&giouring.SqeIOLink == 0 ||
		r.ring.SQSpaceLeft() == 0 {
		return nil, fmt.Errorf("uring: %s: must directly follow an unsubmitted SQE marked with Link "+
			"(use Reserve(2) so both fit in the queue)", what)
	}
	s, err := r.sqe()
	if err != nil {
		return nil, wrapPrep(what, err)
	}
	s.OpCode = giouring.OpLinkTimeout
	s.Fd = -1
	s.Addr = uint64(uintptr(unsafe.Pointer(ts)))
	s.Len = 1
	s.UserData = userData
	return s, nil
}
