//go:build linux

package iouring

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

const (
	ioringRegisterProbe = 8      // IORING_REGISTER_PROBE
	probeOpSupported    = 1 << 0 // IO_URING_OP_SUPPORTED
	probeMaxOps         = 256
)

// requiredOps are the opcodes the dataplane issues through this package.
var requiredOps = [...]struct {
	op   uint8
	name string
}{
	{giouring.OpNop, "NOP"},
	{giouring.OpAccept, "ACCEPT"},
	{giouring.OpRecv, "RECV"},
	{giouring.OpSend, "SEND"},
	{giouring.OpSendmsg, "SENDMSG"},
	{giouring.OpRead, "READ"},
	{giouring.OpConnect, "CONNECT"},
	{giouring.OpClose, "CLOSE"},
	{giouring.OpShutdown, "SHUTDOWN"},
	{giouring.OpAsyncCancel, "ASYNC_CANCEL"},
	{giouring.OpTimeout, "TIMEOUT"},
	{giouring.OpTimeoutRemove, "TIMEOUT_REMOVE"},
	{giouring.OpLinkTimeout, "LINK_TIMEOUT"},
}

// Probe reports whether this process can run the io_uring engine: it creates
// a small ring with the flags New uses (SINGLE_ISSUER, DEFER_TASKRUN,
// SUBMIT_ALL, CQSIZE), checks the EXT_ARG/NODROP features, asks the kernel
// (IORING_REGISTER_PROBE) whether every opcode the package issues is
// supported, and registers a tiny provided-buffer ring. A nil result means
// every feature the package relies on is present: the setup flags need Linux
// 6.1, which also covers multishot accept (5.19) and multishot receive (6.0).
//
// When io_uring is unusable the error wraps ErrUnsupported and, where one
// exists, the errno, and its text says why: EPERM is attributed to the
// kernel.io_uring_disabled sysctl (value 1 or 2) or else to a seccomp
// profile; ENOSYS to a kernel without io_uring; EINVAL at setup to a kernel
// older than 6.1. Probe may be called from any goroutine.
func Probe() error {
	// SINGLE_ISSUER binds the ring to the creating thread, and registration
	// calls must come from that same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	r, err := newRing(8, Options{ArenaSize: 8192})
	if err != nil {
		return fmt.Errorf("uring: probe: create ring: %w", err)
	}
	defer r.Close()

	if err := r.checkOpcodes(); err != nil {
		return fmt.Errorf("uring: probe: %w", err)
	}
	br, err := r.NewBufRing(0, 2, 64)
	if err != nil {
		return fmt.Errorf("uring: probe: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("uring: probe: %w", err)
	}
	return nil
}

func (r *Ring) checkOpcodes() error {
	mem, err := r.arena.Alloc(int(unsafe.Sizeof(giouring.Probe{})), 8)
	if err != nil {
		return err
	}
	p := (*giouring.Probe)(unsafe.Pointer(unsafe.SliceData(mem)))
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.Fd()), ioringRegisterProbe,
		uintptr(unsafe.Pointer(p)), probeMaxOps, 0, 0)
	if errno != 0 {
		if errno == unix.EINVAL {
			return fmt.Errorf("%w: io_uring_register(PROBE): %w (kernel older than 5.6)", ErrUnsupported, errno)
		}
		return fmt.Errorf("io_uring_register(PROBE): %w", errno)
	}
	var missing []string
	for _, o := range requiredOps {
		if o.op > p.LastOp || int(o.op) >= len(p.Ops) || p.Ops[o.op].Flags&probeOpSupported == 0 {
			missing = append(missing, o.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: kernel lacks io_uring opcodes %s", ErrUnsupported, strings.Join(missing, ", "))
	}
	return nil
}
