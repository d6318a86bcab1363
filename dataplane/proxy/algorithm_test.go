package proxy

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/balancer"
)

// byTenant is a registered algorithm that reads the request: tenants named
// in the x-tenant header go to the endpoint of that index ("0", "1", ...),
// others to the last endpoint; it moves on past endpoints to avoid.
type byTenant struct{}

func (byTenant) AppendKey(dst []byte, r balancer.Request) []byte {
	v, _ := r.Header("X-Tenant")
	if len(v) != 1 || strings.HasPrefix(string(r.Path()), "/ignore") {
		return dst
	}
	return append(dst, v...)
}

func (byTenant) NewSelector(g *balancer.Group, _ uint64) balancer.Selector {
	return &tenantSelector{g: g}
}

type tenantSelector struct {
	g     *balancer.Group
	picks int
}

func (s *tenantSelector) Pick(key []byte, unhealthy balancer.Bitset) (int, bool) {
	skip, usable := s.g.Usable(unhealthy)
	n := s.g.NumEligible()
	if usable == 0 {
		return -1, false
	}
	pos := n - 1
	if len(key) == 1 && key[0] >= '0' && int(key[0]-'0') < n {
		pos = int(key[0] - '0')
	}
	for range n {
		if idx := s.g.EligibleEndpoint(pos); !skip.Has(idx) {
			s.picks++
			return idx, true
		}
		pos = (pos + 1) % n
	}
	return -1, false
}

func (s *tenantSelector) Done(int) { s.picks-- }

func init() { balancer.MustRegister("proxy-test-tenant", byTenant{}) }

const algorithmSnapshot = `
version: 1
listeners:
- name: web
  address: 127.0.0.1
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: main
    hostnames: [example.com]
    routes:
    - name: tenants
      retry: {attempts: 2, retryOnConnectFailure: true, backoffBase: 1ms, backoffMax: 1ms}
      backends: [{backendGroup: tenants, weight: 1}]
backendGroups:
- name: tenants
  loadBalancing: {algorithm: proxy-test-tenant}
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}]
`

// A registered algorithm picks from what its Keyer read of the request, and
// a retry after a failed connect avoids the endpoint that failed.
func TestRegisteredAlgorithmReadsRequest(t *testing.T) {
	cfg, reg := compileTest(t, algorithmSnapshot)
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.1:5000")
	h.autoConnect = true
	for _, tc := range []struct{ req, want string }{
		{"GET / HTTP/1.1\r\nHost: example.com\r\nX-Tenant: 1\r\n\r\n", "10.0.0.2:80"},
		{"GET / HTTP/1.1\r\nHost: example.com\r\nx-tenant: 0\r\n\r\n", "10.0.0.1:80"},
		{"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "10.0.0.3:80"},
		{"GET /ignore HTTP/1.1\r\nHost: example.com\r\nX-Tenant: 0\r\n\r\n", "10.0.0.3:80"},
	} {
		h.connects = nil
		h.client(tc.req)
		if len(h.connects) != 1 || h.connects[0].Addr.String() != tc.want {
			t.Fatalf("%q: connects %v, want %s", tc.req, h.connects, tc.want)
		}
		h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
		h.takeClient()
	}

	h.autoConnect = false
	h.connects = nil
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\nX-Tenant: 1\r\n\r\n")
	h.connect(false, syscall.ECONNREFUSED)
	h.advance(10 * time.Millisecond)
	if len(h.connects) != 2 || h.connects[1].Addr != netip.MustParseAddrPort("10.0.0.3:80") {
		t.Fatalf("retry connects %v, want 10.0.0.2 then 10.0.0.3", h.connects)
	}
	h.connect(false, nil)
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 204") {
		t.Fatalf("client got %q", got)
	}
	sel, _ := h.w.Endpoints.(*Pickers).cache.Picker(cfg.Group("tenants"))
	if n := sel.(*tenantSelector).picks; n != 0 {
		t.Errorf("%d picks not reported done", n)
	}
}

// A request through a registered algorithm with a Keyer allocates nothing.
func TestRegisteredAlgorithmDoesNotAllocate(t *testing.T) {
	cfg, reg := compileTest(t, algorithmSnapshot)
	s := loopbackSession(t, cfg, reg)
	exchange := keepAliveExchange(t, s, "GET / HTTP/1.1\r\nHost: example.com\r\nX-Tenant: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	for range 3 {
		exchange()
	}
	if n := testing.AllocsPerRun(1000, exchange); n != 0 {
		t.Fatalf("%v allocations per exchange", n)
	}
}
