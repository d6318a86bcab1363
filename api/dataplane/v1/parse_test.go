package dataplanev1_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

func TestRoundTripYAML(t *testing.T) {
	exampleYAML, err := os.ReadFile(exampleYAMLPath)
	if err != nil {
		t.Fatal(err)
	}
	example, err := dataplanev1.Parse(exampleYAML)
	if err != nil {
		t.Fatalf("Parse(example): %v", err)
	}
	for name, snap := range map[string]*dataplanev1.Snapshot{
		"full":    validSnapshot(t),
		"example": example,
		"empty":   {},
	} {
		t.Run(name, func(t *testing.T) {
			y1, err := dataplanev1.MarshalYAML(snap)
			if err != nil {
				t.Fatalf("MarshalYAML: %v", err)
			}
			got, err := dataplanev1.Parse(y1)
			if name == "empty" {
				// An empty snapshot marshals to "{}", which is a valid document.
				if err != nil {
					t.Fatalf("Parse(%q): %v", y1, err)
				}
			} else if err != nil {
				t.Fatalf("Parse: %v\n%s", err, y1)
			}
			if !proto.Equal(snap, got) {
				t.Fatalf("YAML -> proto -> YAML -> proto changed the snapshot:\n%s\nYAML:\n%s",
					cmpDiff(snap, got), y1)
			}
			y2, err := dataplanev1.MarshalYAML(got)
			if err != nil {
				t.Fatalf("MarshalYAML: %v", err)
			}
			if !bytes.Equal(y1, y2) {
				t.Fatalf("YAML form not stable:\n%s\n---\n%s", y1, y2)
			}
		})
	}
}

