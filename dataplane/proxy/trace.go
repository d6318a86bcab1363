package proxy

import (
	"math/rand/v2"
	"net/netip"
	"time"

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

// endSpan records the request's span with the exporter.
func (s *Session) endSpan(status int) {
	x := s.x
	tr := &x.trace
	tr.sampled = false
	l := x.listener
	if l == nil || l.Tracing == nil {
		return
	}
	end := time.Now().UnixNano()
	var sp tracing.Span
	sp.Trace, sp.ID, sp.Parent = tr.id, tr.span, tr.parent
	sp.End = end
	sp.Start = end - (s.w.Now() - x.start)
	sp.Status = status
	sp.Attempts = int(x.attempts)
	sp.RequestBytes, sp.ResponseBytes = x.reqBytes, x.respBytes
	sp.Client = s.remote
	if x.client.IsValid() && x.client != s.remote.Addr().Unmap() {
		sp.Client = netip.AddrPortFrom(x.client, 0)
	}
	if x.attempts > 0 {
		sp.Upstream = x.ep.Addr
	}
	sp.Listener = l.Name
	if x.route != nil {
		sp.Route = x.route.Name
	}
	if x.group != nil {
		sp.BackendGroup = x.group.Name
	}
	if x.hasReason {
		sp.Reason = x.reason.String()
	}
	if x.logMethod > 0 {
		sp.SetRequest(x.logLine[:x.logMethod], x.logLine[x.logMethod:])
	}
	l.Tracing.Spans.Record(s.w.Metrics.Index(), &sp)
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}
