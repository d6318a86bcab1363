package tracing

import (
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestParseTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	trace, parent, flags, ok := ParseTraceparent([]byte(valid))
	if !ok || hex.EncodeToString(trace[:]) != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		hex.EncodeToString(parent[:]) != "00f067aa0ba902b7" || flags != 1 {
		t.Fatalf("ParseTraceparent(%s) = %x %x %x %v", valid, trace, parent, flags, ok)
	}
	if got := string(AppendTraceparent(nil, trace, parent, flags)); got != valid {
		t.Errorf("AppendTraceparent = %s, want %s", got, valid)
	}
	// A later version: the first four fields read as version 00's, more
	// after a dash is ignored.
	if _, _, _, ok := ParseTraceparent([]byte("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next")); !ok {
		t.Error("a version 01 value with more fields was refused")
	}
	for _, bad := range []string{
		"",
		valid[:54],
		valid + "-00",    // version 00 has exactly four fields
		"ff" + valid[2:], // version ff is invalid
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // more, but not after a dash
	} {
		if _, _, _, ok := ParseTraceparent([]byte(bad)); ok {
			t.Errorf("ParseTraceparent(%q) accepted", bad)
		}
	}
}

func TestSampled(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	counts := map[uint32]int{}
	for range n {
		var id TraceID
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		for _, pm := range []uint32{0, 250_000, 1_000_000} {
			if Sampled(id, pm) {
				counts[pm]++
			}
			// The decision reads the last 7 bytes only: the first 9 are not
			// required to be random.
			other := id
			other[0] ^= 0xff
			if Sampled(other, pm) != Sampled(id, pm) {
				t.Fatal("Sampled depends on more than the trace id's random part")
			}
		}
	}
	if counts[0] != 0 || counts[1_000_000] != n {
		t.Errorf("sampled %d at 0 and %d of %d at 1000000", counts[0], counts[1_000_000], n)
	}
	if c := counts[250_000]; c < n/4-400 || c > n/4+400 {
		t.Errorf("sampled %d of %d at 25%%", c, n)
	}
}

func TestQueueConcurrentProducers(t *testing.T) {
	q := newQueue(64)
	const producers, each = 4, 10000
	var wg sync.WaitGroup
	var pushed [producers]int
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s := Span{Status: p*each + i}
				for q.push(&s) < 0 {
					runtime.Gosched() // full: the consumer makes room
				}
				pushed[p]++
			}
		}()
	}
	seen := make([]bool, producers*each)
	got := 0
	for got < producers*each {
		s := q.peek()
		if s == nil {
			runtime.Gosched()
			continue
		}
		if seen[s.Status] {
			t.Fatalf("span %d consumed twice", s.Status)
		}
		seen[s.Status] = true
		got++
		q.pop()
	}
	wg.Wait()
	if q.peek() != nil || q.head.Load() != q.tail.Load() {
		t.Fatal("queue not empty after consuming everything pushed")
	}
}

// receiver is an OTLP/HTTP endpoint decoding requests with the OpenTelemetry
// protobuf types.
type receiver struct {
	mu    sync.Mutex
	reqs  []*coltracepb.ExportTraceServiceRequest
	fail  bool
	posts int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	if rc.fail || r.Header.Get("Content-Type") != "application/x-protobuf" || r.URL.Path != "/v1/traces" {
		http.Error(w, "no", http.StatusServiceUnavailable)
		return
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.reqs = append(rc.reqs, req)
}

func (rc *receiver) spans() (service string, spans []*tracepb.Span) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, req := range rc.reqs {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
	}
	return service, spans
}

func TestExporterPostsOTLP(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	e := New(Options{Workers: 2, QueueSize: 8, BatchSize: 3})
	s := Span{
		Trace: TraceID{1, 2, 3}, ID: SpanID{4}, Parent: SpanID{5},
		Start: 1_700_000_000_000_000_000, End: 1_700_000_000_002_000_000,
		Status: 503, Attempts: 2, RequestBytes: 80, ResponseBytes: 120,
		Client:   netip.MustParseAddrPort("192.0.2.7:4000"),
		Upstream: netip.MustParseAddrPort("10.0.0.1:8080"),
		Listener: "default/gw/http", Route: "default/app/rule-0", BackendGroup: "default/app/8080", Reason: "upstream_reset",
	}
	s.SetRequest([]byte("GET"), []byte("/a/b?x=1"))
	e.Record(0, &s) // no endpoint yet: not queued
	e.Configure(srv.URL+"/v1/traces", "edge")
	for i := range 5 {
		s.ID[7] = byte(i)
		e.Record(i%2, &s)
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	service, spans := rc.spans()
	if service != "edge" || len(spans) != 5 || rc.posts != 2 {
		t.Fatalf("service %q, %d spans in %d posts; want edge, 5 in 2 (batches of 3)", service, len(spans), rc.posts)
	}
	sp := spans[0]
	attrs := map[string]any{}
	for _, a := range sp.GetAttributes() {
		if v, ok := a.GetValue().GetValue().(*commonStr); ok {
			attrs[a.GetKey()] = v.StringValue
		} else {
			attrs[a.GetKey()] = a.GetValue().GetIntValue()
		}
	}
	want := map[string]any{
		"http.request.method": "GET", "url.path": "/a/b", "url.query": "x=1", "http.response.status_code": int64(503),
		"client.address": "192.0.2.7", "flax.listener": "default/gw/http", "flax.route": "default/app/rule-0",
		"flax.backend_group": "default/app/8080", "flax.upstream.address": "10.0.0.1:8080", "flax.upstream.attempts": int64(2),
		"flax.reason": "upstream_reset", "flax.request_bytes": int64(80), "flax.response_bytes": int64(120),
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, attrs[k], v)
		}
	}
	if sp.GetName() != "GET default/app/rule-0" || sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER ||
		sp.GetStartTimeUnixNano() != uint64(s.Start) || sp.GetEndTimeUnixNano() != uint64(s.End) ||
		string(sp.GetTraceId()) != string(s.Trace[:]) || string(sp.GetParentSpanId()) != string(s.Parent[:]) ||
		sp.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %v", sp)
	}
	if exported, dropped, failed := e.Counts(); exported != 5 || dropped != 0 || failed != 0 {
		t.Errorf("counts %d %d %d, want 5 exported", exported, dropped, failed)
	}

	// A full queue drops and counts; a failing receiver counts failures.
	rc.mu.Lock()
	rc.fail = true
	rc.mu.Unlock()
	for range 10 {
		e.Record(0, &s)
	}
	if err := e.Flush(context.Background()); err == nil {
		t.Error("Flush to a failing receiver reported no error")
	}
	if exported, dropped, failed := e.Counts(); exported != 5 || dropped != 2 || failed != 8 {
		t.Errorf("counts exported %d dropped %d failed %d, want 5, 2 (queue of 8), 8", exported, dropped, failed)
	}
}

func BenchmarkRecord(b *testing.B) {
	e := New(Options{Workers: 1, QueueSize: 1024})
	e.Configure("http://127.0.0.1:1/v1/traces", "")
	s := Span{Listener: "l", Route: "r"}
	s.SetRequest([]byte("GET"), []byte("/"))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i&511 == 0 {
			// Empty the queue now and then, as the exporter does.
			q := (*e.queues.Load())[0]
			for q.peek() != nil {
				q.pop()
			}
		}
		e.Record(0, &s)
	}
}

type commonStr = commonpb.AnyValue_StringValue
