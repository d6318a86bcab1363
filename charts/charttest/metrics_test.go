package charttest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// checkMetricsExposure checks what metrics.* renders: the bind addresses of the
// dataplane's admin server and the controller's metrics, the scrape annotations, and a
// Service and ServiceMonitor whose ports are those the processes listen on.
func checkMetricsExposure(t *testing.T, r renderedObjects, v chartValues) {
	t.Helper()
	spec := r.daemonSet.Spec.Template.Spec
	ctrlArg := "--metrics-bind-address=" + net.JoinHostPort(v.Metrics.BindAddress, fmt.Sprint(v.Controller.MetricsPort))
	if !slices.Contains(spec.Containers[0].Args, ctrlArg) {
		t.Errorf("controller args %v lack %s", spec.Containers[0].Args, ctrlArg)
	}
	ann := r.daemonSet.Spec.Template.Annotations
	if v.Metrics.ScrapeAnnotations {
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != fmt.Sprint(v.Dataplane.AdminPort) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("scrape annotations %v, want scrape true on port %d path /metrics", ann, v.Dataplane.AdminPort)
		}
	} else if _, ok := ann["prometheus.io/port"]; ok {
		t.Errorf("metrics.scrapeAnnotations=false but the pods carry %v", ann)
	}
	if (r.serviceMonitor != nil) != v.Metrics.ServiceMonitor.Enabled || (r.metricsService != nil) != v.Metrics.ServiceMonitor.Enabled {
		t.Fatalf("metrics.serviceMonitor.enabled=%v but ServiceMonitor rendered=%v, Service rendered=%v",
			v.Metrics.ServiceMonitor.Enabled, r.serviceMonitor != nil, r.metricsService != nil)
	}
	if r.serviceMonitor == nil {
		return
	}
	svc, sm := r.metricsService, r.serviceMonitor
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("metrics Service clusterIP %q, want None (one scrape target per pod)", svc.Spec.ClusterIP)
	}
	for k, want := range svc.Spec.Selector {
		if r.daemonSet.Spec.Template.Labels[k] != want {
			t.Errorf("metrics Service selects %s=%s, which the pods do not carry", k, want)
		}
	}
	for k, want := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != want {
			t.Errorf("ServiceMonitor selects %s=%s, which the metrics Service does not carry", k, want)
		}
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.IntVal != p.Port {
			t.Errorf("Service port %s: target %v, want %d", p.Name, p.TargetPort, p.Port)
		}
		ports[p.Name] = p.Port
	}
	want := map[string]int32{"dataplane-metrics": v.Dataplane.AdminPort, "controller-metrics": v.Controller.MetricsPort}
	if len(ports) != len(want) || ports["dataplane-metrics"] != want["dataplane-metrics"] || ports["controller-metrics"] != want["controller-metrics"] {
		t.Errorf("metrics Service ports %v, want %v", ports, want)
	}
	if len(sm.Spec.Endpoints) != 2 {
		t.Fatalf("ServiceMonitor endpoints %+v, want the dataplane and the controller", sm.Spec.Endpoints)
	}
	for _, e := range sm.Spec.Endpoints {
		if _, ok := want[e.Port]; !ok || e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %+v: port must name a Service port, path /metrics", e)
		}
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{svc.Namespace}) {
		t.Errorf("ServiceMonitor %s in %v, want monitoring.coreos.com/v1 watching %s", sm.APIVersion, sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	}
}

// dashboardMetric finds the metric names a dashboard query reads.
var dashboardMetric = regexp.MustCompile(`\bflax_[a-z0-9_]+`)

// codeMetricName finds metric names where the code defines them: a string literal
// that is a whole flax_ name.
var codeMetricName = regexp.MustCompile(`"(flax_[a-z0-9_]+)"`)

// checkDashboard checks the dashboard ConfigMap: it holds the chart's dashboard file,
// valid Grafana JSON whose queries read only metrics the code defines.
func checkDashboard(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	file, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "flax.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["flax.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(file)) {
		t.Errorf("ConfigMap %s does not hold dashboards/flax.json (%d bytes, file %d)", cm.Name, len(got), len(file))
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack the Grafana sidecar's grafana_dashboard=1", cm.Labels)
	}
}

// TestDashboard checks dashboards/flax.json: Grafana's shape (a title, a uid, panels
// with queries) and that every metric a query reads is one the dataplane or the
// controller defines, so that renaming a metric fails here instead of leaving a
// blank panel.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "flax.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboards/flax.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("dashboard title %q uid %q: both must be set", dash.Title, dash.UID)
	}
	defined := definedMetrics(t)
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			names := dashboardMetric.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no flax metric", p.Title, q.Expr)
			}
			for _, n := range names {
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && defined[b] {
						base = b
					}
				}
				if !defined[base] {
					t.Errorf("panel %q reads %s, which no Go file of the project defines", p.Title, n)
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries found; did the dashboard's shape change?", queries)
	}
}

// definedMetrics returns the flax_ metric names in the string literals of the
// project's non-test Go files.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := filepath.Join(chartDir(t), "..", "..")
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "_out") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range codeMetricName.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !names["flax_requests_total"] || !names["flax_controller_queue_depth"] {
		t.Fatalf("metric names not found under %s (found %d)", root, len(names))
	}
	return names
}
