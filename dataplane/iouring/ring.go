//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// NoTimeout makes SubmitAndWait block until at least one completion arrives.
const NoTimeout time.Duration = -1

// MaxEntries is the largest submission queue size the kernel accepts.
const MaxEntries = 32768

// setupFlags are the io_uring_setup flags every ring uses.
//
//   - SINGLE_ISSUER: only the creating thread submits; lets the kernel skip
//     locking. Required by DEFER_TASKRUN.
//   - DEFER_TASKRUN: completion work runs only when the owner thread enters
//     the kernel to wait, never as an interrupting task_work; this is what a
//     run-to-completion per-core loop wants. COOP_TASKRUN is not added: it
//     only changes how non-deferred task_work is signalled, and with
//     DEFER_TASKRUN there is none, so it would be a no-op (the kernel accepts
//     the combination). TASKRUN_FLAG is not needed either, because
//     SubmitAndWait always enters with GETEVENTS when no CQE is ready.
//   - SUBMIT_ALL: keep submitting the rest of a batch when one SQE fails
//     early (the failure is reported in its CQE).
//   - CQSIZE: a completion queue larger than the submission queue, because
//     multishot operations post many CQEs per SQE.
const setupFlags = giouring.SetupSingleIssuer | giouring.SetupDeferTaskrun | giouring.SetupSubmitAll

// kernelParams mirrors struct io_uring_params. giouring's Params has only
// unexported fields, so CQ sizing (IORING_SETUP_CQSIZE + cq_entries) cannot
// be expressed through it; kernelParams has the identical kernel ABI layout
// and is passed to giouring.Ring.QueueInitParams through an unsafe pointer
// conversion. The compile-time checks below guard the layout.
type kernelParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        ringOffsets
	cqOff        ringOffsets
}

type ringOffsets struct {
	fields   [8]uint32
	userAddr uint64
}

var (
	_ [unsafe.Sizeof(giouring.Params{}) - unsafe.Sizeof(kernelParams{})]byte
	_ [unsafe.Sizeof(kernelParams{}) - unsafe.Sizeof(giouring.Params{})]byte
	_ [unsafe.Sizeof(kernelParams{}) - 120]byte
	_ [120 - unsafe.Sizeof(kernelParams{})]byte
)

// Options tunes New. The zero value is usable.
type Options struct {
	// CQEntries is the completion queue size; the kernel rounds it up to a
	// power of two. Zero selects 4×entries (at most 65536). It must not be
	// below entries.
	CQEntries uint32
	// ArenaSize is the size in bytes of the ring's default arena
	// (Ring.Arena). Zero selects 64 KiB.
	ArenaSize int
	// BatchSize caps the number of CQEs one Completions call returns. Zero
	// selects the CQ size.
	BatchSize int
}

// Ring is one io_uring instance owned by one locked OS thread. See the
// package documentation for the threading and memory rules.
type Ring struct {
	ring     *giouring.Ring
	sqSize   uint32
	cqSize   uint32
	arena    *Arena
	arenas   []*Arena
	bufRings []*BufRing
	waitTS   *Timespec
	ptrs     []*giouring.CompletionQueueEvent
	batch    []CQE
	ownerTID int
	last     *SQE // most recent SQE not yet handed to the kernel
	inflight int
	closed   bool
}

// CQE is a copy of one completion queue entry.
type CQE struct {
	// UserData is the value given to the Prepare method.
	UserData uint64
	// Res is the operation's result: a byte count, fd or 0 on success, a
	// negated errno on failure.
	Res int32
	// Flags holds IORING_CQE_F_* bits and, with F_BUFFER, the buffer id.
	Flags uint32
}

// CQE flag bits, re-exported from giouring for callers that inspect Flags.
const (
	// CQEFBuffer is IORING_CQE_F_BUFFER: the upper 16 bits hold a buffer id.
	CQEFBuffer = giouring.CQEFBuffer
	// CQEFMore is IORING_CQE_F_MORE: the multishot operation stays armed.
	CQEFMore = giouring.CQEFMore
	// CQEFSockNonempty is IORING_CQE_F_SOCK_NONEMPTY.
	CQEFSockNonempty = giouring.CQEFSockNonempty
)

// More reports IORING_CQE_F_MORE: a multishot operation stays armed and will
// post further completions. A multishot CQE without it is the final one.
func (c CQE) More() bool { return c.Flags&giouring.CQEFMore != 0 }

// HasBuffer reports IORING_CQE_F_BUFFER: the kernel consumed a provided
// buffer, whose id is BufferID. The buffer must be taken (BufRing.Buffer) and
// later recycled.
func (c CQE) HasBuffer() bool { return c.Flags&giouring.CQEFBuffer != 0 }

// BufferID is the provided-buffer id (meaningful only when HasBuffer).
func (c CQE) BufferID() uint16 { return uint16(c.Flags >> giouring.CQEBufferShift) }

// Err returns the errno carried by a negative Res, or nil.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return syscall.Errno(-c.Res)
}

