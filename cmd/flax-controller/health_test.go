package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

func TestHealthServerAndProbe(t *testing.T) {
	var synced atomic.Bool
	h := newHealthServer(
		map[string]healthz.Checker{"ping": func(*http.Request) error { return nil }},
		map[string]healthz.Checker{"dataplane": func(*http.Request) error {
			if !synced.Load() {
				return errors.New("dataplane has not applied a configuration")
			}
			return nil
		}})
	socket := filepath.Join(t.TempDir(), "controller-health.sock")
	lns, err := listen("127.0.0.1:0", socket, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 2 {
		t.Fatalf("%d listeners, want TCP and the socket", len(lns))
	}
	// With SO_REUSEPORT a second controller binds the same TCP address.
	second, err := listen(lns[0].Addr().String(), "", true)
	if err != nil {
		t.Fatalf("second controller on %s: %v", lns[0].Addr(), err)
	}
	second[0].Close()
	if _, err := listen(lns[0].Addr().String(), "", false); err == nil {
		t.Errorf("a listener without SO_REUSEPORT bound the address in use")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.serve(ctx, lns); close(done) }()
	defer func() { cancel(); <-done }()

	probe := func(path string) (string, error) {
		var out bytes.Buffer
		err := probeCmd([]string{"--socket", socket, "--path", path}, &out, &bytes.Buffer{})
		return out.String(), err
	}
	if out, err := probe("/healthz"); err != nil || !strings.HasPrefix(out, "/healthz: 200") {
		t.Errorf("probe /healthz: %q %v", out, err)
	}
	if out, err := probe("/readyz"); err == nil || !strings.HasPrefix(out, "/readyz: 500") {
		t.Errorf("probe /readyz before the dataplane synced: %q %v, want HTTP 500 and an error", out, err)
	}
	synced.Store(true)
	if out, err := probe("/readyz"); err != nil || !strings.HasPrefix(out, "/readyz: 200") {
		t.Errorf("probe /readyz once synced: %q %v", out, err)
	}
	resp, err := http.Get("http://" + lns[0].Addr().String() + "/readyz/dataplane")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("TCP /readyz/dataplane: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := probeCmd([]string{"--socket", filepath.Join(t.TempDir(), "none.sock")}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("probe of a missing socket succeeded")
	}
}
