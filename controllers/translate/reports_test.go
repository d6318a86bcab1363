package translate

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// conformanceReport is the part of a Gateway API ConformanceReport
// (sigs.k8s.io/gateway-api/conformance/apis/v1) that TestConformanceReports reads.
type conformanceReport struct {
	Kind              string `json:"kind"`
	GatewayAPIVersion string `json:"gatewayAPIVersion"`
	GatewayAPIChannel string `json:"gatewayAPIChannel"`
	Mode              string `json:"mode"`
	Implementation    struct {
		Project string `json:"project"`
		Version string `json:"version"`
	} `json:"implementation"`
	Profiles []struct {
		Name string `json:"name"`
		Core struct {
			Result string `json:"result"`
		} `json:"core"`
		Extended *struct {
			Result              string   `json:"result"`
			SupportedFeatures   []string `json:"supportedFeatures"`
			UnsupportedFeatures []string `json:"unsupportedFeatures"`
		} `json:"extended"`
	} `json:"profiles"`
}

// flaxVersion returns the Flax version conformance reports are filed under:
// "v" and the chart's appVersion.
func flaxVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../charts/flax/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?`).FindSubmatch(data)
	if m == nil {
		t.Fatal("charts/flax/Chart.yaml has no appVersion")
	}
	return "v" + string(m[1])
}

// TestConformanceReports checks the conformance reports committed for this Flax
// version (test/conformance/reports/<version>/, written by make conformance)
// against what Flax claims, so that they cannot go stale silently: there is a
// report of the standard channel with the profiles CI runs; every report is of
// this version of Flax and of Gateway API, passed (core and extended), and in
// every profile the extended features it lists as supported are exactly those of
// its features (supported or not) that a class configured as make conformance
// configures it (an address pool and a Service per Gateway) claims with that
// channel's CRDs. A feature claimed or dropped since the report was written
// fails this test until make conformance writes the report again.
func TestConformanceReports(t *testing.T) {
	version := flaxVersion(t)
	dir := filepath.Join("../../test/conformance/reports", version)
	files, err := filepath.Glob(filepath.Join(dir, "*-report.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	channels := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var r conformanceReport
			if err := yaml.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			if r.Kind != "ConformanceReport" || r.Implementation.Project != "flax" || r.Implementation.Version != version || r.Mode != "default" {
				t.Errorf("kind %q, project %q, version %q, mode %q; want a ConformanceReport of flax %s, mode default",
					r.Kind, r.Implementation.Project, r.Implementation.Version, r.Mode, version)
			}
			if r.GatewayAPIVersion != GatewayAPIVersion {
				t.Errorf("gatewayAPIVersion %q, want %q", r.GatewayAPIVersion, GatewayAPIVersion)
			}
			if want := r.GatewayAPIChannel + "-" + version + "-default-report.yaml"; filepath.Base(f) != want {
				t.Errorf("a report of channel %q belongs in %s", r.GatewayAPIChannel, want)
			}
			channels[r.GatewayAPIChannel] = true
			var profiles []string
			claimed := map[string]bool{}
			for _, f := range supportedFeatures([]CRD{{Name: httpRouteCRD, Channel: r.GatewayAPIChannel}}, true) {
				claimed[string(f.Name)] = true
			}
			for _, p := range r.Profiles {
				profiles = append(profiles, p.Name)
				if p.Core.Result != "success" {
					t.Errorf("profile %s: core result %q, want success", p.Name, p.Core.Result)
				}
				if p.Extended == nil {
					continue
				}
				if p.Extended.Result != "success" {
					t.Errorf("profile %s: extended result %q, want success", p.Name, p.Extended.Result)
				}
				var want []string
				for _, f := range slices.Concat(p.Extended.SupportedFeatures, p.Extended.UnsupportedFeatures) {
					if claimed[f] {
						want = append(want, f)
					}
				}
				got := slices.Sorted(slices.Values(p.Extended.SupportedFeatures))
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("profile %s: the report's supported features\n  %s\nare not those Flax claims\n  %s\nrun make conformance (see test/conformance/README.md) and commit the new report",
						p.Name, strings.Join(got, " "), strings.Join(want, " "))
				}
			}
			if r.GatewayAPIChannel == "standard" {
				for _, p := range []string{"GATEWAY-HTTP", "GATEWAY-TCP", "GATEWAY-TLS"} {
					if !slices.Contains(profiles, p) {
						t.Errorf("profiles %v, want %s among them (CI runs the standard channel with GATEWAY-HTTP,GATEWAY-TCP,GATEWAY-TLS)", profiles, p)
					}
				}
			}
		})
	}
	if !channels["standard"] {
		t.Errorf("no report of the standard channel for Flax %s in %s: run FLAX_CONFORMANCE_PROFILES=GATEWAY-HTTP,GATEWAY-TCP,GATEWAY-TLS make conformance and commit it", version, dir)
	}
}
