package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateExample checks that the repository's standalone example is valid.
func TestValidateExample(t *testing.T) {
	out, _, err := flaxctl(t, "", "validate", "-f", "../../examples/standalone.yaml")
	if err != nil {
		t.Fatalf("validate examples/standalone.yaml: %v\n%s", err, out)
	}
	if !strings.Contains(out, "standalone.yaml: valid (") {
		t.Errorf("output %q does not say valid", out)
	}
}

// TestValidateFieldErrors checks that an invalid config prints every problem
// with its field path and fails (exit code 1), in every output format.
func TestValidateFieldErrors(t *testing.T) {
	const config = `listeners:
- name: web
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: all
    hostnames: ["Bad_Host"]
    routes:
    - name: r
      backends: [{backendGroup: nowhere, weight: 1}]
backendGroups:
- name: g
  endpoints: [{address: not-an-ip, port: 80}]
`
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := flaxctl(t, "", "validate", "-f", path)
	var exit exitError
	if !errors.As(err, &exit) {
		t.Fatalf("validate of an invalid config: error %v, want an exit error (exit code 1)", err)
	}
	for _, want := range []string{
		"listeners[0].virtualHosts[0].hostnames[0]:",
		"listeners[0].virtualHosts[0].routes[0].backends[0].backendGroup:",
		"backendGroups[0].endpoints[0].address:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = flaxctl(t, "", "validate", "-f", path, "-o", "json")
	if err == nil || !strings.Contains(out, `"valid": false`) || !strings.Contains(out, `"field": "backendGroups[0].endpoints[0].address"`) {
		t.Errorf("-o json: %v\n%s", err, out)
	}

	// A parse error (unknown field) is reported the same way, from stdin.
	out, _, err = flaxctl(t, "listeners:\n- name: web\n  prot: 80\n", "validate", "-f", "-")
	if !errors.As(err, &exit) || !strings.Contains(out, "prot") {
		t.Errorf("unknown field: %v\n%s", err, out)
	}
	// A missing file is an error of its own, printed by main.
	if _, _, err := flaxctl(t, "", "validate", "-f", filepath.Join(t.TempDir(), "none.yaml")); err == nil || errors.As(err, &exit) {
		t.Errorf("missing file: %v", err)
	}
}

// TestValidateTranslateOutput checks that what translate prints validates.
func TestValidateTranslateOutput(t *testing.T) {
	snap, _, err := flaxctl(t, "", samplesArgs...)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := flaxctl(t, snap, "validate", "-f", "-")
	if err != nil || !strings.Contains(out, "<stdin>: valid (1 listeners, 2 backend groups)") {
		t.Errorf("validate of translate's output: %v\n%s", err, out)
	}
}
