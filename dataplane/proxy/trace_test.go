package proxy

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/tracing"
)

// otlpSink is an OTLP/HTTP receiver that keeps the spans it gets.
type otlpSink struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
}

func (o *otlpSink) take() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.spans
	o.spans = nil
	return s
}

// tracedHarness opens a harness on testSnapshot with tracing on its listener
// at perMillion (ignoring parents when asked), spans going to an OTLP sink.
func tracedHarness(t *testing.T, perMillion uint32, ignoreParent bool) (*harness, *tracing.Exporter, *otlpSink) {
	t.Helper()
	cfg, reg, exp, sink := tracedConfig(t, perMillion, ignoreParent)
	return openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000"), exp, sink
}

// tracedConfig compiles testSnapshot with tracing on its listener.
func tracedConfig(t *testing.T, perMillion uint32, ignoreParent bool) (*compiled.Config, *metrics.Registry, *tracing.Exporter, *otlpSink) {
	t.Helper()
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	snap, err := dataplanev1.Parse([]byte(testSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	snap.Tracing = &dataplanev1.Tracing{OtlpEndpoint: srv.URL + "/v1/traces"}
	snap.Listeners[0].Tracing = &dataplanev1.ListenerTracing{SamplePerMillion: perMillion, IgnoreParent: ignoreParent}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry(1)
	exp := tracing.New(tracing.Options{Workers: 1})
	exp.Configure(snap.GetTracing().GetOtlpEndpoint(), "")
	cfg, err := compiled.CompileDeps(snap, compiled.Deps{Metrics: reg, Spans: exp})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, reg, exp, sink
}

var traceparentField = regexp.MustCompile(`(?i)\r\ntraceparent: ([^\r]*)\r\n`)

// upstreamTraceparent returns the traceparent values of the request head the
// upstream received.
func upstreamTraceparent(t *testing.T, h *harness) []string {
	t.Helper()
	var vals []string
	for _, m := range traceparentField.FindAllStringSubmatch(h.takeUpstream(), -1) {
		vals = append(vals, m[1])
	}
	return vals
}

func TestTraceContinuesSampledParent(t *testing.T) {
	h, exp, sink := tracedHarness(t, 0, false)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.client("GET /x?q=1 HTTP/1.1\r\nHost: example.com\r\ntraceparent: " + parent + "\r\ntracestate: vendor=1\r\n\r\n")
	h.connect(false, nil)
	up := h.takeUpstream()
	if !strings.Contains(up, "\r\ntracestate: vendor=1\r\n") {
		t.Errorf("tracestate not forwarded:\n%s", up)
	}
	tps := traceparentField.FindAllStringSubmatch(up, -1)
	if len(tps) != 1 {
		t.Fatalf("upstream head has %d traceparent fields, want 1:\n%s", len(tps), up)
	}
	id, span, flags, ok := tracing.ParseTraceparent([]byte(tps[0][1]))
	if !ok || hex.EncodeToString(id[:]) != "4bf92f3577b34da6a3ce929d0e0e4736" || flags != 1 ||
		hex.EncodeToString(span[:]) == "00f067aa0ba902b7" {
		t.Fatalf("upstream traceparent %s: want the same trace, sampled, with a span of the proxy's own", tps[0][1])
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if err := exp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := sink.take()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	sp := spans[0]
	if hex.EncodeToString(sp.GetTraceId()) != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		hex.EncodeToString(sp.GetParentSpanId()) != "00f067aa0ba902b7" ||
		string(sp.GetSpanId()) != string(span[:]) || sp.GetName() != "GET app" {
		t.Errorf("span trace %x parent %x id %x name %q; want the request's trace, the client's span as parent, the id sent upstream",
			sp.GetTraceId(), sp.GetParentSpanId(), sp.GetSpanId(), sp.GetName())
	}
	if d := sp.GetEndTimeUnixNano() - sp.GetStartTimeUnixNano(); sp.GetStartTimeUnixNano() == 0 || d > 1e9 {
		t.Errorf("span times %d..%d", sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano())
	}
}

func TestTraceSampling(t *testing.T) {
	// Sampling 0: a request without traceparent starts an unsampled trace,
	// which the backend still learns; no span is exported. A request whose
	// parent is unsampled stays unsampled.
	h, exp, sink := tracedHarness(t, 0, false)
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(false, nil)
	tps := upstreamTraceparent(t, h)
	if len(tps) != 1 || !strings.HasSuffix(tps[0], "-00") {
		t.Fatalf("upstream traceparent %v, want one, not sampled", tps)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n\r\n")
	h.connect(true, nil)
	if tps := upstreamTraceparent(t, h); len(tps) != 1 || !strings.HasPrefix(tps[0], "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(tps[0], "-00") {
		t.Fatalf("upstream traceparent %v, want the parent's trace, not sampled", tps)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	// An invalid traceparent is replaced by a new trace.
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\ntraceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n\r\n")
	h.connect(true, nil)
	if tps := upstreamTraceparent(t, h); len(tps) != 1 || strings.Contains(tps[0], "-00000000000000000000000000000000-") {
		t.Fatalf("upstream traceparent %v, want one new trace", tps)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if err := exp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans := sink.take(); len(spans) != 0 {
		t.Fatalf("%d spans exported at sampling 0", len(spans))
	}

	// Every request, parents ignored: the unsampled parent's request is
	// sampled, and so is a local reply on a route.
	h, exp, sink = tracedHarness(t, 1_000_000, true)
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n\r\n")
	h.connect(false, nil)
	if tps := upstreamTraceparent(t, h); len(tps) != 1 || !strings.HasSuffix(tps[0], "-01") {
		t.Fatalf("upstream traceparent %v, want sampled", tps)
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if err := exp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := sink.take()
	if len(spans) != 2 || spans[1].GetName() != "GET direct" || len(spans[1].GetParentSpanId()) != 0 {
		t.Fatalf("spans %v, want the proxied request's and the direct response's (a root)", spans)
	}
}

// TestExchangeDoesNotAllocateTraced is TestExchangeDoesNotAllocate with every
// request traced and its span recorded (and exported now and then).
func TestExchangeDoesNotAllocateTraced(t *testing.T) {
	cfg, reg, exp, sink := tracedConfig(t, 1_000_000, false)
	s := loopbackSession(t, cfg, reg)
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.com\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	exchange := func() {
		s.ClientData(req)
		loopback(t, s)
		s.UpstreamData(resp)
		loopback(t, s)
	}
	for range 3 {
		exchange()
	}
	if n := testing.AllocsPerRun(500, exchange); n != 0 {
		t.Fatalf("%v allocations per traced exchange", n)
	}
	if err := exp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.take()); n < 500 {
		t.Fatalf("%d spans exported after 500 traced exchanges", n)
	}
}
