package daemon

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// udpEcho is a real UDP backend answering each datagram with "name:" and the
// payload.
func udpEcho(t *testing.T, name string) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr)
}

// startUDP runs a daemon of engine eng serving snap, with its UDP listener
// "dns" on port 127.0.0.1:port forwarding to group "udp" with endpoint be.
func startUDP(t *testing.T, eng string, opts Options, snap *dataplanev1.Snapshot, port uint32, route *dataplanev1.UDPRoute, be *net.UDPAddr) *Daemon {
	t.Helper()
	opts.Workers, opts.Engine, opts.Log = 2, eng, logr.Discard()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	route.Backends = []*dataplanev1.TCPBackend{{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "udp"}, Weight: 1}}
	snap.Listeners = append(snap.Listeners, &dataplanev1.Listener{
		Name: "dns", Address: "127.0.0.1", Port: port, Protocol: dataplanev1.Listener_UDP, UdpRoute: route,
	})
	snap.BackendGroups = append(snap.BackendGroups, &dataplanev1.BackendGroup{Name: "udp", Endpoints: []*dataplanev1.Endpoint{
		{Address: be.IP.String(), Port: uint32(be.Port)},
	}})
	snap.Hash = dataplanev1.Hash(snap)
	st, err := d.Apply(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st {
		if !x.Bound {
			t.Fatalf("listener %s not bound: %v", x.Name, x.Err)
		}
	}
	return d
}

// udpQuery sends "query" to 127.0.0.1:port from a new client address until a
// reply comes (the engines serve once Run runs) and returns it.
func udpQuery(t *testing.T, port uint32) string {
	t.Helper()
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1024)
	for range 20 {
		if _, err := c.Write([]byte("query")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

// TestUDPListenerBesideTCPOnEitherEngine serves a UDP listener and a TCP
// listener on the same port with each engine: the UDP listener's datagrams
// reach the UDP echo, its flows show in the metrics, and the TCP listener
// still serves.
func TestUDPListenerBesideTCPOnEitherEngine(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) {
			be := udpEcho(t, "dns")
			ip, tcpPort := backend(t, "web")
			port := uint32(enginetest.FreePort(t))
			d := startUDP(t, eng, Options{}, snap(1, port, &dataplanev1.Endpoint{Address: ip, Port: tcpPort}), port, &dataplanev1.UDPRoute{Name: "dns"}, be)
			if got := udpQuery(t, port); got != "dns:query" {
				t.Fatalf("UDP reply %q, want %q", got, "dns:query")
			}
			if body := get(t, "http://127.0.0.1:"+strconv.Itoa(int(port))+"/"); body != "200 web" {
				t.Fatalf("TCP listener on the same port: %q", body)
			}
			id := d.Metrics().ListenerID("dns")
			if n := d.Metrics().UDPFlows(id, metrics.UDPFlowOpened); n != 1 {
				t.Fatalf("flows opened = %d, want 1", n)
			}
			// UDP listeners follow the connection engine: io_uring loops
			// with the io_uring engine (this kernel has multishot recvmsg).
			if want := map[string]string{EngineNetpoll: "epoll", EngineUring: "io_uring"}[eng]; d.udpDriver != want {
				t.Fatalf("UDP driver %q, want %q", d.udpDriver, want)
			}
		})
	}
}

// TestDrainWaitsForUDPFlows drains the endpoint of a group a UDP route uses:
// it stays (draining) while a flow to it is open, and is removed once the flow
// expired.
func TestDrainWaitsForUDPFlows(t *testing.T) {
	be := udpEcho(t, "dns")
	port := uint32(enginetest.FreePort(t))
	route := &dataplanev1.UDPRoute{Name: "dns", IdleTimeout: durationpb.New(time.Second)}
	d := startUDP(t, EngineNetpoll, Options{DrainTimeout: time.Minute}, &dataplanev1.Snapshot{Version: 1}, port, route, be)
	if got := udpQuery(t, port); got != "dns:query" {
		t.Fatalf("UDP reply %q", got)
	}
	pool, err := d.Pool("udp")
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Drain(be.String()); err != nil {
		t.Fatal(err)
	}
	id := d.Metrics().ListenerID("dns")
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := pool.List()
		if err != nil {
			t.Fatal(err)
		}
		expired := d.Metrics().UDPFlows(id, metrics.UDPFlowExpired)
		if len(list) == 0 {
			if expired != 1 {
				t.Fatalf("endpoint removed with %d flows expired, want it removed after its flow expired", expired)
			}
			return
		}
		if list[0].State != StateDraining {
			t.Fatalf("endpoint %+v, want draining", list[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("drained endpoint not removed after its flow expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
