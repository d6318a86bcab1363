package udp

import (
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// Epoll data tags: the listener socket, the wake eventfd, and flows (their
// table slot plus flowTag, the slot's generation in Pad).
const (
	tagListener = 0
	tagWake     = 1
	flowTag     = 2
)

const (
	// maxDatagram holds any UDP payload (65,535 bytes less the headers).
	maxDatagram = 1 << 16
	// batch bounds the datagrams read from one socket per readiness event, so
	// that a busy flow does not starve the others.
	batch = 64
	// maxWait is the longest the loop sleeps with flows to expire later: it
	// also bounds how late a shorter idle timeout from a new config applies.
	maxWait = time.Second
)

// flow is the upstream side of a flow, and what its access log line reports.
type flow struct {
	fd    int // socket connected to the endpoint
	ep    proxy.Endpoint
	group *metrics.GroupCounters
	to    rawAddr // the client, encoded for the listener socket
	src   source  // the address the client sent to, on a wildcard socket
	armed bool    // io_uring: the multishot recvmsg on fd is armed

	// For the access log: when the flow began, the names in force then, and
	// what moved each way (counted whether or not the log is on: two adds).
	start                 int64
	listener, route, name string // name: the backend group's
	reqBytes, respBytes   int64
	reqDgrams, respDgrams int64
}

// loop serves one listener socket of one worker: the client datagrams it
// receives and the replies on its flows' upstream sockets.
type loop struct {
	slot   *engine.Slot
	w      *metrics.Worker
	alog   *accesslog.Worker // nil when the access log is off
	log    logr.Logger
	fd     int // listener socket, owned
	family int
	// pktinfo is set on a socket bound to the unspecified address: replies
	// leave from the address the client sent to (sock_linux.go).
	pktinfo bool
	msg     msgBuf
	src     source
	ep      int // epoll set; -1 on io_uring
	wake    int // eventfd that ends Run early; -1 on io_uring
	stopped atomic.Bool
	done    chan struct{}
	// ring is the io_uring driver (ring_linux.go), nil on epoll; buffers is
	// its provided buffer count (0: the default).
	ring    *ringDriver
	uring   bool
	buffers int
	// What stop wakes: the ring's waker, or the epoll loop's eventfd (-1
	// before it runs).
	waker  atomic.Pointer[iouring.Waker]
	wakeFd atomic.Int64
	// dry counts the io_uring receives that ended for want of buffers (and
	// were re-armed); read by tests.
	dry atomic.Int64

	table   *Table[flow]
	pickers *proxy.Pickers
	rng     *rand.PCG
	start   time.Time
	buf     []byte
	from    rawAddr
	events  []unix.EpollEvent
	key     [16]byte
}

// newLoop makes the loop of listener socket fd, owning it from then on. With
// uring the loop serves on an io_uring ring made when it runs (falling back
// to epoll if that fails), buffers provided buffers of it (0: the default).
func newLoop(slot *engine.Slot, fd int, w *metrics.Worker, alog *accesslog.Worker, seed uint64, log logr.Logger, uring bool, buffers int) (*loop, error) {
	l := &loop{
		slot: slot, w: w, alog: alog, log: log, fd: fd, family: familyOf(slot.Addr.Addr()), pktinfo: slot.Addr.Addr().IsUnspecified(),
		ep: -1, wake: -1, done: make(chan struct{}), uring: uring, buffers: buffers,
		table: NewTable[flow](256), pickers: proxy.NewPickers(seed), rng: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15),
		start: time.Now(),
	}
	l.wakeFd.Store(-1)
	if uring {
		// io_uring waits for the socket itself; a blocking socket is what
		// it expects.
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return l, nil
	}
	if err := l.initEpoll(); err != nil {
		l.closeAll()
		return nil, err
	}
	return l, nil
}

// initEpoll makes the loop's epoll set, its wake eventfd and its buffers.
func (l *loop) initEpoll() error {
	if err := unix.SetNonblock(l.fd, true); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	l.ep = ep
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return err
	}
	l.wake = wake
	l.buf, l.events = make([]byte, maxDatagram), make([]unix.EpollEvent, 128)
	for _, r := range []struct {
		fd  int
		tag int32
	}{{l.fd, tagListener}, {wake, tagWake}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: r.tag}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, r.fd, &ev); err != nil {
			return err
		}
	}
	return nil
}

// stop makes run return soon; it may be called from any goroutine, more
// than once.
func (l *loop) stop() {
	if l.stopped.CompareAndSwap(false, true) {
		if w := l.waker.Load(); w != nil {
			_ = w.Wake()
		}
		if wake := l.wakeFd.Load(); wake >= 0 {
			var one [8]byte
			one[0] = 1
			unix.Write(int(wake), one[:])
		}
	}
}

