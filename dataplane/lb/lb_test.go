package lb_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/lb"
)

func TestHTTPProxyDefaults(t *testing.T) {
	s, err := lb.HTTPProxy("127.0.0.1:8080", "127.0.0.1:9001", "[::1]:9002")
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplanev1.Validate(s); err != nil || s.GetHash() != dataplanev1.Hash(s) || s.GetVersion() != 1 {
		t.Fatalf("snapshot not valid with its hash: %v", err)
	}
	l := s.GetListeners()[0]
	if l.GetAddress() != "127.0.0.1" || l.GetPort() != 8080 || l.GetProtocol() != dataplanev1.Listener_HTTP || l.GetTimeouts() != nil {
		t.Errorf("listener = %v", l)
	}
	wb := l.GetVirtualHosts()[0].GetRoutes()[0].GetBackends()
	if len(wb) != 1 || wb[0].GetBackendGroup() != lb.DefaultGroup || wb[0].GetWeight() != 1 {
		t.Errorf("route backends = %v", wb)
	}
	g := s.GetBackendGroups()[0]
	if g.GetName() != lb.DefaultGroup || g.GetLoadBalancing().GetPolicy() != dataplanev1.LoadBalancing_ROUND_ROBIN {
		t.Errorf("group = %v", g)
	}
	eps := g.GetEndpoints()
	if len(eps) != 2 || eps[1].GetAddress() != "::1" || eps[1].GetPort() != 9002 || eps[0].GetWeight() != 1 || !eps[0].GetConditions().GetReady() {
		t.Errorf("endpoints = %v", eps)
	}
}

func TestTCPProxy(t *testing.T) {
	s, err := lb.TCPProxy("0.0.0.0:5432", "10.0.0.1:5432")
	if err != nil {
		t.Fatal(err)
	}
	l := s.GetListeners()[0]
	if l.GetProtocol() != dataplanev1.Listener_TCP || len(l.GetVirtualHosts()) != 0 {
		t.Fatalf("listener = %v", l)
	}
	if b := l.GetTcpRoute().GetBackends(); len(b) != 1 || b[0].GetBackendGroup() != lb.DefaultGroup || b[0].GetWeight() != 1 {
		t.Errorf("tcp route backends = %v", b)
	}
}

func TestProxyOptions(t *testing.T) {
	s, err := lb.Proxy{
		Listen: "127.0.0.1:80", Group: "api", Policy: dataplanev1.LoadBalancing_MAGLEV, HashHeader: "x-user",
		RateLimit: &dataplanev1.LocalRateLimit{Requests: 10, Interval: durationpb.New(time.Second)},
		SendStall: 3 * time.Second, TunnelIdle: time.Hour, ResponseHeader: 5 * time.Second,
		HealthCheck: &dataplanev1.HealthCheck{Path: "/healthz"}, Filters: []string{"tag", "audit"},
	}.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := s.GetBackendGroups()[0]
	if g.GetName() != "api" || len(g.GetEndpoints()) != 0 || g.GetLoadBalancing().GetHashOn().GetHeader() != "x-user" ||
		g.GetResponseHeaderTimeout().AsDuration() != 5*time.Second || g.GetResponseBodyIdleTimeout() != nil ||
		g.GetHealthCheck().GetPath() != "/healthz" {
		t.Errorf("group = %v", g)
	}
	l := s.GetListeners()[0]
	if l.GetTimeouts().GetSendStall().AsDuration() != 3*time.Second || l.GetTimeouts().GetTunnelIdle().AsDuration() != time.Hour || l.GetTimeouts().GetRequestHead() != nil {
		t.Errorf("listener timeouts = %v", l.GetTimeouts())
	}
	if f := l.GetExtensionFilters(); len(f) != 2 || f[0] != "tag" || f[1] != "audit" {
		t.Errorf("listener filters = %v", f)
	}
	if rl := l.GetVirtualHosts()[0].GetRoutes()[0].GetRateLimit(); rl.GetBucket() != lb.DefaultListener || rl.GetRequests() != 10 {
		t.Errorf("rate limit = %v", rl)
	}
	s, err = lb.Proxy{Listen: "127.0.0.1:80", Policy: dataplanev1.LoadBalancing_RING_HASH}.Snapshot()
	if err != nil || !s.GetBackendGroups()[0].GetLoadBalancing().GetHashOn().GetSourceIp() {
		t.Errorf("ring hash without a header: %v, %v", s.GetBackendGroups(), err)
	}
}

