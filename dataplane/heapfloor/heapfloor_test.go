package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 32 * mib, 800},         // the runtime's minimum, scaled, is the floor
		{2 * mib, 32 * mib, 800},   // 1500 would lift the runtime's minimum to 60 MiB
		{8 * mib, 32 * mib, 300},   // 8 MiB * 4 = the floor
		{15 * mib, 32 * mib, 113},  // just under half the floor
		{16 * mib, 32 * mib, 100},  // GOGC=100 reaches the floor
		{100 * mib, 32 * mib, 100}, // large heaps collect as by default
		{0, 2 * mib, 100},          // a floor under the runtime's own minimum changes nothing
	} {
		if got := Percent(c.live, c.floor); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.floor/mib, got, c.want)
		}
	}
}

var sink []byte

// churn allocates n bytes of short-lived garbage and returns the
// collections it took.
func churn(n int) uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	for range n / (32 << 10) {
		sink = make([]byte, 32<<10)
	}
	sink = nil
	runtime.ReadMemStats(&ms)
	return ms.NumGC - before
}

func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// With a floor, a small heap is collected when it reaches the floor, not at
// the runtime's 4 MB minimum; a heap that grows past half the floor is
// collected as with GOGC=100; Stop gives back the GOGC found.
func TestFloor(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	without := churn(256 << 20)

	const floor = 48 << 20
	f := Start(floor)
	// The floor follows each collection from a cleanup, which runs
	// shortly after it.
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		g := heapGoal()
		if g >= floor*9/10 && g <= floor*3/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heap goal %d MiB with a floor of %d MiB", g>>20, floor>>20)
		}
		time.Sleep(time.Millisecond)
	}
	with := churn(256 << 20)
	t.Logf("collections for 256 MiB of garbage: %d without a floor, %d with a floor of 48 MiB", without, with)
	if with > 12 || with*3 > without {
		t.Errorf("%d collections with the floor, %d without: want far fewer with it", with, without)
	}

	// A live heap of 40 MiB: GOGC goes back to 100 after a collection.
	live := make([][]byte, 40)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	deadline := time.Now().Add(5 * time.Second)
	for f.GCPercent() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d with 40 MiB live and a floor of 48 MiB, want 100", f.GCPercent())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	runtime.KeepAlive(live)

	f.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC %d after Stop, want the 100 found at Start", p)
	}
	var nilFloor *Floor
	nilFloor.Stop()
	if Start(0) != nil {
		t.Error("Start(0) started a floor")
	}
}
