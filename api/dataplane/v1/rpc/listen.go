package rpc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultMaxMessageBytes is the default largest ControllerMessage the dataplane
// accepts. Snapshots carry certificates and keys inline, so they can be far larger
// than gRPC's 4 MiB default; the controller must raise its send limit to match.
const DefaultMaxMessageBytes = 128 << 20

// Listen creates a unix socket at path that only its owner may use (mode 0600)
// and listens on it. A stale socket left at path by a process that is gone is
// removed first; if a process still accepts connections there, or path is not a
// socket, Listen fails. Closing the listener removes the socket.
//
// The socket is created in a private temporary directory next to path, given mode
// 0600 and then renamed to path, so that no other user can connect to it in
// between.
func Listen(path string) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".flax-sock-")
	if err != nil {
		return nil, fmt.Errorf("creating socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) >= maxSocketPath {
		// The detour is too long for a socket address: create the socket in place
		// and restrict it right away.
		tmp = path
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		_ = l.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("restricting socket %s: %w", path, err))
	}
	if tmp != path {
		if err := os.Rename(tmp, path); err != nil {
			return fail(fmt.Errorf("moving socket into place at %s: %w", path, err))
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("creating socket %s: %w", path, err)
	}
	return &socketListener{UnixListener: l, path: path, file: fi}, nil
}

// maxSocketPath is the size of sun_path on Linux, including its terminating NUL.
const maxSocketPath = 108

// staleSocketWait is how long Listen waits for a socket that still accepts
// connections to stop doing so before it declares it in use.
var staleSocketWait = 5 * time.Second

// removeStaleSocket removes the socket at path if no process accepts connections
// on it.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking socket path %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("socket path %s exists and is not a socket", path)
	}
	// A dying dataplane's socket can still accept connections into its backlog for a
	// moment after its main thread is gone (its files close when its last thread
	// exits), so a restart right after a kill waits for the socket to go quiet.
	deadline := time.Now().Add(staleSocketWait)
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("socket %s is in use by another process", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

// socketListener is a unix listener that reports and, when closed, removes the
// socket at path, unless another file has replaced it since.
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
}

// Addr returns the address of the socket at its final path.
func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			_ = os.Remove(l.path)
		}
	})
	return err
}
