package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// workers is the number of workers of every engine under test: more than one,
// so that node-wide state is shared between workers.
const workers = 2

// kind is an engine under test.
type kind struct {
	name string
	// new returns an engine counting in reg; it skips the test when the
	// engine cannot run here.
	new func(t *testing.T, reg *metrics.Registry) engine.Engine
}

// engines are the engines every test runs on; uring_linux_test.go adds io_uring.
var engines = []kind{{name: "netpoll", new: newNetpoll}}

func newNetpoll(t *testing.T, reg *metrics.Registry) engine.Engine {
	e, err := netpoll.New(reg, netpoll.Options{Workers: workers, Logger: testr.New(t), LingerTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("new netpoll engine: %v", err)
	}
	return e
}

// forEachEngine runs f as a subtest per engine.
func forEachEngine(t *testing.T, f func(t *testing.T, k kind)) {
	t.Helper()
	for _, k := range engines {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

// testEngine is a running engine with its registry.
type testEngine struct {
	engine.Engine
	t      *testing.T
	reg    *metrics.Registry
	cancel context.CancelFunc
	done   chan error
}

// startEngine runs an engine of kind k, without a configuration, until the test
// ends.
func startEngine(t *testing.T, k kind) *testEngine {
	t.Helper()
	reg := metrics.NewRegistry(workers)
	e := k.new(t, reg)
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEngine{Engine: e, t: t, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { te.done <- e.Run(ctx) }()
	t.Cleanup(te.stop)
	return te
}

func (te *testEngine) stop() {
	te.cancel()
	select {
	case err := <-te.done:
		if err != nil {
			te.t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		te.t.Errorf("engine did not stop")
	}
}

// apply makes cfg the engine's configuration; every listener must bind.
func (te *testEngine) apply(cfg *compiled.Config) {
	te.t.Helper()
	st, err := te.Apply(cfg)
	if err != nil {
		te.t.Fatalf("apply: %v", err)
	}
	for _, s := range st {
		if !s.Bound {
			te.t.Fatalf("listener %s not bound: %v", s.Name, s.Err)
		}
	}
}
