//go:build linux

package iouring

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

func TestProbe(t *testing.T) {
	if err := Probe(); err != nil {
		t.Fatalf("Probe: %v", err)
	}
}

// rawSetup calls io_uring_setup directly and closes the ring.
func rawSetup(flags uint32) error {
	p := kernelParams{flags: flags}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return errno
	}
	unix.Close(int(fd))
	return nil
}

// TestSetupFlagRules documents what this kernel requires of the setup flags.
func TestSetupFlagRules(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := rawSetup(setupFlags); err != nil {
		t.Fatalf("setup with package flags: %v", err)
	}
	if err := rawSetup(giouring.SetupDeferTaskrun); !errors.Is(err, unix.EINVAL) {
		t.Errorf("DEFER_TASKRUN without SINGLE_ISSUER: got %v, want EINVAL", err)
	}
	// COOP_TASKRUN is accepted alongside DEFER_TASKRUN but has no effect there.
	if err := rawSetup(setupFlags | giouring.SetupCoopTaskrun); err != nil {
		t.Logf("COOP_TASKRUN|DEFER_TASKRUN rejected: %v", err)
	}
	if err := rawSetup(giouring.SetupTaskrunFlag); !errors.Is(err, unix.EINVAL) {
		t.Errorf("TASKRUN_FLAG alone: got %v, want EINVAL", err)
	}
}

func TestNewSizes(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 64, Options{})
	defer closeRing(t, r)
	if r.SQEntries() != 64 || r.CQEntries() != 256 {
		t.Errorf("sizes sq=%d cq=%d, want 64/256", r.SQEntries(), r.CQEntries())
	}
	r2 := mustRing(t, 30, Options{CQEntries: 1000})
	defer closeRing(t, r2)
	if r2.SQEntries() != 32 || r2.CQEntries() != 1024 {
		t.Errorf("sizes sq=%d cq=%d, want 32/1024", r2.SQEntries(), r2.CQEntries())
	}
	if _, err := New(0, Options{}); err == nil {
		t.Error("New(0) succeeded")
	}
	if _, err := New(64, Options{CQEntries: 8}); err == nil {
		t.Error("CQ smaller than SQ accepted")
	}
}

func TestExplainSetupErrno(t *testing.T) {
	dir := t.TempDir()
	old := ioUringDisabledPath
	defer func() { ioUringDisabledPath = old }()
	for _, c := range []struct {
		sysctl string // "" = file missing
		want   string
	}{
		{"2\n", "disabled for all processes"},
		{"1\n", "io_uring_group"},
		{"0\n", "seccomp"},
		{"", "seccomp"},
	} {
		ioUringDisabledPath = filepath.Join(dir, "missing")
		if c.sysctl != "" {
			ioUringDisabledPath = filepath.Join(dir, "io_uring_disabled")
			if err := os.WriteFile(ioUringDisabledPath, []byte(c.sysctl), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := explainSetupErrno(unix.EPERM)
		if !errors.Is(err, ErrUnsupported) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sysctl %q: %v (want mention of %q, wrapping ErrUnsupported and EPERM)", c.sysctl, err, c.want)
		}
	}
	for _, e := range []unix.Errno{unix.ENOSYS, unix.EINVAL} {
		if err := explainSetupErrno(e); !errors.Is(err, ErrUnsupported) || !errors.Is(err, e) {
			t.Errorf("%v: %v", e, err)
		}
	}
	if err := explainSetupErrno(unix.EMFILE); errors.Is(err, ErrUnsupported) {
		t.Errorf("EMFILE classified as unsupported: %v", err)
	}
}

// TestWrongThread checks that using a ring from another OS thread fails with
// an explanatory error instead of misbehaving.
func TestWrongThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{})
	defer closeRing(t, r)
	if _, err := r.PrepareNop(1); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // a different thread: ours is locked to the test goroutine
		defer runtime.UnlockOSThread()
		errc <- r.SubmitAndWait(NoTimeout)
	}()
	err := <-errc
	t.Log(err)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "LockOSThread") {
		t.Fatalf("SubmitAndWait from another thread: %v", err)
	}
	// The owner can still use it.
	cs := collect(t, r, 1, 5e9)
	if cs[0].UserData != 1 || cs[0].Res != 0 {
		t.Fatalf("nop: %+v", cs[0])
	}
}
