package udp

import (
	"bytes"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/accesslog"
)

// lines is an access log output that keeps the lines, decoded.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// all decodes the lines written so far.
func (l *lines) all(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, b := range bytes.SplitAfter(l.buf.Bytes(), []byte("\n")) {
		if len(b) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("line %q: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

// TestFlowsAreLogged checks the access log line of each way a flow ends:
// evicted for a new client over the bound, idle for the timeout, refused by a
// closed endpoint port and shut down with its listener; each line names the
// flow's listener, route, group, client and endpoint and counts what moved
// each way.
func TestFlowsAreLogged(t *testing.T) { eachDriver(t, testFlowsAreLogged) }

func testFlowsAreLogged(t *testing.T, uring bool) {
	a := newEcho(t, "a")
	out := &lines{}
	al, err := accesslog.New(accesslog.Options{Output: out, Workers: 1, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	port := freeUDPPort(t)
	route := &dataplanev1.UDPRoute{
		Name: "ns/dns", Backends: []*dataplanev1.TCPBackend{group("g", 1)},
		MaxFlows: 1, IdleTimeout: durationpb.New(300 * time.Millisecond),
	}
	f := startLogged(t, uring, 1, udpSnapshot(port, route, map[string][]*echo{"g": {a}}), al)

	// want checks the line of the flow of client c.
	want := func(m map[string]any, c *net.UDPConn, upstream, reason string, req, resp, dgramsIn, dgramsOut int) {
		t.Helper()
		exp := map[string]any{
			"listener": "default/gw/dns", "route": "ns/dns", "protocol": "UDP", "backend_group": "g",
			"client": c.LocalAddr().String(), "upstream": upstream, "reason": reason,
			"request_bytes": float64(req), "response_bytes": float64(resp),
			"request_datagrams": float64(dgramsIn), "response_datagrams": float64(dgramsOut),
		}
		for k, v := range exp {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v (line %v)", reason, k, m[k], v, m)
			}
		}
		if d, _ := m["duration_ms"].(float64); d < 0 || d > 10_000 {
			t.Errorf("%s: duration_ms %v", reason, m["duration_ms"])
		}
		if _, err := time.Parse(time.RFC3339, m["time"].(string)); err != nil {
			t.Errorf("%s: time %v: %v", reason, m["time"], err)
		}
	}

	c1, c2 := f.client(), f.client()
	r1 := exchange(t, c1, []byte("one"), 2*time.Second)
	r2 := exchange(t, c1, []byte("three"), 2*time.Second)
	if r1 == "" || r2 == "" {
		t.Fatal("no reply")
	}
	// c2's flow evicts c1's (the bound is 1).
	r3 := exchange(t, c2, []byte("x"), 2*time.Second)
	eventually(t, "the evicted flow's line", func() bool { return len(out.all(t)) == 1 })
	want(out.all(t)[0], c1, a.addr.String(), accesslog.FlowEvicted, 8, len(r1)+len(r2), 2, 2)
	eventually(t, "the idle flow's line", func() bool { return len(out.all(t)) == 2 })
	want(out.all(t)[1], c2, a.addr.String(), accesslog.FlowIdle, 1, len(r3), 1, 1)
	if d := out.all(t)[1]["duration_ms"].(float64); d < 300 {
		t.Errorf("idle flow lasted %v ms, less than its idle timeout", d)
	}

	// An endpoint whose port is closed: ICMP port unreachable ends the flow.
	gone := newEcho(t, "gone")
	gone.conn.Close()
	f.apply(udpSnapshot(port, route, map[string][]*echo{"g": {gone}}))
	c3 := f.client()
	if got := exchange(t, c3, []byte("q"), 300*time.Millisecond); got != "" {
		t.Fatalf("reply %q from a closed port", got)
	}
	eventually(t, "the refused flow's line", func() bool { return len(out.all(t)) == 3 })
	want(out.all(t)[2], c3, gone.addr.String(), accesslog.FlowRefused, 1, 0, 1, 0)

	// Removing the listener ends its flows.
	f.apply(udpSnapshot(port, route, map[string][]*echo{"g": {a}}))
	c4 := f.client()
	r4 := exchange(t, c4, []byte("last"), 2*time.Second)
	f.apply(&dataplanev1.Snapshot{})
	eventually(t, "the shut down flow's line", func() bool { return len(out.all(t)) == 4 })
	want(out.all(t)[3], c4, a.addr.String(), accesslog.FlowShutdown, 4, len(r4), 1, 1)
}
