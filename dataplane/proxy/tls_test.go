package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/api/dataplane/v1/dataplanetest"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

const tlsSnapshot = `
version: 1
listeners:
- name: tls
  address: 127.0.0.1
  port: 8443
  protocol: TLS
  timeouts: {requestHead: 2s}
  certificates: [{certPem: %CERT%, keyPem: %KEY%}]
  tlsRoutes:
  - {name: pass, hostnames: [pass.example.com], backends: [{backendGroup: one, weight: 1}]}
  - {name: term, hostnames: ["*.term.example.com"], terminate: true, backends: [{backendGroup: two, weight: 1}]}
  - {name: three, hostnames: [three.example.com], backends: [{backendGroup: three, weight: 1}]}
backendGroups:
- name: three
  endpoints: [{address: 10.0.0.3, port: 443}, {address: 10.0.0.4, port: 443}, {address: 10.0.0.5, port: 443}]
- name: one
  endpoints: [{address: 10.0.0.1, port: 443}]
- name: two
  endpoints: [{address: 10.0.0.2, port: 80}]
`

// helloFor returns the ClientHello a crypto/tls client sends for sni.
func helloFor(tb testing.TB, sni string) []byte {
	tb.Helper()
	a, b := net.Pipe()
	go func() {
		tc := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
		_ = tc.Handshake()
		a.Close()
	}()
	_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	b.Close()
	if err != nil || n < 100 {
		tb.Fatalf("capture ClientHello: %d bytes, %v", n, err)
	}
	return buf[:n]
}

// tlsConfig compiles tlsSnapshot with a test certificate.
func tlsConfig(t *testing.T) (*compiled.Config, *metrics.Registry) {
	t.Helper()
	cert, key := dataplanetest.KeyPair(t)
	y := bytes.ReplaceAll([]byte(tlsSnapshot), []byte("%CERT%"), []byte(base64.StdEncoding.EncodeToString(cert)))
	y = bytes.ReplaceAll(y, []byte("%KEY%"), []byte(base64.StdEncoding.EncodeToString(key)))
	return compileTest(t, string(y))
}

func tlsHarness(t *testing.T) *harness {
	t.Helper()
	cfg, reg := tlsConfig(t)
	return openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
}

// TestTLSListenerPassthrough: the ClientHello is read across client reads
// without connecting; once whole, its server name's route connects and the
// bytes go upstream unchanged, followed by what comes next.
func TestTLSListenerPassthrough(t *testing.T) {
	h := tlsHarness(t)
	hello := helloFor(t, "Pass.Example.com")
	h.client(string(hello[:3]))
	h.client(string(hello[3:200]))
	if len(h.connects) != 0 || !h.s.WantClientData() {
		t.Fatalf("connected before the ClientHello was whole: %v", h.connects)
	}
	h.client(string(hello[200:]) + "more")
	if len(h.connects) != 1 || h.connects[0].Addr != netip.MustParseAddrPort("10.0.0.1:443") {
		t.Fatalf("connects %v", h.connects)
	}
	h.connect(false, nil)
	if got := h.takeUpstream(); got != string(hello)+"more" {
		t.Fatalf("upstream got %d bytes, want the %d of the hello and 4 more", len(got), len(hello))
	}
	h.upstream("server flight")
	h.expectClient("server flight")
	h.client("next")
	h.expectUpstream("next")
}

// TestTLSListenerTerminate: a terminating route hands the bytes to the
// engine's TLS server and connects only once TLS is established; from then
// on the client bytes (plaintext) are tunneled.
func TestTLSListenerTerminate(t *testing.T) {
	h := tlsHarness(t)
	hello := helloFor(t, "a.term.example.com")
	h.client(string(hello))
	if !bytes.Equal(h.terminated, hello) || len(h.connects) != 0 {
		t.Fatalf("TerminateTLS with %d bytes (hello %d), connects %v", len(h.terminated), len(hello), h.connects)
	}
	if l := h.s.Listener(); l == nil || l.TLS == nil {
		t.Fatal("no listener TLS configuration for the engine")
	}
	if h.s.WantClientData() {
		t.Fatal("the session wants client bytes during the engine's handshake")
	}
	h.s.TLSEstablished()
	h.drain()
	if len(h.connects) != 1 || h.connects[0].Addr != netip.MustParseAddrPort("10.0.0.2:80") {
		t.Fatalf("connects %v", h.connects)
	}
	h.client("plain")
	h.connect(false, nil)
	h.expectUpstream("plain")
	h.upstream("banner")
	h.expectClient("banner")
}

