//go:build linux

package iouring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAcceptMultishot(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	lfd, ap := listen(t)
	const ud = 0xacc
	if _, err := r.PrepareAcceptMultishot(lfd, ud); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	const n = 3
	var clients []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	cs := collect(t, r, n, 5*time.Second)
	for i, c := range cs {
		if c.UserData != ud || c.Res < 0 || !c.More() {
			t.Fatalf("accept completion %d: %+v", i, c)
		}
		peer, err := unix.Getpeername(int(c.Res))
		if err != nil {
			t.Fatal(err)
		}
		if p := peer.(*unix.SockaddrInet4).Port; p != clients[i].LocalAddr().(*net.TCPAddr).Port {
			t.Errorf("accepted fd %d peer port %d, want %v", c.Res, p, clients[i].LocalAddr())
		}
		unix.Close(int(c.Res))
	}
	if r.InFlight() != 1 {
		t.Errorf("in flight %d, want the armed accept", r.InFlight())
	}
}

func TestRecvMultishotAndSend(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	br, err := r.NewBufRing(1, 8, 256)
	if err != nil {
		t.Fatal(err)
	}
	fd, client := tcpPair(t)
	const recvUD, sendUD = 1, 2
	if _, err := r.PrepareRecvMultishot(fd, br, recvUD); err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"hello", "world", "!"} {
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c := collect(t, r, 1, 5*time.Second)[0]
		if c.UserData != recvUD || !c.More() || !c.HasBuffer() {
			t.Fatalf("recv %d: %+v", i, c)
		}
		buf, bid, ok := br.Buffer(c)
		if !ok || string(buf) != msg {
			t.Fatalf("recv %d: got %q (ok=%v)", i, buf, ok)
		}
		if br.Held() != 1 || br.Available() != 7 {
			t.Errorf("held %d available %d", br.Held(), br.Available())
		}
		// Echo straight from the provided buffer, recycle after the send.
		if _, err := r.PrepareSend(fd, buf, 0, sendUD); err != nil {
			t.Fatal(err)
		}
		s := collect(t, r, 1, 5*time.Second)[0]
		if s.UserData != sendUD || int(s.Res) != len(msg) {
			t.Fatalf("send %d: %+v", i, s)
		}
		if err := br.Recycle(bid); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(client, got); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
	// End of stream terminates the multishot receive: Res 0 without F_MORE.
	client.(*net.TCPConn).CloseWrite()
	c := collect(t, r, 1, 5*time.Second)[0]
	if c.UserData != recvUD || c.Res != 0 || c.More() || c.HasBuffer() {
		t.Fatalf("eof: %+v", c)
	}
	if r.InFlight() != 0 {
		t.Errorf("in flight %d", r.InFlight())
	}
}

func TestBufRingRecycleErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{})
	defer closeRing(t, r)
	br, err := r.NewBufRing(3, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Recycle(0); !errors.Is(err, ErrBufferNotHeld) {
		t.Errorf("recycle of a buffer owned by the kernel: %v", err)
	}
	if err := br.Recycle(9); !errors.Is(err, ErrBufferNotHeld) {
		t.Errorf("recycle of an out-of-range id: %v", err)
	}
	if _, err := r.NewBufRing(3, 4, 64); err == nil {
		t.Error("duplicate group id accepted")
	}
	if _, err := r.NewBufRing(4, 3, 64); err == nil {
		t.Error("non power-of-two entries accepted")
	}
	// Simulate the kernel handing out buffer 2.
	c := CQE{Res: 10, Flags: CQEFBuffer | 2<<16}
	buf, bid, ok := br.Buffer(c)
	if !ok || bid != 2 || len(buf) != 10 || cap(buf) != 64 {
		t.Fatalf("Buffer: ok=%v bid=%d len=%d cap=%d", ok, bid, len(buf), cap(buf))
	}
	if err := br.Recycle(2); err != nil {
		t.Fatal(err)
	}
	if err := br.Recycle(2); !errors.Is(err, ErrBufferNotHeld) {
		t.Errorf("double recycle: %v", err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareRecvMultishot(0, br, 1); err == nil {
		t.Error("closed buffer ring accepted")
	}
}

// TestBufferExhaustion fills a tiny buffer ring: the multishot receive must
// end with -ENOBUFS and no F_MORE, and resume once buffers are recycled and
// the receive re-armed.
func TestBufferExhaustion(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	const nbuf, size = 4, 64
	br, err := r.NewBufRing(7, nbuf, size)
	if err != nil {
		t.Fatal(err)
	}
	fd, client := tcpPair(t)
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if _, err := client.Write(payload); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let everything reach the receive queue

	const recvUD = 5
	var got []byte
	var held []uint16
	rounds, enobufs := 0, 0
	for len(got) < len(payload) {
		rounds++
		if rounds > 100 {
			t.Fatalf("no progress: got %d bytes", len(got))
		}
		if _, err := r.PrepareRecvMultishot(fd, br, recvUD); err != nil {
			t.Fatal(err)
		}
		// Consume completions without recycling until the receive ends.
		for done := false; !done; {
			for _, c := range collect(t, r, 1, 5*time.Second) {
				if c.Res > 0 {
					buf, bid, ok := br.Buffer(c)
					if !ok {
						t.Fatalf("data without buffer: %+v", c)
					}
					got = append(got, buf...)
					held = append(held, bid)
				}
				if !c.More() {
					done = true
					switch {
					case c.Res == errnoRes(unix.ENOBUFS):
						enobufs++
						if br.Available() != 0 {
							t.Fatalf("ENOBUFS with %d buffers available", br.Available())
						}
					case len(got) == len(payload):
					default:
						t.Fatalf("receive ended unexpectedly: %+v", c)
					}
				}
				if c.More() && len(got) == len(payload) {
					done = true // all data in; receive still armed
				}
			}
		}
		for _, bid := range held {
			if err := br.Stage(bid); err != nil {
				t.Fatal(err)
			}
		}
		br.Publish()
		held = held[:0]
		if br.Available() != nbuf {
			t.Fatalf("available %d after recycling", br.Available())
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload corrupted or reordered")
	}
	if want := (len(payload) + nbuf*size - 1) / (nbuf * size); enobufs < want-1 {
		t.Errorf("saw %d ENOBUFS terminations, expected at least %d", enobufs, want-1)
	}
	t.Logf("%d bytes in %d arming rounds, %d ENOBUFS terminations", len(got), rounds, enobufs)
}

func TestConnect(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	lfd, ap := listen(t)
	sa, err := r.Arena().NewSockaddr()
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Set(ap); err != nil {
		t.Fatal(err)
	}
	fd, err := NewTCPSocket(ap)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const connUD, accUD = 1, 2
	if _, err := r.PrepareConnect(fd, sa, connUD); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareAcceptMultishot(lfd, accUD); err != nil {
		t.Fatal(err)
	}
	cs := collect(t, r, 2, 5*time.Second)
	if c := one(t, cs, connUD); c.Res != 0 {
		t.Fatalf("connect: %v", c.Err())
	}
	acc := one(t, cs, accUD)
	if acc.Res < 0 {
		t.Fatalf("accept: %v", acc.Err())
	}
	defer unix.Close(int(acc.Res))
	local, _ := LocalAddr(fd)
	peer, _ := unix.Getpeername(int(acc.Res))
	if peer.(*unix.SockaddrInet4).Port != int(local.Port()) {
		t.Errorf("accepted peer %v, connected from %v", peer, local)
	}

	// Connecting to a closed port reports ECONNREFUSED in the CQE. (Closing
	// lfd would not do: the armed multishot accept keeps the socket alive.)
	tmp, err := ListenTCP(loopback, 1)
	if err != nil {
		t.Fatal(err)
	}
	closed, _ := LocalAddr(tmp)
	unix.Close(tmp)
	if err := sa.Set(closed); err != nil {
		t.Fatal(err)
	}
	fd2, _ := NewTCPSocket(closed)
	defer unix.Close(fd2)
	if _, err := r.PrepareConnect(fd2, sa, 3); err != nil {
		t.Fatal(err)
	}
	if c := collect(t, r, 1, 5*time.Second)[0]; c.UserData != 3 || c.Res != errnoRes(unix.ECONNREFUSED) {
		t.Fatalf("connect to closed port: %+v", c)
	}
}

func TestLinkTimeout(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	fd, _ := tcpPair(t) // the client never writes
	buf, _ := r.Arena().Alloc(128, 0)
	ts, _ := r.Arena().NewTimespec()
	ts.Set(40 * time.Millisecond)

	if err := r.Reserve(2); err != nil {
		t.Fatal(err)
	}
	s, err := r.PrepareRecv(fd, buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Link()
	if _, err := r.PrepareLinkTimeout(ts, 2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cs := collect(t, r, 2, 5*time.Second)
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Errorf("link timeout fired after %v", el)
	}
	if c := one(t, cs, 1); c.Res != errnoRes(unix.ECANCELED) {
		t.Fatalf("recv: %+v", c)
	}
	if c := one(t, cs, 2); c.Res != errnoRes(unix.ETIME) {
		t.Fatalf("link timeout: %+v", c)
	}

	// The operation wins: the link timeout is cancelled.
	s, _ = r.PrepareNop(3)
	s.Link()
	if _, err := r.PrepareLinkTimeout(ts, 4); err != nil {
		t.Fatal(err)
	}
	cs = collect(t, r, 2, 5*time.Second)
	if c := one(t, cs, 3); c.Res != 0 {
		t.Fatalf("nop: %+v", c)
	}
	if c := one(t, cs, 4); c.Res != errnoRes(unix.ECANCELED) {
		t.Fatalf("link timeout after success: %+v", c)
	}

	// A link timeout must directly follow a linked SQE.
	if _, err := r.PrepareNop(5); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareLinkTimeout(ts, 6); err == nil {
		t.Fatal("link timeout after an unlinked SQE accepted")
	}
	collect(t, r, 1, 5*time.Second)
}

func TestCancel(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	br, _ := r.NewBufRing(1, 4, 64)
	fd, _ := tcpPair(t)
	recvUD := Pack(1, 1, 1)
	if _, err := r.PrepareRecvMultishot(fd, br, recvUD); err != nil {
		t.Fatal(err)
	}
	expectNone(t, r, 20*time.Millisecond)
	if _, err := r.PrepareCancel(recvUD, 2); err != nil {
		t.Fatal(err)
	}
	cs := collect(t, r, 2, 5*time.Second)
	if c := one(t, cs, 2); c.Res != 0 {
		t.Fatalf("cancel: %+v", c)
	}
	if c := one(t, cs, recvUD); c.Res != errnoRes(unix.ECANCELED) || c.More() {
		t.Fatalf("cancelled recv: %+v", c)
	}
	if _, err := r.PrepareCancel(recvUD, 3); err != nil {
		t.Fatal(err)
	}
	if c := collect(t, r, 1, 5*time.Second)[0]; c.Res != errnoRes(unix.ENOENT) {
		t.Fatalf("cancel of finished op: %+v", c)
	}

	// Cancel by fd removes every operation on it.
	buf, _ := r.Arena().Alloc(16, 0)
	r.PrepareRecvMultishot(fd, br, 10)
	r.PrepareRecv(fd, buf, 11)
	expectNone(t, r, 10*time.Millisecond)
	if _, err := r.PrepareCancelFd(fd, 12); err != nil {
		t.Fatal(err)
	}
	cs = collect(t, r, 3, 5*time.Second)
	if c := one(t, cs, 12); c.Res != 2 {
		t.Fatalf("cancel fd: %+v", c)
	}
	if r.InFlight() != 0 {
		t.Errorf("in flight %d", r.InFlight())
	}
}

func TestCloseAndShutdown(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)

	fd, client := tcpPair(t)
	if _, err := r.PrepareShutdown(fd, unix.SHUT_WR, 1); err != nil {
		t.Fatal(err)
	}
	if c := collect(t, r, 1, 5*time.Second)[0]; c.Res != 0 {
		t.Fatalf("shutdown: %+v", c)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("peer read after shutdown: %d %v", n, err)
	}

	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareClose(dup, 2); err != nil {
		t.Fatal(err)
	}
	if c := collect(t, r, 1, 5*time.Second)[0]; c.Res != 0 {
		t.Fatalf("close: %+v", c)
	}
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("fd still open after close: %v", err)
	}
}

func TestSendmsg(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	fd, client := tcpPair(t)
	a := r.Arena()
	parts := []string{"GET / HTTP/1.1\r\n", "Host: x\r\n", "\r\n"}
	var bufs [][]byte
	for _, p := range parts {
		b, _ := a.Alloc(len(p), 1)
		copy(b, p)
		bufs = append(bufs, b)
	}
	m, _ := a.NewMsg(4)
	if err := m.Set(bufs...); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareSendmsg(fd, m, 0, 1); err != nil {
		t.Fatal(err)
	}
	want := parts[0] + parts[1] + parts[2]
	if c := collect(t, r, 1, 5*time.Second)[0]; int(c.Res) != len(want) {
		t.Fatalf("sendmsg: %+v", c)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != want {
		t.Fatalf("got %q %v", got, err)
	}
	heap := []byte("x")
	if err := m.Set(heap); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareSendmsg(fd, m, 0, 2); !errors.Is(err, ErrNotRingMemory) {
		t.Fatalf("heap iovec: %v", err)
	}
}

// TestSQFullAutoSubmit prepares more SQEs than the queue holds.
func TestSQFullAutoSubmit(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 4, Options{CQEntries: 64})
	defer closeRing(t, r)
	for i := 0; i < 20; i++ {
		if _, err := r.PrepareNop(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	cs := collect(t, r, 20, 5*time.Second)
	seen := map[uint64]bool{}
	for _, c := range cs {
		seen[c.UserData] = true
	}
	if len(seen) != 20 {
		t.Fatalf("got %d distinct completions", len(seen))
	}
}

// TestCloseDrains closes a ring with armed multishot operations and buffers.
func TestCloseDrains(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	br, _ := r.NewBufRing(1, 4, 64)
	lfd, _ := listen(t)
	fd, _ := tcpPair(t)
	buf, _ := r.Arena().Alloc(16, 0)
	r.PrepareAcceptMultishot(lfd, 1)
	r.PrepareRecvMultishot(fd, br, 2)
	r.PrepareRecv(fd, buf, 3)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if r.InFlight() != 3 {
		t.Fatalf("in flight %d", r.InFlight())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.InFlight() != 0 {
		t.Fatalf("in flight after close %d", r.InFlight())
	}
	if _, err := r.PrepareNop(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("prepare after close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestSubmitAndWaitNoBlock checks SubmitAndWait with a zero timeout: it
// still submits (inline completions are posted at once) and runs deferred
// task work (a receive completed by data that arrived after the receive was
// armed), interleaved with Submit and blocking waits.
func TestSubmitAndWaitNoBlock(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 8, Options{})
	defer closeRing(t, r)
	br, err := r.NewBufRing(1, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	fd, client := tcpPair(t)
	if _, err := r.PrepareRecvMultishot(fd, br, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PrepareNop(2); err != nil {
		t.Fatal(err)
	}
	if err := r.SubmitAndWait(0); err != nil {
		t.Fatal(err)
	}
	if c := one(t, r.Completions(), 2); c.Res != 0 {
		t.Fatalf("nop: %+v", c)
	}
	for round := 0; round < 3; round++ {
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		var got []CQE
		deadline := time.Now().Add(5 * time.Second)
		for len(got) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: receive not completed by non-blocking SubmitAndWait", round)
			}
			if err := r.SubmitAndWait(0); err != nil {
				t.Fatal(err)
			}
			got = r.Completions()
			if len(got) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		c := one(t, got, 1)
		buf, bid, ok := br.Buffer(c)
		if !ok || string(buf) != "ping" {
			t.Fatalf("round %d: recv %+v %q", round, c, buf)
		}
		if err := br.Recycle(bid); err != nil {
			t.Fatal(err)
		}
		// Alternate with the blocking path (giouring publishes the tail
		// itself there).
		for i := 0; i < 10; i++ {
			if _, err := r.PrepareNop(uint64(100 + i)); err != nil {
				t.Fatal(err)
			}
		}
		if round%2 == 0 {
			if err := r.Submit(); err != nil {
				t.Fatal(err)
			}
		}
		if cs := collect(t, r, 10, 5*time.Second); len(cs) != 10 {
			t.Fatalf("round %d: %d nop completions", round, len(cs))
		}
	}
}
