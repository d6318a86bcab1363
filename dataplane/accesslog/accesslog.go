// Package accesslog is the dataplane's optional JSON access log: one JSON object per
// line for every finished request and every ended UDP flow, written to a file (reopened on SIGHUP for log
// rotation) or to stdout.
//
// # Format
//
// Every request line has the same keys, in this order:
//
//	{"time":"2026-01-02T15:04:05.123Z","listener":"web","route":"app","method":"GET",
//	 "path":"/index.html?q=1","protocol":"HTTP/1.1","status":200,"response_bytes":612,
//	 "request_bytes":78,"duration_ms":1.204,"upstream":"10.0.0.1:80","backend_group":"one",
//	 "attempts":1,"client":"192.0.2.7:40000","reason":"","trace_id":""}
//
// (on one line). time is when the request's first byte arrived (RFC 3339, UTC,
// milliseconds); duration_ms runs from then to the end of the response, in milliseconds
// with microsecond precision. route, upstream and backend_group are "" when the request
// matched no route, reached no endpoint or has no backend group; method, path and
// protocol are "" for a request whose head could not be parsed. path is the request
// target's path and query as received (at most MaxPathBytes of it). response_bytes counts
// every byte sent to the client (head and body), request_bytes every byte of the request
// received from it (head and body as framed). attempts is the number of upstream
// attempts (connects), so retries + 1 for a proxied request and 0 for a reply the proxy
// made without trying an upstream. reason is "" for a response that came from a backend
// and otherwise names, with the values of flax_local_replies_total's reason label, why the
// proxy answered itself or failed: no_route, no_endpoint, connect_failed, upstream_reset,
// bad_response, timeout, overflow, header_timeout, bad_request, direct_response. trace_id
// is the request's W3C trace id (32 hex digits) on a listener that traces, else "". Strings
// are escaped for JSON: quotes, backslashes, control characters (and U+2028, U+2029),
// and invalid UTF-8 becomes \ufffd.
//
// # UDP flows
//
// A UDP listener logs one line per flow (a client address on one listener socket)
// when the flow ends, with these keys, in this order:
//
//	{"time":"2026-01-02T15:04:05.123Z","listener":"dns","route":"dns","protocol":"UDP",
//	 "client":"192.0.2.7:40000","upstream":"10.0.0.1:53","backend_group":"dns",
//	 "request_bytes":120,"response_bytes":480,"request_datagrams":2,
//	 "response_datagrams":2,"duration_ms":60012.345,"reason":"idle"}
//
// (on one line). Keys shared with request lines mean the same: time is when the flow's
// first datagram arrived, duration_ms runs to its end, request_bytes counts the payload
// bytes of every datagram the client sent on the flow, response_bytes those of every
// datagram sent back to it; request_datagrams and response_datagrams count those
// datagrams. reason is why the flow ended: idle (the route's idle timeout), evicted (the
// route's bound on flows made room for a new client), refused (the endpoint's port is
// closed), upstream_error, or shutdown (its listener was removed, drained or stopped).
// Datagrams that open no flow (no backend or endpoint) get no line; they are counted in
// flax_udp_datagrams_dropped_total.
//
// # Cost
//
// With the log off the proxy pays one nil check per request. With it on, each engine
// worker has its own Worker: the proxy appends the line to the Worker's preallocated
// buffer without allocating, under a mutex only that worker (and the flusher, every
// FlushInterval) takes. A full buffer is swapped for a spare one and handed to the
// Logger's single writer goroutine through a bounded channel; a flusher hands over
// non-empty buffers every FlushInterval (100 ms). When the writer falls behind and no
// spare buffer is left, lines are dropped and counted in flax_access_log_dropped_total;
// a worker never waits for the disk.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and bounds.
const (
	// DefaultBufferSize is the size of each line buffer.
	DefaultBufferSize = 64 << 10
	// DefaultSpareBuffers is the number of spare buffers per worker.
	DefaultSpareBuffers = 4
	// DefaultFlushInterval is how often a non-empty buffer is handed to the writer.
	DefaultFlushInterval = 100 * time.Millisecond
	// MaxPathBytes bounds the bytes of a request's path and query that are logged.
	MaxPathBytes = 4096
	// MaxStringBytes bounds the bytes of the other strings that are logged.
	MaxStringBytes = 256
	// maxLine bounds a line: every escaped byte takes at most 6 bytes.
	maxLine = 6*(MaxPathBytes+6*MaxStringBytes) + 512
)

