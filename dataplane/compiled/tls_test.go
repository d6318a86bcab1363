package compiled

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/dataplanetest"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// tlsSnapshot is a TLS listener with passthrough routes (exact, wildcard,
// catch-all) and one terminating route.
func tlsSnapshot(t *testing.T) *dataplanev1.Snapshot {
	t.Helper()
	cert, key := dataplanetest.KeyPair(t)
	be := func(g string, w uint32) *dataplanev1.TCPBackend {
		return &dataplanev1.TCPBackend{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: g}, Weight: w}
	}
	return &dataplanev1.Snapshot{
		Version: 1,
		Listeners: []*dataplanev1.Listener{{
			Name: "tls", Address: "127.0.0.1", Port: 8443, Protocol: dataplanev1.Listener_TLS,
			Certificates: []*dataplanev1.TLSCertificate{{CertPem: cert, KeyPem: key}},
			TlsRoutes: []*dataplanev1.TLSRoute{
				{Name: "ns/a", Hostnames: []string{"a.example.com"}, Backends: []*dataplanev1.TCPBackend{be("a", 1)}},
				{Name: "ns/wild", Hostnames: []string{"*.example.com", "*.x.example.com"}, Backends: []*dataplanev1.TCPBackend{be("a", 1), be("b", 3)}},
				{Name: "ns/term", Hostnames: []string{"app.example.com"}, Terminate: true, Backends: []*dataplanev1.TCPBackend{be("b", 1)}},
				{Name: "ns/default", Backends: []*dataplanev1.TCPBackend{be("b", 1)}},
			},
		}},
		BackendGroups: []*dataplanev1.BackendGroup{
			{Name: "a", Endpoints: []*dataplanev1.Endpoint{{Address: "127.0.0.1", Port: 9001}}},
			{Name: "b", Endpoints: []*dataplanev1.Endpoint{{Address: "127.0.0.1", Port: 9002}}},
		},
	}
}

// TestCompileTLSListener: a TLS listener's routes are selected by server
// name (exact, longest wildcard, catch-all, also without a name), keep their
// weighted backends and terminate flag, and the listener gets its
// certificates because one route terminates.
func TestCompileTLSListener(t *testing.T) {
	s := tlsSnapshot(t)
	if err := dataplanev1.Validate(s); err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s, metrics.NewRegistry(1))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.Protocol != ProtocolTLS || l.Protocol.String() != "TLS" || !l.TerminatesTLS() || len(l.TLS.Certificates) != 1 {
		t.Fatalf("listener: %v, TLS %v", l.Protocol, l.TLS)
	}
	for name, want := range map[string]string{
		"a.example.com":     "ns/a",
		"b.example.com":     "ns/wild",
		"y.x.example.com":   "ns/wild",
		"app.example.com":   "ns/term",
		"example.com":       "ns/default",
		"":                  "ns/default",
		"other.org":         "ns/default",
		"a.example.com:443": "ns/default",
	} {
		r := l.MatchTLS([]byte(name))
		if r == nil || r.Name != want {
			t.Errorf("MatchTLS(%q) = %v, want %s", name, r, want)
			continue
		}
		if r.Terminate != (want == "ns/term") {
			t.Errorf("%s: Terminate %v", want, r.Terminate)
		}
	}
	wild := l.MatchTLS([]byte("b.example.com"))
	if len(wild.Backends) != 2 || wild.Backends[1].Group != c.Group("b") || wild.Backends[1].Weight != 3 {
		t.Fatalf("wildcard route backends: %+v", wild.Backends)
	}
	counts := map[string]int{}
	for i := range 4000 {
		counts[wild.PickBackend(uint32(i)*1073741).Group.Name]++
	}
	if counts["b"] < 2800 || counts["b"] > 3200 {
		t.Fatalf("weights 1:3 picked %v", counts)
	}
	name := []byte("y.x.example.com")
	if n := testing.AllocsPerRun(100, func() { l.MatchTLS(name) }); n != 0 {
		t.Fatalf("MatchTLS allocates %v times", n)
	}
}

