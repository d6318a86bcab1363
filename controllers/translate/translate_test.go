package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the translator's output")

// testControllerName is the controller name of the golden inputs' GatewayClasses.
const testControllerName = "flaxlb.io/gateway-controller"

// testNodeAddresses are the node addresses of golden inputs that do not set them.
var testNodeAddresses = []string{"192.0.2.10"}

// testGatewayAPICRDs are the installed Gateway API CRDs of golden inputs that do
// not set them: the standard channel's of the version Flax is built for.
var testGatewayAPICRDs = []CRD{
	{Name: "gatewayclasses.gateway.networking.k8s.io", BundleVersion: GatewayAPIVersion, Channel: "standard"},
	{Name: "gateways.gateway.networking.k8s.io", BundleVersion: GatewayAPIVersion, Channel: "standard"},
	{Name: "httproutes.gateway.networking.k8s.io", BundleVersion: GatewayAPIVersion, Channel: "standard"},
	{Name: "referencegrants.gateway.networking.k8s.io", BundleVersion: GatewayAPIVersion, Channel: "standard"},
}

// TestGolden translates every testdata/*.in.yaml and compares the result with
// testdata/*.out.yaml (rewritten with -update). Every snapshot must pass
// dataplanev1.Validate, and shuffling the order of the input objects must not change
// the output.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.in.yaml")
	}
	for _, inPath := range inputs {
		name := strings.TrimSuffix(filepath.Base(inPath), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			in := loadInput(t, inPath)
			out := Translate(in)
			if err := dataplanev1.Validate(out.Snapshot); err != nil {
				t.Errorf("snapshot fails validation:\n%v", err)
			}
			if out.Snapshot.GetVersion() != 0 {
				t.Errorf("snapshot version = %d, want 0", out.Snapshot.GetVersion())
			}
			if want := dataplanev1.Hash(out.Snapshot); out.Snapshot.GetHash() != want {
				t.Errorf("snapshot hash = %q, want %q", out.Snapshot.GetHash(), want)
			}
			got := renderOutput(t, out)

			reversed := reverseInput(in)
			if again := renderOutput(t, Translate(reversed)); !bytes.Equal(again, got) {
				t.Errorf("output depends on the order of the input objects:\n%s", diffLines(string(got), string(again)))
			}
			if again := renderOutput(t, Translate(in)); !bytes.Equal(again, got) {
				t.Errorf("output differs between two translations of the same input")
			}

			outPath := filepath.Join("testdata", name+".out.yaml")
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run go test ./controllers/translate/ -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", outPath, diffLines(string(want), string(got)))
			}
		})
	}
}

// TestInputNotModified checks that Translate leaves its input alone.
func TestInputNotModified(t *testing.T) {
	for _, path := range []string{"testdata/basic.in.yaml", "testdata/https.in.yaml", "testdata/filters.in.yaml", "testdata/policy-backend.in.yaml", "testdata/policy-route.in.yaml", "testdata/backendtls.in.yaml"} {
		in := loadInput(t, path)
		before, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		Translate(in)
		after, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("%s: Translate modified its input", path)
		}
	}
}

// TestEmptyInput checks that nothing in gives an empty, valid snapshot.
func TestEmptyInput(t *testing.T) {
	out := Translate(&Input{ControllerName: testControllerName})
	if err := dataplanev1.Validate(out.Snapshot); err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshot.Listeners)+len(out.Snapshot.BackendGroups)+len(out.GatewayClasses)+len(out.Gateways)+len(out.HTTPRoutes) != 0 {
		t.Errorf("empty input gave a non-empty output: %+v", out)
	}
}

// testInput is a document of golden inputs that sets the Input fields that are
// not Kubernetes objects.
type testInput struct {
	APIVersion     string    `json:"apiVersion"`
	Kind           string    `json:"kind"`
	ControllerName string    `json:"controllerName,omitempty"`
	NodeAddresses  *[]string `json:"nodeAddresses,omitempty"`
	GatewayAPICRDs *[]CRD    `json:"gatewayAPICRDs,omitempty"`
	// DataplaneNodes sets Input.DataplaneNodes.
	DataplaneNodes []DataplaneNode `json:"dataplaneNodes,omitempty"`
}

// loadInput reads a golden input: a multi-document YAML of Kubernetes objects.
// Secrets may use stringData (merged into data, as the API server does), where the
// values "<test-cert>" and "<test-key>" stand for testdata/tls.crt and tls.key, and
// "<test-cert-2>" and "<test-key-2>" for testdata/tls2.crt and tls2.key; so may
// ConfigMaps' data (as CA certificates). A
// document of kind TestInput sets controllerName, nodeAddresses and
// gatewayAPICRDs (default testGatewayAPICRDs).
func loadInput(t testing.TB, path string) *Input {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{ControllerName: testControllerName, NodeAddresses: testNodeAddresses, GatewayAPICRDs: testGatewayAPICRDs}
	addDocuments(t, in, path, string(data))
	return in
}