// TestTLSListenerRefusals: non-TLS bytes, an unrouted name, the head timeout
// and a client leaving each close the connection, counted apart.
func TestTLSListenerRefusals(t *testing.T) {
	h := tlsHarness(t)
	h.client("GET / HTTP/1.1\r\n")
	if !h.clientClosed || h.reasonCount(metrics.ReasonBadRequest) != 1 || len(h.connects) != 0 {
		t.Fatalf("HTTP bytes: closed %v, bad_request %v", h.clientClosed, h.reasonCount(metrics.ReasonBadRequest))
	}

	h = tlsHarness(t)
	h.client(string(helloFor(t, "other.example.com")))
	if !h.clientClosed || h.reasonCount(metrics.ReasonNoRoute) != 1 || len(h.connects) != 0 {
		t.Fatalf("unrouted name: closed %v, no_route %v", h.clientClosed, h.reasonCount(metrics.ReasonNoRoute))
	}

	h = tlsHarness(t)
	h.client(string(helloFor(t, "pass.example.com")[:50]))
	h.advance(1900 * time.Millisecond)
	if h.clientClosed {
		t.Fatal("closed before the head timeout")
	}
	h.advance(200 * time.Millisecond)
	if !h.clientClosed || h.reg.Timeouts(metrics.TimeoutRequestHead) != 1 {
		t.Fatalf("after the head timeout: closed %v, timeouts %d", h.clientClosed, h.reg.Timeouts(metrics.TimeoutRequestHead))
	}

	h = tlsHarness(t)
	h.client(string(helloFor(t, "a.term.example.com")))
	h.advance(2100 * time.Millisecond)
	if !h.clientClosed || h.reg.Timeouts(metrics.TimeoutRequestHead) != 1 {
		t.Fatalf("handshake past the head timeout: closed %v", h.clientClosed)
	}

	h = tlsHarness(t)
	h.client(string(helloFor(t, "pass.example.com")[:50]))
	h.s.ClientEOF()
	h.drain()
	if !h.clientClosed || len(h.connects) != 0 {
		t.Fatalf("client gone mid-hello: closed %v", h.clientClosed)
	}
}

// TestTLSPassthroughConnectionAllocs: a whole passthrough connection (accept,
// ClientHello, connect, bytes both ways, close) allocates nothing once the
// worker's pools are warm.
func TestTLSPassthroughConnectionAllocs(t *testing.T) {
	cfg, reg := tlsConfig(t)
	slot := new(atomic.Pointer[compiled.Listener])
	slot.Store(cfg.Listeners[0])
	w := NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { return 1 }, Options{})
	hello := helloFor(t, "pass.example.com")
	reply := []byte("server flight")
	remote := netip.MustParseAddrPort("192.0.2.7:40000")
	s := new(Session)
	conn := func() {
		s.Open(w, slot, remote, false)
		s.ClientData(hello[:100])
		s.ClientData(hello[100:])
		closed := false
		step := func() {
			for {
				a, ok := s.Next()
				if !ok {
					return
				}
				switch a.Kind {
				case ActConnectUpstream:
					s.UpstreamConnected(false, nil)
				case ActSendClient:
					s.Sent(Client, len(a.Data), nil)
				case ActSendUpstream:
					s.Sent(Upstream, len(a.Data), nil)
				case ActCloseClient:
					closed = true
				}
			}
		}
		step()
		s.UpstreamData(reply)
		step()
		s.UpstreamEOF()
		step()
		s.ClientEOF()
		step()
		if !closed {
			t.Fatal("connection not closed")
		}
		s.Close()
	}
	conn()
	if n := testing.AllocsPerRun(200, conn); n != 0 {
		t.Fatalf("%v allocations per passthrough connection", n)
	}
}

