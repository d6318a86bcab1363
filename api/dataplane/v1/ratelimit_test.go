package dataplanev1_test

import (
	"strings"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// The YAML form of rate limits and retry budgets: protojson and proto field names,
// durations as strings.
func TestParseRateLimitAndRetryBudget(t *testing.T) {
	snap, err := dataplanev1.Parse([]byte(`
listeners:
- name: l
  port: 80
  protocol: HTTP
  virtualHosts:
  - name: v
    routes:
    - name: a
      matches: [{path: {type: PATH_PREFIX, value: /a}}]
      rateLimit: {bucket: shared, requests: 10, interval: 1.5s, burst: 20, perClientIp: true}
      backends: [{backendGroup: g, weight: 1}]
    - name: b
      rate_limit: {bucket: shared, requests: 10, interval: 1500ms, burst: 20, per_client_ip: true}
      backends: [{backendGroup: g, weight: 1}]
backendGroups:
- name: g
  retryBudget: {percent: 30, minRetryConcurrency: 2}
- name: h
  retry_budget: {}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	routes := snap.GetListeners()[0].GetVirtualHosts()[0].GetRoutes()
	for _, r := range routes {
		rl := r.GetRateLimit()
		if rl.GetBucket() != "shared" || rl.GetRequests() != 10 || rl.GetInterval().AsDuration() != 1500*time.Millisecond ||
			rl.GetBurst() != 20 || !rl.GetPerClientIp() {
			t.Errorf("route %s rate limit %v", r.GetName(), rl)
		}
	}
	g, h := snap.GetBackendGroups()[0], snap.GetBackendGroups()[1]
	if b := g.GetRetryBudget(); b.GetPercent() != 30 || b.GetMinRetryConcurrency() != 2 {
		t.Errorf("retry budget %v", b)
	}
	// An empty budget is set (it disables retries), unlike an absent one.
	if h.GetRetryBudget() == nil {
		t.Error("empty retry budget parsed as unset")
	}
	y, err := dataplanev1.MarshalYAML(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rateLimit:", "perClientIp: true", "interval: 1.5s", "retryBudget:", "minRetryConcurrency: 2"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML form lacks %q:\n%s", want, y)
		}
	}
}

// Validation errors of rate limits name their field in a YAML snapshot too.
func TestValidateRateLimitYAML(t *testing.T) {
	const base = `
listeners:
- name: l
  port: 80
  protocol: HTTP
  virtualHosts:
  - name: v
    routes:
    - name: a
      matches: [{path: {type: PATH_PREFIX, value: /a}}]
      rateLimit: LIMIT_A
      directResponse: {status: 200}
    - name: b
      rateLimit: LIMIT_B
      directResponse: {status: 200}
backendGroups:
- name: g
  retryBudget: BUDGET
`
	const ok = "{bucket: x, requests: 10, interval: 1s}"
	for _, tc := range []struct {
		name         string
		a, b, budget string
		want         []string // error lines; none when valid
	}{
		{"valid", ok, ok, "{percent: 100}", nil},
		{"burst zero is requests", ok, "{bucket: x, requests: 10, interval: 1s, burst: 10}", "{}", nil},
		{"separate buckets may differ", ok, "{bucket: other, requests: 1, interval: 24h, perClientIp: true}", "{}", nil},
		{"limits of one bucket differ", ok, "{bucket: x, requests: 10, interval: 2s}", "{}", []string{
			`listeners[0].virtualHosts[0].routes[1].rateLimit: bucket "x" is also used by listeners[0].virtualHosts[0].routes[0].rateLimit with another limit`,
		}},
		{"fields", "{requests: 0, interval: 0s}", "{bucket: other, requests: 1}", "{percent: 200}", []string{
			"listeners[0].virtualHosts[0].routes[0].rateLimit.requests: must be at least 1",
			"listeners[0].virtualHosts[0].routes[0].rateLimit.interval: must be between 1ms and 24h0m0s, got 0s",
			"listeners[0].virtualHosts[0].routes[0].rateLimit.bucket: must not be empty",
			"listeners[0].virtualHosts[0].routes[1].rateLimit.interval: must be set",
			"backendGroups[0].retryBudget.percent: must be between 0 and 100, got 200",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.NewReplacer("LIMIT_A", tc.a, "LIMIT_B", tc.b, "BUDGET", tc.budget).Replace(base)
			snap, err := dataplanev1.Parse([]byte(y))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			lines := errorLines(dataplanev1.Validate(snap))
			if len(lines) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d", strings.Join(lines, "\n"), len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

// The rate limit example is a valid snapshot that uses what it describes.
func TestLoadRateLimitExample(t *testing.T) {
	snap, err := dataplanev1.Load("../../../examples/ratelimit.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	buckets := map[string]int{}
	perClient := 0
	for _, vh := range snap.GetListeners()[0].GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if rl := r.GetRateLimit(); rl != nil {
				buckets[rl.GetBucket()]++
				if rl.GetPerClientIp() {
					perClient++
				}
			}
		}
	}
	if buckets["search"] != 2 || perClient == 0 || len(buckets) < 3 {
		t.Errorf("buckets %v, per client %d: want a shared bucket and per-client limits", buckets, perClient)
	}
	if snap.GetBackendGroups()[0].GetRetryBudget() == nil {
		t.Error("no retry budget")
	}
}
