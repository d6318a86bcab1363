// Package heapfloor keeps the Go garbage collector's heap goal at or above a
// floor: after every collection it sets GOGC so that the next goal is
// max(floor, the goal GOGC=100 gives), never less.
//
// Why: the dataplane's live heap is small (a few MB: its buffers are ring
// arenas outside the heap), so with GOGC=100 the goal is the runtime's
// minimum, 4 MB, and a load that allocates (crypto/tls allocates about
// 100 KB per full handshake) collects tens of times a second. A fixed larger
// GOGC would multiply a large live heap as well (GOGC=400 is 5x whatever is
// live); the floor only lifts small heaps, so the memory it costs is at most
// the floor, and a heap of floor/2 or more is collected as with GOGC=100.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultFloor is the dataplane's heap goal floor in bytes.
const DefaultFloor = 32 << 20

// runtimeMinimum is the runtime's smallest heap goal at GOGC=100; it scales
// with GOGC (a GOGC of p makes it p/100 times larger).
const runtimeMinimum = 4 << 20

// Percent is the GOGC that makes the heap goal of a live heap of live bytes
// max(floor, 2*live): GOGC=100 once 2*live reaches the floor, else the
// percent whose goal is the floor, bounded so that the runtime's minimum,
// which grows with GOGC, stays within the floor too.
func Percent(live, floor uint64) int {
	ceiling := max(100, floor*100/runtimeMinimum)
	if 2*live >= floor {
		return 100
	}
	if live == 0 {
		return int(ceiling)
	}
	return int(min(max(100, (floor-live)*100/live), ceiling))
}

// Floor is a running floor; Stop ends it.
type Floor struct {
	floor uint64

	mu      sync.Mutex
	stopped bool
	percent int // the GOGC last set
	before  int // GOGC when the floor started, restored by Stop
	sample  [1]metrics.Sample
}

// Start sets GOGC for a heap goal of at least floor bytes now and after every
// collection until Stop. A floor <= 0 starts nothing (Stop on the nil Floor
// does nothing).
func Start(floor int64) *Floor {
	if floor <= 0 {
		return nil
	}
	f := &Floor{floor: uint64(floor)}
	f.sample[0].Name = "/gc/heap/live:bytes"
	f.mu.Lock()
	f.before = debug.SetGCPercent(100)
	f.percent = 100
	f.adjustLocked()
	f.mu.Unlock()
	f.arm()
	return f
}

// Stop ends the floor and restores the GOGC it found.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		debug.SetGCPercent(f.before)
	}
}

// GCPercent is the GOGC the floor set last.
func (f *Floor) GCPercent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// sentinel is garbage whose cleanup runs after the collection that finds it
// unreachable: one per cycle. It holds a pointer so that it is not batched
// with other tiny objects.
type sentinel struct {
	_ *int
	_ [8]byte
}

// arm makes the next collection call adjust.
func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), func(f *Floor) {
		f.mu.Lock()
		stopped := f.stopped
		if !stopped {
			f.adjustLocked()
		}
		f.mu.Unlock()
		if !stopped {
			f.arm()
		}
	}, f)
}

// adjustLocked sets GOGC from the live heap the last collection marked, when
// it differs by more than a tenth from the one set.
func (f *Floor) adjustLocked() {
	metrics.Read(f.sample[:])
	if f.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := Percent(f.sample[0].Value.Uint64(), f.floor)
	// Small changes are skipped (each SetGCPercent stops the world
	// briefly), except the return to 100: a heap past half the floor is
	// collected exactly as without one.
	if d := p - f.percent; d*10 > f.percent || -d*10 > f.percent || p == 100 && f.percent != 100 {
		debug.SetGCPercent(p)
		f.percent = p
	}
}