// Stdout is the Options.Path that writes to the standard output.
const Stdout = "-"

// Record is one finished request, as the proxy hands it to Worker.Log. Its fields are
// only read during the call.
type Record struct {
	// Start and End are when the request's first byte arrived and when it ended, on the
	// worker's monotonic clock (nanoseconds).
	Start, End int64
	// Listener, Route and BackendGroup are names from the configuration.
	Listener, Route, BackendGroup string
	// Method and Path are the request's method and target path with its query.
	Method, Path []byte
	// Protocol is "HTTP/1.1", "HTTP/1.0" or "".
	Protocol string
	// Status is the final status code.
	Status int
	// ResponseBytes and RequestBytes are the bytes sent to and received from the client.
	ResponseBytes, RequestBytes int64
	// Upstream is the endpoint of the last attempt (invalid when none); Client the
	// client's address: the connection's peer, or with trusted hops the address taken
	// from X-Forwarded-For, with port 0 (written without a port).
	Upstream, Client netip.AddrPort
	// Attempts is the number of upstream attempts.
	Attempts int
	// Reason names why the proxy answered itself or failed; "" otherwise.
	Reason string
	// TraceID is the request's W3C trace id when Traced (the listener traces).
	TraceID [16]byte
	Traced  bool
}

// Flow is one finished UDP flow, as the UDP engine hands it to Worker.LogFlow. Its
// fields are only read during the call.
type Flow struct {
	// Start and End are when the flow's first datagram arrived and when it ended, on
	// the worker's monotonic clock (nanoseconds).
	Start, End int64
	// Listener, Route and BackendGroup are names from the configuration.
	Listener, Route, BackendGroup string
	// Client is the client's address; Upstream the endpoint the flow went to.
	Client, Upstream netip.AddrPort
	// RequestBytes and RequestDatagrams are what the client sent (every datagram
	// received on the flow); ResponseBytes and ResponseDatagrams what the flow sent
	// it.
	RequestBytes, ResponseBytes         int64
	RequestDatagrams, ResponseDatagrams int64
	// Reason is why the flow ended: FlowIdle, FlowEvicted, FlowRefused,
	// FlowUpstreamError or FlowShutdown.
	Reason string
}

// The reasons a UDP flow ends (Flow.Reason).
const (
	// FlowIdle: nothing moved either way for the route's idle timeout.
	FlowIdle = "idle"
	// FlowEvicted: a new client needed room over the route's bound on flows, and
	// this flow was idle the longest.
	FlowEvicted = "evicted"
	// FlowRefused: the endpoint refused a datagram (ICMP port unreachable).
	FlowRefused = "refused"
	// FlowUpstreamError: reading from the endpoint's socket failed otherwise.
	FlowUpstreamError = "upstream_error"
	// FlowShutdown: the listener went away (config change, drain or stop).
	FlowShutdown = "shutdown"
)

// Options configure a Logger.
type Options struct {
	// Path is the file to append to, or Stdout. Ignored when Output is set.
	Path string
	// Output, when set, receives the lines instead of Path (tests, embedding); it is not
	// reopened or closed.
	Output io.Writer
	// Workers is the number of engine workers, one Worker each.
	Workers int
	// BufferSize is the size of each line buffer (at least the longest line).
	BufferSize int
	// SpareBuffers is the number of spare buffers per worker: how far the writer may
	// fall behind before lines are dropped.
	SpareBuffers int
	// FlushInterval is how often non-empty buffers are handed to the writer.
	FlushInterval time.Duration
	// Clock returns the wall clock; nil means time.Now.
	Clock func() time.Time
	// Log receives write errors (rate limited), never one message per request.
	Log logr.Logger
}