// addDocuments decodes the documents of a multi-document YAML (see loadInput) into
// in; documents of the kinds in ignore are skipped.
func addDocuments(t testing.TB, in *Input, path, data string, ignore ...string) {
	t.Helper()
	placeholders := map[string]string{}
	files := []struct{ name, file string }{
		{"<test-cert>", "tls.crt"},
		{"<test-key>", "tls.key"},
		{"<test-cert-2>", "tls2.crt"},
		{"<test-key-2>", "tls2.key"},
	}
	for _, f := range files {
		pem, err := os.ReadFile(filepath.Join("testdata", f.file))
		if err != nil {
			t.Fatal(err)
		}
		placeholders[f.name] = string(pem)
	}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(data, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if slices.Contains(ignore, meta.Kind) {
			continue
		}
		decode := func(into any) {
			t.Helper()
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				t.Fatalf("%s: document %d (%s): %v", path, i, meta.Kind, err)
			}
		}
		switch meta.Kind {
		case "TestInput":
			var ti testInput
			decode(&ti)
			if ti.ControllerName != "" {
				in.ControllerName = ti.ControllerName
			}
			if ti.NodeAddresses != nil {
				in.NodeAddresses = *ti.NodeAddresses
			}
			if ti.GatewayAPICRDs != nil {
				in.GatewayAPICRDs = *ti.GatewayAPICRDs
			}
			in.DataplaneNodes = append(in.DataplaneNodes, ti.DataplaneNodes...)
		case "GatewayClass":
			var o gatewayv1.GatewayClass
			decode(&o)
			in.GatewayClasses = append(in.GatewayClasses, o)
		case "GatewayClassParameters":
			var o flaxv1alpha1.GatewayClassParameters
			decode(&o)
			in.Parameters = append(in.Parameters, o)
		case "Gateway":
			var o gatewayv1.Gateway
			decode(&o)
			in.Gateways = append(in.Gateways, o)
		case "ListenerSet":
			var o gatewayv1.ListenerSet
			decode(&o)
			in.ListenerSets = append(in.ListenerSets, o)
		case "HTTPRoute":
			var o gatewayv1.HTTPRoute
			decode(&o)
			in.HTTPRoutes = append(in.HTTPRoutes, o)
		case "GRPCRoute":
			var o gatewayv1.GRPCRoute
			decode(&o)
			in.GRPCRoutes = append(in.GRPCRoutes, o)
		case "TCPRoute":
			var o gatewayv1.TCPRoute
			decode(&o)
			in.TCPRoutes = append(in.TCPRoutes, o)
		case "TLSRoute":
			var o gatewayv1.TLSRoute
			decode(&o)
			in.TLSRoutes = append(in.TLSRoutes, o)
		case "UDPRoute":
			var o gatewayv1.UDPRoute
			decode(&o)
			in.UDPRoutes = append(in.UDPRoutes, o)
		case "ReferenceGrant":
			var o gatewayv1beta1.ReferenceGrant
			decode(&o)
			in.ReferenceGrants = append(in.ReferenceGrants, o)
		case "Service":
			var o corev1.Service
			decode(&o)
			if o.Labels[GatewayServiceLabel] != "" {
				in.GatewayServices = append(in.GatewayServices, o)
			} else {
				in.Services = append(in.Services, o)
			}
		case "EndpointSlice":
			var o discoveryv1.EndpointSlice
			decode(&o)
			in.EndpointSlices = append(in.EndpointSlices, o)
		case "Secret":
			var o corev1.Secret
			decode(&o)
			for k, v := range o.StringData {
				if pem, ok := placeholders[v]; ok {
					v = pem
				}
				if o.Data == nil {
					o.Data = map[string][]byte{}
				}
				o.Data[k] = []byte(v)
			}
			o.StringData = nil
			in.Secrets = append(in.Secrets, o)
		case "ConfigMap":
			var o corev1.ConfigMap
			decode(&o)
			for k, v := range o.Data {
				if pem, ok := placeholders[v]; ok {
					o.Data[k] = pem
				}
			}
			in.ConfigMaps = append(in.ConfigMaps, o)
		case "Namespace":
			var o corev1.Namespace
			decode(&o)
			in.Namespaces = append(in.Namespaces, o)
		case "BackendPolicy":
			var o flaxv1alpha1.BackendPolicy
			decode(&o)
			in.BackendPolicies = append(in.BackendPolicies, o)
		case "RoutePolicy":
			var o flaxv1alpha1.RoutePolicy
			decode(&o)
			in.RoutePolicies = append(in.RoutePolicies, o)
		case "BackendTLSPolicy":
			var o gatewayv1.BackendTLSPolicy
			decode(&o)
			in.BackendTLSPolicies = append(in.BackendTLSPolicies, o)
		default:
			t.Fatalf("%s: document %d: unsupported kind %q", path, i, meta.Kind)
		}
	}
}

