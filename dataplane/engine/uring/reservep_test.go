package uring

import (
	"runtime"
	"testing"
)

// The engine leaves the runtime a P beyond its workers, unless GOMAXPROCS is
// set in the environment.
func TestReserveP(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	t.Setenv("GOMAXPROCS", "")

	runtime.GOMAXPROCS(2)
	reserveP(2)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d after reserveP(2) with 2, want 3", got)
	}
	reserveP(1)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d after reserveP(1) with 3, want it left at 3", got)
	}

	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	reserveP(2)
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS %d after reserveP(2) with GOMAXPROCS=2 in the environment, want 2", got)
	}
}
