package main

import (
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// seccompProfile is the dataplane's seccomp profile: a container runtime's default
// allow-list plus io_uring_setup, io_uring_enter and io_uring_register. The Helm chart's
// init container installs it on each node with `seccomp-profile install`, so the profile
// always matches the image.
//
//go:embed seccomp/io_uring.json
var seccompProfile []byte

// seccompProfileName is the file name install writes; the chart's localhostProfile is
// flax/<name>.
const seccompProfileName = "io_uring.json"

const seccompUsage = `Usage:
  flax-dataplane seccomp-profile print               write the seccomp profile to stdout
  flax-dataplane seccomp-profile install --dir DIR   write it to DIR/io_uring.json (temporary file, then rename)

The profile is the container runtime's default allow-list plus the io_uring syscalls,
for a Kubernetes Localhost seccomp profile (<kubelet root>/seccomp/DIR/io_uring.json).
`

func seccompCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, seccompUsage)
		if len(args) == 0 {
			return errors.New("seccomp-profile needs print or install")
		}
		return nil
	}
	switch args[0] {
	case "print":
		_, err := stdout.Write(seccompProfile)
		return err
	case "install":
		fs := newFlagSet("seccomp-profile install", "seccomp-profile install --dir DIR", stderr)
		dir := fs.String("dir", "", "folder to write "+seccompProfileName+" into (created if missing)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" || fs.NArg() != 0 {
			fs.Usage()
			return errors.New("seccomp-profile install needs --dir and no other arguments")
		}
		path, err := installSeccompProfile(*dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "installed %s (%d bytes, sha256 %x)\n", path, len(seccompProfile), sha256.Sum256(seccompProfile))
		return nil
	default:
		fmt.Fprint(stderr, seccompUsage)
		return fmt.Errorf("unknown seccomp-profile command %q", args[0])
	}
}

// installSeccompProfile writes the profile to dir/io_uring.json through a temporary file
// and a rename, so that a container runtime reading the profile at the same time sees
// the old or the new file, never half of one.
func installSeccompProfile(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+seccompProfileName+".*")
	if err != nil {
		return "", fmt.Errorf("writing the seccomp profile: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	_, err = f.Write(seccompProfile)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	path := filepath.Join(dir, seccompProfileName)
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	return path, nil
}