// now is the loop's clock in nanoseconds (monotonic).
func (l *loop) now() int64 { return int64(time.Since(l.start)) }

// run serves until stop, then ends every flow and closes the loop's
// descriptors.
func (l *loop) run() {
	defer close(l.done)
	if l.uring {
		if l.runRing() {
			return
		}
		// The ring could not be made: serve on epoll.
		l.uring = false
		if err := l.initEpoll(); err != nil {
			l.log.Error(err, "UDP listener socket stopped serving", "address", l.slot.Addr.String(), "worker", l.w.Index())
			l.closeAll()
			return
		}
	}
	l.runEpoll()
}

// runEpoll is run on the loop's epoll set.
func (l *loop) runEpoll() {
	defer l.closeAll()
	l.wakeFd.Store(int64(l.wake))
	for !l.stopped.Load() {
		n, err := unix.EpollWait(l.ep, l.events, l.waitMillis())
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			l.log.Error(err, "UDP listener socket stopped serving", "address", l.slot.Addr.String(), "worker", l.w.Index())
			return
		}
		lst := l.slot.Listener.Load()
		for i := range n {
			ev := l.events[i]
			switch {
			case ev.Fd == tagListener:
				l.fromClients(lst)
			case ev.Fd == tagWake:
				// stop() was called; the loop condition ends the loop.
			default:
				l.fromUpstream(lst, newID(ev.Fd-flowTag, uint32(ev.Pad)))
			}
		}
		l.expire(lst)
	}
}

// waitMillis is wait in milliseconds, at least 1.
func (l *loop) waitMillis() int { return max(int(l.wait().Milliseconds()), 1) }

// fromClients forwards the datagrams waiting on the listener socket.
func (l *loop) fromClients(lst *compiled.Listener) {
	var lc *metrics.ListenerCounters
	if lst != nil {
		lc = l.w.Listener(lst.Stats)
	}
	for range batch {
		var n int
		var e unix.Errno
		if l.pktinfo {
			n, e = recvMsg(l.fd, l.buf, &l.from, &l.msg, &l.src)
		} else {
			n, e = recvFrom(l.fd, l.buf, &l.from)
		}
		if e != 0 {
			return // EAGAIN, or an error the next datagram does not share
		}
		id, f, ok := l.admit(lst, lc, n)
		if !ok {
			continue
		}
		if e := writeUpstream(f.fd, l.buf[:n]); e != 0 {
			l.upstreamSendFailed(id, lc, e)
		}
	}
}

// admit counts a client datagram of n bytes from l.from (l.src holding the
// address it was sent to) and finds or opens its flow; false when no flow
// takes it (counted as dropped).
func (l *loop) admit(lst *compiled.Listener, lc *metrics.ListenerCounters, n int) (ID, *flow, bool) {
	if lst == nil || lst.UDP == nil {
		return 0, nil, false
	}
	l.w.ClientBytes(lc, n, 0)
	now := l.now()
	client := l.from.addrPort()
	id, ok := l.table.Lookup(client)
	if ok {
		l.table.Touch(id, now)
	} else if id, ok = l.open(lst, lc, client, now); !ok {
		l.w.UDPDropped(lc)
		return 0, nil, false
	}
	f, _ := l.table.Value(id)
	f.reqBytes += int64(n)
	f.reqDgrams++
	return id, f, true
}

// upstreamSendFailed counts a client datagram flow id could not send
// upstream; a refusal ends the flow.
func (l *loop) upstreamSendFailed(id ID, lc *metrics.ListenerCounters, e unix.Errno) {
	l.w.UDPDropped(lc)
	if e == unix.ECONNREFUSED {
		// The endpoint said its port is closed: the next datagram picks
		// again.
		l.end(id, lc, metrics.UDPFlowClosed, accesslog.FlowRefused)
	}
}

// open starts the flow of a new client: a backend by weight, an endpoint by
// the group's picker (skipping unhealthy ones), a socket connected to it;
// when the listener is at its bound, the idlest flow ends first.
func (l *loop) open(lst *compiled.Listener, lc *metrics.ListenerCounters, client netip.AddrPort, now int64) (ID, bool) {
	b := lst.UDP.PickBackend(uint32(l.rng.Uint64()))
	if b == nil || b.Group == nil {
		return 0, false
	}
	var key []byte
	if b.Group.HashSourceIP {
		l.key = client.Addr().Unmap().As16()
		key = l.key[:]
	}
	ep, ok := l.pickers.Pick(b.Group, key, nil)
	if !ok {
		return 0, false
	}
	fd, err := dialUpstream(ep.Addr, !l.uring)
	if err != nil {
		l.pickers.Done(ep)
		return 0, false
	}
	for {
		old, over := l.table.OverBound(lst.UDPMaxFlows)
		if !over {
			break
		}
		l.end(old, lc, metrics.UDPFlowEvicted, accesslog.FlowEvicted)
	}
	f := flow{
		fd: fd, ep: ep, group: l.w.Group(b.Group.Stats), src: l.src,
		start: now, listener: lst.Name, route: lst.UDP.Name, name: b.Group.Name,
	}
	f.to.set(client, l.family)
	id := l.table.Insert(client, now, f)
	if err := l.watch(id, fd); err != nil {
		l.table.Remove(id)
		unix.Close(fd)
		l.pickers.Done(ep)
		return 0, false
	}
	if f.group != nil {
		l.w.UpstreamConn(f.group, 1)
	}
	l.w.UDPFlow(lc, metrics.UDPFlowOpened)
	return id, true
}

