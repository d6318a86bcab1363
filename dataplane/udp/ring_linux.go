package udp

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// The io_uring driver of a loop: one ring on the loop's locked OS thread, a
// provided buffer ring, a multishot recvmsg on the listener socket (one CQE
// per datagram, the client's address and the destination's packet info in
// the buffer's recvmsg_out header) and one on each flow's connected upstream
// socket. A datagram is sent on from the buffer it arrived in (sendmsg with
// the buffer's own msghdr in the ring's arena); the buffer goes back to the
// kernel when the send completes. Sends and re-arms prepared while handling
// a batch of completions go to the kernel together with the next wait: one
// io_uring_enter per batch.

// user_data operations.
const (
	opListen     uint8 = iota + 1 // the listener socket's recvmsg
	opFlow                        // a flow's recvmsg: its slot and generation
	opSendUp                      // a send to an upstream: slot is the buffer
	opSendClient                  // a send to a client: slot is the buffer
	opWake                        // the waker's read
	opCancel                      // a cancellation of a flow's recvmsg
)

const (
	// DefaultRingBuffers is the provided buffer count of a loop's ring.
	DefaultRingBuffers = 256
	// nameRoom is the room for a client's address in a buffer (a
	// sockaddr_in6, rounded up so that control messages are aligned).
	nameRoom = 32
	// controlRoom is the room for the packet info of a wildcard socket.
	controlRoom = 64
	// bufSize holds any datagram after the recvmsg header, address and
	// control messages. The buffers are reserved, not populated: a small
	// datagram touches one page of its buffer.
	bufSize = iouring.RecvmsgOutSize + nameRoom + controlRoom + maxDatagram
	// ringEntries is the submission queue size; a fuller batch submits
	// early.
	ringEntries = 256
	// listenPause is how long the listener's receive waits to be re-armed
	// after an unexpected error.
	listenPause = 100 * time.Millisecond
)

// sendMeta is what a send in flight from a buffer is for.
type sendMeta struct {
	id ID
	n  int
}

// ringDriver is a loop's io_uring state, used on the loop's thread only.
type ringDriver struct {
	r         *iouring.Ring
	br        *iouring.BufRing
	lhdr      *iouring.RecvmsgHdr // the listener's: address and control
	uhdr      *iouring.RecvmsgHdr // upstreams': payload only
	msgs      []*iouring.DgramMsg // the send from each buffer
	sends     []sendMeta
	waker     *iouring.Waker
	listening bool // the listener's recvmsg is armed
	// holdUntil (loop clock) delays re-arming the listener's recvmsg after
	// it failed with an unexpected error, so that a lasting one does not
	// spin the loop; failed counts those failures, logged from the first.
	holdUntil int64
	failed    int
	rearm     []ID // flows whose recvmsg ended (buffers ran dry, an empty datagram)
}

// newRingDriver makes a ring with buffers provided buffers; it must run on
// the locked thread that will use it.
func newRingDriver(buffers int, pktinfo bool) (*ringDriver, error) {
	if buffers <= 0 {
		buffers = DefaultRingBuffers
	}
	r, err := iouring.New(ringEntries, iouring.Options{
		CQEntries: uint32(max(4*buffers, 4*ringEntries)),
		ArenaSize: buffers*256 + 16<<10,
	})
	if err != nil {
		return nil, err
	}
	d := &ringDriver{r: r, sends: make([]sendMeta, buffers), rearm: make([]ID, 0, 64)}
	fail := func(err error) (*ringDriver, error) {
		_ = r.Close()
		return nil, err
	}
	if d.br, err = r.ReserveBufRing(0, buffers, bufSize); err != nil {
		return fail(err)
	}
	ctl := 0
	if pktinfo {
		ctl = controlRoom
	}
	if d.lhdr, err = r.Arena().NewRecvmsgHdr(nameRoom, ctl); err != nil {
		return fail(err)
	}
	if d.uhdr, err = r.Arena().NewRecvmsgHdr(0, 0); err != nil {
		return fail(err)
	}
	d.msgs = make([]*iouring.DgramMsg, buffers)
	for i := range d.msgs {
		if d.msgs[i], err = r.Arena().NewDgramMsg(); err != nil {
			return fail(err)
		}
	}
	if d.waker, err = r.NewWaker(iouring.Pack(opWake, 0, 0)); err != nil {
		return fail(err)
	}
	return d, nil
}

// makeRing is newRingDriver; a variable, so that tests can make it fail.
var makeRing = newRingDriver