// TestCompileTLSListenerPassthroughOnly: without a terminating route the
// listener has no TLS configuration, and without a catch-all an unknown
// name matches nothing.
func TestCompileTLSListenerPassthroughOnly(t *testing.T) {
	s := tlsSnapshot(t)
	l0 := s.Listeners[0]
	l0.Certificates = nil
	l0.TlsRoutes = l0.TlsRoutes[:2]
	if err := dataplanev1.Validate(s); err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s, metrics.NewRegistry(1))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.TerminatesTLS() {
		t.Fatal("a passthrough-only listener terminates TLS")
	}
	if r := l.MatchTLS([]byte("other.org")); r != nil {
		t.Fatalf("no catch-all, yet %q matched %s", "other.org", r.Name)
	}
	if r := l.MatchTLS(nil); r != nil {
		t.Fatalf("no catch-all, yet no name matched %s", r.Name)
	}
}

// TestCompileTLSListenerErrors: an unknown backend group and a filter
// without a connection hook are rejected with their path.
func TestCompileTLSListenerErrors(t *testing.T) {
	s := tlsSnapshot(t)
	s.Listeners[0].TlsRoutes[1].Backends[0].Target = &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "nope"}
	_, err := Compile(s, metrics.NewRegistry(1))
	if err == nil || !strings.Contains(err.Error(), `tlsRoutes[1].backends[0].backendGroup: unknown backend group "nope"`) {
		t.Fatalf("err = %v", err)
	}
	s = tlsSnapshot(t)
	s.Listeners[0].Certificates[0].KeyPem = []byte("junk")
	if _, err := Compile(s, metrics.NewRegistry(1)); err == nil || !strings.Contains(err.Error(), "certificates[0]") {
		t.Fatalf("err = %v", err)
	}
}

// TestCompileHTTP2: HTTP and HTTPS listeners serve HTTP/2 unless disabled,
// HTTPS then offering ALPN h2 before http/1.1; a TLS listener never does.
func TestCompileHTTP2(t *testing.T) {
	cert, key := dataplanetest.KeyPair(t)
	snap := func(p dataplanev1.Listener_Protocol, h2 *dataplanev1.HTTP2Options) *dataplanev1.Snapshot {
		l := &dataplanev1.Listener{Name: "l", Address: "127.0.0.1", Port: 8443, Protocol: p, Http2: h2}
		if p == dataplanev1.Listener_HTTPS {
			l.Certificates = []*dataplanev1.TLSCertificate{{CertPem: cert, KeyPem: key}}
		}
		return &dataplanev1.Snapshot{Version: 1, Listeners: []*dataplanev1.Listener{l}}
	}
	for _, tc := range []struct {
		name   string
		s      *dataplanev1.Snapshot
		on     bool
		max    uint32
		protos string
	}{
		{"http default", snap(dataplanev1.Listener_HTTP, nil), true, 0, ""},
		{"http disabled", snap(dataplanev1.Listener_HTTP, &dataplanev1.HTTP2Options{Disabled: true}), false, 0, ""},
		{"https default", snap(dataplanev1.Listener_HTTPS, nil), true, 0, "h2,http/1.1"},
		{"https streams", snap(dataplanev1.Listener_HTTPS, &dataplanev1.HTTP2Options{MaxConcurrentStreams: 7}), true, 7, "h2,http/1.1"},
		{"https disabled", snap(dataplanev1.Listener_HTTPS, &dataplanev1.HTTP2Options{Disabled: true}), false, 0, ""},
		{"tls", tlsSnapshot(t), false, 0, ""},
	} {
		if err := dataplanev1.Validate(tc.s); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c, err := Compile(tc.s, metrics.NewRegistry(1))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		l := c.Listeners[0]
		protos := ""
		if l.TLS != nil {
			protos = strings.Join(l.TLS.NextProtos, ",")
		}
		if l.HTTP2 != tc.on || l.MaxConcurrentStreams != tc.max || protos != tc.protos {
			t.Errorf("%s: HTTP2 %v max %d ALPN %q, want %v %d %q", tc.name, l.HTTP2, l.MaxConcurrentStreams, protos, tc.on, tc.max, tc.protos)
		}
	}
}

