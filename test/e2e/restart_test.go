//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flaxlb/flax/config/samples/demo"
	"github.com/flaxlb/flax/test/poll"
)

// checkV2Route checks one request to the echo-v2 route.
func checkV2Route() error {
	code, e, err := getEcho(gatewayURL+"/v2/check", http.Header{"Host": {"v2.example.com"}})
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET v2.example.com/v2/check: HTTP %d", code)
	}
	if v := e.Headers["X-Via"]; len(v) != 1 || v[0] != "flax-sample" {
		return fmt.Errorf("GET v2.example.com/v2/check: X-Via %q", v)
	}
	return nil
}

// TestControllerRestart kills flax-controller (SIGKILL) under steady load, restarts it
// with the same command line, and requires zero failed requests; the restarted
// controller must then apply a route edit.
func TestControllerRestart(t *testing.T) {
	checkServing(t, "/")
	l := startLoad(t, gatewayURL+"/", 4, 2*time.Minute)
	time.Sleep(time.Second)

	p := findFlaxProcess(t, "flax-controller")
	tKill := time.Now()
	killAndWait(t, p.pid, syscall.SIGKILL)
	t.Logf("flax-controller (pid %d) killed; the dataplane keeps serving its last snapshot", p.pid)
	time.Sleep(3 * time.Second)
	if s := summarize(l.since(tKill)); s.failed != 0 || s.total == 0 {
		t.Errorf("without the controller: %s", s)
	}

	tStart := time.Now()
	restartFlaxProcess(t, "flax-controller", p)
	health := flagValue(p.argv, "health-probe-bind-address")
	poll.Eventually(t, 60*time.Second, 100*time.Millisecond, "restarted flax-controller /readyz", func() error {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	t.Logf("restarted flax-controller ready (its snapshot applied by the dataplane) %.2fs after start", time.Since(tStart).Seconds())
	time.Sleep(2 * time.Second)
	l.Stop()
	s := summarize(l.all())
	t.Logf("load across the controller kill and restart: %s", s)
	if s.failed != 0 {
		t.Errorf("controller restart interrupted traffic: %s", s)
		logFailureTimeline(t, l.all(), tKill)
	}

	// The new controller drives the dataplane: a route edit takes effect.
	t.Cleanup(func() { restoreEchoRoute(t) })
	kubectl(t, echoRouteEditedYAML, "apply", "-f", "-")
	poll.Eventually(t, 30*time.Second, 100*time.Millisecond, "a route edit through the restarted controller", func() error {
		_, e, err := getEcho(gatewayURL+"/", nil)
		if err != nil {
			return err
		}
		if v := e.Headers["X-E2e-Edit"]; len(v) != 1 {
			return fmt.Errorf("header filter not applied")
		}
		return nil
	})
}

// TestDataplaneRestart kills flax-dataplane (SIGKILL, a crash) under steady load and
// starts it again with the same command line. Only requests in flight or sent while no
// dataplane runs may fail; the time from the new process's start to the first success
// is reported, and the first success must come with the full configuration (both
// routes, with their filters).
func TestDataplaneRestart(t *testing.T) {
	kubectl(t, demo.V2Route, "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = kubectlErr("", "-n", demoNS, "delete", "httproute", "echo-v2", "--ignore-not-found")
	})
	checkServing(t, "/")
	poll.Eventually(t, 30*time.Second, 100*time.Millisecond, "route echo-v2 serves", checkV2Route)

	l := startLoad(t, gatewayURL+"/", 4, 2*time.Minute)
	time.Sleep(time.Second)
	p := findFlaxProcess(t, "flax-dataplane")
	if sock := flagValue(p.argv, "socket"); sock != "" {
		if _, err := os.Stat(sock); err != nil {
			t.Fatalf("dataplane socket: %v", err)
		}
	}
	tKill := time.Now()
	killAndWait(t, p.pid, syscall.SIGKILL)
	tStart := time.Now()
	// The restarted dataplane also writes an access log (one JSON line per request,
	// with the upstream, attempts and the reason of local replies), which the later
	// tests print when a request fails.
	restarted := p
	if flagValue(p.argv, "access-log") == "" {
		restarted.argv = append(append([]string(nil), p.argv...), "--access-log", accessLogPath())
	}
	restartFlaxProcess(t, "flax-dataplane", restarted)

	// Poll with fresh connections until the first success.
	var firstOK time.Time
	poll.Eventually(t, 60*time.Second, 5*time.Millisecond, "the restarted dataplane answers GET /", func() error {
		code, _, err := getEcho(gatewayURL+"/", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("HTTP %d", code)
		}
		firstOK = time.Now()
		return nil
	})
	// The full configuration, at once: the second route and its filter.
	if err := checkV2Route(); err != nil {
		t.Errorf("right after the first success the configuration is incomplete: %v", err)
	}
	t.Logf("dataplane restart: first success %.3fs after the new process started (%.3fs after the kill)",
		firstOK.Sub(tStart).Seconds(), firstOK.Sub(tKill).Seconds())
	t.Logf("dataplane restart: log %s", filepath.Join(env.dir, "logs", "flax-dataplane.log"))

	time.Sleep(3 * time.Second)
	l.Stop()
	during := summarize(l.since(tKill))
	var afterUp []result
	for _, r := range l.all() {
		if r.start.After(firstOK) {
			afterUp = append(afterUp, r)
		}
	}
	after := summarize(afterUp)
	t.Logf("load from the kill on: %s", during)
	t.Logf("load started after the first success: %s", after)
	if after.failed != 0 {
		t.Errorf("requests failed after the restarted dataplane answered: %s", after)
		logFailureTimeline(t, afterUp, firstOK)
	}
	var before []result
	for _, r := range l.all() {
		if r.end.Before(tKill) {
			before = append(before, r)
		}
	}
	if s := summarize(before); s.failed != 0 {
		t.Errorf("requests failed before the kill: %s", s)
	}
	poll.Eventually(t, 10*time.Second, 100*time.Millisecond, "route echo-v2 serves", checkV2Route)
}
