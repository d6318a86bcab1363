//go:build e2e

// Package lctest runs hack/localcluster for the end-to-end tests: it checks what a
// cluster needs, builds and starts `localcluster up`, waits for its ready line and
// tears it down (SIGTERM, then SIGKILL and `down` after a minute). It also holds
// what both end-to-end packages (test/e2e, test/e2e/helm) need besides: Eventually.
package lctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Options describe one cluster.
type Options struct {
	// Name names the state folder _out/NAME, the binary _out/NAME-localcluster and the
	// log _out/NAME-localcluster.log of the repository.
	Name string
	// Args are the flags of `up` besides --dir.
	Args []string
	// ReadyLine is the text of localcluster's output that says the cluster is ready.
	ReadyLine string
	// Timeout bounds the wait for ReadyLine.
	Timeout time.Duration
	// Binaries must exist in bin/.
	Binaries []string
	// Ports must be free on 127.0.0.1 (the Gateway's, the chart's).
	Ports []string
}

// Cluster is a running localcluster.
type Cluster struct {
	// Root is the repository, BinDir its bin/, Dir the state folder, Kubeconfig the
	// admin kubeconfig, Bin the localcluster binary and Log its output.
	Root, BinDir, Dir, Kubeconfig, Bin, Log string

	cmd  *exec.Cmd
	done chan struct{}
}

// Root finds the repository from the working folder (a test's package folder).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/flaxlb/flax\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the flax repository")
		}
		dir = parent
	}
}

// Start checks the machine, builds hack/localcluster and runs `up` until ReadyLine.
// On error nothing is left running.
func Start(o Options) (*Cluster, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	out := filepath.Join(root, "_out")
	c := &Cluster{
		Root:   root,
		BinDir: filepath.Join(root, "bin"),
		Dir:    filepath.Join(out, o.Name),
		Bin:    filepath.Join(out, o.Name+"-localcluster"),
		Log:    filepath.Join(out, o.Name+"-localcluster.log"),
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := c.preflight(o); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", c.Bin, "./hack/localcluster")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building hack/localcluster: %w: %s", err, b)
	}
	logFile, err := os.Create(c.Log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Bin, append([]string{"up", "--dir", c.Dir}, o.Args...)...)
	cmd.Dir = root
	// The cluster tears itself down on SIGTERM, also when the test binary dies (a
	// `go test -timeout` panic, a kill).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting localcluster: %w", err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		logFile.Close()
		close(c.done)
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), o.ReadyLine) {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("localcluster exited before %q; log %s:\n%s", o.ReadyLine, c.Log, Tail(c.Log, 30))
	case <-time.After(o.Timeout):
		c.Stop()
		return nil, fmt.Errorf("localcluster: no %q after %v; log %s:\n%s", o.ReadyLine, o.Timeout, c.Log, Tail(c.Log, 30))
	}
}

// preflight fails early, with a clear message, when binaries are missing or another
// local cluster (whose ports and bridge this one would fight over) is running.
func (c *Cluster) preflight(o Options) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (the local cluster creates network namespaces)")
	}
	for _, b := range o.Binaries {
		if _, err := os.Stat(filepath.Join(c.BinDir, b)); err != nil {
			return fmt.Errorf("%s missing in %s: run `make tools build` (or `make e2e`)", b, c.BinDir)
		}
	}
	for _, port := range o.Ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			return fmt.Errorf("port %s is in use (another local cluster, `make run`?): %w", port, err)
		}
		l.Close()
	}
	if _, err := net.InterfaceByName("flaxlc0"); err == nil {
		return errors.New("the bridge flaxlc0 exists: another local cluster is running (or a crashed one left it; `go run ./hack/localcluster down`)")
	}
	return nil
}

// Pid is the localcluster process.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Stop SIGTERMs localcluster and waits for its teardown; after 60 s it kills it and
// runs `down`. It returns what happened, for the test log.
func (c *Cluster) Stop() string {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return "local cluster stopped"
	case <-time.After(60 * time.Second):
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	down := exec.Command(c.Bin, "down", "--dir", c.Dir)
	down.Dir = c.Root
	b, err := down.CombinedOutput()
	return fmt.Sprintf("localcluster did not stop in 60s; killed it and ran `down`: %v %s", err, b)
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