// TestTunnelConnectRetries: a tunnel whose connect fails tries the group's
// other endpoints, each once, with the bytes buffered so far, then closes
// (502); later connections pass over the endpoints that failed (passive
// avoidance).
func TestTunnelConnectRetries(t *testing.T) {
	cfg, reg := tlsConfig(t)
	hello := helloFor(t, "three.example.com")
	h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.client(string(hello))
	seen := map[netip.AddrPort]bool{}
	for i := range 3 {
		if len(h.connects) != i+1 {
			t.Fatalf("after %d failed connects: %d connects", i, len(h.connects))
		}
		seen[h.connects[i].Addr] = true
		h.connect(false, errors.New("refused"))
	}
	if len(seen) != 3 || !h.clientClosed || len(h.connects) != 3 {
		t.Fatalf("tried %v, closed %v", seen, h.clientClosed)
	}

	// One endpoint fails, the next connect succeeds with the whole hello.
	cfg, reg = tlsConfig(t)
	h = openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
	h.client(string(hello))
	failed := h.connects[0].Addr
	h.connect(false, errors.New("refused"))
	if len(h.connects) != 2 || h.connects[1].Addr == failed {
		t.Fatalf("connects %v", h.connects)
	}
	h.connect(false, nil)
	if got := h.takeUpstream(); got != string(hello) {
		t.Fatalf("upstream got %d bytes, want the hello's %d", len(got), len(hello))
	}
	for i := range 6 {
		h2 := openHarness(t, cfg, reg, Options{}, 0, fmt.Sprintf("192.0.2.8:%d", 40000+i))
		h2.client(string(hello))
		if len(h2.connects) != 1 || h2.connects[0].Addr == failed {
			t.Fatalf("connection %d went to %v, which failed a connect moments ago", i, h2.connects)
		}
	}
}

// TestTLSListenerAccessLog: one line per TLS listener connection: the
// route, backend and bytes of a passthrough tunnel (the ClientHello
// counted), and the status and reason of a connection refused before a
// route was chosen.
func TestTLSListenerAccessLog(t *testing.T) {
	al, out := newTestLog(t)
	cfg, reg := tlsConfig(t)
	opts := Options{AccessLog: al.Worker(0)}
	hello := helloFor(t, "pass.example.com")

	h := openHarness(t, cfg, reg, opts, 0, "192.0.2.7:40000")
	h.client(string(hello))
	h.connect(false, nil)
	h.upstream("flight")
	h.s.ClientEOF()
	h.drain()
	h.s.UpstreamEOF()
	h.drain()
	h.s.Close()

	h = openHarness(t, cfg, reg, opts, 0, "192.0.2.7:40001")
	h.client("GET / HTTP/1.1\r\n\r\n")
	h.s.Close()
	h = openHarness(t, cfg, reg, opts, 0, "192.0.2.7:40002")
	h.client(string(helloFor(t, "nowhere.example.com")))
	h.s.Close()
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`"listener":"tls","route":"pass","method":"","path":"","protocol":"","status":200,"response_bytes":6,"request_bytes":` + strconv.Itoa(len(hello)) + `,`,
		`"status":400,"response_bytes":0,"request_bytes":18,"duration_ms":0.000,"upstream":"","backend_group":"","attempts":0,"client":"192.0.2.7:40001","reason":"bad_request",`,
		`"status":404,`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d:\n%s\nlacks %s", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[0], `"upstream":"10.0.0.1:443","backend_group":"one","attempts":1`) || !strings.Contains(lines[2], `"reason":"no_route"`) {
		t.Errorf("lines:\n%s", out.String())
	}
}
