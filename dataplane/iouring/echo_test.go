//go:build linux

package iouring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Operation codes packed into user_data by the test echo server.
const (
	opAccept uint8 = iota + 1
	opRecv
	opSend
	opClose
	opCancel
	opWake
	opCliConnect
	opCliSend
	opCliRecv
)

var errStopped = errors.New("stopped")

type pendingBuf struct {
	bid uint16
	n   int
}

type echoConn struct {
	fd      int
	gen     uint32
	open    bool
	eof     bool
	closing bool
	sending bool
	starved bool
	sent    int          // bytes of q[qh] already sent
	q       []pendingBuf // FIFO of received buffers awaiting echo
	qh, qn  int
}

// echoServer is a single-threaded io_uring echo server: multishot accept,
// multishot receive into provided buffers, and sends straight from those
// buffers (one send in flight per connection, so echoes stay ordered). It
// optionally drives an in-ring client connection for allocation checks and
// benchmarks.
type echoServer struct {
	r       *Ring
	br      *BufRing
	w       *Waker
	lfd     int
	conns   []echoConn
	free    []uint32
	starved []uint32
	stop    atomic.Bool

	accepted atomic.Int64
	closed   atomic.Int64
	enobufs  atomic.Int64

	// in-ring client (ping-pong mode)
	cfd      int
	cliMsg   []byte
	cliGot   int
	cliArmed bool
}

func newEchoServer(maxConns, nbuf, bufSize int) (*echoServer, error) {
	r, err := New(256, Options{CQEntries: 4096})
	if err != nil {
		return nil, err
	}
	s := &echoServer{r: r, lfd: -1, cfd: -1}
	if s.br, err = r.NewBufRing(1, nbuf, bufSize); err != nil {
		r.Close()
		return nil, err
	}
	if s.w, err = r.NewWaker(Pack(opWake, 0, 0)); err != nil {
		r.Close()
		return nil, err
	}
	s.conns = make([]echoConn, maxConns)
	for i := range s.conns {
		s.conns[i].q = make([]pendingBuf, nbuf)
		s.free = append(s.free, uint32(maxConns-1-i))
	}
	s.starved = make([]uint32, 0, maxConns)
	if s.lfd, err = ListenTCP(loopback, 1024); err != nil {
		r.Close()
		return nil, err
	}
	if _, err := r.PrepareAcceptMultishot(s.lfd, Pack(opAccept, 0, 0)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *echoServer) addr() netip.AddrPort {
	ap, _ := LocalAddr(s.lfd)
	return ap
}

func (s *echoServer) close() error {
	err := s.r.Close()
	unix.Close(s.lfd)
	if s.cfd >= 0 {
		unix.Close(s.cfd)
	}
	return err
}

// step runs one loop iteration: submit, wait, handle the batch.
func (s *echoServer) step(timeout time.Duration) error {
	if err := s.r.SubmitAndWait(timeout); err != nil {
		return err
	}
	for _, c := range s.r.Completions() {
		if err := s.handle(c); err != nil {
			return err
		}
	}
	return s.rearmStarved()
}

func (s *echoServer) run() error {
	for {
		if err := s.step(NoTimeout); err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			return err
		}
	}
}

func (s *echoServer) handle(c CQE) error {
	op, gen, slot := Unpack(c.UserData)
	switch op {
	case opWake:
		if err := s.w.Handle(c); err != nil {
			return err
		}
		if s.stop.Load() {
			return errStopped
		}
	case opAccept:
		if c.Res >= 0 {
			s.accept(int(c.Res))
		}
		if !c.More() && !s.stop.Load() {
			if _, err := s.r.PrepareAcceptMultishot(s.lfd, Pack(opAccept, 0, 0)); err != nil {
				return err
			}
		}
	case opRecv:
		return s.recv(c, gen, slot)
	case opSend:
		return s.sendDone(c, gen, slot)
	case opClose:
		cn := &s.conns[slot]
		if cn.gen == gen && cn.open {
			cn.open = false
			s.free = append(s.free, slot)
			s.closed.Add(1)
		}
	case opCancel:
	case opCliConnect:
		if c.Res != 0 {
			return fmt.Errorf("client connect: %w", c.Err())
		}
	case opCliSend:
		if int(c.Res) != len(s.cliMsg) {
			return fmt.Errorf("client send: res %d", c.Res)
		}
	case opCliRecv:
		if c.Res > 0 {
			buf, bid, ok := s.br.Buffer(c)
			if !ok {
				return fmt.Errorf("client recv without buffer: %+v", c)
			}
			if !bytes.Equal(buf, s.cliMsg[s.cliGot:s.cliGot+len(buf)]) {
				return fmt.Errorf("client got corrupted echo")
			}
			s.cliGot += len(buf)
			if err := s.br.Recycle(bid); err != nil {
				return err
			}
		}
		if !c.More() {
			s.cliArmed = false
			if c.Res <= 0 && c.Res != errnoRes(unix.ENOBUFS) {
				return fmt.Errorf("client recv ended: %+v", c)
			}
		}
	default:
		return fmt.Errorf("unknown op in %+v", c)
	}
	return nil
}

