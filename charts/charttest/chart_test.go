package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir(t), "--namespace", releaseNamespace, "--kube-version", kubeVersion}
			for _, f := range c.valueFiles(t) {
				args = append(args, "--values", f)
			}
			out, errOut, err := helm(t, args...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
		})
	}
}

func TestRenderGolden(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			compareGolden(t, c.name+".golden.yaml", render(t, c.gatewayAPI, c.valueFiles(t)...))
		})
	}
}

// TestNotesGolden renders NOTES.txt for every case. helm template does not print NOTES
// and helm install --dry-run wants a cluster, so the test renders a copy of the chart in
// which a template wraps NOTES.txt through tpl.
func TestNotesGolden(t *testing.T) {
	chart := copyChartWithNotesTemplate(t)
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			args := append(templateArgs(chart, c.gatewayAPI, c.valueFiles(t)...), "--show-only", "templates/notes-under-test.yaml")
			out, errOut, err := helm(t, args...)
			if err != nil {
				t.Fatalf("rendering NOTES: %v\n%s", err, errOut)
			}
			var doc struct {
				Notes string `json:"notes"`
			}
			docs := splitDocuments(t, out)
			if len(docs) != 1 {
				t.Fatalf("want one document, got %d", len(docs))
			}
			decodeStrict(t, docs[0].raw, &struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Notes      string `json:"notes"`
			}{})
			decodeLoose(t, docs[0].raw, &doc)
			compareGolden(t, c.name+".notes.golden.txt", doc.Notes)
		})
	}
}

// copyChartWithNotesTemplate copies charts/flax to a temporary directory and adds
// templates/notes-under-test.yaml, which renders NOTES.txt into a YAML string.
func copyChartWithNotesTemplate(t *testing.T) string {
	t.Helper()
	src := chartDir(t)
	dst := filepath.Join(t.TempDir(), "flax")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the chart: %v", err)
	}
	notes, err := os.ReadFile(filepath.Join(src, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(dst, "files"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "files", "notes-under-test.txt"), notes, 0o644))
	must(t, os.WriteFile(filepath.Join(dst, "templates", "notes-under-test.yaml"), []byte(
		"apiVersion: v1\nkind: NotesUnderTest\nnotes: |\n  {{- tpl (.Files.Get \"files/notes-under-test.txt\") . | nindent 2 }}\n"), 0o644))
	return dst
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSchemaRejectsBadValues checks that values.schema.json fails the render for unknown
// keys, at any level, and for wrong types and enum values.
func TestSchemaRejectsBadValues(t *testing.T) {
	const schemaError = "values don't meet the specifications of the schema"
	cases := []struct {
		name, values, want string
	}{
		{"unknown top-level key", "replicas: 3\n", "replicas"},
		{"unknown nested key", "dataplane:\n  engin: uring\n", "engin"},
		{"unknown key in a list item", "tolerations:\n  - key: a\n    operater: Exists\n", "operater"},
		{"unknown key deep down", "dataplane:\n  drain:\n    graceSecs: 1\n", "graceSecs"},
		{"installer image (the Flax image installs the profile)", "seccomp:\n  installer:\n    image:\n      repository: busybox\n", "image"},
		{"bindPrivilegedPorts (always on)", "dataplane:\n  bindPrivilegedPorts: false\n", "bindPrivilegedPorts"},
		{"unknown resources key", "dataplane:\n  resources:\n    request:\n      cpu: 1\n", "request"},
		{"string for an integer", "dataplane:\n  workers: four\n", "/dataplane/workers"},
		{"integer for a string", "gatewayClass:\n  name: 7\n", "/gatewayClass/name"},
		{"string for a boolean", "rbac:\n  create: \"yes\"\n", "/rbac/create"},
		{"unknown seccomp mode", "seccomp:\n  mode: Localhost\n", "/seccomp/mode"},
		{"unknown gatewayClass.create", "gatewayClass:\n  create: sometimes\n", "/gatewayClass/create"},
		{"port out of range", "dataplane:\n  adminPort: 70000\n", "/dataplane/adminPort"},
		{"non-string node selector value", "nodeSelector:\n  edge: true\n", "/nodeSelector/edge"},
		{"relative seccomp dir", "seccomp:\n  hostDir: var/lib/kubelet/seccomp\n", "/seccomp/hostDir"},
		{"unknown log format", "dataplane:\n  logFormat: console\n", "/dataplane/logFormat"},
		{"extra volume without a name", "extraVolumes:\n  - emptyDir: {}\n", "name"},
		{"volume mount without a path", "controller:\n  extraVolumeMounts:\n    - name: a\n", "mountPath"},
		{"extra container without an image", "extraContainers:\n  - name: shipper\n", "image"},
		{"unknown affinity key", "affinity:\n  nodeAfinity: {}\n", "nodeAfinity"},
		{"bad scrape interval", "metrics:\n  serviceMonitor:\n    interval: 30\n", "/metrics/serviceMonitor/interval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := writeFile(t, "values.yaml", c.values)
			out, errOut, err := helm(t, templateArgs(chartDir(t), false, f)...)
			if err == nil {
				t.Fatalf("helm template accepted %q; rendered %d bytes", c.values, len(out))
			}
			if !strings.Contains(errOut, schemaError) || !strings.Contains(errOut, c.want) {
				t.Errorf("want a schema error naming %q, got:\n%s", c.want, errOut)
			}
		})
	}
}

// TestRenderRefusesInconsistentValues checks the cross-value checks of flax.validate.
func TestRenderRefusesInconsistentValues(t *testing.T) {
	cases := []struct {
		name, values, want string
	}{
		{
			"io_uring forced under RuntimeDefault",
			"seccomp:\n  mode: runtimeDefault\ndataplane:\n  engine: uring\n", "dataplane.engine=uring cannot start under seccomp.mode=runtimeDefault",
		},
		{
			"grace period shorter than the drain",
			"terminationGracePeriodSeconds: 20\n", "terminationGracePeriodSeconds=20 is below",
		},
		{
			"ports collide",
			"dataplane:\n  adminPort: 9903\n", "must differ",
		},
		{
			"scrape annotations on loopback",
			"metrics:\n  scrapeAnnotations: true\n", "metrics.scrapeAnnotations needs metrics.bindAddress other than 127.0.0.1",
		},
		{
			"service monitor on loopback",
			"metrics:\n  bindAddress: \"::1\"\n  serviceMonitor:\n    enabled: true\n", "metrics.serviceMonitor.enabled needs metrics.bindAddress other than ::1",
		},
		{
			"no surge and no unavailable node",
			"updateStrategy:\n  maxSurge: 0\n", "maxUnavailable and maxSurge cannot both be 0",
		},
		{
			"no surge and no unavailable node, as percentages",
			"updateStrategy:\n  maxSurge: 0%\n  maxUnavailable: 0%\n", "maxUnavailable and maxSurge cannot both be 0",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := writeFile(t, "values.yaml", c.values)
			_, errOut, err := helm(t, templateArgs(chartDir(t), false, f)...)
			if err == nil || !strings.Contains(errOut, c.want) {
				t.Errorf("want the render to fail with %q; err=%v\n%s", c.want, err, errOut)
			}
		})
	}
}
