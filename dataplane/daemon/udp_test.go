package daemon

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"

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
			d, err := New(Options{Workers: 2, Engine: eng, Log: logr.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			s := snap(1, port, &dataplanev1.Endpoint{Address: ip, Port: tcpPort})
			s.Listeners = append(s.Listeners, &dataplanev1.Listener{
				Name: "dns", Address: "127.0.0.1", Port: port, Protocol: dataplanev1.Listener_UDP,
				UdpRoute: &dataplanev1.UDPRoute{Name: "dns", Backends: []*dataplanev1.TCPBackend{
					{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "udp"}, Weight: 1},
				}},
			})
			s.BackendGroups = append(s.BackendGroups, &dataplanev1.BackendGroup{Name: "udp", Endpoints: []*dataplanev1.Endpoint{
				{Address: be.IP.String(), Port: uint32(be.Port)},
			}})
			s.Hash = dataplanev1.Hash(s)
			st, err := d.Apply(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range st {
				if !x.Bound {
					t.Fatalf("listener %s not bound: %v", x.Name, x.Err)
				}
			}
			c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 1024)
			var got string
			for i := 0; i < 20 && got == ""; i++ { // the engines start serving once Run runs
				if _, err := c.Write([]byte("query")); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
				if n, err := c.Read(buf); err == nil {
					got = string(buf[:n])
				}
			}
			if got != "dns:query" {
				t.Fatalf("UDP reply %q, want %q", got, "dns:query")
			}
			if body := get(t, "http://127.0.0.1:"+strconv.Itoa(int(port))+"/"); body != "200 web" {
				t.Fatalf("TCP listener on the same port: %q", body)
			}
			id := d.Metrics().ListenerID("dns")
			if n := d.Metrics().UDPFlows(id, metrics.UDPFlowOpened); n != 1 {
				t.Fatalf("flows opened = %d, want 1", n)
			}
		})
	}
}
