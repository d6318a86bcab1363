package dataplanev1_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

func TestValidateValid(t *testing.T) {
	if err := dataplanev1.Validate(validSnapshot(t)); err != nil {
		t.Fatalf("Validate(validSnapshot) = %v", err)
	}
	trusting := validSnapshot(t)
	httpL(trusting).TrustedHops = proto.Uint32(dataplanev1.MaxTrustedHops)
	trusting.Listeners[1].TrustedHops = proto.Uint32(0)
	httpL(trusting).HeadLimits = &dataplanev1.HeadLimits{MaxRequestHeaderBytes: 1024, MaxRequestHeaders: 10000, MaxResponseHeaderBytes: 65535}
	httpL(trusting).ExtensionFilters = []string{"audit", "tag"}
	fullRoute(trusting).ExtensionFilters = []string{"tag", "audit"}
	if err := dataplanev1.Validate(trusting); err != nil {
		t.Fatalf("Validate(trusted hops 16 and 0) = %v", err)
	}
	custom := validSnapshot(t)
	custom.BackendGroups[0].LoadBalancing = &dataplanev1.LoadBalancing{Algorithm: "shard-v2.1"}
	custom.BackendGroups[1].LoadBalancing.Policy = dataplanev1.LoadBalancing_POLICY_UNSPECIFIED
	custom.BackendGroups[1].LoadBalancing.Algorithm = "shard" // hashOn is the algorithm's key
	if err := dataplanev1.Validate(custom); err != nil {
		t.Fatalf("Validate(custom algorithms) = %v", err)
	}
	traced := validSnapshot(t)
	traced.Tracing = &dataplanev1.Tracing{OtlpEndpoint: "https://collector.example:4318/v1/traces", ServiceName: "edge"}
	httpL(traced).Tracing = &dataplanev1.ListenerTracing{SamplePerMillion: 1_000_000}
	traced.Listeners[1].Tracing = &dataplanev1.ListenerTracing{IgnoreParent: true}
	if err := dataplanev1.Validate(traced); err != nil {
		t.Fatalf("Validate(tracing) = %v", err)
	}
	tls := validSnapshot(t)
	tlsL(tls)
	if err := dataplanev1.Validate(tls); err != nil {
		t.Fatalf("Validate(TLS listener) = %v", err)
	}
	passthrough := validSnapshot(t)
	tlsL(passthrough).TlsRoutes[1].Terminate = false
	passthrough.Listeners[2].Certificates = nil
	if err := dataplanev1.Validate(passthrough); err != nil {
		t.Fatalf("Validate(TLS passthrough listener) = %v", err)
	}
	grpcHC := validSnapshot(t)
	grpcHC.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
	grpcHC.BackendGroups[0].HealthCheck.Path = ""
	grpcHC.BackendGroups[0].HealthCheck.ExpectedStatuses = nil
	grpcHC.BackendGroups[0].HealthCheck.Grpc = &dataplanev1.GRPCHealthCheck{Service: "grpc.examples.echo.Echo"}
	if err := dataplanev1.Validate(grpcHC); err != nil {
		t.Fatalf("Validate(gRPC health check) = %v", err)
	}
	h2 := validSnapshot(t)
	httpL(h2).Http2 = &dataplanev1.HTTP2Options{MaxConcurrentStreams: dataplanev1.MaxConcurrentStreams}
	h2.Listeners[1].Http2 = &dataplanev1.HTTP2Options{Disabled: true}
	h2.Listeners[1].ClientValidation = &dataplanev1.ClientValidation{
		CaCertPem: h2.Listeners[1].Certificates[0].CertPem, AllowInsecureFallback: true,
	}
	h2.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
	if err := dataplanev1.Validate(h2); err != nil {
		t.Fatalf("Validate(HTTP/2 options, client validation, h2c group) = %v", err)
	}
	udp := validSnapshot(t)
	udpL(udp).UdpRoute.IdleTimeout = durationpb.New(time.Millisecond)
	udpL(udp).UdpRoute.MaxFlows = dataplanev1.MaxUDPFlows
	if err := dataplanev1.Validate(udp); err != nil {
		t.Fatalf("Validate(UDP listener on the TCP listener's address and port) = %v", err)
	}
	btls := validSnapshot(t)
	btls.BackendGroups[0].Tls = &dataplanev1.BackendTLS{
		ServerName: "app.example.com", CaCertPem: btls.Listeners[1].Certificates[0].CertPem,
		SubjectAltNames: []*dataplanev1.SubjectAltName{
			{Name: &dataplanev1.SubjectAltName_Hostname{Hostname: "*.example.com"}},
			{Name: &dataplanev1.SubjectAltName_Uri{Uri: "spiffe://cluster.local/ns/a/sa/b"}},
		},
		ClientCertPem: btls.Listeners[1].Certificates[0].CertPem,
		ClientKeyPem:  btls.Listeners[1].Certificates[0].KeyPem,
	}
	if err := dataplanev1.Validate(btls); err != nil {
		t.Fatalf("Validate(backend TLS) = %v", err)
	}
	if err := dataplanev1.Validate(&dataplanev1.Snapshot{}); err != nil {
		t.Fatalf("Validate(empty) = %v", err)
	}
	if err := dataplanev1.Validate(nil); err == nil {
		t.Fatal("Validate(nil) succeeded")
	}
}

// Shorthands into validSnapshot.
func httpL(s *dataplanev1.Snapshot) *dataplanev1.Listener { return s.Listeners[0] }

func vhost(s *dataplanev1.Snapshot, i int) *dataplanev1.VirtualHost {
	return s.Listeners[0].VirtualHosts[i]
}

// tlsL turns listeners[2] (TCP) into a TLS listener with a passthrough route for
// db.example.com and a terminating route for every other server name, and returns
// it.
func tlsL(s *dataplanev1.Snapshot) *dataplanev1.Listener {
	l := s.Listeners[2]
	l.Protocol = dataplanev1.Listener_TLS
	l.Certificates = s.Listeners[1].Certificates
	l.TlsRoutes = []*dataplanev1.TLSRoute{
		{Name: "default/db/rule-0", Hostnames: []string{"db.example.com", "*.db.example.com"}, Backends: l.TcpRoute.Backends},
		{Name: "default/other/rule-0", Terminate: true, Backends: []*dataplanev1.TCPBackend{
			{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "db"}, Weight: 1},
		}},
	}
	l.TcpRoute = nil
	return l
}

// udpL appends a UDP listener on the TCP listener's address and port (UDP ports
// are apart from TCP ones), forwarding to the TCP route's backends, and returns
// it: listeners[3].
func udpL(s *dataplanev1.Snapshot) *dataplanev1.Listener {
	if len(s.Listeners) > 3 {
		return s.Listeners[3]
	}
	tcp := s.Listeners[2]
	l := &dataplanev1.Listener{
		Name: "default/gw/dns", Address: tcp.Address, Port: tcp.Port, Protocol: dataplanev1.Listener_UDP,
		UdpRoute: &dataplanev1.UDPRoute{Name: "default/dns/rule-0", Backends: tcp.TcpRoute.Backends},
	}
	s.Listeners = append(s.Listeners, l)
	return l
}

// fullRoute is listeners[0].virtualHosts[0].routes[1], the route with every feature.
func fullRoute(s *dataplanev1.Snapshot) *dataplanev1.Route { return vhost(s, 0).Routes[1] }

const fullRoutePath = "listeners[0].virtualHosts[0].routes[1]"

