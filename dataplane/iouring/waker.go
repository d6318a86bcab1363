//go:build linux

package iouring

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Waker lets any goroutine interrupt a worker blocked in SubmitAndWait. It is
// an eventfd on which the worker keeps one 8-byte read armed (the buffer lives
// in the ring's arena). Wake writes to the eventfd, the read completes with the
// Waker's user_data, and the worker calls Handle, which re-arms the read.
//
// Wakes coalesce: while one is pending (written but not yet handled) further
// Wake calls return without a syscall. The intended pattern is: producers
// publish work (a queue protected by its own synchronisation), then call
// Wake; the worker, on the Waker's CQE, calls Handle first and then drains
// the queue. Handle clears the pending flag before the drain, so no wake-up
// is ever lost.
type Waker struct {
	r        *Ring
	fd       int
	buf      []byte
	ud       uint64
	pending  atomic.Bool
	state    atomic.Int64 // closedBit | number of Wake calls inside the critical section
	armed    bool
	shutdown bool
}

const wakerClosedBit = 1 << 62

var wakeValue = [8]byte{1} // little-endian 1; any nonzero eventfd increment works

// NewWaker creates the eventfd and arms its read; its completions carry
// userData.
func (r *Ring) NewWaker(userData uint64) (*Waker, error) {
	buf, err := r.arena.Alloc(8, 8)
	if err != nil {
		return nil, fmt.Errorf("uring: new waker: %w", err)
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("uring: new waker: eventfd: %w", err)
	}
	w := &Waker{r: r, fd: fd, buf: buf, ud: userData}
	if err := w.arm(); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("uring: new waker: %w", err)
	}
	return w, nil
}

func (w *Waker) arm() error {
	if _, err := w.r.PrepareRead(w.fd, w.buf, w.ud); err != nil {
		return err
	}
	w.armed = true
	return nil
}

// Wake makes the owner's next (or current) SubmitAndWait return. It is safe to
// call from any goroutine, concurrently with everything else, and does not
// allocate. After Close it returns ErrClosed.
func (w *Waker) Wake() error {
	if w.state.Load()&wakerClosedBit != 0 {
		return fmt.Errorf("uring: wake: %w", ErrClosed)
	}
	if w.pending.Load() {
		return nil
	}
	if w.state.Add(1)&wakerClosedBit != 0 {
		w.state.Add(-1)
		return fmt.Errorf("uring: wake: %w", ErrClosed)
	}
	defer w.state.Add(-1)
	if !w.pending.CompareAndSwap(false, true) {
		return nil
	}
	for {
		_, err := unix.Write(w.fd, wakeValue[:])
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: counter saturated, a wake-up is pending anyway
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("uring: wake: write eventfd: %w", err)
		}
	}
}

// Handle processes a completion carrying the Waker's user_data. It clears the
// pending flag and re-arms the read; drain the work queue after it. A read
// cancelled by Ring.Close is not re-armed.
func (w *Waker) Handle(c CQE) error {
	w.armed = false
	w.pending.Store(false)
	if w.shutdown {
		return nil
	}
	if c.Res < 0 && c.Res != -int32(unix.EAGAIN) && c.Res != -int32(unix.EINTR) {
		if c.Res == -int32(unix.ECANCELED) {
			return nil
		}
		return fmt.Errorf("uring: waker read: %w", c.Err())
	}
	return w.arm()
}

// Close stops the Waker: later Wake calls return ErrClosed. Ring.Close
// cancels the Waker's read but does not close its eventfd; call Close for
// that (before or after Ring.Close). It waits for
// concurrent Wake calls to leave their critical section, cancels the armed
// read and closes the eventfd. Call it on the owner thread; the read's final
// completion (-ECANCELED) still arrives through Completions and may be passed
// to Handle, which ignores it.
func (w *Waker) Close() error {
	if w.state.Load()&wakerClosedBit != 0 {
		return nil
	}
	w.state.Add(wakerClosedBit)
	for w.state.Load() != wakerClosedBit {
		runtime.Gosched()
	}
	w.shutdown = true
	var cancelErr error
	if w.armed && !w.r.closed {
		_, cancelErr = w.r.PrepareCancel(w.ud, w.ud)
	}
	err := unix.Close(w.fd)
	w.fd = -1
	if cancelErr != nil {
		return fmt.Errorf("uring: close waker: %w", cancelErr)
	}
	if err != nil {
		return fmt.Errorf("uring: close waker: %w", err)
	}
	return nil
}
