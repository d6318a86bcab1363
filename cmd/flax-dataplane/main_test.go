package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

func TestProxySnapshot(t *testing.T) {
	s, err := proxySnapshot("127.0.0.1:8080", []string{"127.0.0.1:9001", "[::1]:9002"}, "maglev", "x-user", false)
	if err != nil {
		t.Fatal(err)
	}
	l := s.GetListeners()[0]
	if l.GetAddress() != "127.0.0.1" || l.GetPort() != 8080 || l.GetProtocol() != dataplanev1.Listener_HTTP {
		t.Errorf("listener = %v", l)
	}
	g := s.GetBackendGroups()[0]
	if len(g.GetEndpoints()) != 2 || g.GetEndpoints()[1].GetAddress() != "::1" || g.GetEndpoints()[1].GetPort() != 9002 {
		t.Errorf("endpoints = %v", g.GetEndpoints())
	}
	if g.GetLoadBalancing().GetPolicy() != dataplanev1.LoadBalancing_MAGLEV || g.GetLoadBalancing().GetHashOn().GetHeader() != "x-user" {
		t.Errorf("load balancing = %v", g.GetLoadBalancing())
	}
	tcp, err := proxySnapshot("0.0.0.0:5432", []string{"10.0.0.1:5432"}, "round-robin", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if tcp.GetListeners()[0].GetProtocol() != dataplanev1.Listener_TCP {
		t.Errorf("--tcp gave protocol %v", tcp.GetListeners()[0].GetProtocol())
	}
}

func TestProxySnapshotErrors(t *testing.T) {
	for _, tc := range []struct {
		listen string
		to     []string
		lb     string
		want   string
	}{
		{"localhost:80", []string{"127.0.0.1:1"}, "round-robin", "--listen"},
		{"127.0.0.1:80", nil, "round-robin", "--to: at least one"},
		{"127.0.0.1:80", []string{"backend:80"}, "round-robin", `--to "backend:80"`},
		{"127.0.0.1:80", []string{"127.0.0.1:1"}, "fastest", `--lb "fastest": unknown policy`},
		{"127.0.0.1:0", []string{"127.0.0.1:1"}, "random", "port"},
	} {
		_, err := proxySnapshot(tc.listen, tc.to, tc.lb, "", false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("proxy %s %v %s: err = %v, want it to mention %q", tc.listen, tc.to, tc.lb, err, tc.want)
		}
	}
}

func TestValidateCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"validate", "--config", "../../examples/standalone.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("validate example: %v", err)
	}
	if !strings.Contains(out.String(), "valid (1 listeners, 2 backend groups)") {
		t.Errorf("output = %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listeners:\n- name: x\n  port: 70000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"validate", "--config", bad}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "listeners[0].port") {
		t.Errorf("validate bad file: err = %v, want it to name listeners[0].port", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "flax-dataplane proxy --listen") {
		t.Errorf("--help: %v %q", err, out.String())
	}
	if err := run([]string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := run([]string{"run"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "exactly one of --config and --socket") {
		t.Errorf("run without source: %v", err)
	}
}

func TestAccessLogFlag(t *testing.T) {
	for _, cmd := range []string{"run", "proxy"} {
		var out, errOut bytes.Buffer
		_ = run([]string{cmd, "--help"}, &out, &errOut)
		if !strings.Contains(errOut.String(), "-access-log") || !strings.Contains(errOut.String(), "SIGHUP") {
			t.Errorf("%s --help does not document --access-log:\n%s", cmd, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "--access-log") {
		t.Errorf("--help does not mention --access-log: %v", err)
	}
}
