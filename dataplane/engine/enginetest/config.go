package enginetest

import (
	"net"
	"strconv"
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// CompileYAML parses, validates and compiles the snapshot y, counting in reg.
func CompileYAML(t testing.TB, reg *metrics.Registry, y string) *compiled.Config {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse snapshot: %v\n%s", err, y)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("validate snapshot: %v\n%s", err, y)
	}
	cfg, err := compiled.Compile(snap, reg)
	if err != nil {
		t.Fatalf("compile snapshot: %v", err)
	}
	return cfg
}

// HTTPSnapshot is the snapshot YAML most loopback tests need: one HTTP listener
// "web" on 127.0.0.1:port whose route "default" sends everything to the backend
// group "app" of endpoints (host:port each). group adds fields to "app" (lines
// indented by two spaces), extraRoutes adds routes to the listener and
// extraGroups adds backend groups.
func HTTPSnapshot(port int, endpoints []string, group, extraRoutes, extraGroups string) string {
	var eps strings.Builder
	for _, e := range endpoints {
		host, p, _ := net.SplitHostPort(e)
		eps.WriteString("  - {address: " + host + ", port: " + p + "}\n")
	}
	return `
listeners:
- name: web
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: default
      backends: [{backendGroup: app, weight: 1}]
` + extraRoutes + `
backendGroups:
- name: app
` + group + `  endpoints:
` + eps.String() + extraGroups
}