// New creates a ring with entries submission slots (rounded up to a power of
// two by the kernel). The calling goroutine must have called
// runtime.LockOSThread and must be the only one to use the ring.
func New(entries uint32, opts Options) (*Ring, error) {
	r, err := newRing(entries, opts)
	if err != nil {
		return nil, fmt.Errorf("uring: new ring: %w", err)
	}
	return r, nil
}

func newRing(entries uint32, opts Options) (*Ring, error) {
	if entries == 0 || entries > MaxEntries {
		return nil, fmt.Errorf("entries %d out of range [1, %d]", entries, MaxEntries)
	}
	cq := opts.CQEntries
	if cq == 0 {
		cq = min(4*entries, 2*MaxEntries)
	}
	if cq < entries || cq > 2*MaxEntries {
		return nil, fmt.Errorf("cq entries %d out of range [%d, %d]", cq, entries, 2*MaxEntries)
	}
	p := kernelParams{flags: setupFlags | giouring.SetupCQSize, cqEntries: cq}
	gr := giouring.NewRing()
	if err := gr.QueueInitParams(entries, (*giouring.Params)(unsafe.Pointer(&p))); err != nil {
		if errno, ok := asErrno(err); ok {
			return nil, explainSetupErrno(errno)
		}
		return nil, err
	}
	r := &Ring{ring: gr, sqSize: p.sqEntries, cqSize: p.cqEntries, ownerTID: unix.Gettid()}
	if p.features&giouring.FeatExtArg == 0 || p.features&giouring.FeatNoDrop == 0 {
		gr.QueueExit()
		return nil, fmt.Errorf("%w: kernel lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (Linux 5.11+)",
			ErrUnsupported)
	}
	// The ring fd is deliberately not registered (IORING_REGISTER_RING_FDS):
	// giouring's UnregisterRingFd has an inverted check and never
	// unregisters, so the registration would outlive Close in the thread's
	// table, pinning the ring and, when the thread is reused, making
	// io_uring_enter on index 0 address a stale ring.
	size := opts.ArenaSize
	if size == 0 {
		size = 64 << 10
	}
	a, err := newArena(size)
	if err != nil {
		gr.QueueExit()
		return nil, fmt.Errorf("arena: %w", err)
	}
	r.arena = a
	r.arenas = append(r.arenas, a)
	if r.waitTS, err = a.NewTimespec(); err != nil {
		_ = r.Close()
		return nil, err
	}
	batch := opts.BatchSize
	if batch <= 0 || batch > int(r.cqSize) {
		batch = int(r.cqSize)
	}
	r.ptrs = make([]*giouring.CompletionQueueEvent, batch)
	r.batch = make([]CQE, batch)
	return r, nil
}

// NewArena maps an additional arena of at least size bytes owned by the ring:
// its memory is accepted by the Prepare methods and unmapped by Close.
func (r *Ring) NewArena(size int) (*Arena, error) {
	if r.closed {
		return nil, fmt.Errorf("uring: new arena: %w", ErrClosed)
	}
	a, err := newArena(size)
	if err != nil {
		return nil, fmt.Errorf("uring: new arena: %w", err)
	}
	r.arenas = append(r.arenas, a)
	return a, nil
}

// Arena returns the ring's default arena (Options.ArenaSize bytes).
func (r *Ring) Arena() *Arena { return r.arena }

// Fd returns the ring's file descriptor.
func (r *Ring) Fd() int { return r.ring.RingFd() }

// SQEntries returns the submission queue size chosen by the kernel.
func (r *Ring) SQEntries() uint32 { return r.sqSize }

// CQEntries returns the completion queue size chosen by the kernel.
func (r *Ring) CQEntries() uint32 { return r.cqSize }

// InFlight returns the number of prepared operations whose final completion
// (the CQE without F_MORE) has not yet been returned by Completions.
func (r *Ring) InFlight() int { return r.inflight }

// ownsRange reports whether [p, p+n) lies in one of the ring's arenas or
// buffer rings.
func (r *Ring) ownsRange(p, n uintptr) bool {
	if n == 0 {
		return false
	}
	for _, a := range r.arenas {
		if a.containsRange(p, n) {
			return true
		}
	}
	for _, b := range r.bufRings {
		if b.containsRange(p, n) {
			return true
		}
	}
	return false
}

