package proxy

import (
	"math/rand/v2"
	"time"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/tracing"
)

// Tracing (W3C Trace Context).
//
// On a listener that traces (compiled.Listener.Tracing), a request that
// matched a route gets a span: it continues the trace of a valid incoming
// traceparent, or starts one, and the backend receives traceparent naming
// the request's span as its parent (tracestate goes through as any field).
// Sampling follows the incoming sampled flag (unless the listener ignores
// parents) or, for a trace started here, the trace id against the
// listener's share. When the request ends, a sampled span is copied into
// the exporter's queue for this worker (tracing.Exporter.Record): a fixed
// size copy, no allocation, no lock. Ids come from math/rand/v2's
// generator (per thread, ChaCha8), not the session's 32-bit one, so that
// trace ids do not collide across a fleet.

const traceparentName = "traceparent"

// traceState is a request's trace context.
type traceState struct {
	active  bool // the request is traced (traceparent sent upstream)
	sampled bool // its span is still to be recorded
	id      tracing.TraceID
	span    tracing.SpanID
	parent  tracing.SpanID
	header  [tracing.TraceparentLen]byte // the traceparent sent upstream
}

// startTrace sets up the request's trace context; called while the
// request head is available.
func (s *Session) startTrace(t *compiled.Tracing) {
	x := s.x
	tr := &x.trace
	tr.active = true
	tr.parent = tracing.SpanID{}
	var flags byte
	hasParent := false
	if v, ok := x.Header(traceparentName); ok {
		if id, parent, f, ok := tracing.ParseTraceparent(v); ok {
			tr.id, tr.parent, flags, hasParent = id, parent, f, true
		}
	}
	for !hasParent {
		putUint64(tr.id[:8], rand.Uint64())
		putUint64(tr.id[8:], rand.Uint64())
		if !tr.id.IsZero() {
			break
		}
	}
	for {
		putUint64(tr.span[:], rand.Uint64())
		if !tr.span.IsZero() {
			break
		}
	}
	sampled := tracing.Sampled(tr.id, t.PerMillion)
	if hasParent && !t.IgnoreParent {
		sampled = flags&tracing.FlagSampled != 0
	}
	if sampled {
		flags |= tracing.FlagSampled
	} else {
		flags &^= tracing.FlagSampled
	}
	tracing.AppendTraceparent(tr.header[:0], tr.id, tr.span, flags)
	tr.sampled = sampled
	if sampled && x.logMethod == 0 {
		x.copyRequestLine()
	}
}

// endSpan records the span of the request r describes with the exporter.
func (s *Session) endSpan(r *accesslog.Record) {
	x := s.x
	x.trace.sampled = false
	l := x.listener
	if l == nil || l.Tracing == nil {
		return
	}
	tr := &x.trace
	// The worker clock is monotonic: the span ends at the wall clock's now
	// and starts the request's duration before.
	end := time.Now().UnixNano()
	sp := tracing.Span{
		Trace: tr.id, ID: tr.span, Parent: tr.parent,
		Start: end - (r.End - r.Start), End: end,
		Status: r.Status, Attempts: r.Attempts,
		RequestBytes: r.RequestBytes, ResponseBytes: r.ResponseBytes,
		Client: r.Client, Upstream: r.Upstream,
		Listener: r.Listener, Route: r.Route, BackendGroup: r.BackendGroup, Reason: r.Reason,
	}
	sp.SetRequest(r.Method, r.Path)
	l.Tracing.Spans.Record(s.w.Metrics.Index(), &sp)
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}
