//go:build conformance

package conformance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/yaml"
)

// Flax's defaults for the suite's flags (sigs.k8s.io/gateway-api/conformance/utils/flags);
// a flag given on the command line wins, e.g.
//
//	go test -tags conformance . -args -run-test HTTPRouteSimpleSameNamespace
const (
	defaultGatewayClass = "flax"
	defaultProfiles     = "GATEWAY-HTTP"
)

var (
	reportDir   = flag.String("flax.report-dir", "reports", "folder for the conformance report (YAML) and the summary, unless -report-output names a file")
	summaryPath = flag.String("flax.summary", "", "file for the summary of the run (default: beside the report, .summary.txt)")
)

// Addresses for GatewayStaticAddresses, which puts them in a Gateway's spec.addresses:
// a usable one must be local on the node (run.sh's default pool is, and the pool
// never hands out an address a Gateway names), an unusable one must not be (a
// TEST-NET-1 address, which the dataplane cannot bind).
var (
	usableAddress   = flag.String("flax.usable-address", "10.96.0.254", "an IP address Gateways may name in spec.addresses and bind (GatewayStaticAddresses)")
	unusableAddress = flag.String("flax.unusable-address", "192.0.2.1", "an IP address that is not local on the node (GatewayStaticAddresses)")
)

// TestConformance runs the Gateway API conformance suite against the cluster of
// KUBECONFIG. Supported features are read from the GatewayClass's
// status.supportedFeatures, so Flax is tested on exactly what it claims.
func TestConformance(t *testing.T) {
	opts := conformance.DefaultOptions(t)
	set := explicitFlags()
	if !set["gateway-class"] {
		opts.GatewayClassName = defaultGatewayClass
	}
	if !set["conformance-profiles"] {
		// FLAX_CONFORMANCE_PROFILES lists profiles (comma-separated) for one run
		// of the suite over all of them, e.g. "GATEWAY-HTTP,GATEWAY-TCP".
		opts.ConformanceProfiles = nil
		for _, p := range strings.Split(envOr("FLAX_CONFORMANCE_PROFILES", defaultProfiles), ",") {
			if p = strings.TrimSpace(p); p != "" {
				opts.ConformanceProfiles = append(opts.ConformanceProfiles, suite.ConformanceProfileName(p))
			}
		}
	}
	if !set["organization"] {
		opts.Implementation.Organization = "flaxlb"
	}
	if !set["project"] {
		opts.Implementation.Project = "flax"
	}
	if !set["url"] {
		opts.Implementation.URL = "https://github.com/flaxlb/flax"
	}
	if !set["version"] {
		opts.Implementation.Version = envOr("FLAX_VERSION", "dev")
	}
	if !set["contact"] {
		opts.Implementation.Contact = []string{"https://github.com/flaxlb/flax/issues"}
	}
	ipAddress := gatewayv1.IPAddressType
	opts.UsableNetworkAddresses = []gatewayv1.GatewaySpecAddress{{Type: &ipAddress, Value: *usableAddress}}
	opts.UnusableNetworkAddresses = []gatewayv1.GatewaySpecAddress{{Type: &ipAddress, Value: *unusableAddress}}
	stamp := time.Now().UTC().Format("20060102-150405")
	if !set["report-output"] {
		if err := os.MkdirAll(*reportDir, 0o755); err != nil {
			t.Fatalf("creating the report folder: %v", err)
		}
		opts.ReportOutputPath = filepath.Join(*reportDir, "flax-"+stamp+".yaml")
	}
	if abs, err := filepath.Abs(opts.ReportOutputPath); err == nil {
		opts.ReportOutputPath = abs
	}

	var (
		mu      sync.Mutex
		results = map[string][]string{}
	)
	opts.Hook = func(t *testing.T, test suite.ConformanceTest, _ *suite.ConformanceTestSuite) {
		outcome := "passed"
		switch {
		case t.Failed():
			outcome = "failed"
		case t.Skipped():
			outcome = "skipped"
		}
		mu.Lock()
		results[outcome] = append(results[outcome], test.ShortName)
		mu.Unlock()
	}
	// Registered before RunConformanceWithOptions registers the report writer, so
	// this runs after it (cleanups run last-in first-out) and can read the report.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		var b strings.Builder
		fmt.Fprintf(&b, "conformance: gatewayclass %s, profiles %v\n", opts.GatewayClassName, opts.ConformanceProfiles)
		for _, outcome := range []string{"failed", "skipped", "passed"} {
			names := results[outcome]
			slices.Sort(names)
			fmt.Fprintf(&b, "conformance: %s (%d):", outcome, len(names))
			for _, n := range names {
				fmt.Fprintf(&b, " %s", n)
			}
			b.WriteString("\n")
		}
		if t.Failed() && len(results) == 0 {
			b.WriteString("conformance: the suite failed before running any test (setup: GatewayClass, base manifests, Gateways and pods Ready)\n")
			b.WriteString(unreadyPods(opts.Clientset))
		}
		if summary, err := profileSummary(opts.ReportOutputPath); err == nil {
			b.WriteString(summary)
		}
		fmt.Fprintf(&b, "conformance: passed %d, failed %d, skipped %d; report %s\n",
			len(results["passed"]), len(results["failed"]), len(results["skipped"]), opts.ReportOutputPath)
		out := b.String()
		fmt.Print("\n" + out)
		summary := *summaryPath
		if summary == "" {
			summary = strings.TrimSuffix(opts.ReportOutputPath, ".yaml") + ".summary.txt"
		}
		if err := os.WriteFile(summary, []byte(out), 0o644); err != nil {
			t.Logf("writing %s: %v", summary, err)
		}
	})
	conformance.RunConformanceWithOptions(t, opts)
}

