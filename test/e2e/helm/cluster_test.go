//go:build e2e

package helm

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// markerEnv is the variable localcluster sets, to its state folder, on every process it
// starts (pods' processes included).
const markerEnv = "FLAX_LOCALCLUSTER_DIR"

var (
	migrateReq  = flag.Bool("e2e.tcp-migrate-req", true, "let the local cluster set net.ipv4.tcp_migrate_req=1, as the chart README asks of nodes (false measures the upgrade without it; zero failures are then not required)")
	keepCluster = flag.Bool("e2e.keep", false, "leave the local cluster running after the test (stop it with SIGTERM to the localcluster process or `localcluster down`)")
	upTimeout   = flag.Duration("e2e.up-timeout", 4*time.Minute, "how long the local cluster may take to start")
)

// cluster is a running `localcluster up --flax=none`.
type cluster struct {
	root, binDir, dir, kubeconfig string
	helmHome                      string
	lcBin, lcLog                  string
	cmd                           *exec.Cmd
	done                          chan struct{}
}

// startCluster builds hack/localcluster, starts it without Flax and waits for its
// "cluster ready" line; the cluster is torn down when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("must run as root (the local cluster creates network namespaces)")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	c := &cluster{
		root:     root,
		binDir:   filepath.Join(root, "bin"),
		dir:      filepath.Join(root, "_out", "e2e-helm"),
		helmHome: t.TempDir(),
		lcBin:    filepath.Join(root, "_out", "e2e-helm-localcluster"),
		lcLog:    filepath.Join(root, "_out", "e2e-helm-localcluster.log"),
	}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := c.preflight(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", c.lcBin, "./hack/localcluster")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hack/localcluster: %v: %s", err, out)
	}
	logFile, err := os.Create(c.lcLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.lcBin, "up", "--flax=none", "--dir", c.dir, fmt.Sprintf("--tcp-migrate-req=%v", *migrateReq))
	cmd.Dir = root
	// The cluster tears itself down on SIGTERM, also when this test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting localcluster: %v", err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		logFile.Close()
		close(c.done)
	}()
	t.Cleanup(func() { c.stop(t) })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "cluster ready") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case <-c.done:
		t.Fatalf("localcluster exited before the cluster was ready; log %s:\n%s", c.lcLog, tail(c.lcLog, 30))
	case <-time.After(*upTimeout):
		t.Fatalf("localcluster: not ready after %v; log %s:\n%s", *upTimeout, c.lcLog, tail(c.lcLog, 30))
	}
	t.Logf("local cluster without Flax ready in %.1fs (state %s, log %s)", time.Since(t0).Seconds(), c.dir, c.lcLog)
	return c
}

// preflight fails early when binaries are missing or the ports and the bridge the
// cluster and the chart use are taken (another local cluster is running).
func (c *cluster) preflight() error {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm", "echo-basic", "flax-controller", "flax-dataplane"} {
		if _, err := os.Stat(filepath.Join(c.binDir, b)); err != nil {
			return fmt.Errorf("%s missing in %s: run `make tools build` (or `make e2e`)", b, c.binDir)
		}
	}
	// The sample Gateway's port and the chart's admin, metrics and health ports.
	for _, port := range []string{"8080", "9901", "9902", "9903"} {
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

// stop SIGTERMs localcluster and waits for its teardown (SIGKILL and `down` after 60 s),
// unless -e2e.keep.
func (c *cluster) stop(t *testing.T) {
	if *keepCluster {
		t.Logf("-e2e.keep: cluster left running (pid %d, KUBECONFIG=%s)", c.cmd.Process.Pid, c.kubeconfig)
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		t.Log("local cluster stopped")
	case <-time.After(60 * time.Second):
		t.Log("localcluster did not stop in 60s; killing it and running `down`")
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		down := exec.Command(c.lcBin, "down", "--dir", c.dir)
		down.Dir = c.root
		out, err := down.CombinedOutput()
		t.Logf("down: %v %s", err, out)
	}
}

// env is the environment of the README's commands: kubectl and helm from bin/, the
// cluster's kubeconfig, and a helm home of the test's own.
func (c *cluster) env() []string {
	return append(os.Environ(),
		"PATH="+c.binDir+":"+os.Getenv("PATH"),
		"KUBECONFIG="+c.kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(c.helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(c.helmHome, "data"),
	)
}

// run runs a command in the repository root with env and returns its stdout; the error
// carries stderr.
func (c *cluster) run(stdin string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.root
	cmd.Env = c.env()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// kubectl runs bin/kubectl and fails the test on error.
func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run("", append([]string{filepath.Join(c.binDir, "kubectl")}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
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

// eventually calls f every interval until it returns nil or timeout passes, then fails
// the test with f's last error.
func eventually(t *testing.T, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}
