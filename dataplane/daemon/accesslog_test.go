package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

// TestAccessLog turns the access log on through Options on each engine,
// checks that a line per request reaches the file while serving, that
// ReopenAccessLog follows a rotation, and that the rest is written on
// shutdown.
func TestAccessLog(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testAccessLog(t, eng) })
	}
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte{'\n'})
}

func testAccessLog(t *testing.T, eng string) {
	ip, bport := backend(t, "a")
	port := uint32(enginetest.FreePort(t))
	path := filepath.Join(t.TempDir(), "access.log")
	d, err := New(Options{Workers: 2, Engine: eng, AccessLog: path, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if _, err := d.Apply(ctx, snap(1, port, &dataplanev1.Endpoint{Address: ip, Port: bport})); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(n int, query string) {
		for i := range n {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/p%d?%s", port, i, query))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	waitLines := func(p string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for countLines(p) != n {
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(p)
				t.Fatalf("%s: want %d lines, have:\n%s", p, n, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	do(5, "before")
	// The flusher hands the lines to the writer within ~100 ms.
	waitLines(path, 5)

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.ReopenAccessLog(); err != nil {
		t.Fatal(err)
	}
	do(3, "after")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
	if n := countLines(path + ".1"); n != 5 {
		t.Errorf("rotated file has %d lines, want 5", n)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'})
	if len(lines) != 3 {
		t.Fatalf("new file has %d lines, want 3:\n%s", len(lines), b)
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	want := map[string]any{
		"listener": "web", "route": "all", "method": "GET", "path": "/p0?after", "protocol": "HTTP/1.1",
		"status": 200.0, "upstream": fmt.Sprintf("%s:%d", ip, bport), "backend_group": "be", "attempts": 1.0, "reason": "",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, rec[k], v, lines[0])
		}
	}
	if rec["response_bytes"].(float64) <= 1 || rec["request_bytes"].(float64) <= 10 {
		t.Errorf("byte counts in %s", lines[0])
	}
	if _, err := time.Parse(time.RFC3339, rec["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
}
