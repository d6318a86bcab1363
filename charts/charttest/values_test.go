package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// scalar holds a value that may be a YAML string, number or boolean, as text.
type scalar string

func (s *scalar) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = scalar(str)
		return nil
	}
	*s = scalar(strings.TrimSpace(string(b)))
	return nil
}

// chartValues is the part of the values the tests reason about.
type chartValues struct {
	RunAsUser    int64 `json:"runAsUser"`
	GatewayClass struct {
		Create         scalar   `json:"create"`
		Name           string   `json:"name"`
		ControllerName string   `json:"controllerName"`
		AddressPools   []string `json:"addressPools"`
		ServiceType    string   `json:"serviceType"`
	} `json:"gatewayClass"`
	RBAC struct {
		Create bool `json:"create"`
	} `json:"rbac"`
	ServiceAccount struct {
		Create bool `json:"create"`
	} `json:"serviceAccount"`
	Controller struct {
		MetricsPort int32 `json:"metricsPort"`
	} `json:"controller"`
	Metrics struct {
		BindAddress       string `json:"bindAddress"`
		ScrapeAnnotations bool   `json:"scrapeAnnotations"`
		ServiceMonitor    struct {
			Enabled bool `json:"enabled"`
		} `json:"serviceMonitor"`
		Dashboard struct {
			Enabled bool `json:"enabled"`
		} `json:"dashboard"`
	} `json:"metrics"`
	ExtraContainers []struct {
		Name string `json:"name"`
	} `json:"extraContainers"`
	Dataplane struct {
		AdminPort int32 `json:"adminPort"`
		Drain     struct {
			GraceSeconds   int64 `json:"graceSeconds"`
			TimeoutSeconds int64 `json:"timeoutSeconds"`
		} `json:"drain"`
	} `json:"dataplane"`
	Seccomp struct {
		Mode    string `json:"mode"`
		HostDir string `json:"hostDir"`
	} `json:"seccomp"`
	UpdateStrategy struct {
		Type           string `json:"type"`
		MaxUnavailable string `json:"-"`
		Raw            scalar `json:"maxUnavailable"`
		MaxSurge       string `json:"-"`
		RawSurge       scalar `json:"maxSurge"`
	} `json:"updateStrategy"`
}

// loadValues merges the chart's values.yaml with the value files, as helm does for maps.
func loadValues(t *testing.T, files ...string) chartValues {
	t.Helper()
	merged := readYAMLMap(t, filepath.Join(chartDir(t), "values.yaml"))
	for _, f := range files {
		merged = mergeMaps(merged, readYAMLMap(t, f))
	}
	b, err := json.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	var v chartValues
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding values: %v", err)
	}
	v.UpdateStrategy.MaxUnavailable = string(v.UpdateStrategy.Raw)
	v.UpdateStrategy.MaxSurge = string(v.UpdateStrategy.RawSurge)
	return v
}

func readYAMLMap(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func mergeMaps(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = mergeMaps(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

// readmeValueRow matches a row of the chart README's values table: | `path` | ...
var readmeValueRow = regexp.MustCompile("(?m)^\\| `([A-Za-z0-9_.]+)` \\|")

// TestValuesDocumented checks that every value in values.yaml has a comment and a row in
// the chart README's values table, and that every row names a value that exists. A map is
// documented either by its own row (free-form maps such as nodeSelector or resources) or
// by rows for each of its keys.
func TestValuesDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	table := string(readme)
	if i := strings.Index(table, "\n## Values\n"); i >= 0 {
		table = table[i+len("\n## Values\n"):]
		if j := strings.Index(table, "\n## "); j >= 0 {
			table = table[:j]
		}
	} else {
		t.Fatal("charts/flax/README.md has no \"## Values\" section")
	}
	documented := map[string]bool{}
	for _, m := range readmeValueRow.FindAllStringSubmatch(table, -1) {
		if documented[m[1]] {
			t.Errorf("README documents %s twice", m[1])
		}
		documented[m[1]] = true
	}
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		t.Fatal("values.yaml is not a mapping")
	}
	var seen []string
	var walk func(prefix string, n *yamlv3.Node)
	walk = func(prefix string, n *yamlv3.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			switch {
			case documented[path]:
				seen = append(seen, path)
				if strings.TrimSpace(k.HeadComment) == "" && !(prefix == "" && i == 0 && doc.HeadComment != "") {
					t.Errorf("values.yaml: %s has no comment above it", path)
				}
			case v.Kind == yamlv3.MappingNode && len(v.Content) > 0:
				walk(path, v)
			default:
				t.Errorf("values.yaml: %s is not in the values table of charts/flax/README.md", path)
			}
		}
	}
	walk("", doc.Content[0])
	for p := range documented {
		if !slices.Contains(seen, p) {
			t.Errorf("README documents %s, which values.yaml does not have", p)
		}
	}
	if len(seen) < 30 {
		t.Errorf("only %d documented values found; is the README table format still | `path` | default | description |?", len(seen))
	}
}

// TestDefaultsMatchCode checks the chart's defaults against the binaries' constants.
func TestDefaultsMatchCode(t *testing.T) {
	root := repoRoot(t)
	v := loadValues(t)
	checks := []struct {
		file, pattern, chart, what string
	}{
		{"controllers/controller.go", `DefaultControllerName = "([^"]+)"`, v.GatewayClass.ControllerName, "gatewayClass.controllerName"},
		{"cmd/flax-controller/main.go", `"dataplane-socket", "([^"]+)"`, "/run/flax/dataplane.sock", "the socket path (flax.socketDir)"},
	}
	for _, c := range checks {
		src, err := os.ReadFile(filepath.Join(root, c.file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(c.pattern).FindSubmatch(src)
		if m == nil {
			t.Errorf("%s: %s not found; update this test", c.file, c.pattern)
			continue
		}
		if string(m[1]) != c.chart {
			t.Errorf("%s: chart has %q, %s has %q", c.what, c.chart, c.file, m[1])
		}
	}
}