func (s *echoServer) accept(fd int) {
	if len(s.free) == 0 {
		unix.Close(fd)
		return
	}
	slot := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	cn := &s.conns[slot]
	cn.fd, cn.gen = fd, NextGen(cn.gen)
	cn.open, cn.eof, cn.closing, cn.sending, cn.starved = true, false, false, false, false
	cn.sent, cn.qh, cn.qn = 0, 0, 0
	s.accepted.Add(1)
	if _, err := s.r.PrepareRecvMultishot(fd, s.br, Pack(opRecv, cn.gen, slot)); err != nil {
		cn.eof = true
		s.maybeClose(cn, slot)
	}
}

func (s *echoServer) recv(c CQE, gen, slot uint32) error {
	cn := &s.conns[slot]
	if !cn.open || cn.gen != gen {
		// Late completion for a previous occupant of the slot.
		if _, bid, ok := s.br.Buffer(c); ok {
			return s.br.Recycle(bid)
		}
		return nil
	}
	switch {
	case c.Res > 0:
		_, bid, ok := s.br.Buffer(c)
		if !ok {
			return fmt.Errorf("recv without buffer: %+v", c)
		}
		cn.q[(cn.qh+cn.qn)%len(cn.q)] = pendingBuf{bid: bid, n: int(c.Res)}
		cn.qn++
		if !cn.sending {
			if err := s.sendNext(cn, slot); err != nil {
				return err
			}
		}
		if !c.More() && !cn.eof {
			if _, err := s.r.PrepareRecvMultishot(cn.fd, s.br, Pack(opRecv, cn.gen, slot)); err != nil {
				return err
			}
		}
	case c.Res == errnoRes(unix.ENOBUFS):
		// The buffer ring ran dry; re-arm once buffers come back.
		s.enobufs.Add(1)
		cn.starved = true
		s.starved = append(s.starved, slot)
	default: // EOF, reset or cancelled
		cn.eof = true
		s.maybeClose(cn, slot)
	}
	return nil
}

func (s *echoServer) sendNext(cn *echoConn, slot uint32) error {
	if cn.qn == 0 {
		cn.sending = false
		s.maybeClose(cn, slot)
		return nil
	}
	p := cn.q[cn.qh]
	buf := s.br.Bytes(p.bid, p.n)[cn.sent:]
	if _, err := s.r.PrepareSend(cn.fd, buf, 0, Pack(opSend, cn.gen, slot)); err != nil {
		return err
	}
	cn.sending = true
	return nil
}

func (s *echoServer) sendDone(c CQE, gen, slot uint32) error {
	cn := &s.conns[slot]
	if cn.gen != gen || !cn.open {
		return fmt.Errorf("send completion for stale slot %d", slot)
	}
	if c.Res < 0 {
		// Peer gone: drop queued data and stop receiving.
		for ; cn.qn > 0; cn.qn-- {
			if err := s.br.Recycle(cn.q[cn.qh].bid); err != nil {
				return err
			}
			cn.qh = (cn.qh + 1) % len(cn.q)
		}
		cn.sent, cn.sending, cn.eof = 0, false, true
		if _, err := s.r.PrepareCancel(Pack(opRecv, cn.gen, slot), Pack(opCancel, 0, 0)); err != nil {
			return err
		}
		s.maybeClose(cn, slot)
		return nil
	}
	cn.sent += int(c.Res)
	if cn.sent == cn.q[cn.qh].n {
		if err := s.br.Recycle(cn.q[cn.qh].bid); err != nil {
			return err
		}
		cn.qh = (cn.qh + 1) % len(cn.q)
		cn.qn--
		cn.sent = 0
	}
	return s.sendNext(cn, slot) // short send: resend the remainder
}

func (s *echoServer) maybeClose(cn *echoConn, slot uint32) {
	if !cn.eof || cn.sending || cn.qn > 0 || cn.closing {
		return
	}
	cn.closing = true
	if _, err := s.r.PrepareClose(cn.fd, Pack(opClose, cn.gen, slot)); err != nil {
		unix.Close(cn.fd)
		cn.open = false
		s.free = append(s.free, slot)
		s.closed.Add(1)
	}
}

func (s *echoServer) rearmStarved() error {
	n := 0
	for _, slot := range s.starved {
		cn := &s.conns[slot]
		if !cn.open || !cn.starved || cn.eof {
			continue
		}
		if s.br.Available() == 0 {
			s.starved[n] = slot
			n++
			continue
		}
		cn.starved = false
		if _, err := s.r.PrepareRecvMultishot(cn.fd, s.br, Pack(opRecv, cn.gen, slot)); err != nil {
			return err
		}
	}
	s.starved = s.starved[:n]
	return nil
}

