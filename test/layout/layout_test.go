// Package layout holds tests of the repository's import graph: the dataplane contract
// (api/dataplane/v1) is the only thing the controller and the dataplane share, and
// the controller's pure translator stays free of I/O machinery.
package layout

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/flaxlb/flax"

// deps returns the packages that the given packages import, directly or not, in
// their non-test code.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

// forbid fails for every dependency of pkgs that starts with one of the prefixes.
func forbid(t *testing.T, pkgs []string, why string, prefixes ...string) {
	t.Helper()
	got := deps(t, pkgs...)
	if len(got) < len(pkgs) {
		t.Fatalf("go list returned %d packages for %v", len(got), pkgs)
	}
	for _, d := range got {
		for _, p := range prefixes {
			if d == p || strings.HasPrefix(d, p+"/") {
				t.Errorf("%v depends on %s: %s", pkgs, d, why)
			}
		}
	}
}

func TestControllerImportsNoDataplane(t *testing.T) {
	forbid(t, []string{"./controllers/...", "./cmd/flax-controller"},
		"the controller shares only the contract (api/dataplane/v1) with the dataplane",
		module+"/dataplane")
}

func TestDataplaneImportsNoController(t *testing.T) {
	forbid(t, []string{"./dataplane/...", "./cmd/flax-dataplane"},
		"the dataplane shares only the contract (api/dataplane/v1) with the controller",
		module+"/controllers", module+"/api/v1alpha1")
}

func TestContractIsProtobufOnly(t *testing.T) {
	forbid(t, []string{"./api/dataplane/v1"},
		"the snapshot contract needs protobuf alone; the gRPC transport is api/dataplane/v1/rpc",
		"google.golang.org/grpc", module+"/dataplane", module+"/controllers")
}

func TestTranslatorIsPure(t *testing.T) {
	forbid(t, []string{"./controllers/translate"},
		"the translator turns objects into a snapshot; it needs no transport, metrics or system calls",
		"google.golang.org/grpc",
		"github.com/prometheus",
		"golang.org/x/sys/unix",
		"sigs.k8s.io/controller-runtime",
		module+"/api/dataplane/v1/rpc",
		module+"/dataplane")
}

func TestEmbeddedDataplaneLinksNoGRPC(t *testing.T) {
	forbid(t, []string{"./dataplane/daemon", "./dataplane/lb", "./dataplane/engine/...", "./examples/pool"},
		"a program embedding the dataplane (daemon, builders, engines) does not link the controller's gRPC transport; snapshot.Adapt connects a daemon to it",
		"google.golang.org/grpc", module+"/api/dataplane/v1/rpc", module+"/dataplane/snapshot")
}

func TestBuildersNeedOnlyTheContract(t *testing.T) {
	for _, d := range deps(t, "./dataplane/lb") {
		if strings.HasPrefix(d, module+"/") && d != module+"/dataplane/lb" && d != module+"/api/dataplane/v1" {
			t.Errorf("dataplane/lb depends on %s: the builders need only the contract (api/dataplane/v1)", d)
		}
	}
}

func TestFilterAPIIsStandardLibraryOnly(t *testing.T) {
	for _, d := range deps(t, "./dataplane/filter") {
		if d == module+"/dataplane/filter" {
			continue
		}
		// Standard library packages have no dot in their first element.
		if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") {
			t.Errorf("dataplane/filter depends on %s: a filter's API is the standard library alone, so that writing one pulls in nothing", d)
		}
	}
}

func TestCLIImportsNoDataplane(t *testing.T) {
	forbid(t, []string{"./cmd/flaxctl"},
		"flaxctl shares the translator, the node Lease format and the contract with the controller, and reaches dataplanes only over their admin HTTP server",
		module+"/dataplane", "github.com/pawelgaczynski/giouring")
}
