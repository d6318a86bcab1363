//go:build e2e

package helm

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/test/e2e/lctest"
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
	lcLog                         string
	lc                            *lctest.Cluster
}

// startCluster starts the local cluster without Flax and waits for its "cluster ready"
// line; the cluster is torn down when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("must run as root (the local cluster creates network namespaces)")
	}
	t0 := time.Now()
	lc, err := lctest.Start(lctest.Options{
		Name:      "e2e-helm",
		Args:      []string{"--flax=none", fmt.Sprintf("--tcp-migrate-req=%v", *migrateReq)},
		ReadyLine: "cluster ready",
		Timeout:   *upTimeout,
		Binaries:  []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm", "echo-basic", "flax-controller", "flax-dataplane"},
		// The sample Gateway's port and the chart's admin, metrics and health ports.
		Ports: []string{"8080", "9901", "9902", "9903"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{root: lc.Root, binDir: lc.BinDir, dir: lc.Dir, kubeconfig: lc.Kubeconfig, helmHome: t.TempDir(), lcLog: lc.Log, lc: lc}
	t.Cleanup(func() {
		if *keepCluster {
			t.Logf("-e2e.keep: cluster left running (pid %d, KUBECONFIG=%s)", lc.Pid(), c.kubeconfig)
			return
		}
		t.Log(lc.Stop())
	})
	t.Logf("local cluster without Flax ready in %.1fs (state %s, log %s)", time.Since(t0).Seconds(), c.dir, c.lcLog)
	return c
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
