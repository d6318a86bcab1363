package charttest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	releaseName      = "flax"
	releaseNamespace = "flax-system"
	// kubeVersion pins .Capabilities.KubeVersion, so the goldens do not depend on the
	// version helm was built with.
	kubeVersion = "1.37.0"
	// gatewayClassAPI is what a cluster with the Gateway API CRDs serves.
	gatewayClassAPI = "gateway.networking.k8s.io/v1/GatewayClass"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot returns the directory of the main module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			rootErr = err
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			rootErr = errors.New("go env GOMOD is empty: not inside the module")
			return
		}
		rootDir = filepath.Dir(gomod)
	})
	if rootErr != nil {
		t.Fatalf("finding the repository root: %v", rootErr)
	}
	return rootDir
}

// chartDir returns charts/flax.
func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "charts", "flax") }

// helmBinary returns bin/helm, or skips the test when it has not been built.
func helmBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: %s not found; run `make tools` to build the pinned helm (hack/tools)", p)
	}
	return p
}

// helm runs bin/helm with args in an isolated helm home and returns stdout and stderr.
func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// templateArgs returns the helm template arguments rendering chart with the value files.
func templateArgs(chart string, withGatewayAPI bool, valueFiles ...string) []string {
	args := []string{"template", releaseName, chart, "--namespace", releaseNamespace, "--kube-version", kubeVersion}
	if withGatewayAPI {
		args = append(args, "--api-versions", gatewayClassAPI)
	}
	for _, f := range valueFiles {
		args = append(args, "--values", f)
	}
	return args
}

// render runs helm template and fails the test on error.
func render(t *testing.T, withGatewayAPI bool, valueFiles ...string) string {
	t.Helper()
	out, errOut, err := helm(t, templateArgs(chartDir(t), withGatewayAPI, valueFiles...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, errOut)
	}
	return out
}

// writeFile writes content to a new file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// compareGolden compares got with testdata/name, or rewrites it with -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run `go test ./charts/charttest/ -update` to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendering; run `go test ./charts/charttest/ -update` and review the diff:\n%s",
			path, firstDifference(string(want), got))
	}
}

// firstDifference describes the first differing line of two texts.
func firstDifference(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  golden:   " + w + "\n  rendered: " + g
		}
	}
	return "(no line differs)"
}