// buffer is one line buffer; it travels between a Worker and the writer.
type buffer struct{ b []byte }

// Logger owns the output and the writer goroutine. Create it with New, hand each
// engine worker its Worker(i), and Close it once the engine has stopped.
type Logger struct {
	opts    Options
	clock   func() time.Time
	workers []*Worker
	free    chan *buffer // spare buffers
	full    chan *buffer // buffers waiting for the writer
	kick    chan struct{}

	mu   sync.Mutex // guards out and file
	out  io.Writer
	file *os.File

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	written     atomic.Uint64
	writeErrors atomic.Uint64
	droppedDesc *prometheus.Desc
	errorsDesc  *prometheus.Desc
}

// Worker is one engine worker's side of the log: its line buffer. It is safe for
// concurrent use (the netpoll engine shares a worker between goroutines), but meant to
// be used by one worker.
type Worker struct {
	l       *Logger
	mu      sync.Mutex
	cur     *buffer
	line    []byte
	closed  bool
	dropped atomic.Uint64
}

// New opens the output and starts the writer and flusher goroutines.
func New(opts Options) (*Logger, error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.BufferSize < maxLine {
		opts.BufferSize = max(DefaultBufferSize, maxLine)
	}
	if opts.SpareBuffers <= 0 {
		opts.SpareBuffers = DefaultSpareBuffers
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	l := &Logger{opts: opts, clock: opts.Clock, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	if l.clock == nil {
		l.clock = time.Now
	}
	switch {
	case opts.Output != nil:
		l.out = opts.Output
	case opts.Path == Stdout:
		l.out = os.Stdout
	case opts.Path == "":
		return nil, errors.New("access log: no path")
	default:
		f, err := openFile(opts.Path)
		if err != nil {
			return nil, err
		}
		l.out, l.file = f, f
	}
	spare := opts.Workers * opts.SpareBuffers
	total := opts.Workers + spare
	l.free = make(chan *buffer, total)
	l.full = make(chan *buffer, total)
	for range spare {
		l.free <- &buffer{b: make([]byte, 0, opts.BufferSize)}
	}
	for range opts.Workers {
		l.workers = append(l.workers, &Worker{
			l:    l,
			cur:  &buffer{b: make([]byte, 0, opts.BufferSize)},
			line: make([]byte, 0, maxLine),
		})
	}
	l.droppedDesc = prometheus.NewDesc("flax_access_log_dropped_total", "Access log lines dropped because the writer fell behind.", nil, nil)
	l.errorsDesc = prometheus.NewDesc("flax_access_log_write_errors_total", "Failed writes to the access log.", nil, nil)
	l.wg.Add(2)
	go l.writer()
	go l.flusher()
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Worker returns worker i's side of the log; nil on a nil Logger, so that engines can
// pass it on unconditionally.
func (l *Logger) Worker(i int) *Worker {
	if l == nil {
		return nil
	}
	return l.workers[i]
}

// Log appends r's line to the worker's buffer. It never blocks on I/O and does not
// allocate; when the buffer is full and no spare one is left, the line is dropped and
// counted.
func (w *Worker) Log(r *Record) {
	if now, ok := w.lock(); ok {
		w.line = appendRecord(w.line[:0], r, now)
		w.commit()
	}
}

// LogFlow appends f's line to the worker's buffer, as Log does.
func (w *Worker) LogFlow(f *Flow) {
	if now, ok := w.lock(); ok {
		w.line = appendFlow(w.line[:0], f, now)
		w.commit()
	}
}

// lock takes the worker's lock for a line and returns the wall clock; once the
// worker is closed it takes nothing, counts the line dropped and returns false.
func (w *Worker) lock() (time.Time, bool) {
	now := w.l.clock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.dropped.Add(1)
		return now, false
	}
	return now, true
}

// commit moves w.line into the buffer, handing the buffer off when full, and
// unlocks w.mu (held).
func (w *Worker) commit() {
	if len(w.cur.b)+len(w.line) > cap(w.cur.b) && !w.handOff() {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	w.cur.b = append(w.cur.b, w.line...)
	w.mu.Unlock()
}

// handOff queues the current buffer for the writer and takes a spare one; it reports
// false when none is spare. w.mu is held.
func (w *Worker) handOff() bool {
	select {
	case nb := <-w.l.free:
		// full has room for every buffer there is: this never blocks.
		w.l.full <- w.cur
		w.cur = nb
		return true
	default:
		return false
	}
}

// flush hands the current buffer to the writer if it holds lines.
func (w *Worker) flush() {
	w.mu.Lock()
	if !w.closed && len(w.cur.b) > 0 {
		w.handOff()
	}
	w.mu.Unlock()
}

// flusher hands every worker's non-empty buffer to the writer each FlushInterval, and
// at once on Flush.
func (l *Logger) flusher() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		for _, w := range l.workers {
			w.flush()
		}
	}
}

// Flush asks the flusher to hand over the workers' buffers now (it does not wait for
// the writer).
func (l *Logger) Flush() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// writer writes the buffers handed over, in order, and recycles them.
func (l *Logger) writer() {
	defer l.wg.Done()
	for {
		select {
		case b := <-l.full:
			l.write(b)
		case <-l.stop:
			for {
				select {
				case b := <-l.full:
					l.write(b)
				default:
					return
				}
			}
		}
	}
}

func (l *Logger) write(b *buffer) {
	l.mu.Lock()
	_, err := l.out.Write(b.b)
	l.mu.Unlock()
	if err != nil {
		if n := l.writeErrors.Add(1); n == 1 || n%1000 == 0 {
			l.opts.Log.Error(err, "access log write failed", "failures", n)
		}
	} else {
		l.written.Add(uint64(len(b.b)))
	}
	b.b = b.b[:0]
	// free has room for every buffer there is.
	l.free <- b
}

// Reopen reopens the file (after log rotation moved it away); it does nothing for
// stdout or an Options.Output. On error the previous file stays in use.
func (l *Logger) Reopen() error {
	if l == nil || l.file == nil {
		return nil
	}
	f, err := openFile(l.opts.Path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.file
	l.out, l.file = f, f
	l.mu.Unlock()
	return old.Close()
}

// Close writes what the workers hold, stops the goroutines and closes the file. Lines
// logged afterwards are dropped and counted.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.closeOnce.Do(func() {
		close(l.stop)
		l.wg.Wait()
		for _, w := range l.workers {
			w.mu.Lock()
			w.closed = true
			if len(w.cur.b) > 0 {
				l.write(w.cur)
			}
			w.mu.Unlock()
		}
		for {
			select {
			case b := <-l.full:
				l.write(b)
				continue
			default:
			}
			break
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.file != nil {
			err = l.file.Close()
			l.file = nil
		}
	})
	return err
}

// Dropped returns the lines dropped, summed over the workers.
func (l *Logger) Dropped() uint64 {
	var n uint64
	for _, w := range l.workers {
		n += w.dropped.Load()
	}
	return n
}

// Describe implements prometheus.Collector.
func (l *Logger) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.droppedDesc
	ch <- l.errorsDesc
}

// Collect implements prometheus.Collector.
func (l *Logger) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(l.droppedDesc, prometheus.CounterValue, float64(l.Dropped()))
	ch <- prometheus.MustNewConstMetric(l.errorsDesc, prometheus.CounterValue, float64(l.writeErrors.Load()))
}
