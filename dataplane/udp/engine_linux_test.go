package udp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// echo is a real UDP backend: it answers each datagram with one datagram,
// "<name> <sender port> " followed by the payload.
type echo struct {
	name string
	addr netip.AddrPort
	conn *net.UDPConn
}

func newEcho(t *testing.T, name string) *echo {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := &echo{name: name, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			reply := append([]byte(fmt.Sprintf("%s %d ", name, from.Port())), buf[:n]...)
			_, _ = c.WriteToUDPAddrPort(reply, from)
		}
	}()
	return e
}

type fixture struct {
	t    testing.TB
	reg  *metrics.Registry
	eng  *Engine
	port uint16
	id   uint32
}

func freeUDPPort(t testing.TB) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// udpSnapshot is one UDP listener on 127.0.0.1:port whose route sends flows to
// the given backends, each group with the endpoints of its echoes.
func udpSnapshot(port uint16, route *dataplanev1.UDPRoute, groups map[string][]*echo) *dataplanev1.Snapshot {
	s := &dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{{
		Name: "default/gw/dns", Address: "127.0.0.1", Port: uint32(port), Protocol: dataplanev1.Listener_UDP, UdpRoute: route,
	}}}
	for name, echoes := range groups {
		g := &dataplanev1.BackendGroup{Name: name, LoadBalancing: &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_ROUND_ROBIN}}
		for _, e := range echoes {
			g.Endpoints = append(g.Endpoints, &dataplanev1.Endpoint{Address: e.addr.Addr().String(), Port: uint32(e.addr.Port())})
		}
		s.BackendGroups = append(s.BackendGroups, g)
	}
	return s
}

func group(name string, weight uint32) *dataplanev1.TCPBackend {
	return &dataplanev1.TCPBackend{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: name}, Weight: weight}
}

// eachDriver runs test on epoll and on io_uring loops.
func eachDriver(t *testing.T, test func(t *testing.T, uring bool)) {
	t.Run("epoll", func(t *testing.T) { test(t, false) })
	t.Run("io_uring", func(t *testing.T) { test(t, true) })
}

// start serves snap with an engine of workers loops per listener, on
// io_uring when uring.
func start(t testing.TB, uring bool, workers int, snap *dataplanev1.Snapshot) *fixture {
	t.Helper()
	skipWithoutUring(t, uring)
	return startWith(t, Options{Workers: workers, IOUring: uring}, snap)
}

// startLogged is start with an access log.
func startLogged(t testing.TB, uring bool, workers int, snap *dataplanev1.Snapshot, al *accesslog.Logger) *fixture {
	t.Helper()
	skipWithoutUring(t, uring)
	return startWith(t, Options{Workers: workers, IOUring: uring, AccessLog: al}, snap)
}

var uringProbe = sync.OnceValue(func() error { return probeUring() })

// skipWithoutUring skips an io_uring test on a kernel that cannot run it.
func skipWithoutUring(t testing.TB, uring bool) {
	t.Helper()
	if err := uringProbe(); uring && err != nil {
		t.Skipf("UDP on io_uring unavailable here: %v", err)
	}
}

