// Package iouring is a small, deliberately strict layer over
// github.com/pawelgaczynski/giouring for Flax's per-core io_uring workers.
//
// A worker owns exactly one Ring. The package gives it: ring setup with the
// flags the dataplane relies on (Probe tells the dataplane at start-up whether
// they are available, and why not), user_data encoding with a generation
// counter (Pack/Unpack), a registered provided-buffer ring (BufRing, or
// ReserveBufRing for large buffers paged in on use), datagram receives and
// sends with addresses (PrepareRecvmsgMultishot, ParseRecvmsg,
// PrepareSendDgram), SQE
// preparation helpers that fill every SQE field themselves, a submit-and-wait
// step plus allocation-free batch iteration of completions, an eventfd Waker
// for cross-thread wake-ups, and a few socket helpers.
//
// # Threading rules
//
// Rings are created with IORING_SETUP_SINGLE_ISSUER and
// IORING_SETUP_DEFER_TASKRUN. The kernel then only accepts io_uring_enter and
// io_uring_register calls from the thread that created the ring, and
// completions are only posted while that thread enters the kernel to wait.
// A worker must therefore call runtime.LockOSThread before New and keep using
// the Ring (prepare, SubmitAndWait, Completions, BufRing, Close) from that
// goroutine only. None of the Ring, Arena or BufRing methods are safe for
// concurrent use. The only exception is Waker.Wake, which any goroutine may
// call at any time.
//
// # Memory rules
//
// Memory the kernel reads or writes asynchronously (I/O buffers, the provided
// buffer ring, iovecs and msghdrs, sockaddrs, timespecs) never lives on a
// goroutine stack or in the Go heap: goroutine stacks move, and between the
// moment an SQE is prepared and the moment the kernel consumes it nothing
// pins Go memory. All such memory comes from Arena values (anonymous mmap
// regions invisible to the garbage collector) or from a BufRing's mmap'd
// region, both owned by the Ring and unmapped by Ring.Close. Every Prepare
// method that takes a buffer, Timespec, Sockaddr or Msg verifies that the
// memory belongs to the ring and fails with ErrNotRingMemory otherwise.
// Arena memory must never hold Go pointers.
//
// Memory referenced by an SQE must stay untouched until the operation's final
// completion (the CQE without IORING_CQE_F_MORE). Buffers handed out by a
// BufRing belong to the application until it recycles them.
//
// # Completions
//
// A worker loop typically looks like:
//
//	for {
//		if err := r.SubmitAndWait(timeout); err != nil { ... }
//		for _, c := range r.Completions() {
//			op, gen, slot := iouring.Unpack(c.UserData)
//			...
//		}
//	}
//
// Completions copies the ready CQEs into a buffer owned by the ring and
// advances the CQ head before returning, so handlers may freely prepare new
// SQEs. Neither step allocates.
//
// # What is taken from giouring
//
// Used: ring setup and teardown (QueueInitParams, QueueExit), SQE
// allocation (GetSQE), submission and waiting (Submit, SubmitAndGetEvents,
// SubmitAndWaitTimeout), CQ access (CQReady, PeekBatchCQE with exactly the
// ready count, CQAdvance, CQHasOverflow, GetEvents) and the ABI types and
// constants. Not used, because they are wrong or unsafe at the pinned
// version: every Prepare* helper (stale opcode flags survive slot reuse;
// PrepareTimeout, PrepareLinkTimeout, PrepareTimeoutRemove/Update,
// PrepareSendZC and PrepareConnect pass wrong addresses), SetupBufRing and
// BufRingAdd/BufRingAdvance (16-bit index arithmetic overflows beyond 4096
// entries), RegisterRingFd (UnregisterRingFd never unregisters) and the
// Params type (unexported fields, so no IORING_SETUP_CQSIZE; New passes a
// layout-identical struct instead).
//
// # Building
//
// giouring reaches syscall.mmap and syscall.munmap through go:linkname, so
// every binary or test linking this package must be built with
// -ldflags=-checklinkname=0.
package iouring