func TestProxyErrors(t *testing.T) {
	for _, tc := range []struct {
		p    lb.Proxy
		want string
	}{
		{lb.Proxy{Listen: "localhost:80"}, `listen address "localhost:80"`},
		{lb.Proxy{Listen: "127.0.0.1:0"}, "listeners[0].port"},
		{lb.Proxy{Listen: "127.0.0.1:80", Backends: []string{"backend:80"}}, `backend "backend:80": want IP:port`},
		{lb.Proxy{Listen: "127.0.0.1:80", Backends: []string{"127.0.0.1:1", "127.0.0.1:1"}}, "duplicate endpoint"},
		{lb.Proxy{Listen: "127.0.0.1:80", TCP: true, RateLimit: &dataplanev1.LocalRateLimit{Requests: 1}}, "HTTP only"},
		{lb.Proxy{Listen: "127.0.0.1:80", SendStall: time.Microsecond}, "sendStall"},
		{lb.Proxy{Listen: "127.0.0.1:80", HealthCheck: &dataplanev1.HealthCheck{Path: "healthz"}}, "healthCheck.path"},
		{lb.Proxy{Listen: "127.0.0.1:80", Filters: []string{"a", "a"}}, "extensionFilters"},
	} {
		if _, err := tc.p.Snapshot(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", tc.p, err, tc.want)
		}
	}
}

func TestEndpoint(t *testing.T) {
	e, err := lb.Endpoint("[::ffff:10.0.0.1]:80", 0)
	if err != nil || e.GetAddress() != "10.0.0.1" || e.GetPort() != 80 || e.GetWeight() != lb.DefaultWeight {
		t.Errorf("Endpoint = %v, %v", e, err)
	}
	for _, bad := range []string{"10.0.0.1", "10.0.0.1:0", "host:80"} {
		if _, err := lb.Endpoint(bad, 1); err == nil {
			t.Errorf("Endpoint(%q) succeeded", bad)
		}
	}
	if _, err := lb.Endpoint("10.0.0.1:80", dataplanev1.MaxWeight+1); err == nil {
		t.Error("a weight over the maximum was accepted")
	}
}

func TestParsePolicy(t *testing.T) {
	for _, n := range lb.PolicyNames() {
		if p, err := lb.ParsePolicy(n); err != nil || p == dataplanev1.LoadBalancing_POLICY_UNSPECIFIED {
			t.Errorf("ParsePolicy(%q) = %v, %v", n, p, err)
		}
	}
	if p, _ := lb.ParsePolicy("least-request"); p != dataplanev1.LoadBalancing_LEAST_REQUEST {
		t.Errorf("least-request = %v", p)
	}
	if _, err := lb.ParsePolicy("fastest"); err == nil || !strings.Contains(err.Error(), "round-robin") {
		t.Errorf("unknown policy: err = %v", err)
	}
}

func TestProxyAlgorithm(t *testing.T) {
	s, err := lb.Proxy{Listen: "127.0.0.1:80", Backends: []string{"127.0.0.1:1"}, Algorithm: "least_request", HashHeader: "x-user"}.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	l := s.GetBackendGroups()[0].GetLoadBalancing()
	if l.GetAlgorithm() != "least_request" || l.GetPolicy() != dataplanev1.LoadBalancing_POLICY_UNSPECIFIED || l.GetHashOn().GetHeader() != "x-user" {
		t.Errorf("load balancing = %v", l)
	}
	if _, err := (lb.Proxy{Listen: "127.0.0.1:80", Algorithm: "least_request", Policy: dataplanev1.LoadBalancing_MAGLEV}).Snapshot(); err == nil {
		t.Error("an algorithm together with a policy was accepted")
	}
}
