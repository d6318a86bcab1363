//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/test/poll"
)

// rateLimitPolicyYAML limits HTTPRoute echo to 5 requests per minute per client
// address, so no token comes back while the test runs.
const rateLimitPolicyYAML = `apiVersion: flaxlb.io/v1alpha1
kind: RoutePolicy
metadata:
  name: e2e-rate-limit
  namespace: demo
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: echo
  rateLimit:
    requests: 5
    interval: 1m
    perClientIP: true
`

// hashPolicyYAML makes Flax pick echo's pods by a consistent hash of X-User.
const hashPolicyYAML = `apiVersion: flaxlb.io/v1alpha1
kind: BackendPolicy
metadata:
  name: e2e-hash
  namespace: demo
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: echo
  loadBalancing:
    type: RingHash
    hashOn:
      header: X-User
`

// policyAccepted waits until the policy reports Accepted=True for an ancestor.
func policyAccepted(t testing.TB, kind, name string) {
	t.Helper()
	poll.Eventually(t, 30*time.Second, 200*time.Millisecond, kind+" "+name+" Accepted=True", func() error {
		out, err := kubectlErr("", "-n", demoNS, "get", kind, name, "-o",
			`jsonpath={range .status.ancestors[*]}{.ancestorRef.kind}/{.ancestorRef.name}={.conditions[?(@.type=="Accepted")].status}:{.conditions[?(@.type=="Accepted")].reason}{"\n"}{end}`)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Gateway/demo=True:Accepted") {
			return fmt.Errorf("ancestors: %q", strings.TrimSpace(out))
		}
		return nil
	})
}

// getFrom sends GET / to the Gateway from the local address src (any 127.0.0.0/8
// address works on loopback) on a fresh connection and returns the status and the
// Retry-After header.
func getFrom(src string, header http.Header) (int, string, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, gatewayURL+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// TestRoutePolicyRateLimit applies a RoutePolicy with a per-client rate limit to the
// sample route: a fresh client address gets exactly its burst of 200s, then 429s with
// Retry-After; another address is limited separately; deleting the policy lifts it.
func TestRoutePolicyRateLimit(t *testing.T) {
	checkServing(t, "/")
	t.Cleanup(func() {
		_, _ = kubectlErr("", "-n", demoNS, "delete", "routepolicy", "e2e-rate-limit", "--ignore-not-found")
	})
	applied := time.Now()
	kubectl(t, rateLimitPolicyYAML, "apply", "-f", "-")
	policyAccepted(t, "routepolicy", "e2e-rate-limit")
	// 127.0.0.2 probes until the limit is in force in the dataplane.
	poll.Eventually(t, 30*time.Second, 100*time.Millisecond, "a 429 from the rate limit", func() error {
		code, _, err := getFrom("127.0.0.2", nil)
		if err != nil {
			return err
		}
		if code != http.StatusTooManyRequests {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	t.Logf("rate limit in force %.2fs after kubectl apply", time.Since(applied).Seconds())

	for _, src := range []string{"127.0.0.3", "127.0.0.4"} {
		var codes []int
		retryAfter := ""
		for range 8 {
			code, ra, err := getFrom(src, nil)
			if err != nil {
				t.Fatalf("from %s: %v", src, err)
			}
			codes = append(codes, code)
			if code == http.StatusTooManyRequests {
				retryAfter = ra
			}
		}
		want := []int{200, 200, 200, 200, 200, 429, 429, 429}
		if fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Errorf("from %s: statuses %v, want %v", src, codes, want)
		}
		if retryAfter == "" {
			t.Errorf("from %s: the 429 has no Retry-After", src)
		}
	}

	kubectl(t, "", "-n", demoNS, "delete", "routepolicy", "e2e-rate-limit")
	poll.Eventually(t, 30*time.Second, 100*time.Millisecond, "the limit is lifted", func() error {
		for range 8 {
			code, _, err := getFrom("127.0.0.3", nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("HTTP %d", code)
			}
		}
		return nil
	})
}

// podsFor sends n requests with header X-User: user and returns the pods that
// answered.
func podsFor(t testing.TB, user string, n int) map[string]int {
	t.Helper()
	pods := map[string]int{}
	for range n {
		code, e, err := getEcho(gatewayURL+"/", http.Header{"X-User": {user}})
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET / as %s: HTTP %d, %v", user, code, err)
		}
		pods[e.Pod]++
	}
	return pods
}

// TestBackendPolicyConsistentHash applies a BackendPolicy choosing RingHash on X-User
// to the echo Service: every request of one user then reaches one pod, while
// different users still spread over the pods (round robin before the policy sends
// one user to every pod).
func TestBackendPolicyConsistentHash(t *testing.T) {
	if n := len(readyPodNames(t)); n < 2 {
		kubectl(t, "", "-n", demoNS, "scale", "deployment", "echo", "--replicas=2")
		waitDeploymentSettled(t, 2, 2*time.Minute)
	}
	checkServing(t, "/")
	t.Cleanup(func() {
		_, _ = kubectlErr("", "-n", demoNS, "delete", "backendpolicy", "e2e-hash", "--ignore-not-found")
	})
	if pods := podsFor(t, "alice", 12); len(pods) < 2 {
		t.Fatalf("before the policy, alice's requests reached only %v (round robin should spread them)", pods)
	}

	kubectl(t, hashPolicyYAML, "apply", "-f", "-")
	policyAccepted(t, "backendpolicy", "e2e-hash")
	poll.Eventually(t, 30*time.Second, 200*time.Millisecond, "alice sticks to one pod", func() error {
		if pods := podsFor(t, "alice", 12); len(pods) != 1 {
			return fmt.Errorf("alice reached %v", pods)
		}
		return nil
	})
	all := map[string]int{}
	for i := range 32 {
		user := fmt.Sprintf("user-%d", i)
		pods := podsFor(t, user, 4)
		if len(pods) != 1 {
			t.Errorf("%s reached %v, want one pod", user, pods)
		}
		for p := range pods {
			all[p]++
		}
	}
	if len(all) < 2 {
		t.Errorf("32 users all hashed to %v", all)
	}
	t.Logf("users per pod with RingHash on X-User: %v", all)
}
