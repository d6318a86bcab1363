package udp

import (
	"net"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// plainEcho answers each datagram with itself, without allocating, so that
// the allocations a benchmark reports are the forwarding loop's.
func plainEcho(b testing.TB) *echo {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return &echo{name: "plain", addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c}
}

// BenchmarkForwardDatagram is one request datagram and its reply through an
// established flow, over loopback: client → listener → upstream socket →
// echo, and back. allocs/op counts the whole process (client and echo
// included, which allocate nothing).
func BenchmarkForwardDatagram(b *testing.B) {
	for _, d := range []struct {
		name  string
		uring bool
	}{{"epoll", false}, {"io_uring", true}} {
		b.Run(d.name+"/bound", func(b *testing.B) { benchForward(b, d.uring, "127.0.0.1") })
		// Bound to every address: the destination of each datagram is read
		// and set as the source of the replies (recvmsg, sendmsg).
		b.Run(d.name+"/wildcard", func(b *testing.B) { benchForward(b, d.uring, "") })
	}
}

func benchForward(b *testing.B, uring bool, address string) {
	e := plainEcho(b)
	port := freeUDPPort(b)
	snap := udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {e}})
	snap.Listeners[0].Address = address
	f := start(b, uring, 1, snap)
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(f.port)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 100)
	buf := make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n != len(msg) {
			b.Fatalf("reply of %d bytes: %v", n, err)
		}
	}
}

// BenchmarkForwardBurst is 16 request datagrams from one client sent at
// once, then their 16 replies, through an established flow: the loop finds
// several datagrams per wake-up (io_uring: one batch of completions, its
// sends submitted with the next wait). An op is one datagram and its reply.
func BenchmarkForwardBurst(b *testing.B) {
	for _, d := range []struct {
		name  string
		uring bool
	}{{"epoll", false}, {"io_uring", true}} {
		b.Run(d.name, func(b *testing.B) {
			const burst = 16
			e := plainEcho(b)
			port := freeUDPPort(b)
			f := start(b, d.uring, 1, udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {e}}))
			c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(f.port)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 100)
			buf := make([]byte, 1<<16)
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%burst == 0 {
					for range burst {
						if _, err := c.Write(msg); err != nil {
							b.Fatal(err)
						}
					}
				}
				if n, err := c.Read(buf); err != nil || n != len(msg) {
					b.Fatalf("reply of %d bytes: %v", n, err)
				}
			}
			// Replies to a burst the loop ended in the middle of are left
			// unread; the flow ends with the engine.
		})
	}
}
