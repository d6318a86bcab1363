package netpoll

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// testEngine is a running engine with its registry.
type testEngine struct {
	*Engine
	t      testing.TB
	reg    *metrics.Registry
	cancel context.CancelFunc
	done   chan error
}

// startEngine applies the snapshot y to a new two-worker engine and runs it.
func startEngine(t testing.TB, y string, po proxy.Options) *testEngine {
	t.Helper()
	reg := metrics.NewRegistry(2)
	log := logr.Discard()
	if tt, ok := t.(*testing.T); ok {
		log = testr.New(tt)
	}
	e, err := New(reg, Options{Proxy: po, Logger: log, LingerTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	te := &testEngine{Engine: e, t: t, reg: reg, done: make(chan error, 1)}
	te.apply(y)
	ctx, cancel := context.WithCancel(context.Background())
	te.cancel = cancel
	go func() { te.done <- e.Run(ctx) }()
	t.Cleanup(te.stop)
	return te
}

func (te *testEngine) apply(y string) []engine.ListenerStatus {
	te.t.Helper()
	st, err := te.Apply(enginetest.CompileYAML(te.t, te.reg, y))
	if err != nil {
		te.t.Fatalf("apply: %v", err)
	}
	for _, s := range st {
		if !s.Bound {
			te.t.Fatalf("listener %s not bound: %v", s.Name, s.Err)
		}
	}
	return st
}

func (te *testEngine) stop() {
	if te.cancel == nil {
		return
	}
	te.cancel()
	te.cancel = nil
	select {
	case err := <-te.done:
		if err != nil {
			te.t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		te.t.Errorf("engine did not stop")
	}
}

func errAddrInUse() error { return syscallEADDRINUSE }

var syscallEADDRINUSE = syscall.EADDRINUSE
