//go:build linux

package iouring

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpSocket binds a blocking UDP socket on 127.0.0.1 and returns it with its
// address.
func udpSocket(t testing.TB) (int, netip.AddrPort) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	ap, err := LocalAddr(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, ap
}

// TestRecvmsgMultishotAndSendDgram receives datagrams of several sizes (an
// empty one included) with a multishot recvmsg, one CQE each with the
// sender's address, and answers each from its own buffer with a sendmsg to
// that address. The buffers are reserved, not populated: the kernel's write
// of a large datagram faults their pages in.
func TestRecvmsgMultishotAndSendDgram(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	br, err := r.ReserveBufRing(1, 8, 1<<16+256)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Arena().NewRecvmsgHdr(unix.SizeofSockaddrInet6, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Arena().NewDgramMsg()
	if err != nil {
		t.Fatal(err)
	}
	fd, ap := udpSocket(t)
	if _, err := r.PrepareRecvmsgMultishot(fd, h, br, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte("z"), 60000), []byte("after")}
	for i, p := range sent {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		cqe := one(t, collect(t, r, 1, 2*time.Second), 1)
		if cqe.Res < 0 {
			t.Fatalf("completion %d: %+v", i, cqe)
		}
		// An empty datagram ends the multishot recvmsg (the kernel sees a
		// receive of 0 bytes as the end): it is delivered, then re-armed.
		if more := cqe.More(); more != (len(p) > 0) {
			t.Fatalf("datagram %d of %d bytes: F_MORE %v", i, len(p), more)
		} else if !more {
			if _, err := r.PrepareRecvmsgMultishot(fd, h, br, 1); err != nil {
				t.Fatal(err)
			}
		}
		buf, bid, ok := br.Buffer(cqe)
		if !ok {
			t.Fatalf("completion %d carries no buffer", i)
		}
		got, ok := h.ParseRecvmsg(buf)
		if !ok || got.Truncated || !bytes.Equal(got.Payload, sent[i]) {
			t.Fatalf("datagram %d: %d bytes (truncated %v), want %d", i, len(got.Payload), got.Truncated, len(sent[i]))
		}
		if len(got.Name) != unix.SizeofSockaddrInet4 {
			t.Fatalf("sender address of %d bytes", len(got.Name))
		}
		if err := m.Set(got.Payload, got.Name, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PrepareSendDgram(fd, m, 2); err != nil {
			t.Fatal(err)
		}
		if sc := one(t, collect(t, r, 1, 2*time.Second), 2); int(sc.Res) != len(sent[i]) {
			t.Fatalf("send %d: res %d", i, sc.Res)
		}
		if err := br.Recycle(bid); err != nil {
			t.Fatal(err)
		}
		rb := make([]byte, 1<<16)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(rb)
		if err != nil || !bytes.Equal(rb[:n], sent[i]) {
			t.Fatalf("reply %d: %d bytes, %v", i, n, err)
		}
	}
}

// TestRecvmsgMultishotRunsDry sends more datagrams than the ring has
// buffers: the recvmsg ends with ENOBUFS, and once the buffers are recycled
// and it is re-armed, the datagrams that waited in the socket arrive.
func TestRecvmsgMultishotRunsDry(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	br, err := r.NewBufRing(1, 2, 512)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Arena().NewRecvmsgHdr(unix.SizeofSockaddrInet6, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd, ap := udpSocket(t)
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if _, err := c.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	for rounds := 0; len(got) < 5; rounds++ {
		if rounds > 5 {
			t.Fatalf("received %q after %d arms", got, rounds)
		}
		if _, err := r.PrepareRecvmsgMultishot(fd, h, br, 1); err != nil {
			t.Fatal(err)
		}
		var bids []uint16
		for done := false; !done; {
			for _, cqe := range collect(t, r, 1, 2*time.Second) {
				if buf, bid, ok := br.Buffer(cqe); ok {
					m, _ := h.ParseRecvmsg(buf)
					got = append(got, m.Payload...)
					bids = append(bids, bid)
				}
				if !cqe.More() {
					if cqe.Res != errnoRes(unix.ENOBUFS) && len(got) < 5 {
						t.Fatalf("final completion %+v, want ENOBUFS", cqe)
					}
					done = true
				}
			}
			if len(got) == 5 {
				break
			}
		}
		for _, b := range bids {
			if err := br.Stage(b); err != nil {
				t.Fatal(err)
			}
		}
		br.Publish()
	}
	if string(got) != "abcde" {
		t.Fatalf("received %q, want abcde in order", got)
	}
}
