package udp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// dry sums the receives of f's loops that ran out of buffers.
func (f *fixture) dry() int64 {
	f.eng.mu.Lock()
	defer f.eng.mu.Unlock()
	var n int64
	for _, loops := range f.eng.bound {
		for _, l := range loops {
			n += l.dry.Load()
		}
	}
	return n
}

// TestBurstLargerThanTheBufferRing sends bursts of datagrams from several
// clients to an io_uring loop with two provided buffers: the receives of the
// listener and of the upstream sockets run dry and are re-armed as buffers
// come back, every datagram is answered whole, and no flow is lost or
// opened twice.
func TestBurstLargerThanTheBufferRing(t *testing.T) {
	skipWithoutUring(t, true)
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	f := startWith(t, Options{Workers: 1, IOUring: true, RingBuffers: 2},
		udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {a}}))
	const clients, burst = 8, 8
	conns := make([]*net.UDPConn, clients)
	for i := range conns {
		conns[i] = f.client()
	}
	for round := range 3 {
		for i, c := range conns {
			for j := range burst {
				if _, err := fmt.Fprintf(c, "c%d-r%d-%d", i, round, j); err != nil {
					t.Fatal(err)
				}
			}
		}
		buf := make([]byte, 1<<16)
		for i, c := range conns {
			got := map[string]bool{}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			for range burst {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("round %d, client %d: %d of %d replies, then %v", round, i, len(got), burst, err)
				}
				fields := strings.Fields(string(buf[:n]))
				got[fields[len(fields)-1]] = true
			}
			for j := range burst {
				if want := fmt.Sprintf("c%d-r%d-%d", i, round, j); !got[want] {
					t.Fatalf("round %d, client %d: no reply to %s (got %v)", round, i, want, got)
				}
			}
		}
	}
	if n := f.dry(); n == 0 {
		t.Fatal("no receive ran out of buffers: the burst did not exercise re-arming")
	}
	if got := f.reg.UDPFlows(f.id, metrics.UDPFlowOpened); got != clients {
		t.Fatalf("flows opened = %d, want %d (one per client, none lost)", got, clients)
	}
	if got := f.reg.UDPFlowsActive(f.id); got != clients {
		t.Fatalf("flows active = %d, want %d", got, clients)
	}
	if got := f.reg.UDPDropped(f.id); got != 0 {
		t.Fatalf("datagrams dropped = %d", got)
	}
}

// TestFallsBackToEpollWithoutMultishotRecvmsg makes the io_uring probe fail,
// as on a kernel without multishot recvmsg or with io_uring blocked: the
// engine says why, serves on epoll, and forwards.
func TestFallsBackToEpollWithoutMultishotRecvmsg(t *testing.T) {
	saved := probeUring
	probeUring = func() error { return fmt.Errorf("%w: kernel lacks multishot recvmsg (test)", iouring.ErrUnsupported) }
	t.Cleanup(func() { probeUring = saved })
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	f := startWith(t, Options{Workers: 1, IOUring: true},
		udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {a}}))
	name, why := f.eng.Driver()
	if name != "epoll" || !strings.Contains(why, "kernel lacks multishot recvmsg") {
		t.Fatalf("driver %q (%q), want epoll and the probe's reason", name, why)
	}
	if got := exchange(t, f.client(), []byte("q"), 2*time.Second); !strings.HasPrefix(got, "a ") {
		t.Fatalf("reply %q on the fallback", got)
	}
}

// TestRingFallsBackToEpollPerLoop makes the loops' rings fail to set up
// after the probe passed (a memory limit, say): the loops serve on epoll.
func TestRingFallsBackToEpollPerLoop(t *testing.T) {
	skipWithoutUring(t, true)
	saved := makeRing
	makeRing = func(int, bool) (*ringDriver, error) { return nil, errors.New("no ring (test)") }
	t.Cleanup(func() { makeRing = saved })
	a := newEcho(t, "a")
	port := freeUDPPort(t)
	f := startWith(t, Options{Workers: 2, IOUring: true},
		udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {a}}))
	for range 4 {
		if got := exchange(t, f.client(), []byte("q"), 2*time.Second); !strings.HasPrefix(got, "a ") {
			t.Fatalf("reply %q on the fallback", got)
		}
	}
}

// TestForwardingAllocatesNothing forwards datagrams through an established
// flow on each driver and counts the process's allocations.
func TestForwardingAllocatesNothing(t *testing.T) { eachDriver(t, testForwardingAllocatesNothing) }

func testForwardingAllocatesNothing(t *testing.T, uring bool) {
	e := plainEcho(t)
	port := freeUDPPort(t)
	f := start(t, uring, 1, udpSnapshot(port, &dataplanev1.UDPRoute{Name: "r", Backends: []*dataplanev1.TCPBackend{group("g", 1)}}, map[string][]*echo{"g": {e}}))
	c := f.client()
	msg, buf := make([]byte, 100), make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	once := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n != len(msg) {
			t.Fatalf("reply of %d bytes: %v", n, err)
		}
	}
	for range 300 { // the table, the buffers and the runtime settle
		once()
	}
	if avg := testing.AllocsPerRun(1000, once); avg != 0 {
		t.Fatalf("%v allocations per datagram and reply, want 0", avg)
	}
}
