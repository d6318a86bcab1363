package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// samplesGolden is the translator's golden output for config/samples and
// config/samples/policies applied into namespace "samples" with node address
// 192.0.2.10 (controllers/translate TestPolicySamples writes it).
const samplesGolden = "../../controllers/translate/testdata/config-samples.out.yaml"

// flaxctl runs flaxctl with args and stdin, and returns its stdout, stderr and
// error.
func flaxctl(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// readYAML decodes YAML into generic values.
func readYAML(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding YAML: %v\n%s", err, data)
	}
	return v
}

var samplesArgs = []string{"translate", "-f", "../../config/samples", "-f", "../../config/samples/policies", "-f", "../../config/samples/grpc", "-n", "samples", "--node-address", "192.0.2.10"}

// TestTranslateSamplesMatchesGolden checks that flaxctl translate on the samples
// prints the snapshot and, with --output-status, the statuses of the
// translator's golden output for them.
func TestTranslateSamplesMatchesGolden(t *testing.T) {
	golden, err := os.ReadFile(samplesGolden)
	if err != nil {
		t.Fatal(err)
	}
	want := readYAML(t, golden)

	snapOut, stderr, err := flaxctl(t, "", samplesArgs...)
	if err != nil {
		t.Fatalf("translate: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "2 Deployment (apps/v1)") {
		t.Errorf("stderr %q does not note the skipped Deployment", stderr)
	}
	if got := readYAML(t, []byte(snapOut)); !reflect.DeepEqual(got, want["snapshot"]) {
		t.Errorf("translate printed\n%s\nwant the snapshot of %s:\n%s", snapOut, samplesGolden, mustYAML(t, want["snapshot"]))
	}
	// The snapshot printed is one flax-dataplane run --config serves.
	snap, err := dataplanev1.Parse([]byte(snapOut))
	if err != nil {
		t.Fatalf("the printed snapshot does not parse: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Errorf("the printed snapshot is not valid: %v", err)
	}

	statusOut, stderr, err := flaxctl(t, "", append(samplesArgs, "--output-status")...)
	if err != nil {
		t.Fatalf("translate --output-status: %v\n%s", err, stderr)
	}
	got := readYAML(t, []byte(statusOut))
	delete(want, "snapshot")
	if len(want) < 4 {
		t.Fatalf("golden %s has only %v", samplesGolden, want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("translate --output-status printed\n%s\nwant the statuses of %s:\n%s", statusOut, samplesGolden, mustYAML(t, want))
	}

	// JSON is the same document.
	jsonOut, _, err := flaxctl(t, "", append(samplesArgs, "--output-status", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	if gotJSON := readYAML(t, []byte(jsonOut)); !reflect.DeepEqual(gotJSON, want) {
		t.Errorf("-o json differs from -o yaml:\n%s", jsonOut)
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTranslateStdinListAndProblems reads a kubectl-style List from stdin with a
// route to a missing Service and checks that the table names the problem, and
// that objects without a namespace get --namespace.
func TestTranslateStdinListAndProblems(t *testing.T) {
	const in = `apiVersion: v1
kind: List
items:
- apiVersion: gateway.networking.k8s.io/v1
  kind: GatewayClass
  metadata: {name: flax}
  spec: {controllerName: flaxlb.io/gateway-controller}
- apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: web, namespace: shop}
  spec:
    gatewayClassName: flax
    listeners: [{name: http, protocol: HTTP, port: 8080}]
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: cart}
  spec:
    parentRefs: [{name: web}]
    rules: [{backendRefs: [{name: missing, port: 80}]}]
`
	out, stderr, err := flaxctl(t, in, "translate", "-f", "-", "-n", "shop", "--output-status", "-o", "table")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{
		"Accepted=True SupportedVersion=True",
		// No --node-address: no node serves the Gateway.
		"Gateway shop/web: Programmed=False AddressNotAssigned",
		"shop/cart parent Gateway shop/web",
		"ResolvedRefs=False(BackendNotFound)",
		"Needs attention:",
		"HTTPRoute shop/cart parent Gateway shop/web: ResolvedRefs=False BackendNotFound:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = flaxctl(t, in, "translate", "-f", "-", "-n", "shop", "-o", "table")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "shop/web/8080") || !strings.Contains(out, "HTTP") {
		t.Errorf("snapshot table lacks listener shop/web/8080:\n%s", out)
	}
}

// TestTranslateErrors checks that bad input is refused with the file and
// document named.
func TestTranslateErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: a}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: b}\nspec: {gatewayClassNam: flax}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := flaxctl(t, "", "translate", "-f", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml: document 2") || !strings.Contains(err.Error(), "gatewayClassNam") {
		t.Errorf("a misspelt field gave %v, want an error naming the file, document and field", err)
	}
	if _, _, err := flaxctl(t, "", "translate", "-f", filepath.Join(dir, "none.yaml")); err == nil {
		t.Error("a missing file gave no error")
	}
	if _, _, err := flaxctl(t, "", "translate", "-f", dir, "-o", "wide"); err == nil || !strings.Contains(err.Error(), "output format") {
		t.Errorf("-o wide gave %v", err)
	}
	if _, _, err := flaxctl(t, "", "translate"); err == nil {
		t.Error("translate without -f gave no error")
	}
}

// TestTranslateL4Samples checks that flaxctl translate reads the UDPRoute of
// the L4 samples: the snapshot has the UDP listener forwarding to udp-echo.
func TestTranslateL4Samples(t *testing.T) {
	out, stderr, err := flaxctl(t, "", "translate", "-f", "../../config/samples/l4", "-f", "../../config/samples/gatewayclass.yaml",
		"-n", "samples", "--node-address", "192.0.2.10")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	snap := readYAML(t, []byte(out))
	listeners, _ := snap["listeners"].([]any)
	for _, l := range listeners {
		m, _ := l.(map[string]any)
		if m["protocol"] != "UDP" {
			continue
		}
		route, _ := m["udpRoute"].(map[string]any)
		backends, _ := route["backends"].([]any)
		if fmt.Sprint(m["port"]) != "9053" || len(backends) != 1 || backends[0].(map[string]any)["backendGroup"] != "samples/udp-echo:8080/udp" {
			t.Fatalf("UDP listener %v, want port 9053 forwarding to samples/udp-echo:8080/udp", m)
		}
		return
	}
	t.Fatalf("no UDP listener in the snapshot:\n%s", out)
}