// runRing is run on an io_uring ring; false when the ring could not be made
// (the loop then serves on epoll).
func (l *loop) runRing() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := makeRing(l.buffers, l.pktinfo)
	if err != nil {
		l.log.Info("UDP listener socket serves on epoll: no io_uring ring", "address", l.slot.Addr.String(), "worker", l.w.Index(), "reason", err.Error())
		return false
	}
	l.ring = d
	l.waker.Store(d.waker)
	defer func() {
		l.closeAll() // ends the flows, cancelling their recvmsg
		l.waker.Store(nil)
		_ = d.waker.Close()
		if err := d.r.Close(); err != nil {
			l.log.Error(err, "UDP listener ring closed unclean", "address", l.slot.Addr.String(), "worker", l.w.Index())
		}
		l.ring = nil
	}()
	for !l.stopped.Load() {
		d.arm(l)
		if err := d.r.SubmitAndWait(l.wait()); err != nil {
			l.log.Error(err, "UDP listener socket stopped serving", "address", l.slot.Addr.String(), "worker", l.w.Index())
			return true
		}
		lst := l.slot.Listener.Load()
		var lc *metrics.ListenerCounters
		if lst != nil {
			lc = l.w.Listener(lst.Stats)
		}
		for _, c := range d.r.Completions() {
			l.complete(c, lst, lc)
		}
		d.br.Publish()
		l.expire(lst)
	}
	return true
}

// arm re-arms the recvmsg of the listener and of the flows whose recvmsg
// ended, while the kernel has buffers to fill.
func (d *ringDriver) arm(l *loop) {
	if d.br.Available() == 0 {
		return // the sends in flight give buffers back
	}
	if !d.listening && l.now() >= d.holdUntil {
		if _, err := d.r.PrepareRecvmsgMultishot(l.fd, d.lhdr, d.br, iouring.Pack(opListen, 0, 0)); err == nil {
			d.listening = true
		}
	}
	keep := d.rearm[:0]
	for _, id := range d.rearm {
		if f, ok := l.table.Value(id); ok && !f.armed && d.armFlow(l, id, f.fd) != nil {
			keep = append(keep, id) // tried again after the next wait
		}
	}
	d.rearm = keep
}

// armFlow arms the recvmsg of flow id's upstream socket fd.
func (d *ringDriver) armFlow(l *loop, id ID, fd int) error {
	if _, err := d.r.PrepareRecvmsgMultishot(fd, d.uhdr, d.br, flowData(id)); err != nil {
		return err
	}
	if f, ok := l.table.Value(id); ok {
		f.armed = true
	}
	return nil
}

// disarmFlow cancels the recvmsg of ended flow id, before its socket closes
// (an armed operation keeps the socket open).
func (d *ringDriver) disarmFlow(id ID, f *flow) {
	if f.armed {
		_, _ = d.r.PrepareCancel(flowData(id), iouring.Pack(opCancel, 0, 0))
	}
}

// flowData is the user_data of flow id's recvmsg.
func flowData(id ID) uint64 {
	return iouring.Pack(opFlow, id.Gen()&iouring.GenMask, uint32(id.Slot()))
}

// complete handles one completion.
func (l *loop) complete(c iouring.CQE, lst *compiled.Listener, lc *metrics.ListenerCounters) {
	d := l.ring
	op, gen, slot := iouring.Unpack(c.UserData)
	switch op {
	case opListen:
		l.ringFromClient(c, lst, lc)
	case opFlow:
		l.ringFromUpstream(c, lc, gen, slot)
	case opSendUp, opSendClient:
		bid := uint16(slot)
		m := d.sends[bid]
		_ = d.br.Stage(bid)
		if op == opSendClient {
			if c.Res >= 0 {
				l.w.ClientBytes(lc, 0, m.n)
				if f, ok := l.table.Value(m.id); ok {
					f.respBytes += int64(m.n)
					f.respDgrams++
				}
			}
			return
		}
		if c.Res < 0 {
			l.upstreamSendFailed(m.id, lc, unix.Errno(-c.Res))
		}
	case opWake:
		_ = d.waker.Handle(c)
	}
}

// ringFromClient forwards a client datagram the listener's recvmsg
// received.
func (l *loop) ringFromClient(c iouring.CQE, lst *compiled.Listener, lc *metrics.ListenerCounters) {
	d := l.ring
	if !c.More() {
		d.listening = false // ENOBUFS, or an empty datagram: arm re-arms
		switch {
		case c.Res == -int32(unix.ENOBUFS):
			l.dry.Add(1)
		case c.Res < 0 && c.Res != -int32(unix.ECANCELED):
			if d.failed++; d.failed == 1 {
				l.log.Error(c.Err(), "UDP listener socket receive failed; re-armed after a pause", "address", l.slot.Addr.String(), "worker", l.w.Index())
			}
			d.holdUntil = l.now() + int64(listenPause)
		}
	}
	buf, bid, ok := d.br.Buffer(c)
	if !ok {
		return
	}
	m, ok := d.lhdr.ParseRecvmsg(buf)
	if !ok || m.Truncated {
		_ = d.br.Stage(bid)
		l.w.UDPDropped(lc)
		return
	}
	l.from.setRaw(m.Name)
	if l.pktinfo {
		l.src.parse(m.Control)
	}
	id, f, ok := l.admit(lst, lc, len(m.Payload))
	if !ok {
		_ = d.br.Stage(bid)
		return
	}
	if d.send(f.fd, opSendUp, bid, m.Payload, nil, nil, id) != nil {
		_ = d.br.Stage(bid)
		l.w.UDPDropped(lc)
	}
}