// stripComments removes comment lines from a YAML document.
func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// reverseInput returns a copy of in with every list in reverse order.
func reverseInput(in *Input) *Input {
	out := *in
	out.GatewayClasses = reversed(in.GatewayClasses)
	out.Parameters = reversed(in.Parameters)
	out.Gateways = reversed(in.Gateways)
	out.ListenerSets = reversed(in.ListenerSets)
	out.HTTPRoutes = reversed(in.HTTPRoutes)
	out.GRPCRoutes = reversed(in.GRPCRoutes)
	out.TCPRoutes = reversed(in.TCPRoutes)
	out.TLSRoutes = reversed(in.TLSRoutes)
	out.UDPRoutes = reversed(in.UDPRoutes)
	out.ReferenceGrants = reversed(in.ReferenceGrants)
	out.Services = reversed(in.Services)
	out.EndpointSlices = reversed(in.EndpointSlices)
	out.Secrets = reversed(in.Secrets)
	out.ConfigMaps = reversed(in.ConfigMaps)
	out.Namespaces = reversed(in.Namespaces)
	out.BackendPolicies = reversed(in.BackendPolicies)
	out.RoutePolicies = reversed(in.RoutePolicies)
	out.BackendTLSPolicies = reversed(in.BackendTLSPolicies)
	out.NodeAddresses = reversed(in.NodeAddresses)
	out.GatewayAPICRDs = reversed(in.GatewayAPICRDs)
	out.DataplaneNodes = reversed(in.DataplaneNodes)
	out.GatewayServices = reversed(in.GatewayServices)
	return &out
}

// reversed returns a reversed copy of s.
func reversed[T any](s []T) []T {
	c := slices.Clone(s)
	slices.Reverse(c)
	return c
}

// renderOutput renders out as the golden YAML: the statuses, keyed by object, and
// the snapshot in its YAML form. PEM data is shown as a digest, and the
// LastTransitionTime the translator leaves unset is omitted. Policy,
// ListenerSet, GRPCRoute, TCPRoute, TLSRoute and UDPRoute statuses appear only when the input has
// some.
func renderOutput(t testing.TB, out *Output) []byte {
	t.Helper()
	snapYAML, err := dataplanev1.MarshalYAML(out.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	var snap any
	if err := yaml.Unmarshal(snapYAML, &snap); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Name   string `json:"name"`
		Status any    `json:"status"`
	}
	var classes, gateways, routes []entry
	for _, c := range out.GatewayClasses {
		classes = append(classes, entry{c.Name, c.Status})
	}
	for _, g := range out.Gateways {
		gateways = append(gateways, entry{g.NamespacedName.String(), g.Status})
	}
	for _, r := range out.HTTPRoutes {
		routes = append(routes, entry{r.NamespacedName.String(), r.Status})
	}
	doc := map[string]any{
		"gatewayClasses": classes,
		"gateways":       gateways,
		"httpRoutes":     routes,
		"snapshot":       snap,
	}
	for name, statuses := range map[string][]RouteStatus{"grpcRoutes": out.GRPCRoutes, "tcpRoutes": out.TCPRoutes, "tlsRoutes": out.TLSRoutes, "udpRoutes": out.UDPRoutes} {
		if len(statuses) == 0 {
			continue
		}
		var entries []entry
		for _, r := range statuses {
			entries = append(entries, entry{r.NamespacedName.String(), r.Status})
		}
		doc[name] = entries
	}
	if len(out.GatewayServices) > 0 {
		doc["gatewayServices"] = out.GatewayServices
	}
	if len(out.ListenerSets) > 0 {
		var sets []entry
		for _, s := range out.ListenerSets {
			sets = append(sets, entry{s.NamespacedName.String() + " (Gateway " + s.Gateway.String() + ")", s.Status})
		}
		doc["listenerSets"] = sets
	}
	for name, statuses := range map[string][]PolicyStatus{"backendPolicies": out.BackendPolicies, "routePolicies": out.RoutePolicies, "backendTLSPolicies": out.BackendTLSPolicies} {
		if len(statuses) == 0 {
			continue
		}
		var entries []entry
		for _, p := range statuses {
			entries = append(entries, entry{p.NamespacedName.String(), p.Status})
		}
		doc[name] = entries
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		t.Fatal(err)
	}
	generic = cleanGolden(generic)
	b, err := yaml.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cleanGolden drops null lastTransitionTime fields and replaces PEM blobs by a
// short description.
func cleanGolden(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			switch {
			case k == "lastTransitionTime" && val == nil:
				delete(x, k)
			case k == "certPem" || k == "keyPem" || k == "caCertPem" || k == "clientCertPem" || k == "clientKeyPem":
				s, _ := val.(string)
				pem, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					continue
				}
				firstLine, _, _ := strings.Cut(string(pem), "\n")
				x[k] = fmt.Sprintf("%s ... (%d bytes, sha256 %x)", firstLine, len(pem), sha256.Sum256(pem))
			default:
				x[k] = cleanGolden(val)
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = cleanGolden(x[i])
		}
		return x
	}
	return v
}

// diffLines returns a minimal line diff of want and got, for failure messages.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	j, k := len(w), len(g)
	for j > i && k > i && w[j-1] == g[k-1] {
		j--
		k--
	}
	fmt.Fprintf(&b, "@@ line %d @@\n", i+1)
	for _, l := range w[i:j] {
		b.WriteString("- " + l + "\n")
	}
	for _, l := range g[i:k] {
		b.WriteString("+ " + l + "\n")
	}
	return b.String()
}
