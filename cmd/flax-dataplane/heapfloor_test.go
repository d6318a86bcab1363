package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"

	"github.com/go-logr/logr"
)

// The serving commands start the heap floor unless GOGC is in the
// environment: the garbage collector's goal is then at least the floor.
func TestStartHeapFloor(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment, which turns the floor off")
	}
	// Another test's command may have started the default floor.
	restart := func() {
		heapFloorRun.Stop()
		heapFloorRun, heapFloorOnce = nil, sync.Once{}
	}
	restart()
	defer restart()
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor = 64 << 20
	startHeapFloor(floor, logr.Discard())
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if g := s[0].Value.Uint64(); g < floor*9/10 {
		t.Fatalf("heap goal %d MiB after starting a floor of %d MiB", g>>20, floor>>20)
	}
}