// TestCompileClientValidation: a listener's client validation becomes its
// TLS configuration's client CAs, required and verified (AllowValidOnly) or
// only requested (AllowInsecureFallback); without it no certificate is asked.
func TestCompileClientValidation(t *testing.T) {
	cert, key := dataplanetest.KeyPair(t)
	for _, tc := range []struct {
		cv   *dataplanev1.ClientValidation
		want tls.ClientAuthType
	}{
		{nil, tls.NoClientCert},
		{&dataplanev1.ClientValidation{CaCertPem: cert}, tls.RequireAndVerifyClientCert},
		{&dataplanev1.ClientValidation{CaCertPem: cert, AllowInsecureFallback: true}, tls.RequestClientCert},
	} {
		s := &dataplanev1.Snapshot{Version: 1, Listeners: []*dataplanev1.Listener{{
			Name: "https", Address: "127.0.0.1", Port: 8443, Protocol: dataplanev1.Listener_HTTPS,
			Certificates:     []*dataplanev1.TLSCertificate{{CertPem: cert, KeyPem: key}},
			ClientValidation: tc.cv,
		}}}
		if err := dataplanev1.Validate(s); err != nil {
			t.Fatal(err)
		}
		c, err := Compile(s, metrics.NewRegistry(1))
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.Listeners[0].TLS
		if cfg.ClientAuth != tc.want || (tc.cv != nil) != (cfg.ClientCAs != nil) {
			t.Errorf("%v: ClientAuth %v, ClientCAs set %v; want %v", tc.cv, cfg.ClientAuth, cfg.ClientCAs != nil, tc.want)
		}
	}
}

// TestCertificateDomain: an HTTPS listener with several certificates maps a
// name (with or without a port, any case) to its certificate by exact name,
// longest wildcard, then the default; a listener with one certificate maps
// none (nothing on it can be misdirected).
func TestCertificateDomain(t *testing.T) {
	cert, key := dataplanetest.KeyPair(t)
	compile := func(names ...[]string) *Listener {
		t.Helper()
		l := &dataplanev1.Listener{Name: "https", Address: "127.0.0.1", Port: 8443, Protocol: dataplanev1.Listener_HTTPS}
		for _, n := range names {
			l.Certificates = append(l.Certificates, &dataplanev1.TLSCertificate{ServerNames: n, CertPem: cert, KeyPem: key})
		}
		s := &dataplanev1.Snapshot{Version: 1, Listeners: []*dataplanev1.Listener{l}}
		if err := dataplanev1.Validate(s); err != nil {
			t.Fatal(err)
		}
		c, err := Compile(s, metrics.NewRegistry(1))
		if err != nil {
			t.Fatal(err)
		}
		return c.Listeners[0]
	}
	l := compile(nil, []string{"a.example.com", "b.example.com"}, []string{"*.example.com"}, []string{"*.x.example.com"})
	for host, want := range map[string]string{
		"a.example.com":        "a.example.com,b.example.com",
		"B.Example.com:8443":   "a.example.com,b.example.com",
		"c.example.com":        "*.example.com",
		"c.x.example.com":      "*.x.example.com",
		"example.com":          "*",
		"other.org":            "*",
		"":                     "*",
		"[::1]:8443":           "*",
		"a.example.com.x.test": "*",
	} {
		id, ok := l.CertificateDomain([]byte(host))
		if got := l.domainKeys[slices.Index(l.domainIDs, id)]; !ok || got != want {
			t.Errorf("CertificateDomain(%q) = %d (%q), %v; want %q", host, id, got, ok, want)
		}
	}
	host := []byte("C.X.Example.com:443")
	if n := testing.AllocsPerRun(100, func() { l.CertificateDomain(host) }); n != 0 {
		t.Errorf("CertificateDomain allocates %v times", n)
	}
	if got, ok := compile([]string{"a.example.com"}, []string{"b.example.com"}).CertificateDomain([]byte("c.example.com")); ok {
		t.Errorf("a name no certificate covers, without a default: %d", got)
	}
	if got, ok := compile([]string{"a.example.com"}).CertificateDomain([]byte("b.example.com")); ok {
		t.Errorf("one certificate: %d", got)
	}
	// Ids depend on the server names alone: the same in another configuration
	// that lists the certificates in another order.
	again := compile([]string{"*.x.example.com"}, []string{"*.example.com"}, nil, []string{"a.example.com", "b.example.com"})
	for _, host := range []string{"a.example.com", "c.example.com", "c.x.example.com", "other.org"} {
		a, _ := l.CertificateDomain([]byte(host))
		b, _ := again.CertificateDomain([]byte(host))
		if a != b {
			t.Errorf("%s: id %d in one configuration, %d in the other", host, a, b)
		}
	}
	ids := domainIDs([]string{"a", "b", "c", "d", "e", "f", "g", "h"})
	if slices.Contains(ids, 0) || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		t.Errorf("domain ids %v are not distinct and non-zero", ids)
	}
}
