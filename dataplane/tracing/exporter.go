package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultQueueSize   = 1024
	DefaultInterval    = time.Second
	DefaultBatchSize   = 512
	DefaultTimeout     = 10 * time.Second
	DefaultServiceName = "flax"
)

// Options configure an Exporter.
type Options struct {
	// Workers is the number of queues, one per engine worker (Record's
	// worker argument is below it).
	Workers int
	// QueueSize is the number of spans each worker's queue holds (rounded up
	// to a power of two; default DefaultQueueSize). A full queue drops spans.
	QueueSize int
	// Interval is how often the queues are drained (default DefaultInterval);
	// a queue half full is drained at once.
	Interval time.Duration
	// BatchSize is the most spans one post carries (default DefaultBatchSize).
	BatchSize int
	// Client posts the batches; nil uses one with DefaultTimeout.
	Client *http.Client
	// Version is the service.version of the spans' resource ("" leaves it out).
	Version string
	// Log receives export failures (at most one line a minute).
	Log logr.Logger
}

// Exporter queues finished spans per worker and posts them to an OTLP/HTTP
// receiver from its own goroutine (Run).
type Exporter struct {
	opts   Options
	cfg    atomic.Pointer[config]
	queues atomic.Pointer[[]*queue] // nil until an endpoint is configured
	wake   chan struct{}

	exported, dropped, failed atomic.Uint64

	mu      sync.Mutex // held while draining (Run and Flush)
	enc     encoder
	lastLog time.Time

	desc *prometheus.Desc
}

type config struct {
	endpoint, service string
}

// New returns an exporter with nothing configured: Record drops nothing and
// queues nothing until Configure names an endpoint.
func New(opts Options) *Exporter {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	size := 1
	for size < opts.QueueSize {
		size <<= 1
	}
	opts.QueueSize = size
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: DefaultTimeout}
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	return &Exporter{
		opts: opts, wake: make(chan struct{}, 1),
		desc: prometheus.NewDesc("flax_tracing_spans_total", "Spans of sampled requests, by result: exported (the receiver took them), dropped (a worker's queue was full), failed (the post to the receiver failed).", []string{"result"}, nil),
	}
}

// Configure sets the receiver's URL and the service name ("" means
// DefaultServiceName). An empty endpoint turns export off: spans queued are
// discarded at the next drain. The queues are allocated with the first
// endpoint.
func (e *Exporter) Configure(endpoint, service string) {
	if service == "" {
		service = DefaultServiceName
	}
	if endpoint != "" && e.queues.Load() == nil {
		qs := make([]*queue, e.opts.Workers)
		for i := range qs {
			qs[i] = newQueue(e.opts.QueueSize)
		}
		e.queues.Store(&qs)
	}
	e.cfg.Store(&config{endpoint: endpoint, service: service})
}

// Record queues a copy of s from worker (0 to Workers-1). It never blocks:
// with the queue full the span is dropped and counted.
func (e *Exporter) Record(worker int, s *Span) {
	qs := e.queues.Load()
	if qs == nil {
		return
	}
	q := (*qs)[worker%len(*qs)]
	pos := q.push(s)
	if pos < 0 {
		e.dropped.Add(1)
		return
	}
	// The span that fills the queue to half wakes the exporter.
	if uint64(pos)-q.tail.Load() == uint64(len(q.slots)/2) {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// Run drains the queues every Interval (or when one is half full) until ctx
// ends, then once more.
func (e *Exporter) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), e.opts.Client.Timeout)
			_ = e.Flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-e.wake:
		}
		_ = e.Flush(ctx)
	}
}

// Flush posts every span queued so far, in batches of at most BatchSize, and
// returns the first error.
func (e *Exporter) Flush(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	qs := e.queues.Load()
	cfg := e.cfg.Load()
	if qs == nil || cfg == nil {
		return nil
	}
	var first error
	for {
		e.enc.reset()
		n := 0
		for _, q := range *qs {
			for n < e.opts.BatchSize {
				s := q.peek()
				if s == nil {
					break
				}
				if cfg.endpoint != "" {
					e.enc.add(s)
					n++
				}
				q.pop()
			}
		}
		if n == 0 {
			return first
		}
		if err := e.post(ctx, cfg, e.enc.request(cfg.service, e.opts.Version)); err != nil {
			e.failed.Add(uint64(n))
			if first == nil {
				first = err
			}
			if time.Since(e.lastLog) > time.Minute {
				e.lastLog = time.Now()
				e.opts.Log.Error(err, "spans not exported", "endpoint", cfg.endpoint, "spans", n)
			}
			continue
		}
		e.exported.Add(uint64(n))
	}
}

// post sends one ExportTraceServiceRequest.
func (e *Exporter) post(ctx context.Context, cfg *config, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	res, err := e.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("OTLP receiver answered %s: %q", res.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Counts returns the spans exported, dropped and failed so far.
func (e *Exporter) Counts() (exported, dropped, failed uint64) {
	return e.exported.Load(), e.dropped.Load(), e.failed.Load()
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	exported, dropped, failed := e.Counts()
	ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, float64(exported), "exported")
	ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, float64(dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, float64(failed), "failed")
}
