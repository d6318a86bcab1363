package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/tracing"
)

// jaeger is a Jaeger (v2, bin/jaeger) run for a test: an OTLP/HTTP receiver
// into memory storage, and the query API to read the traces back.
type jaeger struct {
	otlp, query string // the receiver's traces URL, the query API's base URL
}

// startJaeger runs bin/jaeger on free loopback ports, or skips the test when
// it has not been built.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "jaeger"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipping: %s not found; run `make tools` (or hack/tools/install.sh jaeger) to build the pinned Jaeger", bin)
	}
	otlpPort, queryPort, grpcPort := enginetest.FreePort(t), enginetest.FreePort(t), enginetest.FreePort(t)
	cfg := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, queryPort, grpcPort, otlpPort)
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	j := &jaeger{
		otlp:  fmt.Sprintf("http://127.0.0.1:%d/v1/traces", otlpPort),
		query: fmt.Sprintf("http://127.0.0.1:%d", queryPort),
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(j.query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", otlpPort)); err == nil {
				c.Close()
				if resp.StatusCode == http.StatusOK {
					return j
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger did not start in 60s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jaegerSpan is a span as Jaeger's query API (/api/traces/ID) returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

// trace polls the query API until trace id has a span, and returns its spans
// and the service names of their processes.
func (j *jaeger) trace(t *testing.T, id string) ([]jaegerSpan, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(j.query + "/api/traces/" + id)
		if err == nil {
			var body struct {
				Data []struct {
					Spans     []jaegerSpan `json:"spans"`
					Processes map[string]struct {
						ServiceName string `json:"serviceName"`
					} `json:"processes"`
				} `json:"data"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &body) == nil && len(body.Data) == 1 && len(body.Data[0].Spans) > 0 {
				services := map[string]string{}
				for k, p := range body.Data[0].Processes {
					services[k] = p.ServiceName
				}
				return body.Data[0].Spans, services
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s not in Jaeger after 30s", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTracingToJaeger sends requests through the daemon, on each engine, to a
// backend that records the traceparent it receives, and finds the spans in a
// real Jaeger: a request that came with a traceparent continues its trace
// with the client's span as parent, the backend's parent is the proxy's
// span, and a request without one starts a trace of its own.
func TestTracingToJaeger(t *testing.T) {
	j := startJaeger(t)
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testTracingToJaeger(t, j, eng) })
	}
}

func testTracingToJaeger(t *testing.T, j *jaeger, eng string) {
	seen := make(chan string, 8)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
		fmt.Fprint(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ba := ln.Addr().(*net.TCPAddr)

	port := uint32(enginetest.FreePort(t))
	s := snap(1, port, &dataplanev1.Endpoint{Address: ba.IP.String(), Port: uint32(ba.Port)})
	service := "flax-test-" + eng
	s.Tracing = &dataplanev1.Tracing{OtlpEndpoint: j.otlp, ServiceName: service}
	s.Listeners[0].Tracing = &dataplanev1.ListenerTracing{SamplePerMillion: 1_000_000}
	s.Hash = dataplanev1.Hash(s)
	d, err := New(Options{Workers: 2, Engine: eng, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if _, err := d.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}

	// Continue the client's trace.
	var clientTrace [16]byte
	copy(clientTrace[:], fmt.Sprintf("%-16s", eng))
	clientSpan := tracing.SpanID{0xc1, 0x1e, 0x47}
	parent := string(tracing.AppendTraceparent(nil, clientTrace, clientSpan, tracing.FlagSampled))
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api/items?x=1", port), nil)
	req.Header.Set("Traceparent", parent)
	if code := do(t, req); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	got := <-seen
	id, proxySpan, flags, ok := tracing.ParseTraceparent([]byte(got))
	if !ok || id != clientTrace || proxySpan == clientSpan || flags != tracing.FlagSampled {
		t.Fatalf("backend got traceparent %q for the client's %q: want the same trace, sampled, with the proxy's span", got, parent)
	}
	spans, services := j.trace(t, hex.EncodeToString(clientTrace[:]))
	if len(spans) != 1 {
		t.Fatalf("trace has %d spans, want the proxy's", len(spans))
	}
	sp := spans[0]
	if sp.SpanID != hex.EncodeToString(proxySpan[:]) || sp.OperationName != "GET all" || services[sp.ProcessID] != service {
		t.Errorf("span %s %q of %q: want %x \"GET all\" of %s", sp.SpanID, sp.OperationName, services[sp.ProcessID], proxySpan, service)
	}
	if len(sp.References) != 1 || sp.References[0].SpanID != hex.EncodeToString(clientSpan[:]) || sp.References[0].RefType != "CHILD_OF" {
		t.Errorf("span references %+v, want CHILD_OF the client's span %x", sp.References, clientSpan)
	}
	tags := map[string]string{}
	for _, tag := range sp.Tags {
		tags[tag.Key] = fmt.Sprint(tag.Value)
	}
	for k, v := range map[string]string{
		"http.request.method": "GET", "url.path": "/api/items", "url.query": "x=1", "http.response.status_code": "200",
		"flax.listener": "web", "flax.route": "all", "flax.backend_group": "be",
		"flax.upstream.address": fmt.Sprintf("%s:%d", ba.IP, ba.Port),
	} {
		if tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, tags[k], v)
		}
	}

	// A request without traceparent starts a trace; its span is a root.
	req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/new", port), nil)
	if code := do(t, req); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	got = <-seen
	id, proxySpan, _, ok = tracing.ParseTraceparent([]byte(got))
	if !ok {
		t.Fatalf("backend got traceparent %q", got)
	}
	spans, _ = j.trace(t, hex.EncodeToString(id[:]))
	if len(spans) != 1 || spans[0].SpanID != hex.EncodeToString(proxySpan[:]) || len(spans[0].References) != 0 {
		t.Errorf("new trace's spans %+v: want one root span %x", spans, proxySpan)
	}
	if !strings.Contains(spans[0].OperationName, "GET") {
		t.Errorf("operation %q", spans[0].OperationName)
	}
}

// do sends req on a fresh connection and returns the status.
func do(t *testing.T, req *http.Request) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
