package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/dataplane/snapshot"
)

// noApplier accepts nothing; the probe test needs only the health service.
type noApplier struct{}

func (noApplier) Apply(context.Context, *dataplanev1.Snapshot) ([]*rpc.ListenerStatus, error) {
	return nil, errors.New("not applied")
}

func (noApplier) ApplyEndpoints(context.Context, string, *dataplanev1.Snapshot) error {
	return errors.New("not applied")
}

func TestProbeCommand(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "dataplane.sock")
	probeRun := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(append([]string{"probe", "--socket", socket, "--timeout", "2s"}, args...), &out, &errOut)
		return out.String(), err
	}
	if _, err := probeRun(); err == nil {
		t.Fatal("probe succeeded without a dataplane on the socket")
	}

	var ready atomic.Bool
	srv := snapshot.NewServer(noApplier{}, snapshot.ServerOptions{Ready: func() error {
		if !ready.Load() {
			return errors.New("draining")
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, socket) }()
	defer func() { cancel(); <-served }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := probeRun("--service", "liveness")
		if err == nil {
			if out != "liveness: SERVING\n" {
				t.Errorf("liveness output %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("liveness probe: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := probeRun(); err == nil || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("readiness probe of a draining dataplane: %q %v, want NOT_SERVING and an error", out, err)
	}
	ready.Store(true)
	if out, err := probeRun(); err != nil || out != "readiness: SERVING\n" {
		t.Errorf("readiness probe of a ready dataplane: %q %v", out, err)
	}
	if _, err := probeRun("--service", "nope"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("probe of an unknown service: %v", err)
	}
	if err := run([]string{"probe"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("probe without --socket: %v", err)
	}
}
