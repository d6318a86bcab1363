//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const (
	// gatewayURL is the sample Gateway's listener (it binds every address, port 8080).
	gatewayURL = "http://127.0.0.1:8080"
	// markerEnv is the variable localcluster sets on every process it starts.
	markerEnv = "FLAX_LOCALCLUSTER_DIR"
	demoNS    = "demo"
)

var (
	keepCluster = flag.Bool("e2e.keep", false, "leave the local cluster running after the tests (stop it with SIGTERM to the localcluster process or `localcluster down`)")
	upTimeout   = flag.Duration("e2e.up-timeout", 4*time.Minute, "how long the local cluster may take to start with its sample")
)

// env is the state shared by every test: the running cluster and clients for it.
var env struct {
	root       string // repository root
	binDir     string
	dir        string // localcluster state folder
	kubeconfig string
	client     client.Client
	lc         *exec.Cmd // the localcluster process
	lcLog      string
	lcDone     chan struct{}

	mu        sync.Mutex
	restarted []*exec.Cmd // flax processes the tests restarted (not children of localcluster)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (the local cluster creates network namespaces); skipping")
		os.Exit(0)
	}
	code := 1
	err := startCluster()
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintf(os.Stderr, "e2e: starting the local cluster: %v\n", err)
	}
	if *keepCluster && err == nil {
		fmt.Fprintf(os.Stderr, "e2e: -e2e.keep: cluster left running (pid %d, dir %s, KUBECONFIG=%s)\n", env.lc.Process.Pid, env.dir, env.kubeconfig)
		os.Exit(code)
	}
	stopCluster()
	os.Exit(code)
}

// startCluster builds hack/localcluster, runs `up --sample` and waits for its
// "sample ready" line, then builds a client from its kubeconfig.
func startCluster() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	env.root = filepath.Clean(filepath.Join(wd, "..", ".."))
	env.binDir = filepath.Join(env.root, "bin")
	if err := preflight(); err != nil {
		return err
	}
	env.dir = filepath.Join(env.root, "_out", "e2e")
	if err := os.MkdirAll(filepath.Join(env.root, "_out"), 0o755); err != nil {
		return err
	}
	bin := filepath.Join(env.root, "_out", "e2e-localcluster")
	t0 := time.Now()
	build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", bin, "./hack/localcluster")
	build.Dir = env.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building hack/localcluster: %w: %s", err, out)
	}
	env.lcLog = filepath.Join(env.root, "_out", "e2e-localcluster.log")
	logFile, err := os.Create(env.lcLog)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "up", "--sample", "--dir", env.dir)
	cmd.Dir = env.root
	// The cluster tears itself down on SIGTERM, also when this test binary dies
	// (a `go test -timeout` panic, a kill).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting localcluster: %w", err)
	}
	env.lc = cmd
	env.lcDone = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		logFile.Close()
		close(env.lcDone)
	}()
	// Tear down on Ctrl-C as well.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "e2e: interrupted; stopping the local cluster")
		stopCluster()
		os.Exit(1)
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "sample ready") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case <-env.lcDone:
		return fmt.Errorf("localcluster exited before the sample was ready; log %s:\n%s", env.lcLog, tail(env.lcLog, 30))
	case <-time.After(*upTimeout):
		return fmt.Errorf("localcluster: sample not ready after %v; log %s:\n%s", *upTimeout, env.lcLog, tail(env.lcLog, 30))
	}
	fmt.Fprintf(os.Stderr, "e2e: local cluster with sample ready in %.1fs (state %s, log %s)\n", time.Since(t0).Seconds(), env.dir, env.lcLog)
	env.kubeconfig = filepath.Join(env.dir, "kubeconfig")
	restCfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", env.kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := gatewayv1.Install(scheme); err != nil {
		return err
	}
	env.client, err = client.New(restCfg, client.Options{Scheme: scheme})
	return err
}

// preflight fails early, with a clear message, when the binaries are missing or another
// local cluster (whose port 8080 and bridge this one would fight over) is running.
func preflight() error {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "echo-basic", "flax-controller", "flax-dataplane"} {
		if _, err := os.Stat(filepath.Join(env.binDir, b)); err != nil {
			return fmt.Errorf("%s missing in %s: run `make tools build` (or `make e2e`)", b, env.binDir)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		return fmt.Errorf("port 8080 is in use (another local cluster, `make run`?): %w", err)
	}
	l.Close()
	if _, err := net.InterfaceByName("flaxlc0"); err == nil {
		return errors.New("the bridge flaxlc0 exists: another local cluster is running (or a crashed one left it; `go run ./hack/localcluster down`)")
	}
	return nil
}

// stopCluster stops the processes the tests restarted, then SIGTERMs localcluster and
// waits for its teardown (SIGKILL and `down` after 60 s).
func stopCluster() {
	env.mu.Lock()
	procs := env.restarted
	env.restarted = nil
	env.mu.Unlock()
	for _, p := range procs {
		stopGroup(p, 5*time.Second)
	}
	if env.lc == nil || env.lc.Process == nil {
		return
	}
	_ = env.lc.Process.Signal(syscall.SIGTERM)
	select {
	case <-env.lcDone:
		fmt.Fprintln(os.Stderr, "e2e: local cluster stopped")
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "e2e: localcluster did not stop in 60s; killing it and running `down`")
		_ = syscall.Kill(-env.lc.Process.Pid, syscall.SIGKILL)
		<-env.lcDone
		down := exec.Command(env.lc.Path, "down", "--dir", env.dir)
		down.Dir = env.root
		out, err := down.CombinedOutput()
		fmt.Fprintf(os.Stderr, "e2e: down: %v %s\n", err, out)
	}
}

// stopGroup sends SIGTERM to a process group and SIGKILL after grace.
func stopGroup(c *exec.Cmd, grace time.Duration) {
	if c.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _, _ = c.Process.Wait(); close(done) }()
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
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

// kubectl runs bin/kubectl with the cluster's kubeconfig (stdin may be empty) and
// fails the test on error.
func kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func kubectlErr(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.binDir, "kubectl"), append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// eventually calls f every interval until it returns nil or timeout passes, then fails
// the test with f's last error.
func eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
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

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
