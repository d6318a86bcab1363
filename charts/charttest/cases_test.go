package charttest

import (
	"os"
	"path/filepath"
	"testing"
)

// renderCase is one rendering of the chart checked against a golden file: the value file
// testdata/<name>.values.yaml (if present) with or without the Gateway API CRDs served.
type renderCase struct {
	name string
	// gatewayAPI makes .Capabilities report gateway.networking.k8s.io/v1 GatewayClass.
	gatewayAPI bool
}

var renderCases = []renderCase{
	{name: "default"},
	{name: "gateway-api-installed", gatewayAPI: true},
	{name: "gatewayclass-true"},
	{name: "gatewayclass-false", gatewayAPI: true},
	{name: "seccomp-runtime-default", gatewayAPI: true},
	{name: "seccomp-unconfined", gatewayAPI: true},
	{name: "scheduling", gatewayAPI: true},
	{name: "no-rbac", gatewayAPI: true},
	{name: "operations", gatewayAPI: true},
}

// valueFiles returns the case's value file, if it has one.
func (c renderCase) valueFiles(t *testing.T) []string {
	t.Helper()
	p := filepath.Join("testdata", c.name+".values.yaml")
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return []string{abs}
}
