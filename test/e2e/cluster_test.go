//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/test/poll"
)

// echoPods lists the sample's echo pods.
func echoPods(t testing.TB) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := env.client.List(ctx(t), &pods, client.InNamespace(demoNS), client.MatchingLabels{"app": "echo"}); err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	return pods.Items
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyPodNames returns the sorted names of the echo pods that are Ready and not
// terminating.
func readyPodNames(t testing.TB) []string {
	var out []string
	for _, p := range echoPods(t) {
		if p.DeletionTimestamp == nil && podReady(&p) {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// waitDeploymentSettled waits until Deployment echo has rolled out `replicas` ready
// pods and no other echo pod exists (terminated pods are gone).
func waitDeploymentSettled(t testing.TB, replicas int, timeout time.Duration) {
	t.Helper()
	poll.Eventually(t, timeout, 250*time.Millisecond, fmt.Sprintf("deployment echo settled at %d ready pods", replicas), func() error {
		var d appsv1.Deployment
		if err := env.client.Get(ctx(t), client.ObjectKey{Namespace: demoNS, Name: "echo"}, &d); err != nil {
			return err
		}
		st := d.Status
		if d.Spec.Replicas == nil || int(*d.Spec.Replicas) != replicas || st.ObservedGeneration < d.Generation ||
			int(st.UpdatedReplicas) != replicas || int(st.ReadyReplicas) != replicas || int(st.Replicas) != replicas || int(st.AvailableReplicas) != replicas {
			return fmt.Errorf("spec %v, status %+v", d.Spec.Replicas, st)
		}
		pods := echoPods(t)
		if len(pods) != replicas {
			return fmt.Errorf("%d echo pods exist", len(pods))
		}
		for _, p := range pods {
			if p.DeletionTimestamp != nil || !podReady(&p) {
				return fmt.Errorf("pod %s not ready or terminating", p.Name)
			}
		}
		return nil
	})
}

// waitTrafficMatchesReadyPods waits until, over a window of load traffic, the set of
// pods that answered equals the set of Ready pods (unchanged across the window).
func waitTrafficMatchesReadyPods(t testing.TB, l *load, timeout time.Duration) []string {
	t.Helper()
	var pods []string
	poll.Eventually(t, timeout, 0, "traffic reaches exactly the ready pods", func() error {
		mark := time.Now()
		before := readyPodNames(t)
		time.Sleep(2 * time.Second)
		after := readyPodNames(t)
		s := summarize(l.since(mark))
		seen := s.podSet()
		if !slices.Equal(before, after) {
			return fmt.Errorf("ready pods changed during the window: %v -> %v", before, after)
		}
		if s.total-s.failed < 10*len(after) {
			return fmt.Errorf("only %d successful requests in the window (%s)", s.total-s.failed, s)
		}
		if !slices.Equal(seen, after) {
			return fmt.Errorf("pods answering %v (%s), ready pods %v", s.pods, s, after)
		}
		pods = after
		return nil
	})
	return pods
}

// checkServing fails unless a GET of path through the Gateway answers 2xx.
func checkServing(t testing.TB, path string) {
	t.Helper()
	poll.Eventually(t, 20*time.Second, 200*time.Millisecond, "GET "+path+" answers 200", func() error {
		code, _, err := getEcho(gatewayURL+path, nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
}

// flaxProcess is a flax-controller or flax-dataplane host process of the cluster.
type flaxProcess struct {
	pid  int
	argv []string
	env  []string
}

// findFlaxProcess finds the running process of binary name (flax-controller or
// flax-dataplane) that carries the cluster's marker.
func findFlaxProcess(t testing.TB, name string) flaxProcess {
	t.Helper()
	marker := []byte(markerEnv + "=" + env.dir + "\x00")
	entries, _ := os.ReadDir("/proc")
	var found []flaxProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(argv[0]) != name {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !strings.Contains(string(append(environ, 0)), string(marker)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie not yet reaped
		}
		found = append(found, flaxProcess{pid: pid, argv: argv, env: strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")})
	}
	if len(found) != 1 {
		t.Fatalf("want one %s process of the cluster, found %d", name, len(found))
	}
	return found[0]
}

// killAndWait sends sig to pid and waits until the process is gone (or a zombie).
func killAndWait(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	poll.Eventually(t, 30*time.Second, 10*time.Millisecond, fmt.Sprintf("process %d gone", pid), func() error {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			return nil
		}
		return fmt.Errorf("still running")
	})
}

// restartFlaxProcess starts p's command line again with its environment (so that it
// carries the cluster's marker and localcluster's teardown finds it), logging to the
// same file as localcluster does. TestMain stops it at the end.
func restartFlaxProcess(t testing.TB, name string, p flaxProcess) *exec.Cmd {
	t.Helper()
	logFile, err := os.OpenFile(filepath.Join(env.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "\n===== e2e: restarted by %s at %s =====\n", t.Name(), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("restarting %s: %v", name, err)
	}
	logFile.Close() // the child holds its own descriptor
	env.mu.Lock()
	env.restarted = append(env.restarted, cmd)
	env.mu.Unlock()
	return cmd
}

// flagValue returns the value of --name in argv ("--name V" or "--name=V").
func flagValue(argv []string, name string) string {
	for i, a := range argv {
		if a == "--"+name && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// percentile returns the p-th percentile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