func TestParseForms(t *testing.T) {
	snap, err := dataplanev1.Parse([]byte(`
version: 3
listeners:
  - name: l
    port: 80
    protocol: HTTP
    virtual_hosts:            # proto names are accepted too
      - name: v
        routes:
          - name: r
            timeouts: {request: 1.5s, backendRequest: 500ms}
            matches:
              - path: {type: 2, value: /x}   # enum by number
backendGroups:
  - name: g
    connectTimeout: 2s
    endpoints:
      - {address: "::1", port: 80, conditions: {ready: true}}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := snap.GetListeners()[0].GetVirtualHosts()[0].GetRoutes()[0]
	if got := r.GetTimeouts().GetRequest().AsDuration(); got != 1500*time.Millisecond {
		t.Errorf("request timeout = %v, want 1.5s", got)
	}
	if got := r.GetTimeouts().GetBackendRequest().AsDuration(); got != 500*time.Millisecond {
		t.Errorf("backend request timeout = %v, want 500ms", got)
	}
	if got := r.GetMatches()[0].GetPath().GetType(); got != dataplanev1.PathMatch_PATH_PREFIX {
		t.Errorf("path type = %v, want PATH_PREFIX", got)
	}
	if got := snap.GetBackendGroups()[0].GetConnectTimeout().AsDuration(); got != 2*time.Second {
		t.Errorf("connect timeout = %v, want 2s", got)
	}
	if snap.GetVersion() != 3 || !snap.GetBackendGroups()[0].GetEndpoints()[0].GetConditions().GetReady() {
		t.Errorf("unexpected snapshot %v", snap)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"empty", "", []string{"empty"}},
		{"only comments", "# nothing\n", []string{"empty"}},
		{"not yaml", "listeners: [", []string{"parsing yaml"}},
		{"not an object", "- a\n- b\n", []string{"must be an object"}},
		{"duplicate key", "listeners: []\nlisteners: []\n", []string{"parsing yaml", "listeners"}},
		{"unknown top-level field", "listner: []\n", []string{`listner: unknown field (did you mean "listeners"?)`}},
		{
			"unknown nested field",
			"listeners:\n- name: a\n  virtualHosts:\n  - name: v\n    routes:\n    - name: r\n    - name: r2\n      matchs: []\n",
			[]string{`listeners[0].virtualHosts[0].routes[1].matchs: unknown field (did you mean "matches"?)`},
		},
		{"unknown enum value", "listeners:\n- name: a\n  protocol: HTTP2\n", []string{`listeners[0].protocol: unknown value "HTTP2", want one of HTTP, HTTPS, TCP`}},
		{"wrong type", "listeners:\n- name: a\n  port: [80]\n", []string{"listeners[0].port: must be a number, not a list"}},
		{"negative unsigned", "listeners:\n- name: a\n  port: -1\n", []string{"listeners[0].port: must not be negative"}},
		{"list expected", "listeners:\n  name: a\n", []string{"listeners: must be a list, not an object"}},
		{"bool expected", "backendGroups:\n- name: g\n  endpoints:\n  - conditions: {ready: maybe}\n", []string{"backendGroups[0].endpoints[0].conditions.ready: must be true or false"}},
		{
			"two members of a oneof",
			"listeners:\n- virtualHosts:\n  - routes:\n    - filters:\n      - urlRewrite:\n          path: {replaceFullPath: /a, replacePrefixMatch: /b}\n",
			[]string{`listeners[0].virtualHosts[0].routes[0].filters[0].urlRewrite.path.replacePrefixMatch: must not be set together with "replaceFullPath"`},
		},
		{"bad duration", "backendGroups:\n- name: g\n  connectTimeout: 5 seconds\n", []string{"decoding snapshot", "connectTimeout"}},
		{"bad base64", "listeners:\n- certificates:\n  - certPem: '!!not base64!!'\n", []string{"decoding snapshot", "certPem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dataplanev1.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "(line 1:") {
				t.Errorf("error %q mentions a position in the intermediate JSON", err)
			}
		})
	}
}

func TestLoadExample(t *testing.T) {
	snap, err := dataplanev1.Load(exampleYAMLPath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("Validate(example): %v", err)
	}
	if n := len(snap.GetListeners()); n != 1 {
		t.Fatalf("listeners = %d, want 1", n)
	}
	l := snap.GetListeners()[0]
	if l.GetAddress() != "127.0.0.1" || l.GetPort() != 8080 || l.GetProtocol() != dataplanev1.Listener_HTTP {
		t.Errorf("listener = %s:%d %v, want 127.0.0.1:8080 HTTP", l.GetAddress(), l.GetPort(), l.GetProtocol())
	}
	if n := len(l.GetVirtualHosts()); n != 2 {
		t.Errorf("virtual hosts = %d, want 2", n)
	}
	// The routes use every kind of match the example promises.
	var exact, prefix, header, method bool
	for _, vh := range l.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, m := range r.GetMatches() {
				exact = exact || m.GetPath().GetType() == dataplanev1.PathMatch_EXACT
				prefix = prefix || m.GetPath().GetType() == dataplanev1.PathMatch_PATH_PREFIX
				header = header || len(m.GetHeaders()) > 0
				method = method || m.GetMethod() != ""
			}
		}
	}
	if !exact || !prefix || !header || !method {
		t.Errorf("matches: exact %t, prefix %t, header %t, method %t; want all", exact, prefix, header, method)
	}
	groups := map[string]*dataplanev1.BackendGroup{}
	for _, g := range snap.GetBackendGroups() {
		groups[g.GetName()] = g
	}
	for name, want := range map[string]struct {
		policy dataplanev1.LoadBalancing_Policy
		ports  []uint32
	}{
		"web": {dataplanev1.LoadBalancing_ROUND_ROBIN, []uint32{9001, 9002}},
		"api": {dataplanev1.LoadBalancing_LEAST_REQUEST, []uint32{9003}},
	} {
		g := groups[name]
		if g.GetLoadBalancing().GetPolicy() != want.policy {
			t.Errorf("group %s policy = %v, want %v", name, g.GetLoadBalancing().GetPolicy(), want.policy)
		}
		var ports []uint32
		for _, e := range g.GetEndpoints() {
			if e.GetAddress() != "127.0.0.1" {
				t.Errorf("group %s endpoint address = %s, want 127.0.0.1", name, e.GetAddress())
			}
			ports = append(ports, e.GetPort())
		}
		if !slices.Equal(ports, want.ports) {
			t.Errorf("group %s ports = %v, want %v", name, ports, want.ports)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := dataplanev1.Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading snapshot file") {
		t.Errorf("Load(missing) error = %v, want a read error", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listeners:\n- nme: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := dataplanev1.Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "listeners[0].nme: unknown field") {
		t.Errorf("Load(bad) error = %v, want it to name the file and the field", err)
	}
}

// cmpDiff shows both snapshots in text form, to find a difference by eye.
func cmpDiff(want, got *dataplanev1.Snapshot) string {
	return "want: " + prototext.Format(want) + "\n got: " + prototext.Format(got)
}
