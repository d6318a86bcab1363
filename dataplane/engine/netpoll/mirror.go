package netpoll

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/h2c"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Defaults for zero MirrorOptions fields.
const (
	DefaultMirrorSenders = 4
	DefaultMirrorQueue   = 1024
	DefaultMirrorTimeout = 5 * time.Second
)

// MirrorOptions configure a MirrorSender. Zero fields take their defaults.
type MirrorOptions struct {
	// Senders is the number of goroutines sending mirrored requests.
	Senders int
	// Queue bounds the mirrored requests waiting for a sender; more are
	// dropped.
	Queue int
	// Timeout bounds one mirrored exchange: connect, write, and the wait for
	// the response's status line.
	Timeout time.Duration
}

// MirrorSender is a node's compiled.MirrorSender on Go's net package, usable
// with any engine: a bounded queue served by a few goroutines. Each copy
// goes to a ready endpoint of its group (round robin, skipping those the
// health checker marks unhealthy while any other is left) on a connection
// of its own, which is closed once the status line is read: the response is
// discarded. Copies that find the queue full are dropped. Outcomes are
// counted in flax_mirror_requests_total (sent, failed, dropped).
type MirrorSender struct {
	opts  MirrorOptions
	queue chan *mirrorJob
	jobs  sync.Pool
	next  atomic.Uint32
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

var _ compiled.MirrorSender = (*MirrorSender)(nil)

// mirrorJob is one queued copy.
type mirrorJob struct {
	g   *compiled.Group
	buf []byte
}

// maxPooledJob bounds the buffer a recycled job keeps.
const maxPooledJob = 256 << 10

// NewMirrorSender starts a sender; Close stops it.
func NewMirrorSender(opts MirrorOptions) *MirrorSender {
	if opts.Senders <= 0 {
		opts.Senders = DefaultMirrorSenders
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultMirrorQueue
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultMirrorTimeout
	}
	m := &MirrorSender{opts: opts, queue: make(chan *mirrorJob, opts.Queue), quit: make(chan struct{})}
	m.jobs.New = func() any { return &mirrorJob{buf: make([]byte, 0, 4096)} }
	for range opts.Senders {
		m.wg.Add(1)
		go m.run()
	}
	return m
}

// Mirror implements compiled.MirrorSender. It copies head and body and never
// blocks; it does not allocate once its job pool is warm.
func (m *MirrorSender) Mirror(g *compiled.Group, head, body []byte) bool {
	j := m.jobs.Get().(*mirrorJob)
	j.g = g
	j.buf = append(append(j.buf[:0], head...), body...)
	select {
	case m.queue <- j:
		return true
	default:
		m.recycle(j)
		if g.Shared != nil {
			g.Shared.Mirror(metrics.MirrorDropped)
		}
		return false
	}
}

// Close stops the senders; queued copies are dropped.
func (m *MirrorSender) Close() {
	m.once.Do(func() { close(m.quit) })
	m.wg.Wait()
}

func (m *MirrorSender) recycle(j *mirrorJob) {
	j.g = nil
	if cap(j.buf) <= maxPooledJob {
		m.jobs.Put(j)
	}
}

func (m *MirrorSender) run() {
	defer m.wg.Done()
	for {
		select {
		case <-m.quit:
			return
		case j := <-m.queue:
			r := m.send(j)
			if j.g.Shared != nil {
				j.g.Shared.Mirror(r)
			}
			m.recycle(j)
		}
	}
}

// send performs one mirrored exchange.
func (m *MirrorSender) send(j *mirrorJob) metrics.MirrorResult {
	eps := j.g.Endpoints()
	bad := j.g.Unhealthy(eps)
	n := eps.Len()
	pick, fallback := -1, -1
	start := int(m.next.Add(1))
	for k := range n {
		i := (start + k) % n
		e := eps.Endpoint(i)
		if !e.Ready && !(eps.TerminatingFallback() && e.Serving && e.Terminating) {
			continue
		}
		if fallback < 0 {
			fallback = i
		}
		if !bad.Has(i) {
			pick = i
			break
		}
	}
	if pick < 0 {
		pick = fallback
	}
	if pick < 0 {
		return metrics.MirrorDropped
	}
	addr := eps.Endpoint(pick).Addr
	deadline := time.Now().Add(m.opts.Timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c, err := dialUpstream(ctx, j.g, addr, nil)
	if err != nil {
		return metrics.MirrorFailed
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if j.g.H2C {
		// The group speaks HTTP/2: the copy goes as one stream of a new
		// h2c connection.
		if _, err := h2c.RoundTrip(c, j.buf); err != nil {
			return metrics.MirrorFailed
		}
		return metrics.MirrorSent
	}
	if _, err := c.Write(j.buf); err != nil {
		return metrics.MirrorFailed
	}
	var line [64]byte
	got := 0
	for got < len(line) && bytes.IndexByte(line[:got], '\n') < 0 {
		k, err := c.Read(line[got:])
		got += k
		if err != nil {
			break
		}
	}
	if got < 12 || !bytes.HasPrefix(line[:got], []byte("HTTP/1.")) {
		return metrics.MirrorFailed
	}
	return metrics.MirrorSent
}
