//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRollingUpdate changes an env var in the pod template of Deployment echo (a
// rolling update: maxSurge 25%, maxUnavailable 25%) under steady load and requires
// zero failed requests (non-2xx replies and transport errors) through the Gateway.
func TestRollingUpdate(t *testing.T) {
	kubectl(t, "", "-n", demoNS, "scale", "deployment", "echo", "--replicas=2")
	waitDeploymentSettled(t, 2, 90*time.Second)
	before := readyPodNames(t)

	l := startLoad(t, gatewayURL+"/", 4, 3*time.Minute)
	waitTrafficMatchesReadyPods(t, l, 30*time.Second)
	tRoll := time.Now()
	kubectl(t, "", "-n", demoNS, "set", "env", "deployment/echo", "E2E_ROLL="+tRoll.Format("150405.000"))
	kubectl(t, "", "-n", demoNS, "rollout", "status", "deployment/echo", "--timeout=120s")
	waitDeploymentSettled(t, 2, 60*time.Second)
	t.Logf("rollout finished (old pods gone) %.2fs after kubectl set env", time.Since(tRoll).Seconds())
	after := waitTrafficMatchesReadyPods(t, l, 30*time.Second)
	l.Stop()
	for _, p := range after {
		for _, b := range before {
			if p == b {
				t.Errorf("pod %s survived the rolling update", p)
			}
		}
	}
	s := summarize(l.all())
	t.Logf("rolling update %v → %v: %s", before, after, s)
	if s.failed != 0 {
		t.Errorf("rolling update: %d of %d requests failed (want 0): %s; failures from +%.2fs to +%.2fs after kubectl set env",
			s.failed, s.total, s, s.firstFail.Sub(tRoll).Seconds(), s.lastFail.Sub(tRoll).Seconds())
		logFailureTimeline(t, l.all(), tRoll)
		logDataplaneReplies(t)
		logAccessLogFailures(t, tRoll)
	}
}

// accessLogPath is where a dataplane restarted by the tests writes its access log.
func accessLogPath() string { return filepath.Join(env.dir, "logs", "flax-dataplane-access.log") }

// logAccessLogFailures logs the dataplane access log lines of requests that began at or
// after since and did not end in a backend's 2xx (when the dataplane writes one).
func logAccessLogFailures(t testing.TB, since time.Time) {
	time.Sleep(300 * time.Millisecond) // the access log is flushed every 100 ms
	b, err := os.ReadFile(accessLogPath())
	if err != nil {
		t.Logf("no dataplane access log (%v): TestDataplaneRestart turns it on", err)
		return
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Time   time.Time `json:"time"`
			Status int       `json:"status"`
			Reason string    `json:"reason"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Time.Before(since.Add(-time.Millisecond)) {
			continue
		}
		if e.Status >= 200 && e.Status < 300 && e.Reason == "" {
			continue
		}
		if n++; n > 20 {
			break
		}
		t.Logf("  access log: %s", line)
	}
	if n == 0 {
		t.Logf("  access log: no failed request logged since %s", since.Format(time.RFC3339Nano))
	}
}

// logFailureTimeline logs up to 20 failed requests with their time relative to t0.
func logFailureTimeline(t testing.TB, rs []result, t0 time.Time) {
	n := 0
	for _, r := range rs {
		if r.ok() {
			continue
		}
		if n++; n > 20 {
			break
		}
		t.Logf("  failed at +%.3fs (%.0fms): %s", r.start.Sub(t0).Seconds(), float64(r.end.Sub(r.start).Microseconds())/1000, r.err)
	}
}

// logDataplaneReplies logs the dataplane's flax_local_replies_total, retry and connect
// error counters that are not zero, which say why the proxy answered itself.
func logDataplaneReplies(t testing.TB) {
	p := findFlaxProcess(t, "flax-dataplane")
	admin := flagValue(p.argv, "admin-address")
	if admin == "" {
		return
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Logf("dataplane metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") || strings.HasSuffix(line, " 0") {
			continue
		}
		if strings.Contains(line, "local_replies") || strings.Contains(line, "retr") || strings.Contains(line, "upstream_connect") {
			lines = append(lines, line)
		}
	}
	t.Logf("dataplane metrics:\n%s", strings.Join(lines, "\n"))
}