// profileSummary reads the report and returns one line per profile: the core and
// extended results as the report states them.
func profileSummary(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var report confv1.ConformanceReport
	if err := yaml.Unmarshal(data, &report); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range report.ProfileReports {
		fmt.Fprintf(&b, "conformance: profile %s: core %s (passed %d, failed %d, skipped %d)",
			p.Name, p.Core.Result, p.Core.Statistics.Passed, p.Core.Statistics.Failed, p.Core.Statistics.Skipped)
		if p.Extended != nil {
			fmt.Fprintf(&b, ", extended %s (passed %d, failed %d, skipped %d; features %v)",
				p.Extended.Result, p.Extended.Statistics.Passed, p.Extended.Statistics.Failed, p.Extended.Statistics.Skipped, p.Extended.SupportedFeatures)
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// unreadyPods lists the pods of the conformance namespaces that are not Ready, with
// why, one line each: the usual cause of a failed setup.
func unreadyPods(cs kubernetes.Interface) string {
	var b strings.Builder
	for _, ns := range []string{suite.InfrastructureNamespace, suite.AppBackendNamespace, suite.WebBackendNamespace} {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			fmt.Fprintf(&b, "conformance: listing pods in %s: %v\n", ns, err)
			continue
		}
		for _, p := range pods.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if ready {
				continue
			}
			why := []string{string(p.Status.Phase)}
			if p.Status.Message != "" {
				why = append(why, p.Status.Message)
			}
			for _, c := range p.Status.ContainerStatuses {
				if w := c.State.Waiting; w != nil {
					why = append(why, fmt.Sprintf("container %s waiting: %s %s", c.Name, w.Reason, w.Message))
				} else if !c.Ready {
					why = append(why, fmt.Sprintf("container %s not ready", c.Name))
				}
			}
			fmt.Fprintf(&b, "conformance:   pod %s/%s not Ready: %s\n", ns, p.Name, strings.Join(why, "; "))
		}
	}
	return b.String()
}

// explicitFlags returns the names of the flags given on the command line.
func explicitFlags() map[string]bool {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
