//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
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

	"github.com/flaxlb/flax/test/e2e/lctest"
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
	lc         *lctest.Cluster

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
		fmt.Fprintf(os.Stderr, "e2e: -e2e.keep: cluster left running (pid %d, dir %s, KUBECONFIG=%s)\n", env.lc.Pid(), env.dir, env.kubeconfig)
		os.Exit(code)
	}
	stopCluster()
	os.Exit(code)
}

// startCluster starts `localcluster up --sample` and waits until the sample serves,
// then builds a client from its kubeconfig.
func startCluster() error {
	t0 := time.Now()
	lc, err := lctest.Start(lctest.Options{
		Name:      "e2e",
		Args:      []string{"--sample"},
		ReadyLine: "sample ready",
		Timeout:   *upTimeout,
		Binaries:  []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "echo-basic", "flax-controller", "flax-dataplane"},
		Ports:     []string{"8080"},
	})
	if err != nil {
		return err
	}
	env.lc = lc
	env.root, env.binDir, env.dir, env.kubeconfig = lc.Root, lc.BinDir, lc.Dir, lc.Kubeconfig
	// Tear down on Ctrl-C as well.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "e2e: interrupted; stopping the local cluster")
		stopCluster()
		os.Exit(1)
	}()
	fmt.Fprintf(os.Stderr, "e2e: local cluster with sample ready in %.1fs (state %s, log %s)\n", time.Since(t0).Seconds(), env.dir, lc.Log)
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
	if env.lc != nil {
		fmt.Fprintln(os.Stderr, "e2e:", env.lc.Stop())
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

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