func (r *Ring) owns(b []byte) bool {
	return r.ownsRange(uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
}

// Submit hands all prepared SQEs to the kernel without waiting.
func (r *Ring) Submit() error {
	if r.closed {
		return fmt.Errorf("uring: submit: %w", ErrClosed)
	}
	r.last = nil
	_, err := r.ring.Submit()
	return r.enterErr("submit", err)
}

// SubmitAndWait submits all prepared SQEs and, unless a completion is already
// available, waits for one. timeout > 0 bounds the wait, NoTimeout (any
// negative value) waits indefinitely and 0 does not wait (it still lets the
// kernel post deferred completions). Expiry of the timeout, EINTR (Go's
// preemption signals interrupt the wait) and transient EAGAIN/EBUSY are not
// errors: the caller just finds no completions. It does not allocate.
func (r *Ring) SubmitAndWait(timeout time.Duration) error {
	if r.closed {
		return fmt.Errorf("uring: submit and wait: %w", ErrClosed)
	}
	r.last = nil
	var err error
	switch {
	case timeout == 0:
		_, err = r.ring.SubmitAndGetEvents()
	case timeout < 0:
		_, err = r.ring.SubmitAndWaitTimeout(1, nil, nil)
	default:
		// The timespec lives in the arena; giouring passes its address to
		// io_uring_enter inside an EXT_ARG structure that the kernel copies
		// synchronously.
		r.waitTS.Set(timeout)
		_, err = r.ring.SubmitAndWaitTimeout(1, (*syscall.Timespec)(unsafe.Pointer(r.waitTS)), nil)
	}
	return r.enterErr("submit and wait", err)
}

// asErrno finds a syscall.Errno in err's chain. Unlike errors.As it does not
// make its result escape, so the hot path stays allocation-free.
func asErrno(err error) (syscall.Errno, bool) {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok { //nolint:errorlint // walks the chain itself, see above
			return e, true
		}
		err = errors.Unwrap(err)
	}
	return 0, false
}

func (r *Ring) enterErr(what string, err error) error {
	if err == nil {
		return nil
	}
	errno, ok := asErrno(err)
	if !ok {
		return fmt.Errorf("uring: %s: %w", what, err)
	}
	switch errno {
	case unix.ETIME, unix.EINTR, unix.EAGAIN, unix.EBUSY:
		return nil
	}
	// With SINGLE_ISSUER the kernel answers EEXIST to other threads. Only
	// look at the thread id on this error path.
	if tid := unix.Gettid(); tid != r.ownerTID {
		return fmt.Errorf("uring: %s: %w (ring created by thread %d used from thread %d; "+
			"call runtime.LockOSThread before New and use the ring from that goroutine only)",
			what, errno, r.ownerTID, tid)
	}
	return fmt.Errorf("uring: %s: %w", what, errno)
}

// Completions copies the ready CQEs (at most Options.BatchSize) into a
// buffer owned by the ring, marks them consumed in the CQ and returns them.
// The slice is valid until the next call. It never blocks and does not
// allocate; call SubmitAndWait first to wait.
func (r *Ring) Completions() []CQE {
	if r.closed {
		return nil
	}
	ready := r.ring.CQReady()
	if ready == 0 {
		if !r.ring.CQHasOverflow() {
			return r.batch[:0]
		}
		// Completions spilled into the kernel's overflow list; entering
		// with GETEVENTS moves them back into the CQ.
		_, _ = r.ring.GetEvents()
		if ready = r.ring.CQReady(); ready == 0 {
			return r.batch[:0]
		}
	}
	if ready > uint32(len(r.ptrs)) {
		ready = uint32(len(r.ptrs))
	}
	// Passing exactly ready slots keeps giouring's PeekBatchCQE from
	// touching entries beyond the ready ones.
	n := r.ring.PeekBatchCQE(r.ptrs[:ready])
	for i := uint32(0); i < n; i++ {
		c := r.ptrs[i]
		r.batch[i] = CQE{UserData: c.UserData, Res: c.Res, Flags: c.Flags}
		r.ptrs[i] = nil
		if c.Flags&giouring.CQEFMore == 0 {
			r.inflight--
		}
	}
	r.ring.CQAdvance(n)
	return r.batch[:n]
}

// Close cancels every in-flight operation, waits (up to two seconds) for
// their final completions, unregisters the buffer rings, closes the ring and
// unmaps all arenas and buffer rings. If some operations never complete, the
// memory they might still touch is deliberately leaked rather than unmapped,
// and an error is returned. Close must run on the ring's owner thread.
func (r *Ring) Close() error {
	if r.closed {
		return nil
	}
	drainErr := r.drain(2 * time.Second)
	for _, b := range r.bufRings {
		b.unregister()
	}
	r.closed = true
	r.ring.QueueExit()
	if drainErr != nil {
		return fmt.Errorf("uring: close: %w; leaking ring memory", drainErr)
	}
	var errs []error
	for _, b := range r.bufRings {
		errs = append(errs, b.unmap())
	}
	for _, a := range r.arenas {
		errs = append(errs, a.free())
	}
	r.bufRings, r.arenas, r.arena = nil, nil, nil
	return errors.Join(errs...)
}

// drain cancels everything in flight and consumes completions until no
// operation is outstanding.
func (r *Ring) drain(limit time.Duration) error {
	if r.inflight == 0 {
		return nil
	}
	s, err := r.sqe()
	if err != nil {
		return err
	}
	s.OpCode = giouring.OpAsyncCancel
	s.Fd = -1
	s.OpcodeFlags = giouring.AsyncCancelAny | giouring.AsyncCancelAll
	s.UserData = drainUserData
	deadline := time.Now().Add(limit)
	for r.inflight > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%d operations still in flight after %v", r.inflight, limit)
		}
		if err := r.SubmitAndWait(min(left, 50*time.Millisecond)); err != nil {
			return err
		}
		r.Completions()
	}
	return nil
}

// drainUserData tags the cancel-everything SQE issued by Close.
const drainUserData = ^uint64(0) - 1