// watch has the loop's driver wait for the datagrams of flow id's upstream
// socket fd.
func (l *loop) watch(id ID, fd int) error {
	if l.ring != nil {
		return l.ring.armFlow(l, id, fd)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: id.Slot() + flowTag, Pad: int32(id.Gen())}
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev)
}

// fromUpstream sends the datagrams waiting on flow id's upstream socket to
// its client.
func (l *loop) fromUpstream(lst *compiled.Listener, id ID) {
	var lc *metrics.ListenerCounters
	if lst != nil {
		lc = l.w.Listener(lst.Stats)
	}
	f, ok := l.table.Value(id)
	if !ok {
		return // the flow ended earlier in this batch of events
	}
	fd := f.fd
	for range batch {
		n, e := readUpstream(fd, l.buf)
		if e == unix.EAGAIN || e == unix.EINTR {
			return
		}
		if e != 0 {
			l.upstreamFailed(id, lc, e)
			return
		}
		l.table.Touch(id, l.now())
		f, _ = l.table.Value(id)
		if sendMsg(l.fd, l.buf[:n], &f.to, &f.src, &l.msg) == 0 {
			l.w.ClientBytes(lc, 0, n)
			f.respBytes += int64(n)
			f.respDgrams++
		}
	}
}

// upstreamFailed ends flow id after its upstream socket failed with e:
// ECONNREFUSED and the like, the endpoint is gone; the client's next
// datagram picks again.
func (l *loop) upstreamFailed(id ID, lc *metrics.ListenerCounters, e unix.Errno) {
	reason := accesslog.FlowUpstreamError
	if e == unix.ECONNREFUSED {
		reason = accesslog.FlowRefused
	}
	l.end(id, lc, metrics.UDPFlowClosed, reason)
}

// expire ends the flows idle for the listener's idle timeout.
func (l *loop) expire(lst *compiled.Listener) {
	if lst == nil {
		return
	}
	lc := l.w.Listener(lst.Stats)
	now, idle := l.now(), int64(lst.UDPIdleTimeout)
	for {
		id, ok := l.table.Expired(now, idle)
		if !ok {
			return
		}
		l.end(id, lc, metrics.UDPFlowExpired, accesslog.FlowIdle)
	}
}

// end ends flow id, counting it as event e and logging it with reason (an
// accesslog.Flow reason).
func (l *loop) end(id ID, lc *metrics.ListenerCounters, e metrics.UDPFlowEvent, reason string) {
	f, client, ok := l.table.Remove(id)
	if !ok {
		return
	}
	if l.alog != nil {
		l.alog.LogFlow(&accesslog.Flow{
			Start: f.start, End: l.now(),
			Listener: f.listener, Route: f.route, BackendGroup: f.name,
			Client: client, Upstream: f.ep.Addr,
			RequestBytes: f.reqBytes, ResponseBytes: f.respBytes,
			RequestDatagrams: f.reqDgrams, ResponseDatagrams: f.respDgrams,
			Reason: reason,
		})
	}
	if l.ring != nil {
		l.ring.disarmFlow(id, &f)
	}
	unix.Close(f.fd) // leaves the epoll set with it
	l.pickers.Done(f.ep)
	if f.group != nil {
		l.w.UpstreamConn(f.group, -1)
	}
	l.w.UDPFlow(lc, e)
}

// closeAll ends every flow and closes the loop's descriptors.
func (l *loop) closeAll() {
	var lc *metrics.ListenerCounters
	if lst := l.slot.Listener.Load(); lst != nil {
		lc = l.w.Listener(lst.Stats)
	}
	for {
		id, _, ok := l.table.Oldest()
		if !ok {
			break
		}
		l.end(id, lc, metrics.UDPFlowClosed, accesslog.FlowShutdown)
	}
	unix.Close(l.fd)
	if l.ep >= 0 {
		unix.Close(l.ep)
	}
	if l.wake >= 0 {
		l.wakeFd.Store(-1)
		unix.Close(l.wake)
	}
}