// startWith is start with opts (Log is set here).
func startWith(t testing.TB, opts Options, snap *dataplanev1.Snapshot) *fixture {
	t.Helper()
	f := &fixture{t: t, reg: metrics.NewRegistry(opts.Workers), port: uint16(snap.Listeners[0].Port)}
	opts.Log = logr.Discard()
	eng, err := New(f.reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if name, why := eng.Driver(); opts.IOUring && name != "io_uring" && probeUring() == nil {
		t.Fatalf("io_uring asked for and available, serving on %s: %s", name, why)
	}
	f.eng = eng
	f.apply(snap)
	f.id = f.reg.ListenerID(snap.Listeners[0].Name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

func (f *fixture) apply(snap *dataplanev1.Snapshot) {
	f.t.Helper()
	if err := dataplanev1.Validate(snap); err != nil {
		f.t.Fatal(err)
	}
	cfg, err := compiled.Compile(snap, f.reg)
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := f.eng.Apply(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range st {
		if !s.Bound {
			f.t.Fatalf("listener %s not bound: %v", s.Name, s.Err)
		}
	}
}

// client is one client address: a socket connected to the listener.
func (f *fixture) client() *net.UDPConn {
	f.t.Helper()
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(f.port)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends p from c and returns the reply; "" when none came within
// wait.
func exchange(t *testing.T, c *net.UDPConn, p []byte, wait time.Duration) string {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<17)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFlowsStickToOneEndpointAndKeepDatagramsWhole(t *testing.T) {
	eachDriver(t, testFlowsStickToOneEndpointAndKeepDatagramsWhole)
}

func testFlowsStickToOneEndpointAndKeepDatagramsWhole(t *testing.T, uring bool) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	port := freeUDPPort(t)
	f := start(t, uring, 2, udpSnapshot(port, &dataplanev1.UDPRoute{Name: "default/dns/rule-0", Backends: []*dataplanev1.TCPBackend{group("dns", 1)}},
		map[string][]*echo{"dns": {a, b}}))

	seen := map[string]int{}
	for range 4 {
		c := f.client()
		first := exchange(t, c, []byte("q0"), 2*time.Second)
		if first == "" {
			t.Fatal("no reply to a new flow's first datagram")
		}
		// The reply names the endpoint and the upstream socket's port: every
		// datagram of the flow uses the same ones.
		fields := strings.SplitN(first, " ", 3)
		seen[fields[0]]++
		prefix := fields[0] + " " + fields[1] + " "
		for i, p := range [][]byte{{}, bytes.Repeat([]byte("x"), 60000), []byte("q3")} {
			got := exchange(t, c, p, 2*time.Second)
			if got != prefix+string(p) {
				t.Fatalf("datagram %d (%d bytes): reply of %d bytes starting %.30q, want %q and the payload whole", i+1, len(p), len(got), got, prefix)
			}
		}
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("flows per endpoint %v: round robin should use both", seen)
	}
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != 4 {
		t.Fatalf("flows opened = %d, want 4 (one per client address)", got)
	}
	if got := f.reg.UDPFlowsActive(f.id); got != 4 {
		t.Fatalf("flows active = %d, want 4", got)
	}
	recv, sent := f.reg.ClientBytes(f.id)
	if want := uint64(4 * (2 + 0 + 60000 + 2)); recv != want {
		t.Fatalf("bytes received = %d, want %d", recv, want)
	}
	if sent <= recv {
		t.Fatalf("bytes sent = %d, want more than received (%d): replies carry a prefix", sent, recv)
	}
}

func TestWeightsAndRejectedFlows(t *testing.T) { eachDriver(t, testWeightsAndRejectedFlows) }

func testWeightsAndRejectedFlows(t *testing.T, uring bool) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	port := freeUDPPort(t)
	route := &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("ga", 1), group("gb", 0)}}
	f := start(t, uring, 1, udpSnapshot(port, route, map[string][]*echo{"ga": {a}, "gb": {b}}))
	for range 20 {
		if got := exchange(t, f.client(), []byte("w"), 2*time.Second); !strings.HasPrefix(got, "a ") {
			t.Fatalf("reply %q: a weight of 0 must get no flow", got)
		}
	}
	// Only a rejecting backend: datagrams are dropped and counted, no flow opens.
	route.Backends = []*dataplanev1.TCPBackend{{Target: &dataplanev1.TCPBackend_Reject{Reject: true}, Weight: 1}}
	f.apply(udpSnapshot(port, route, map[string][]*echo{"ga": {a}, "gb": {b}}))
	if got := exchange(t, f.client(), []byte("w"), 300*time.Millisecond); got != "" {
		t.Fatalf("reply %q through a rejecting backend", got)
	}
	eventually(t, "a dropped datagram", func() bool { return f.reg.UDPDropped(f.id) == 1 })
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != 20 {
		t.Fatalf("flows opened = %d, want 20", got)
	}
}

func TestIdleFlowsExpire(t *testing.T) { eachDriver(t, testIdleFlowsExpire) }

func testIdleFlowsExpire(t *testing.T, uring bool) {
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	route := &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}, IdleTimeout: durationpb.New(150 * time.Millisecond)}
	f := start(t, uring, 2, udpSnapshot(port, route, map[string][]*echo{"g": {a}}))
	c := f.client()
	first := exchange(t, c, []byte("1"), 2*time.Second)
	eventually(t, "the idle flow to expire", func() bool { return f.reg.UDPFlows(f.id, metrics.UDPFlowExpired) == 1 })
	if got := f.reg.UDPFlowsActive(f.id); got != 0 {
		t.Fatalf("flows active after expiry = %d, want 0", got)
	}
	// The same client address starts a new flow, on a new upstream socket.
	second := exchange(t, c, []byte("1"), 2*time.Second)
	if second == "" || second == first {
		t.Fatalf("replies %q then %q: a new flow should use a new upstream port", first, second)
	}
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != 2 {
		t.Fatalf("flows opened = %d, want 2", got)
	}
}