// addExtAuth appends a valid ExtAuth filter to fullRoute, asking the group of
// its first backend, and returns it.
func addExtAuth(s *dataplanev1.Snapshot) *dataplanev1.ExtAuth {
	r := fullRoute(s)
	a := &dataplanev1.ExtAuth{BackendGroup: r.Backends[0].GetBackendGroup(), PathPrefix: "/auth"}
	r.Filters = append(r.Filters, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_ExtAuth{ExtAuth: a}})
	return a
}

func TestValidateErrors(t *testing.T) {
	dur := durationpb.New
	for _, tc := range []struct {
		name   string
		mutate func(s *dataplanev1.Snapshot)
		field  string // path the error must name
		detail string // substring of the detail
	}{
		// Listeners.
		{
			"listener name empty", func(s *dataplanev1.Snapshot) { httpL(s).Name = "" },
			"listeners[0].name", "must not be empty",
		},
		{
			"listener names unique", func(s *dataplanev1.Snapshot) { s.Listeners[2].Name = s.Listeners[0].Name },
			"listeners[2].name", `duplicate name "default/gw/http" (also listeners[0])`,
		},
		{
			"port zero", func(s *dataplanev1.Snapshot) { httpL(s).Port = 0 },
			"listeners[0].port", "between 1 and 65535",
		},
		{
			"port too large", func(s *dataplanev1.Snapshot) { httpL(s).Port = 65536 },
			"listeners[0].port", "between 1 and 65535",
		},
		{
			"address not an IP", func(s *dataplanev1.Snapshot) { httpL(s).Address = "localhost" },
			"listeners[0].address", "IPv4 or IPv6 address",
		},
		{
			"address with brackets", func(s *dataplanev1.Snapshot) { s.Listeners[2].Address = "[::1]" },
			"listeners[2].address", "without brackets",
		},
		{"duplicate address and port", func(s *dataplanev1.Snapshot) {
			s.Listeners[1].Address, s.Listeners[1].Port = "127.0.0.1", 8080
		}, "listeners[1]", "same address and port as listeners[0]"},
		{"duplicate address and port, different spelling", func(s *dataplanev1.Snapshot) {
			s.Listeners[0].Address, s.Listeners[2].Address, s.Listeners[2].Port = "::1", "0:0::1", 8080
		}, "listeners[2]", "same address and port as listeners[0]"},
		{
			"protocol unset", func(s *dataplanev1.Snapshot) { httpL(s).Protocol = 0 },
			"listeners[0].protocol", "must be set",
		},
		{
			"protocol unknown", func(s *dataplanev1.Snapshot) { httpL(s).Protocol = 42 },
			"listeners[0].protocol", "unknown value 42",
		},
		{
			"trusted hops too many", func(s *dataplanev1.Snapshot) { httpL(s).TrustedHops = proto.Uint32(dataplanev1.MaxTrustedHops + 1) },
			"listeners[0].trustedHops", "at most 16, got 17",
		},
		{
			"head limits on tcp", func(s *dataplanev1.Snapshot) { s.Listeners[2].HeadLimits = &dataplanev1.HeadLimits{} },
			"listeners[2].headLimits", "must be unset when protocol is TCP",
		},
		{
			"request head bytes too small", func(s *dataplanev1.Snapshot) {
				httpL(s).HeadLimits = &dataplanev1.HeadLimits{MaxRequestHeaderBytes: 100}
			},
			"listeners[0].headLimits.maxRequestHeaderBytes", "at least 1024, got 100",
		},
		{
			"response head bytes too large", func(s *dataplanev1.Snapshot) {
				httpL(s).HeadLimits = &dataplanev1.HeadLimits{MaxResponseHeaderBytes: 65536}
			},
			"listeners[0].headLimits.maxResponseHeaderBytes", "at most 65535, got 65536",
		},
		{
			"response fields too many", func(s *dataplanev1.Snapshot) {
				httpL(s).HeadLimits = &dataplanev1.HeadLimits{MaxResponseHeaders: 10001}
			},
			"listeners[0].headLimits.maxResponseHeaders", "at most 10000, got 10001",
		},
		{
			"trusted hops on tcp", func(s *dataplanev1.Snapshot) { s.Listeners[2].TrustedHops = proto.Uint32(0) },
			"listeners[2].trustedHops", "must be unset when protocol is TCP",
		},
		{
			"https without certificates", func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates = nil },
			"listeners[1].certificates", "at least one certificate",
		},
		{
			"http with certificates", func(s *dataplanev1.Snapshot) { httpL(s).Certificates = s.Listeners[1].Certificates },
			"listeners[0].certificates", "unless protocol is HTTPS",
		},
		{"certificate does not parse", func(s *dataplanev1.Snapshot) {
			s.Listeners[1].Certificates[0].CertPem = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, "listeners[1].certificates[0]", "not a valid key pair"},
		{"key does not match certificate", func(s *dataplanev1.Snapshot) {
			s.Listeners[1].Certificates[0].KeyPem = []byte("garbage")
		}, "listeners[1].certificates[0]", "not a valid key pair"},
		{
			"certificate missing", func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates[0].CertPem = nil },
			"listeners[1].certificates[0].certPem", "must not be empty",
		},
		{
			"key missing", func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates[0].KeyPem = nil },
			"listeners[1].certificates[0].keyPem", "must not be empty",
		},
		{
			"two default certificates", func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates[0].ServerNames = nil },
			"listeners[1].certificates[1].serverNames", "only one certificate may have no serverNames",
		},
		{
			"server name invalid", func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates[0].ServerNames[1] = "a.*.example.com" },
			"listeners[1].certificates[0].serverNames[1]", "leftmost label",
		},
		{
			"server name duplicate", func(s *dataplanev1.Snapshot) {
				s.Listeners[1].Certificates[1].ServerNames = []string{"app.example.com"}
			},
			"listeners[1].certificates[1].serverNames[0]", "also in certificates[0]",
		},
		{
			"tcp listener without route", func(s *dataplanev1.Snapshot) { s.Listeners[2].TcpRoute = nil },
			"listeners[2].tcpRoute", "needs a tcpRoute",
		},
		{
			"tcp listener with virtual hosts", func(s *dataplanev1.Snapshot) { s.Listeners[2].VirtualHosts = httpL(s).VirtualHosts },
			"listeners[2].virtualHosts", "must be empty when protocol is TCP",
		},
		{
			"http listener with tcp route", func(s *dataplanev1.Snapshot) { httpL(s).TcpRoute = s.Listeners[2].TcpRoute },
			"listeners[0].tcpRoute", "unless protocol is TCP",
		},
		{
			"tls listener without routes", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes = nil },
			"listeners[2].tlsRoutes", "needs at least one tlsRoute",
		},
		{
			"tls listener terminating without certificates", func(s *dataplanev1.Snapshot) { tlsL(s).Certificates = nil },
			"listeners[2].certificates", "terminating route needs at least one certificate",
		},
		{
			"tls passthrough listener with certificates", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[1].Terminate = false },
			"listeners[2].certificates", "must be empty when no tlsRoute terminates",
		},
		{
			"tls listener with virtual hosts", func(s *dataplanev1.Snapshot) { tlsL(s).VirtualHosts = httpL(s).VirtualHosts },
			"listeners[2].virtualHosts", "must be empty when protocol is TLS",
		},
		{
			"tls listener with head limits", func(s *dataplanev1.Snapshot) { tlsL(s).HeadLimits = &dataplanev1.HeadLimits{} },
			"listeners[2].headLimits", "must be unset when protocol is TLS",
		},
		{
			"http listener with tls routes", func(s *dataplanev1.Snapshot) { httpL(s).TlsRoutes = []*dataplanev1.TLSRoute{{Name: "x"}} },
			"listeners[0].tlsRoutes", "must be empty unless protocol is TLS",
		},
		{
			"tls route names unique", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[1].Name = "default/db/rule-0" },
			"listeners[2].tlsRoutes[1].name", `duplicate name "default/db/rule-0" (also tlsRoutes[0])`,
		},
		{
			"tls route hostname twice", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[1].Hostnames = []string{"*.db.example.com"} },
			"listeners[2].tlsRoutes[1].hostnames[0]", `hostname "*.db.example.com" is also routed by tlsRoutes[0]`,
		},
		{
			"tls route hostname invalid", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[0].Hostnames[0] = "DB.example.com" },
			"listeners[2].tlsRoutes[0].hostnames[0]", "lowercase",
		},
		{
			"two tls routes without hostnames", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[0].Hostnames = nil },
			"listeners[2].tlsRoutes[1].hostnames", "only one tlsRoute of a listener may have no hostnames (also tlsRoutes[0])",
		},
		{
			"tls route backend missing group", func(s *dataplanev1.Snapshot) {
				tlsL(s).TlsRoutes[1].Backends[0].Target = &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "nope"}
			},
			"listeners[2].tlsRoutes[1].backends[0].backendGroup", `backend group "nope" does not exist`,
		},
		{
			"tls route weights all zero", func(s *dataplanev1.Snapshot) { tlsL(s).TlsRoutes[1].Backends[0].Weight = 0 },
			"listeners[2].tlsRoutes[1].backends", "every weight is 0",
		},
		{
			"listener tracing without exporter", func(s *dataplanev1.Snapshot) { httpL(s).Tracing = &dataplanev1.ListenerTracing{} },
			"listeners[0].tracing", "needs the snapshot's tracing",
		},
		{
			"tracing on a tcp listener", func(s *dataplanev1.Snapshot) {
				s.Tracing = &dataplanev1.Tracing{OtlpEndpoint: "http://collector:4318/v1/traces"}
				s.Listeners[2].Tracing = &dataplanev1.ListenerTracing{}
			},
			"listeners[2].tracing", "must be unset when protocol is TCP",
		},
		{
			"sampling over one", func(s *dataplanev1.Snapshot) {
				s.Tracing = &dataplanev1.Tracing{OtlpEndpoint: "http://collector:4318/v1/traces"}
				httpL(s).Tracing = &dataplanev1.ListenerTracing{SamplePerMillion: 1_000_001}
			},
			"listeners[0].tracing.samplePerMillion", "at most 1000000",
		},
		{
			"http2 on a tcp listener", func(s *dataplanev1.Snapshot) { s.Listeners[2].Http2 = &dataplanev1.HTTP2Options{} },
			"listeners[2].http2", "must be unset when protocol is TCP",
		},
		{
			"too many concurrent streams", func(s *dataplanev1.Snapshot) {
				httpL(s).Http2 = &dataplanev1.HTTP2Options{MaxConcurrentStreams: dataplanev1.MaxConcurrentStreams + 1}
			},
			"listeners[0].http2.maxConcurrentStreams", "must be at most 1000",
		},
		{
			"client validation without tls", func(s *dataplanev1.Snapshot) {
				httpL(s).ClientValidation = &dataplanev1.ClientValidation{CaCertPem: s.Listeners[1].Certificates[0].CertPem}
			},
			"listeners[0].clientValidation", "terminates no TLS",
		},
		{
			"client validation without CA", func(s *dataplanev1.Snapshot) { s.Listeners[1].ClientValidation = &dataplanev1.ClientValidation{} },
			"listeners[1].clientValidation.caCertPem", "at least one PEM certificate",
		},
		{
			"client validation CA is a key", func(s *dataplanev1.Snapshot) {
				s.Listeners[1].ClientValidation = &dataplanev1.ClientValidation{CaCertPem: s.Listeners[1].Certificates[0].KeyPem}
			},
			"listeners[1].clientValidation.caCertPem", "only CERTIFICATE blocks",
		},
		{
			"client validation CA with trailing garbage", func(s *dataplanev1.Snapshot) {
				s.Listeners[1].ClientValidation = &dataplanev1.ClientValidation{CaCertPem: append(slices.Clone(s.Listeners[1].Certificates[0].CertPem), "junk"...)}
			},
			"listeners[1].clientValidation.caCertPem", "not PEM",
		},
		{
			"backend TLS without server name", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{SystemRoots: true}
			},
			"backendGroups[0].tls.serverName", "must not be empty",
		},
		{
			"backend TLS without trust anchors", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{ServerName: "a.example.com"}
			},
			"backendGroups[0].tls", "must set caCertPem or systemRoots",
		},
		{
			"backend TLS with two sources of trust anchors", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{ServerName: "a.example.com", SystemRoots: true, CaCertPem: s.Listeners[1].Certificates[0].CertPem}
			},
			"backendGroups[0].tls.systemRoots", "must be false when caCertPem is set",
		},
		{
			"backend TLS CA is a key", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{ServerName: "a.example.com", CaCertPem: s.Listeners[1].Certificates[0].KeyPem}
			},
			"backendGroups[0].tls.caCertPem", "only CERTIFICATE blocks",
		},
		{
			"backend TLS relative SAN URI", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{
					ServerName: "a.example.com", SystemRoots: true,
					SubjectAltNames: []*dataplanev1.SubjectAltName{{Name: &dataplanev1.SubjectAltName_Uri{Uri: "/ns/a"}}},
				}
			},
			"backendGroups[0].tls.subjectAltNames[0].uri", "absolute URI",
		},
		{
			"backend TLS empty SAN", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{
					ServerName: "a.example.com", SystemRoots: true,
					SubjectAltNames: []*dataplanev1.SubjectAltName{{}},
				}
			},
			"backendGroups[0].tls.subjectAltNames[0]", "must set hostname or uri",
		},
		{
			"backend TLS client key without certificate", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{ServerName: "a.example.com", SystemRoots: true, ClientKeyPem: s.Listeners[1].Certificates[0].KeyPem}
			},
			"backendGroups[0].tls.clientCertPem", "must be set together",
		},
		{
			"backend TLS client certificate is not the key's", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{
					ServerName: "a.example.com", SystemRoots: true,
					ClientCertPem: s.Listeners[1].Certificates[0].CertPem, ClientKeyPem: s.Listeners[1].Certificates[0].CertPem,
				}
			},
			"backendGroups[0].tls.clientCertPem", "private key",
		},
		{
			"h2c with backend tls", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
				s.BackendGroups[0].Tls = &dataplanev1.BackendTLS{ServerName: "db.example.com", SystemRoots: true}
			},
			"backendGroups[0].protocol", "must not be H2C with tls set",
		},
		{
			"unknown group protocol", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Protocol = 9 },
			"backendGroups[0].protocol", "unknown value 9",
		},
		{
			"tracing endpoint missing", func(s *dataplanev1.Snapshot) { s.Tracing = &dataplanev1.Tracing{} },
			"tracing.otlpEndpoint", "must be set",
		},
		{
			"tracing endpoint not a URL", func(s *dataplanev1.Snapshot) { s.Tracing = &dataplanev1.Tracing{OtlpEndpoint: "collector:4318"} },
			"tracing.otlpEndpoint", "must be an http or https URL",
		},
		{
			"udp listener without route", func(s *dataplanev1.Snapshot) { udpL(s).UdpRoute = nil },
			"listeners[3].udpRoute", "a UDP listener needs a udpRoute",
		},
		{
			"udp listeners bind apart from tcp ones", func(s *dataplanev1.Snapshot) {
				udpL(s)
				s.Listeners = append(s.Listeners, proto.CloneOf(udpL(s)))
				s.Listeners[4].Name = "default/gw/dns2"
			},
			"listeners[4]", "same address and port as listeners[3]",
		},
		{
			"udp route name empty", func(s *dataplanev1.Snapshot) { udpL(s).UdpRoute.Name = "" },
			"listeners[3].udpRoute.name", "must not be empty",
		},
		{
			"udp route unknown group", func(s *dataplanev1.Snapshot) {
				udpL(s).UdpRoute.Backends = []*dataplanev1.TCPBackend{{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "nope"}, Weight: 1}}
			},
			"listeners[3].udpRoute.backends[0].backendGroup", `backend group "nope" does not exist`,
		},
		{
			"udp route all weights zero", func(s *dataplanev1.Snapshot) {
				udpL(s).UdpRoute.Backends = []*dataplanev1.TCPBackend{{Target: &dataplanev1.TCPBackend_Reject{Reject: true}}}
			},
			"listeners[3].udpRoute.backends", "every weight is 0",
		},
		{
			"udp idle timeout zero", func(s *dataplanev1.Snapshot) { udpL(s).UdpRoute.IdleTimeout = dur(0) },
			"listeners[3].udpRoute.idleTimeout", "must be between",
		},
		{
			"udp max flows too many", func(s *dataplanev1.Snapshot) { udpL(s).UdpRoute.MaxFlows = dataplanev1.MaxUDPFlows + 1 },
			"listeners[3].udpRoute.maxFlows", "must be at most 1048576",
		},
		{
			"udp listener with certificates", func(s *dataplanev1.Snapshot) { udpL(s).Certificates = s.Listeners[1].Certificates },
			"listeners[3].certificates", "must be unset when protocol is UDP",
		},
		{
			"udp listener with timeouts", func(s *dataplanev1.Snapshot) { udpL(s).Timeouts = &dataplanev1.ListenerTimeouts{} },
			"listeners[3].timeouts", "udpRoute.idleTimeout",
		},
		{
			"udp listener with connection cap", func(s *dataplanev1.Snapshot) { udpL(s).MaxConnections = 10 },
			"listeners[3].maxConnections", "udpRoute.maxFlows",
		},
		{
			"udp listener with filters", func(s *dataplanev1.Snapshot) { udpL(s).ExtensionFilters = []string{"audit"} },
			"listeners[3].extensionFilters", "must be unset when protocol is UDP",
		},
		{
			"udp listener with trusted hops", func(s *dataplanev1.Snapshot) { udpL(s).TrustedHops = proto.Uint32(1) },
			"listeners[3].trustedHops", "must be unset when protocol is UDP",
		},
		{
			"tcp listener with udp route", func(s *dataplanev1.Snapshot) {
				s.Listeners[2].UdpRoute = &dataplanev1.UDPRoute{Name: "x", Backends: s.Listeners[2].TcpRoute.Backends}
			},
			"listeners[2].udpRoute", "unless protocol is UDP",
		},
		{"tcp backend missing group", func(s *dataplanev1.Snapshot) {
			s.Listeners[2].TcpRoute.Backends[0].Target = &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "nope"}
		}, "listeners[2].tcpRoute.backends[0].backendGroup", `backend group "nope" does not exist`},
		{"tcp backend reject false", func(s *dataplanev1.Snapshot) {
			s.Listeners[2].TcpRoute.Backends[1].Target = &dataplanev1.TCPBackend_Reject{}
		}, "listeners[2].tcpRoute.backends[1].reject", "must be true"},
		{
			"tcp backend without target", func(s *dataplanev1.Snapshot) { s.Listeners[2].TcpRoute.Backends[1].Target = nil },
			"listeners[2].tcpRoute.backends[1]", "must set backendGroup or reject",
		},

		// Virtual hosts.
		{
			"virtual host names unique", func(s *dataplanev1.Snapshot) { vhost(s, 1).Name = "app" },
			"listeners[0].virtualHosts[1].name", `duplicate name "app" (also virtualHosts[0])`,
		},
		{
			"hostname uppercase", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "Legacy.example.com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "must be lowercase",
		},
		{
			"hostname wildcard not leftmost", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "legacy.*.com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "whole leftmost label",
		},
		{
			"hostname partial wildcard", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "*legacy.example.com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "whole leftmost label",
		},
		{
			"hostname bare wildcard", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "*" },
			"listeners[0].virtualHosts[1].hostnames[0]", "whole leftmost label",
		},
		{
			"hostname IP", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "10.0.0.1" },
			"listeners[0].virtualHosts[1].hostnames[0]", "not an IP address",
		},
		{
			"hostname with port", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "legacy.example.com:80" },
			"listeners[0].virtualHosts[1].hostnames[0]", `':' is not allowed`,
		},
		{
			"hostname label too long", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = strings.Repeat("a", 64) + ".com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "1 to 63 characters",
		},
		{
			"hostname label starts with dash", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "-a.com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "must not start or end with '-'",
		},
		{
			"hostname empty label", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "a..com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "1 to 63 characters",
		},
		{
			"hostname in two virtual hosts", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames[0] = "app.example.com" },
			"listeners[0].virtualHosts[1].hostnames[0]", "also served by virtualHosts[0]",
		},
		{
			"two catch-all virtual hosts", func(s *dataplanev1.Snapshot) { vhost(s, 1).Hostnames = nil },
			"listeners[0].virtualHosts[2].hostnames", "only one virtual host of a listener may have no hostnames (also virtualHosts[1])",
		},

		// Routes and matches.
		{
			"route name empty", func(s *dataplanev1.Snapshot) { fullRoute(s).Name = "" },
			fullRoutePath + ".name", "must not be empty",
		},
		{
			"route extension filter name empty", func(s *dataplanev1.Snapshot) { fullRoute(s).ExtensionFilters = []string{"a", ""} },
			fullRoutePath + ".extensionFilters[1]", "must not be empty",
		},
		{
			"route extension filter named twice", func(s *dataplanev1.Snapshot) { fullRoute(s).ExtensionFilters = []string{"a", "b", "a"} },
			fullRoutePath + ".extensionFilters[2]", `duplicate name "a" (also ` + fullRoutePath + ".extensionFilters[0])",
		},
		{
			"listener extension filter name empty", func(s *dataplanev1.Snapshot) { httpL(s).ExtensionFilters = []string{""} },
			"listeners[0].extensionFilters[0]", "must not be empty",
		},
		{
			"listener extension filter named twice", func(s *dataplanev1.Snapshot) { s.Listeners[2].ExtensionFilters = []string{"x", "x"} },
			"listeners[2].extensionFilters[1]", `duplicate name "x"`,
		},
		{"path without leading slash", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes = append(vhost(s, 1).Routes, &dataplanev1.Route{Name: "filler"}, &dataplanev1.Route{
				Name:    "r",
				Matches: []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_EXACT, Value: "api"}}},
			})
		}, "listeners[0].virtualHosts[1].routes[2].matches[0].path.value", `must start with "/"`},
		{
			"path type unset", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Type = 0 },
			fullRoutePath + ".matches[0].path.type", "must be set",
		},
		{
			"path type unknown", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Type = 9 },
			fullRoutePath + ".matches[0].path.type", "unknown value 9",
		},
		{
			"path empty", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "" },
			fullRoutePath + ".matches[0].path.value", "must not be empty",
		},
		{
			"path with query", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/api?x=1" },
			fullRoutePath + ".matches[0].path.value", `must not contain '?'`,
		},
		{
			"path with space", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/a b" },
			fullRoutePath + ".matches[0].path.value", `must not contain ' '`,
		},
		{
			"path with double slash", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/a//b" },
			fullRoutePath + ".matches[0].path.value", `must not contain "//"`,
		},
		{
			"path with dot-dot", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/a/.." },
			fullRoutePath + ".matches[0].path.value", `".." segment`,
		},
		{
			"path with encoded slash", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/a%2fb" },
			fullRoutePath + ".matches[0].path.value", "encoded",
		},
		{
			"path with bad percent", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Path.Value = "/a%zz" },
			fullRoutePath + ".matches[0].path.value", "percent-encoded",
		},
		{"path regex invalid", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Matches[0].Path = &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_REGULAR_EXPRESSION, Value: "/(a"}
			fullRoute(s).Filters = fullRoute(s).Filters[:2] // drop the prefix rewrite
		}, fullRoutePath + ".matches[0].path.value", "invalid regular expression"},
		{"path regex not RE2", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Matches[0].Path = &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_REGULAR_EXPRESSION, Value: `/(?=a)`}
			fullRoute(s).Filters = fullRoute(s).Filters[:2]
		}, fullRoutePath + ".matches[0].path.value", "invalid regular expression"},
		{
			"header name not a token", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[0].Name = "x env" },
			fullRoutePath + ".matches[0].headers[0].name", "must be an HTTP token",
		},
		{
			"header name empty", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[0].Name = "" },
			fullRoutePath + ".matches[0].headers[0].name", "must not be empty",
		},
		{
			"header matched twice", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[1].Name = "X-Env" },
			fullRoutePath + ".matches[0].headers[1].name", "already matched by headers[0]",
		},
		{
			"header type unset", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[0].Type = 0 },
			fullRoutePath + ".matches[0].headers[0].type", "must be set",
		},
		{
			"header value with newline", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[0].Value = "a\r\nb" },
			fullRoutePath + ".matches[0].headers[0].value", "control characters",
		},
		{
			"header regex invalid", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Headers[1].Value = "[" },
			fullRoutePath + ".matches[0].headers[1].value", "invalid regular expression",
		},
		{
			"query param name empty", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].QueryParams[0].Name = "" },
			fullRoutePath + ".matches[0].queryParams[0].name", "must not be empty",
		},
		{
			"query param matched twice", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].QueryParams[1].Name = "debug" },
			fullRoutePath + ".matches[0].queryParams[1].name", "already matched by queryParams[0]",
		},
		{
			"query param regex invalid", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].QueryParams[1].Value = "(" },
			fullRoutePath + ".matches[0].queryParams[1].value", "invalid regular expression",
		},
		{
			"query param type unset", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].QueryParams[1].Type = 0 },
			fullRoutePath + ".matches[0].queryParams[1].type", "must be set",
		},
		{
			"method not a token", func(s *dataplanev1.Snapshot) { fullRoute(s).Matches[0].Method = "GET /" },
			fullRoutePath + ".matches[0].method", "must be an HTTP token",
		},

		// Backends and direct responses.
		{"backend group missing", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Backends[0].Target = &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "gone"}
		}, fullRoutePath + ".backends[0].backendGroup", `backend group "gone" does not exist`},
		{"backend group empty", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Backends[0].Target = &dataplanev1.WeightedBackend_BackendGroup{}
		}, fullRoutePath + ".backends[0].backendGroup", "must not be empty"},
		{
			"backend without target", func(s *dataplanev1.Snapshot) { fullRoute(s).Backends[0].Target = nil },
			fullRoutePath + ".backends[0]", "must set backendGroup or directResponse",
		},
		{
			"backend weight too large", func(s *dataplanev1.Snapshot) { fullRoute(s).Backends[0].Weight = dataplanev1.MaxWeight + 1 },
			fullRoutePath + ".backends[0].weight", "at most 1000000",
		},
		{"backend weights all zero", func(s *dataplanev1.Snapshot) {
			for _, b := range fullRoute(s).Backends {
				b.Weight = 0
			}
		}, fullRoutePath + ".backends", "every weight is 0"},
		{"tcp backend weights all zero", func(s *dataplanev1.Snapshot) {
			for _, b := range s.Listeners[2].TcpRoute.Backends {
				b.Weight = 0
			}
		}, "listeners[2].tcpRoute.backends", "every weight is 0"},
		{"backend direct response status", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Backends[1].GetDirectResponse().Status = 99
		}, fullRoutePath + ".backends[1].directResponse.status", "between 200 and 599"},
		{"backend filter redirect", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Backends[0].Filters = append(fullRoute(s).Backends[0].Filters, vhost(s, 1).Routes[0].Filters[0])
		}, fullRoutePath + ".backends[0].filters[1].requestRedirect", "not allowed on a backend"},
		{"direct response with backends", func(s *dataplanev1.Snapshot) {
			fullRoute(s).DirectResponse = &dataplanev1.DirectResponse{Status: 503}
		}, fullRoutePath + ".directResponse", "must not be set together with backends"},
		{
			"direct response status", func(s *dataplanev1.Snapshot) { vhost(s, 0).Routes[2].DirectResponse.Status = 600 },
			"listeners[0].virtualHosts[0].routes[2].directResponse.status", "between 200 and 599",
		},

		// Filters.
		{
			"empty filter", func(s *dataplanev1.Snapshot) { fullRoute(s).Filters[0].Filter = nil },
			fullRoutePath + ".filters[0]", "must set exactly one",
		},
		{"two request header modifiers", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters = append(fullRoute(s).Filters, fullRoute(s).Filters[0])
		}, fullRoutePath + ".filters[6].requestHeaderModifier", "only one requestHeaderModifier filter is allowed (also [0])"},
		{"set header name not a token", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[0].GetRequestHeaderModifier().Set[0].Name = "x:route"
		}, fullRoutePath + ".filters[0].requestHeaderModifier.set[0].name", "HTTP token"},
		{"set header value with newline", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[0].GetRequestHeaderModifier().Set[0].Value = "a\nx-evil: 1"
		}, fullRoutePath + ".filters[0].requestHeaderModifier.set[0].value", "control characters"},
		{"set header twice", func(s *dataplanev1.Snapshot) {
			hm := fullRoute(s).Filters[0].GetRequestHeaderModifier()
			hm.Set = append(hm.Set, &dataplanev1.Header{Name: "X-Route", Value: "b"})
		}, fullRoutePath + ".filters[0].requestHeaderModifier.set[1].name", "already in set[0]"},
		{"remove header not a token", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[1].GetResponseHeaderModifier().Remove[0] = "bad header"
		}, fullRoutePath + ".filters[1].responseHeaderModifier.remove[0]", "HTTP token"},
		{"redirect status code", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().StatusCode = 304
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.statusCode", "301, 302, 303, 307, 308"},
		{"redirect scheme", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().Scheme = "ftp"
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.scheme", "http, https or empty"},
		{"redirect port", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().Port = 70000
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.port", "between 1 and 65535"},
		{"redirect hostname wildcard", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().Hostname = "*.example.com"
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.hostname", "wildcards are not allowed"},
		{"redirect path without slash", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().Path.Modifier = &dataplanev1.PathModifier_ReplaceFullPath{ReplaceFullPath: "x"}
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.path.replaceFullPath", `must start with "/"`},
		{"redirect path modifier empty", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Filters[0].GetRequestRedirect().Path.Modifier = nil
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect.path", "must set replaceFullPath or replacePrefixMatch"},
		{"redirect with backends", func(s *dataplanev1.Snapshot) {
			vhost(s, 1).Routes[0].Backends = fullRoute(s).Backends
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect", "must not be used together with backends"},
		{"redirect with rewrite", func(s *dataplanev1.Snapshot) {
			r := vhost(s, 1).Routes[0]
			r.Filters = append(r.Filters, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_UrlRewrite{UrlRewrite: &dataplanev1.URLRewrite{Hostname: "a.b"}}})
		}, "listeners[0].virtualHosts[1].routes[0].filters[0].requestRedirect", "must not be used together with a urlRewrite filter"},
		{"prefix rewrite on exact match", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Matches = append(fullRoute(s).Matches, &dataplanev1.RouteMatch{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_EXACT, Value: "/x"}})
		}, fullRoutePath + ".filters[2].urlRewrite.path.replacePrefixMatch", "matches[1] is EXACT"},
		{"rewrite hostname invalid", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[2].GetUrlRewrite().Hostname = "bad_host"
		}, fullRoutePath + ".filters[2].urlRewrite.hostname", `'_' is not allowed`},
		{"mirror group missing", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[3].GetRequestMirror().BackendGroup = "gone"
		}, fullRoutePath + ".filters[3].requestMirror.backendGroup", `backend group "gone" does not exist`},
		{"mirror fraction over one", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[3].GetRequestMirror().GetFraction().Numerator = 1001
		}, fullRoutePath + ".filters[3].requestMirror.fraction.numerator", "must not exceed the denominator (1000)"},
		{"mirror fraction over default denominator", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[3].GetRequestMirror().Share = &dataplanev1.RequestMirror_Fraction{Fraction: &dataplanev1.Fraction{Numerator: 101}}
		}, fullRoutePath + ".filters[3].requestMirror.fraction.numerator", "(100)"},
		{"mirror percent", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[4].GetRequestMirror().Share = &dataplanev1.RequestMirror_Percent{Percent: 101}
		}, fullRoutePath + ".filters[4].requestMirror.percent", "between 0 and 100"},
		{"cors origin without scheme", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[1] = "www.example.com"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[1]", "must be \"*\" or scheme://host[:port]"},
		{"cors origin scheme", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[0] = "ftp://www.example.com"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[0]", "the scheme must be http or https"},
		{"cors origin port", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[0] = "https://www.example.com:0"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[0]", "from 1 to 65535"},
		{"cors origin wildcard inside", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[0] = "https://www.*.com"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[0]", "wildcards are not allowed"},
		{"cors origin path", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[0] = "https://www.example.com/app"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[0]", "'/' is not allowed"},
		{"cors any origin among others", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowOrigins[2] = "*"
		}, fullRoutePath + ".filters[5].cors.allowOrigins[2]", `"*" must be the only origin`},
		{"cors method not a token", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowMethods[1] = "P UT"
		}, fullRoutePath + ".filters[5].cors.allowMethods[1]", "must be an HTTP token"},
		{"cors wildcard method among others", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().AllowMethods[1] = "*"
		}, fullRoutePath + ".filters[5].cors.allowMethods[1]", `"*" must be the only entry`},
		{"cors duplicate header", func(s *dataplanev1.Snapshot) {
			c := fullRoute(s).Filters[5].GetCors()
			c.AllowHeaders = append(c.AllowHeaders, "X-Token")
		}, fullRoutePath + ".filters[5].cors.allowHeaders[1]", `"X-Token" is already in allowHeaders[0]`},
		{"cors expose header not a token", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().ExposeHeaders[0] = "x:id"
		}, fullRoutePath + ".filters[5].cors.exposeHeaders[0]", "must be an HTTP token"},
		{"cors max age", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters[5].GetCors().MaxAgeSeconds = 86401
		}, fullRoutePath + ".filters[5].cors.maxAgeSeconds", "at most 86400"},
		{"cors twice", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Filters = append(fullRoute(s).Filters, fullRoute(s).Filters[5])
		}, fullRoutePath + ".filters[6].cors", "only one cors filter is allowed (also [5])"},
		{"cors on a backend", func(s *dataplanev1.Snapshot) {
			b := fullRoute(s).Backends[0]
			b.Filters = append(b.Filters, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_Cors{Cors: &dataplanev1.CORSPolicy{AllowOrigins: []string{"*"}}}})
		}, fullRoutePath + ".backends[0].filters[1].cors", "is not allowed on a backend"},

		{"ext auth unknown group", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).BackendGroup = "nope"
		}, fullRoutePath + ".filters[6].extAuth.backendGroup", `backend group "nope" does not exist`},
		{"ext auth h2c group", func(s *dataplanev1.Snapshot) {
			a := addExtAuth(s)
			for _, g := range s.BackendGroups {
				if g.Name == a.BackendGroup {
					g.Protocol = dataplanev1.BackendGroup_H2C
				}
			}
		}, fullRoutePath + ".filters[6].extAuth.backendGroup", "the authorization service must speak HTTP/1.1"},
		{"ext auth path prefix", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).PathPrefix = "auth"
		}, fullRoutePath + ".filters[6].extAuth.pathPrefix", `must start with "/"`},
		{"ext auth request header", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).AllowedRequestHeaders = []string{"x-a", "x b"}
		}, fullRoutePath + ".filters[6].extAuth.allowedRequestHeaders[1]", "must be an HTTP token"},
		{"ext auth response header twice", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).AllowedResponseHeaders = []string{"X-User", "x-user"}
		}, fullRoutePath + ".filters[6].extAuth.allowedResponseHeaders[1]", `"x-user" is already in allowedResponseHeaders[0]`},
		{"ext auth body", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).MaxBodyBytes = dataplanev1.MaxExtAuthBody + 1
		}, fullRoutePath + ".filters[6].extAuth.maxBodyBytes", "must be at most 65536"},
		{"ext auth timeout", func(s *dataplanev1.Snapshot) {
			addExtAuth(s).Timeout = dur(0)
		}, fullRoutePath + ".filters[6].extAuth.timeout", "must be between"},
		{"ext auth twice", func(s *dataplanev1.Snapshot) {
			addExtAuth(s)
			addExtAuth(s)
		}, fullRoutePath + ".filters[7].extAuth", "only one extAuth filter is allowed (also [6])"},
		{"ext auth on a backend", func(s *dataplanev1.Snapshot) {
			b := fullRoute(s).Backends[0]
			b.Filters = append(b.Filters, &dataplanev1.RouteFilter{Filter: &dataplanev1.RouteFilter_ExtAuth{ExtAuth: &dataplanev1.ExtAuth{BackendGroup: b.GetBackendGroup()}}})
		}, fullRoutePath + ".backends[0].filters[1].extAuth", "is not allowed on a backend"},

		// Timeouts, retries, session affinity.
		{
			"negative timeout", func(s *dataplanev1.Snapshot) { fullRoute(s).Timeouts.Request = dur(-1) },
			fullRoutePath + ".timeouts.request", "must not be negative",
		},
		{"invalid duration", func(s *dataplanev1.Snapshot) {
			fullRoute(s).Timeouts.Request = &durationpb.Duration{Seconds: 1, Nanos: -1}
		}, fullRoutePath + ".timeouts.request", "invalid duration"},
		{
			"backend request exceeds request", func(s *dataplanev1.Snapshot) { fullRoute(s).Timeouts.BackendRequest = dur(11e9) },
			fullRoutePath + ".timeouts.backendRequest", "must not exceed timeouts.request (10s)",
		},
		{
			"retry attempts", func(s *dataplanev1.Snapshot) { fullRoute(s).Retry.Attempts = 11 },
			fullRoutePath + ".retry.attempts", "at most 10",
		},
		{
			"retry status code", func(s *dataplanev1.Snapshot) { fullRoute(s).Retry.RetryOnStatusCodes[2] = 200 },
			fullRoutePath + ".retry.retryOnStatusCodes[2]", "between 400 and 599",
		},
		{
			"retry backoff max below base", func(s *dataplanev1.Snapshot) { fullRoute(s).Retry.BackoffMax = dur(1e6) },
			fullRoutePath + ".retry.backoffMax", "must not be less than backoffBase",
		},
		{
			"retry negative backoff", func(s *dataplanev1.Snapshot) { fullRoute(s).Retry.BackoffBase = dur(-1e6) },
			fullRoutePath + ".retry.backoffBase", "must not be negative",
		},
		{
			"affinity cookie name", func(s *dataplanev1.Snapshot) { fullRoute(s).SessionAffinity.GetCookie().Name = "a=b" },
			fullRoutePath + ".sessionAffinity.cookie.name", "HTTP token",
		},
		{
			"affinity cookie ttl", func(s *dataplanev1.Snapshot) { fullRoute(s).SessionAffinity.GetCookie().Ttl = dur(-1) },
			fullRoutePath + ".sessionAffinity.cookie.ttl", "must not be negative",
		},
		{"affinity header name", func(s *dataplanev1.Snapshot) {
			fullRoute(s).SessionAffinity.Kind = &dataplanev1.SessionAffinity_Header{Header: &dataplanev1.HeaderAffinity{}}
		}, fullRoutePath + ".sessionAffinity.header.name", "must not be empty"},
		{
			"affinity empty", func(s *dataplanev1.Snapshot) { fullRoute(s).SessionAffinity.Kind = nil },
			fullRoutePath + ".sessionAffinity", "must set cookie or header",
		},

		// Backend groups.
		{
			"group name empty", func(s *dataplanev1.Snapshot) { s.BackendGroups[3].Name = "" },
			"backendGroups[3].name", "must not be empty",
		},
		{
			"group names unique", func(s *dataplanev1.Snapshot) { s.BackendGroups[3].Name = "web" },
			"backendGroups[3].name", `duplicate name "web" (also backendGroups[0])`,
		},
		{
			"policy unknown", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].LoadBalancing.Policy = 77 },
			"backendGroups[0].loadBalancing.policy", "unknown value 77, want one of ROUND_ROBIN, WEIGHTED_ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV",
		},
		{
			"hash policy without key", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].LoadBalancing.HashOn = nil },
			"backendGroups[1].loadBalancing.hashOn", "must be set for policy RING_HASH",
		},
		{
			"key without hash policy", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].LoadBalancing.HashOn = s.BackendGroups[1].LoadBalancing.HashOn
			},
			"backendGroups[0].loadBalancing.hashOn", "must be unset for policy ROUND_ROBIN",
		},
		{
			"hash on empty", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].LoadBalancing.HashOn.Key = nil },
			"backendGroups[1].loadBalancing.hashOn", "must set header, cookie or sourceIp",
		},
		{"hash on header not a token", func(s *dataplanev1.Snapshot) {
			s.BackendGroups[1].LoadBalancing.HashOn.Key = &dataplanev1.HashOn_Header{Header: "x user"}
		}, "backendGroups[1].loadBalancing.hashOn.header", "HTTP token"},
		{
			"algorithm with a policy", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].LoadBalancing.Algorithm = "shard" },
			"backendGroups[1].loadBalancing.policy", `must be unspecified with algorithm "shard"`,
		},
		{
			"algorithm name", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].LoadBalancing = &dataplanev1.LoadBalancing{Algorithm: "Shard!"}
			},
			"backendGroups[0].loadBalancing.algorithm", "only lower-case letters",
		},
		{"hash on source ip false", func(s *dataplanev1.Snapshot) {
			s.BackendGroups[2].LoadBalancing.HashOn.Key = &dataplanev1.HashOn_SourceIp{}
		}, "backendGroups[2].loadBalancing.hashOn.sourceIp", "must be true"},
		{
			"health check path", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.Path = "healthz" },
			"backendGroups[0].healthCheck.path", `must start with "/"`,
		},
		{
			"health check host", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.Host = "a b" },
			"backendGroups[0].healthCheck.host", "not allowed",
		},
		{
			"health check status min", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.ExpectedStatuses[1].Min = 99 },
			"backendGroups[0].healthCheck.expectedStatuses[1].min", "between 100 and 599",
		},
		{
			"health check status max below min", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.ExpectedStatuses[0].Max = 199 },
			"backendGroups[0].healthCheck.expectedStatuses[0].max", "between min (200) and 599",
		},
		{
			"health check timeout exceeds interval", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.Timeout = dur(6e9) },
			"backendGroups[0].healthCheck.timeout", "must not exceed interval (5s)",
		},
		{
			"grpc health check on an HTTP/1.1 group", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].HealthCheck = &dataplanev1.HealthCheck{Grpc: &dataplanev1.GRPCHealthCheck{}}
			},
			"backendGroups[0].healthCheck.grpc", "must be unset unless the group's protocol is H2C",
		},
		{
			"grpc health check with a path", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
				s.BackendGroups[0].HealthCheck.ExpectedStatuses = nil
				s.BackendGroups[0].HealthCheck.Grpc = &dataplanev1.GRPCHealthCheck{}
			},
			"backendGroups[0].healthCheck.path", "must be empty when grpc is set",
		},
		{
			"grpc health check with statuses", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
				s.BackendGroups[0].HealthCheck.Path = ""
				s.BackendGroups[0].HealthCheck.Grpc = &dataplanev1.GRPCHealthCheck{}
			},
			"backendGroups[0].healthCheck.expectedStatuses", "must be empty when grpc is set",
		},
		{
			"grpc health check service", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
				s.BackendGroups[0].HealthCheck = &dataplanev1.HealthCheck{Grpc: &dataplanev1.GRPCHealthCheck{Service: "echo.Echo\n"}}
			},
			"backendGroups[0].healthCheck.grpc.service", "printable ASCII",
		},
		{
			"grpc health check service too long", func(s *dataplanev1.Snapshot) {
				s.BackendGroups[0].Protocol = dataplanev1.BackendGroup_H2C
				s.BackendGroups[0].HealthCheck = &dataplanev1.HealthCheck{Grpc: &dataplanev1.GRPCHealthCheck{Service: strings.Repeat("a", 257)}}
			},
			"backendGroups[0].healthCheck.grpc.service", "at most 256 bytes",
		},
		{
			"health check negative jitter", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].HealthCheck.Jitter = dur(-1) },
			"backendGroups[0].healthCheck.jitter", "must not be negative",
		},
		{
			"outlier max ejection", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].OutlierDetection.MaxEjectionPercent = 101 },
			"backendGroups[1].outlierDetection.maxEjectionPercent", "between 0 and 100",
		},
		{
			"outlier negative ejection time", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].OutlierDetection.BaseEjectionTime = dur(-1) },
			"backendGroups[1].outlierDetection.baseEjectionTime", "must not be negative",
		},
		{
			"retry budget percent", func(s *dataplanev1.Snapshot) { s.BackendGroups[1].RetryBudget.Percent = 101 },
			"backendGroups[1].retryBudget.percent", "between 0 and 100, got 101",
		},
		{
			"negative connect timeout", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].ConnectTimeout = dur(-1) },
			"backendGroups[0].connectTimeout", "must not be negative",
		},
		{
			"negative idle timeout", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].IdleTimeout = dur(-1) },
			"backendGroups[0].idleTimeout", "must not be negative",
		},
		{
			"zero response header timeout", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].ResponseHeaderTimeout = dur(0) },
			"backendGroups[0].responseHeaderTimeout", "must be between 1ms and 24h0m0s, got 0s",
		},
		{
			"response body idle timeout too long", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].ResponseBodyIdleTimeout = dur(25 * 3600e9) },
			"backendGroups[0].responseBodyIdleTimeout", "must be between 1ms and 24h0m0s, got 25h0m0s",
		},
		{
			"listener request head timeout", func(s *dataplanev1.Snapshot) { s.Listeners[0].Timeouts.RequestHead = dur(999e3) },
			"listeners[0].timeouts.requestHead", "must be between 1ms and 24h0m0s",
		},
		{
			"listener body idle timeout", func(s *dataplanev1.Snapshot) { s.Listeners[0].Timeouts.RequestBodyIdle = dur(-1) },
			"listeners[0].timeouts.requestBodyIdle", "must be between 1ms and 24h0m0s",
		},
		{
			"listener send stall timeout", func(s *dataplanev1.Snapshot) {
				s.Listeners[0].Timeouts.SendStall = &durationpb.Duration{Seconds: 1, Nanos: -1}
			}, "listeners[0].timeouts.sendStall", "invalid duration",
		},
		{
			"listener keep-alive idle timeout", func(s *dataplanev1.Snapshot) { s.Listeners[0].Timeouts.KeepAliveIdle = dur(0) },
			"listeners[0].timeouts.keepAliveIdle", "must be between 1ms and 24h0m0s",
		},
		{
			"endpoint address", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[1].Address = "web-1" },
			"backendGroups[0].endpoints[1].address", "IPv4 or IPv6 address",
		},
		{
			"endpoint port", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[1].Port = 0 },
			"backendGroups[0].endpoints[1].port", "between 1 and 65535",
		},
		{
			"endpoint weight", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[1].Weight = dataplanev1.MaxWeight + 1 },
			"backendGroups[0].endpoints[1].weight", "at most 1000000",
		},
		{
			"endpoint duplicate", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[1].Address = "10.0.0.1" },
			"backendGroups[0].endpoints[1]", "duplicate endpoint 10.0.0.1:8080 (also endpoints[0])",
		},
		{
			"endpoint duplicate, mapped IPv4", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[1].Address = "::ffff:10.0.0.1" },
			"backendGroups[0].endpoints[1]", "duplicate endpoint",
		},

		// Rate limits.
		{
			"rate limit bucket empty", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Bucket = "" },
			fullRoutePath + ".rateLimit.bucket", "must not be empty",
		},
		{
			"rate limit requests zero", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Requests = 0 },
			fullRoutePath + ".rateLimit.requests", "at least 1",
		},
		{
			"rate limit interval unset", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Interval = nil },
			fullRoutePath + ".rateLimit.interval", "must be set, between 1ms and 24h0m0s",
		},
		{
			"rate limit interval too short", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Interval = dur(999 * time.Microsecond) },
			fullRoutePath + ".rateLimit.interval", "between 1ms and 24h0m0s, got 999µs",
		},
		{
			"rate limit interval too long", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Interval = dur(24*time.Hour + time.Second) },
			fullRoutePath + ".rateLimit.interval", "between 1ms and 24h0m0s, got 24h0m1s",
		},
		{
			"rate limit interval negative", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Interval = dur(-time.Second) },
			fullRoutePath + ".rateLimit.interval", "between 1ms and 24h0m0s",
		},
		{
			"shared bucket with another burst", func(s *dataplanev1.Snapshot) { s.Listeners[1].VirtualHosts[0].Routes[0].RateLimit.Burst = 11 },
			"listeners[1].virtualHosts[0].routes[0].rateLimit",
			`bucket "default/shared" is also used by listeners[0].virtualHosts[2].routes[0].rateLimit with another limit (10 requests per 1m0s, burst 10); routes sharing a bucket must have equal limits, got 10 requests per 1m0s, burst 11`,
		},
		{
			"shared bucket per client", func(s *dataplanev1.Snapshot) { s.Listeners[1].VirtualHosts[0].Routes[0].RateLimit.PerClientIp = true },
			"listeners[1].virtualHosts[0].routes[0].rateLimit", "with another limit",
		},
		{
			"shared bucket with another interval", func(s *dataplanev1.Snapshot) {
				s.Listeners[1].VirtualHosts[0].Routes[0].RateLimit.Interval = dur(time.Second)
			},
			"listeners[1].virtualHosts[0].routes[0].rateLimit", "with another limit",
		},
		{
			"bucket of another route", func(s *dataplanev1.Snapshot) { fullRoute(s).RateLimit.Bucket = "default/shared" },
			"listeners[0].virtualHosts[2].routes[0].rateLimit", "also used by " + fullRoutePath + ".rateLimit",
		},

		// Whole snapshot.
		{
			"hash mismatch", func(s *dataplanev1.Snapshot) { s.Hash = strings.Repeat("0", 64) },
			"hash", "does not match the snapshot's content",
		},
		{
			"invalid UTF-8", func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[0].Zone = "\xff" },
			"", "serializing snapshot",
		},
		{"unknown field", func(s *dataplanev1.Snapshot) {
			r := fullRoute(s)
			r.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
		}, fullRoutePath, "field (number 99) unknown to this dataplane"},
		{"unknown enum value", func(s *dataplanev1.Snapshot) {
			s.BackendGroups[0].LoadBalancing.Policy = dataplanev1.LoadBalancing_Policy(8)
		}, "backendGroups[0].loadBalancing.policy", "unknown value 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldPath(t, tc.field)
			s := validSnapshot(t)
			tc.mutate(s)
			err := dataplanev1.Validate(s)
			if err == nil {
				t.Fatalf("Validate succeeded, want an error for %s", tc.field)
			}
			var found bool
			for _, line := range errorLines(err) {
				if strings.Contains(line, tc.detail) && (tc.field == "" || strings.HasPrefix(line, tc.field+": ")) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Validate error does not have %q with %q; got:\n%v", tc.field, tc.detail, err)
			}
			var fe *dataplanev1.FieldError
			if tc.field != "" && !errors.As(err, &fe) {
				t.Errorf("error %v holds no *FieldError", err)
			}
		})
	}
}

func TestValidateCollectsAllErrors(t *testing.T) {
	s := validSnapshot(t)
	httpL(s).Port = 0
	s.BackendGroups[0].Endpoints[0].Port = 0
	fullRoute(s).Matches[0].Method = "bad method"
	lines := errorLines(dataplanev1.Validate(s))
	want := []string{
		"listeners[0].port: ",
		fullRoutePath + ".matches[0].method: ",
		"backendGroups[0].endpoints[0].port: ",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestValidateCapsErrors(t *testing.T) {
	s := &dataplanev1.Snapshot{}
	for i := 0; i < 2*dataplanev1.MaxValidationErrors; i++ {
		s.Listeners = append(s.Listeners, &dataplanev1.Listener{Name: fmt.Sprint(i), Port: 80 + uint32(i), Protocol: 99})
	}
	lines := errorLines(dataplanev1.Validate(s))
	if len(lines) != dataplanev1.MaxValidationErrors+1 {
		t.Fatalf("got %d errors, want %d", len(lines), dataplanev1.MaxValidationErrors+1)
	}
	want := fmt.Sprintf("and %d more problems", 2*dataplanev1.MaxValidationErrors-dataplanev1.MaxValidationErrors)
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("last error = %q, want %q", last, want)
	}
}