// ringFromUpstream sends a datagram a flow's recvmsg received to the flow's
// client.
func (l *loop) ringFromUpstream(c iouring.CQE, lc *metrics.ListenerCounters, gen, slot uint32) {
	d := l.ring
	buf, bid, hasBuf := d.br.Buffer(c)
	id, ok := l.table.At(int32(slot))
	if !ok || id.Gen()&iouring.GenMask != gen {
		// The flow ended: a datagram that came before the cancellation.
		if hasBuf {
			_ = d.br.Stage(bid)
		}
		return
	}
	f, _ := l.table.Value(id)
	if !c.More() {
		f.armed = false
		switch c.Res {
		case -int32(unix.ENOBUFS):
			l.dry.Add(1)
			d.rearm = append(d.rearm, id)
		case -int32(unix.ECANCELED):
			d.rearm = append(d.rearm, id) // not this flow's end: a live flow keeps listening
		default:
			if c.Res < 0 {
				l.upstreamFailed(id, lc, unix.Errno(-c.Res))
				return
			}
			d.rearm = append(d.rearm, id) // an empty datagram ends a multishot receive
		}
	}
	if !hasBuf {
		return
	}
	m, ok := d.uhdr.ParseRecvmsg(buf)
	if !ok || m.Truncated {
		_ = d.br.Stage(bid)
		return
	}
	l.table.Touch(id, l.now())
	if d.send(l.fd, opSendClient, bid, m.Payload, &f.to, &f.src, id) != nil {
		_ = d.br.Stage(bid)
	}
}

// send prepares the send of p, which lies in buffer bid, on fd: to an
// address and from a source when given (the listener socket), as is on a
// connected socket. The buffer is recycled when the send completes.
func (d *ringDriver) send(fd int, op uint8, bid uint16, p []byte, to *rawAddr, src *source, id ID) error {
	var name, ctl []byte
	if to != nil {
		name = to.bytes()
	}
	if src != nil && src.n > 0 {
		ctl = src.ctl[:src.n]
	}
	m := d.msgs[bid]
	if err := m.Set(p, name, ctl); err != nil {
		return err
	}
	if _, err := d.r.PrepareSendDgram(fd, m, iouring.Pack(op, 0, uint32(bid))); err != nil {
		return err
	}
	d.sends[bid] = sendMeta{id: id, n: len(p)}
	return nil
}

// wait is how long the loop may sleep: until the idlest flow expires, at
// most maxWait.
func (l *loop) wait() time.Duration {
	wait := maxWait
	if lst := l.slot.Listener.Load(); lst != nil {
		if at, ok := l.table.NextExpiry(int64(lst.UDPIdleTimeout)); ok {
			wait = min(wait, time.Duration(at-l.now()))
		}
	}
	if d := l.ring; d != nil && !d.listening && d.holdUntil > l.now() {
		wait = min(wait, time.Duration(d.holdUntil-l.now()))
	}
	return max(wait, time.Millisecond)
}

// bytes is a's address as the kernel reads it.
func (a *rawAddr) bytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&a.sa)), a.len)
}

// setRaw stores the socket address the kernel wrote in name.
func (a *rawAddr) setRaw(name []byte) {
	n := copy(unsafe.Slice((*byte)(unsafe.Pointer(&a.sa)), unix.SizeofSockaddrInet6), name)
	a.len = uint32(n)
}

// probeUring checks that this kernel serves UDP listeners on io_uring: the
// opcodes and setup flags of the io_uring engine, then a multishot recvmsg
// with a provided buffer ring that receives a datagram on a loopback socket
// and reports its sender (Linux 6.0). A variable, so that tests can make it
// fail.
var probeUring = func() error {
	if err := iouring.Probe(); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := newRingDriver(2, false)
	if err != nil {
		return err
	}
	defer func() {
		_ = d.waker.Close()
		_ = d.r.Close()
	}()
	fd, err := bindListener(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	if _, err := d.r.PrepareRecvmsgMultishot(fd, d.lhdr, d.br, iouring.Pack(opListen, 0, 0)); err != nil {
		return err
	}
	if err := d.r.Submit(); err != nil {
		return err
	}
	if err := unix.Sendto(fd, []byte("probe"), 0, sa); err != nil {
		return fmt.Errorf("probe datagram: %w", err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if err := d.r.SubmitAndWait(100 * time.Millisecond); err != nil {
			return err
		}
		for _, c := range d.r.Completions() {
			if op, _, _ := iouring.Unpack(c.UserData); op != opListen {
				continue
			}
			if c.Res < 0 {
				return fmt.Errorf("%w: multishot recvmsg: %w", iouring.ErrUnsupported, c.Err())
			}
			buf, _, ok := d.br.Buffer(c)
			if !ok || !c.More() {
				return fmt.Errorf("%w: multishot recvmsg posted no buffer or did not stay armed", iouring.ErrUnsupported)
			}
			m, ok := d.lhdr.ParseRecvmsg(buf)
			if !ok || string(m.Payload) != "probe" || len(m.Name) != unix.SizeofSockaddrInet4 {
				return fmt.Errorf("%w: multishot recvmsg wrote an unexpected buffer", iouring.ErrUnsupported)
			}
			return nil
		}
	}
	return errors.New("multishot recvmsg: no datagram within a second")
}
