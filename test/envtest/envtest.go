// Package envtest starts a real Kubernetes control plane (etcd and kube-apiserver, built
// by `make tools` into the repository's bin/ folder) for Flax's tests, with the Gateway API
// CRDs installed from the sigs.k8s.io/gateway-api module that go.mod pins and Flax's own
// CRDs from config/crd/bases.
//
// It wraps controller-runtime's envtest: tests get a real API server with real
// validation, defaulting, CEL rules and watches, not a fake client.
package envtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// Channel selects which Gateway API CRD release channel to install.
type Channel string

const (
	// Standard installs the standard channel CRDs (GA and beta fields only).
	Standard Channel = "standard"
	// Experimental installs the experimental channel CRDs, a superset of Standard.
	Experimental Channel = "experimental"
)

// Options configures a control plane.
type Options struct {
	// Channel is the Gateway API CRD channel; Standard when empty.
	Channel Channel
	// ExtraCRDDirs are more folders of CRD manifests to install. Flax's own CRDs
	// (config/crd/bases) are always installed.
	ExtraCRDDirs []string
}

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client with the core, Gateway API and Flax
	// (api/v1alpha1) types registered.
	Client client.Client
	// Scheme holds the registered types.
	Scheme *runtime.Scheme

	env *crenvtest.Environment
}

// Start starts etcd and kube-apiserver, installs the CRDs and registers a cleanup that
// stops them when the test ends. It fails the test with a hint to run `make tools` when
// the binaries are missing.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := New(opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return env
}

// New starts a control plane outside of a test; the caller must call Stop.
func New(opts Options) (*Env, error) {
	if opts.Channel == "" {
		opts.Channel = Standard
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := GatewayAPICRDDir(opts.Channel)
	if err != nil {
		return nil, err
	}
	flaxCRDs, err := FlaxCRDDir()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register core types: %w", err)
	}
	if err := gatewayv1.Install(scheme); err != nil {
		return nil, fmt.Errorf("register gateway api v1 types: %w", err)
	}
	if err := gatewayv1beta1.Install(scheme); err != nil {
		return nil, fmt.Errorf("register gateway api v1beta1 types: %w", err)
	}
	if err := flaxv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register flax v1alpha1 types: %w", err)
	}
	e := &crenvtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{crds, flaxCRDs}, opts.ExtraCRDDirs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("start etcd and kube-apiserver from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("create client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: e}, nil
}

// Stop stops kube-apiserver and etcd and removes their data.
func (e *Env) Stop() error { return e.env.Stop() }

// RepoRoot returns the root of the Flax repository (the folder holding go.mod).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find repository root with go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find repository root: not inside the flax module")
	}
	return filepath.Dir(gomod), nil
}

// AssetsDir returns the folder holding the etcd and kube-apiserver binaries:
// $KUBEBUILDER_ASSETS when set, else the repository's bin/ folder. It checks that both
// binaries are there.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("control plane binary %s not found in %s (run `make tools`): %w", name, dir, err)
		}
	}
	return dir, nil
}

// GatewayAPICRDDir returns the folder of Gateway API CRDs for a channel, inside the
// sigs.k8s.io/gateway-api module that go.mod pins (downloaded by the go command).
func GatewayAPICRDDir(ch Channel) (string, error) {
	if ch != Standard && ch != Experimental {
		return "", fmt.Errorf("unknown gateway api channel %q: want %q or %q", ch, Standard, Experimental)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("locate the gateway-api module: %w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locate the gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", string(ch))
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway api crds for channel %s: %w", ch, err)
	}
	return dir, nil
}

// FlaxCRDDir returns the folder of Flax's own CRDs, config/crd/bases of the
// repository (written by `make generate`).
func FlaxCRDDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "config", "crd", "bases")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("flax crds (run `make generate`): %w", err)
	}
	return dir, nil
}
