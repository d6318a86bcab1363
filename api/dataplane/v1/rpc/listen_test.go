package rpc

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")

	// A stale socket, left by a process that is gone, is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if l.Addr().String() != path {
		t.Errorf("Addr = %s, want %s", l.Addr(), path)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v (%v), want 0600", fi.Mode(), err)
	}

	// A socket in use is not taken over (after waiting for it to go quiet).
	defer func(d time.Duration) { staleSocketWait = d }(staleSocketWait)
	staleSocketWait = 300 * time.Millisecond
	if l2, err := Listen(path); err == nil {
		_ = l2.Close()
		t.Error("Listen took over a socket in use")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen on a socket in use: %v", err)
	}

	// Closing removes the socket.
	_ = l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket exists after Close: %v", err)
	}

	// A file that is not a socket is left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "keep" {
		t.Error("Listen changed a regular file")
	}

	// A missing directory is an error.
	if _, err := Listen(filepath.Join(dir, "missing", "s.sock")); err == nil {
		t.Error("Listen in a missing directory succeeded")
	}
}

func TestListenLongPath(t *testing.T) {
	// A path short enough for a socket but too long for the detour through a
	// temporary directory still gets a 0600 socket.
	dir := t.TempDir()
	pad := 95 - len(dir) - 1
	if pad < 1 {
		t.Skipf("temporary directory %s is too long for this test", dir)
	}
	dir = filepath.Join(dir, strings.Repeat("d", pad))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(path), err)
	}
	defer l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("socket mode = %v (%v), want a 0600 socket", fi.Mode(), err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the socket: %v", err)
	}
	_ = conn.Close()
}

// TestListenWaitsForDyingServer: a server that still accepts for a moment (a dataplane
// whose threads are exiting) does not stop a restart from taking the socket.
func TestListenWaitsForDyingServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dp.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false) // a killed process leaves its file behind
	time.AfterFunc(300*time.Millisecond, func() { _ = old.Close() })
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen after the old server went away: %v", err)
	}
	_ = l.Close()
}
