//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrUnsupported is wrapped by every error that means io_uring cannot be
	// used by this process (kernel too old, disabled by sysctl, blocked by
	// seccomp, missing features). The dataplane falls back to its portable
	// engine when errors.Is(err, ErrUnsupported).
	ErrUnsupported = errors.New("io_uring unsupported")

	// ErrNotRingMemory is returned when a Prepare method is given memory that
	// does not belong to one of the ring's arenas or buffer rings.
	ErrNotRingMemory = errors.New("memory is not owned by the ring's arenas or buffer rings")

	// ErrSQFull is returned when no SQE is available even after submitting
	// the pending ones.
	ErrSQFull = errors.New("submission queue full")

	// ErrClosed is returned when a closed Ring, BufRing or Waker is used.
	ErrClosed = errors.New("closed")

	// ErrArenaFull is returned when an Arena has no room left.
	ErrArenaFull = errors.New("arena exhausted")

	// ErrBufferNotHeld is returned by BufRing.Recycle for a buffer id that the
	// application does not currently hold (never taken, or recycled twice).
	ErrBufferNotHeld = errors.New("buffer not held by the application")
)

// ioUringDisabledPath is the sysctl consulted to explain an EPERM from
// io_uring_setup. It is a variable so tests can point it elsewhere.
var ioUringDisabledPath = "/proc/sys/kernel/io_uring_disabled"

// explainSetupErrno turns an io_uring_setup failure into an error that says
// why io_uring is unavailable. The result wraps ErrUnsupported and errno when
// the failure means "io_uring cannot be used here", and only errno otherwise.
func explainSetupErrno(errno unix.Errno) error {
	switch errno {
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("%w: io_uring_setup: %w (%s)", ErrUnsupported, errno, explainEPERM())
	case unix.ENOSYS:
		return fmt.Errorf("%w: io_uring_setup: %w (kernel built without CONFIG_IO_URING, older than 5.1, "+
			"or a seccomp filter answers ENOSYS)", ErrUnsupported, errno)
	case unix.EINVAL:
		return fmt.Errorf("%w: io_uring_setup: %w (kernel rejected SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL|CQSIZE; "+
			"Linux 6.1 or newer is required)", ErrUnsupported, errno)
	case unix.ENOMEM:
		return fmt.Errorf("io_uring_setup: %w (RLIMIT_MEMLOCK too low or out of memory; "+
			"kernels before 5.12 charge ring memory to the memlock limit)", errno)
	case unix.EMFILE, unix.ENFILE:
		return fmt.Errorf("io_uring_setup: %w (file descriptor limit reached)", errno)
	default:
		return fmt.Errorf("io_uring_setup: %w", errno)
	}
}

// explainEPERM reads kernel.io_uring_disabled to tell a sysctl restriction
// from a seccomp filter.
func explainEPERM() string {
	b, err := os.ReadFile(ioUringDisabledPath)
	if err != nil {
		return "permission denied and kernel.io_uring_disabled is not readable; " +
			"most likely a seccomp profile (container runtimes block io_uring by default)"
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "2":
		return "io_uring is disabled for all processes by sysctl kernel.io_uring_disabled=2"
	case "1":
		return "io_uring is restricted by sysctl kernel.io_uring_disabled=1 to CAP_SYS_ADMIN and " +
			"members of the kernel.io_uring_group group, and this process is neither"
	case "0":
		return "kernel.io_uring_disabled=0 allows io_uring, so a seccomp profile " +
			"(container runtimes block io_uring by default) or an LSM denied it"
	default:
		return "permission denied (kernel.io_uring_disabled=" + v + ")"
	}
}