// TestEchoServer runs the echo server on one locked OS thread against 50
// concurrent net.Dial clients, each sending messages of random sizes that span
// several provided buffers (the small buffer ring also runs dry regularly).
func TestEchoServer(t *testing.T) {
	const clients, messages = 50, 20
	type started struct {
		s   *echoServer
		err error
	}
	startc := make(chan started)
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, err := newEchoServer(64, 64, 1024)
		startc <- started{s, err}
		if err != nil {
			return
		}
		err = s.run()
		if cerr := s.close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	st := <-startc
	if st.err != nil {
		t.Fatal(st.err)
	}
	s := st.s
	addr := s.addr().String()

	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			errc <- echoClient(addr, seed, messages)
		}(int64(i))
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.closed.Load() < clients && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.stop.Store(true)
	if err := s.w.Wake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	if a, c := s.accepted.Load(), s.closed.Load(); a != clients || c != clients {
		t.Errorf("accepted %d closed %d, want %d", a, c, clients)
	}
	t.Logf("ENOBUFS re-arms: %d", s.enobufs.Load())
}

func echoClient(addr string, seed int64, messages int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < messages; i++ {
		msg := make([]byte, 1+rng.Intn(4000))
		rng.Read(msg)
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("client %d write %d: %w", seed, i, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("client %d read %d: %w", seed, i, err)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("client %d message %d: echo mismatch", seed, i)
		}
	}
	return nil
}

// newPingPong builds an echo server plus an in-ring client connected to it,
// all on the calling (locked) thread.
func newPingPong(tb testing.TB, msgSize int) *echoServer {
	tb.Helper()
	s, err := newEchoServer(4, 64, 4096)
	if err != nil {
		tb.Fatal(err)
	}
	ap := s.addr()
	if s.cfd, err = NewTCPSocket(ap); err != nil {
		tb.Fatal(err)
	}
	sa, _ := s.r.Arena().NewSockaddr()
	sa.Set(ap)
	if _, err := s.r.PrepareConnect(s.cfd, sa, Pack(opCliConnect, 0, 0)); err != nil {
		tb.Fatal(err)
	}
	if s.cliMsg, err = s.r.Arena().Alloc(msgSize, 0); err != nil {
		tb.Fatal(err)
	}
	for i := range s.cliMsg {
		s.cliMsg[i] = byte(i)
	}
	for s.accepted.Load() == 0 {
		if err := s.step(time.Second); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// roundTrip sends the client message and runs the loop until the echo is
// back.
func (s *echoServer) roundTrip() error {
	if !s.cliArmed {
		if _, err := s.r.PrepareRecvMultishot(s.cfd, s.br, Pack(opCliRecv, 0, 0)); err != nil {
			return err
		}
		s.cliArmed = true
	}
	if _, err := s.r.PrepareSend(s.cfd, s.cliMsg, 0, Pack(opCliSend, 0, 0)); err != nil {
		return err
	}
	s.cliGot = 0
	for s.cliGot < len(s.cliMsg) {
		if err := s.step(5 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

// TestSteadyStateZeroAlloc checks that a full loop iteration (prepare,
// submit, wait, iterate completions, recycle buffers) allocates nothing.
func TestSteadyStateZeroAlloc(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := newPingPong(t, 512)
	defer s.close()
	for i := 0; i < 100; i++ { // warm up
		if err := s.roundTrip(); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		if e := s.roundTrip(); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%.2f allocations per echo round trip, want 0", allocs)
	}

	// The bare wait path too, including a timed-out wait.
	allocs = testing.AllocsPerRun(200, func() {
		if e := s.r.SubmitAndWait(time.Microsecond); e != nil && err == nil {
			err = e
		}
		_ = s.r.Completions()
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%.2f allocations per timed wait, want 0", allocs)
	}

	// Blocking and polling waits.
	allocs = testing.AllocsPerRun(200, func() {
		if _, e := s.r.PrepareNop(Pack(opCancel, 0, 0)); e != nil && err == nil {
			err = e
		}
		if e := s.r.SubmitAndWait(NoTimeout); e != nil && err == nil {
			err = e
		}
		if e := s.r.SubmitAndWait(0); e != nil && err == nil {
			err = e
		}
		for _, c := range s.r.Completions() {
			if e := s.handle(c); e != nil && err == nil {
				err = e
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%.2f allocations per blocking wait, want 0", allocs)
	}
}

func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("in-ring/%dB", size), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			s := newPingPong(b, size)
			defer s.close()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.roundTrip(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("net-client/64B", func(b *testing.B) {
		startc := make(chan *echoServer)
		done := make(chan error)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			s, err := newEchoServer(4, 64, 4096)
			if err != nil {
				startc <- nil
				done <- err
				return
			}
			startc <- s
			err = s.run()
			s.close()
			done <- err
		}()
		s := <-startc
		if s == nil {
			b.Fatal(<-done)
		}
		c, err := net.Dial("tcp", s.addr().String())
		if err != nil {
			b.Fatal(err)
		}
		msg := make([]byte, 64)
		got := make([]byte, 64)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, got); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		c.Close()
		s.stop.Store(true)
		s.w.Wake()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}