func TestFlowBoundEvictsTheIdlest(t *testing.T) { eachDriver(t, testFlowBoundEvictsTheIdlest) }

func testFlowBoundEvictsTheIdlest(t *testing.T, uring bool) {
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	route := &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}, MaxFlows: 2}
	f := start(t, uring, 1, udpSnapshot(port, route, map[string][]*echo{"g": {a}}))
	c1, c2, c3 := f.client(), f.client(), f.client()
	r1 := exchange(t, c1, []byte("x"), 2*time.Second)
	exchange(t, c2, []byte("x"), 2*time.Second)
	// c1 is active again: c2 is now the idlest.
	if got := exchange(t, c1, []byte("x"), 2*time.Second); got != r1 {
		t.Fatalf("c1's flow changed: %q then %q", r1, got)
	}
	exchange(t, c3, []byte("x"), 2*time.Second)
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowEvicted); got != 1 {
		t.Fatalf("flows evicted = %d, want 1", got)
	}
	if got := f.reg.UDPFlowsActive(f.id); got != 2 {
		t.Fatalf("flows active = %d, want the bound, 2", got)
	}
	if got := exchange(t, c1, []byte("x"), 2*time.Second); got != r1 {
		t.Fatalf("c1 (not the idlest) lost its flow: %q then %q", r1, got)
	}
	exchange(t, c2, []byte("x"), 2*time.Second) // c2 was evicted: a new flow
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != 4 {
		t.Fatalf("flows opened = %d, want 4 (c1, c2, c3, c2 again)", got)
	}
}

func TestRemovedListenerClosesItsSocketsAndFlows(t *testing.T) {
	eachDriver(t, testRemovedListenerClosesItsSocketsAndFlows)
}

func testRemovedListenerClosesItsSocketsAndFlows(t *testing.T, uring bool) {
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	f := start(t, uring, 2, udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {a}}))
	if exchange(t, f.client(), []byte("x"), 2*time.Second) == "" {
		t.Fatal("no reply")
	}
	f.apply(&dataplanev1.Snapshot{})
	eventually(t, "the flow to close", func() bool { return f.reg.UDPFlows(f.id, metrics.UDPFlowClosed) == 1 })
	// The port is free again: a socket without SO_REUSEPORT binds it.
	eventually(t, "the port to be free", func() bool {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestWildcardListenerRepliesFromTheAddressClientsSentTo binds a UDP listener
// to every address and sends to two loopback addresses: each client, whose
// socket is connected to the address it sent to, gets the replies (they leave
// from that address, not one the kernel would choose).
func TestWildcardListenerRepliesFromTheAddressClientsSentTo(t *testing.T) {
	eachDriver(t, testWildcardListenerRepliesFromTheAddressClientsSentTo)
}

func testWildcardListenerRepliesFromTheAddressClientsSentTo(t *testing.T, uring bool) {
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	snap := udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {a}})
	snap.Listeners[0].Address = ""
	f := start(t, uring, 2, snap)
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.ParseIP(ip), Port: int(port)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 2 {
			if got := exchange(t, c, []byte("q"), 2*time.Second); !strings.HasPrefix(got, "a ") || !strings.HasSuffix(got, " q") {
				t.Fatalf("client of %s, datagram %d: reply %q", ip, i, got)
			}
		}
	}
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != 3 {
		t.Fatalf("flows opened = %d, want 3", got)
	}
}
