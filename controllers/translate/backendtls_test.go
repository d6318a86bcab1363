package translate

import (
	"bytes"
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// TestBackendTLSClientCertificateGroups checks, on the backendtls golden
// input, what the client certificates of Gateways do to backend groups: a
// group with TLS gets one copy per Secret that presents its certificate, with
// the base group's TLS and endpoints; groups without TLS are never copied; no
// group without a client certificate carries one.
func TestBackendTLSClientCertificateGroups(t *testing.T) {
	in := loadInput(t, "testdata/backendtls.in.yaml")
	out := Translate(in)
	groups := map[string]*dataplanev1.BackendGroup{}
	for _, g := range out.Snapshot.GetBackendGroups() {
		groups[g.GetName()] = g
	}
	secret := func(ns, name string) []byte {
		for _, s := range in.Secrets {
			if s.Namespace == ns && s.Name == name {
				return s.Data["tls.crt"]
			}
		}
		t.Fatalf("no Secret %s/%s", ns, name)
		return nil
	}
	base := groups["default/valid:443"]
	if base == nil || base.GetTls() == nil || len(base.GetTls().GetClientCertPem()) != 0 {
		t.Fatalf("default/valid:443: %v, want TLS without client certificate", base)
	}
	for _, v := range []struct{ ns, name string }{{"default", "client-cert"}, {"granted", "client-cert"}} {
		name := "default/valid:443/client/" + v.ns + "/" + v.name
		g := groups[name]
		if g == nil {
			t.Fatalf("no group %s", name)
		}
		if !bytes.Equal(g.GetTls().GetClientCertPem(), secret(v.ns, v.name)) {
			t.Errorf("%s presents another certificate than Secret %s/%s", name, v.ns, v.name)
		}
		if g.GetTls().GetServerName() != base.GetTls().GetServerName() || !bytes.Equal(g.GetTls().GetCaCertPem(), base.GetTls().GetCaCertPem()) ||
			len(g.GetEndpoints()) != len(base.GetEndpoints()) {
			t.Errorf("%s differs from its base group beyond the client certificate", name)
		}
	}
	for name, g := range groups {
		if g.GetTls() == nil && strings.Contains(name, "/client/") {
			t.Errorf("group %s without TLS was copied for a client certificate", name)
		}
		if len(g.GetTls().GetClientCertPem()) > 0 && !strings.Contains(name, "/client/") {
			t.Errorf("group %s presents a client certificate but is not named for one", name)
		}
	}
	if _, ok := groups["default/valid:80/client/default/client-cert"]; ok {
		t.Error("the cleartext port 80 group was copied for a client certificate")
	}
}
