package engine

import (
	"runtime/debug"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// BufStack is the core of an engine's proxy.BufferPool: a stack of free
// connection buffers of Size bytes that gives back to the system the ones
// left unused for a while (Trim), so a worker's buffer memory follows its
// load. It counts the bytes it lends and keeps in Metrics
// (metrics.Worker.BufferBytes, which the memory budget reads). It is not
// safe for concurrent use.
type BufStack struct {
	// Size is the size of each buffer.
	Size int
	// New returns a fresh buffer of Size bytes; nil when none can be had,
	// and the caller's own fallback applies.
	New func() []byte
	// Release gives the memory of a free buffer back to the system and
	// returns what the stack keeps in its place: the same slice when its
	// address range stays reserved (an io_uring arena, whose pages the
	// kernel maps again when touched), nil when the buffer is dropped for
	// the garbage collector.
	Release func([]byte) []byte
	// Metrics receives the byte counts; nil counts nothing.
	Metrics *metrics.Worker

	free     []freeBuf // oldest first: entries are pushed and popped at the end
	released int       // free[:released] have been given back
	lent     int
}

type freeBuf struct {
	b  []byte
	at int64 // when it was put back
}

// Get returns a buffer, from the stack when it has one, else from New
// (nil when New has none either).
func (s *BufStack) Get() []byte {
	var b []byte
	var free int64 // change of the free bytes counted
	if n := len(s.free); n > 0 {
		b = s.free[n-1].b
		s.free[n-1] = freeBuf{}
		s.free = s.free[:n-1]
		if n-1 < s.released {
			s.released = n - 1
		} else {
			free = -int64(s.Size)
		}
	}
	if b == nil && s.New != nil {
		b = s.New()
	}
	if b == nil {
		s.count(0, free)
		return nil
	}
	s.lent++
	s.count(int64(s.Size), free)
	return b
}

// Put takes back a buffer from Get at time now (any monotonic clock, the
// one Trim is given).
func (s *BufStack) Put(b []byte, now int64) {
	s.lent--
	s.free = append(s.free, freeBuf{b: b, at: now})
	s.count(-int64(s.Size), int64(s.Size))
}

// Trim gives back the free buffers put back at or before cutoff, and
// returns how many it gave back.
func (s *BufStack) Trim(cutoff int64) int {
	n := 0
	for s.released < len(s.free) && s.free[s.released].at <= cutoff {
		f := &s.free[s.released]
		if s.Release != nil {
			f.b = s.Release(f.b)
		} else {
			f.b = nil
		}
		s.released++
		n++
	}
	if n > 0 {
		s.count(0, -int64(n*s.Size))
		// Dropped buffers leave nothing worth keeping an entry for.
		k := 0
		for i := range s.released {
			if s.free[i].b != nil {
				s.free[k] = s.free[i]
				k++
			}
		}
		if k < s.released {
			m := k + copy(s.free[k:], s.free[s.released:])
			clear(s.free[m:])
			s.free = s.free[:m]
			s.released = k
		}
	}
	return n
}

// Lent returns the number of buffers lent and not yet put back.
func (s *BufStack) Lent() int { return s.lent }

// Resident returns the number of free buffers not given back.
func (s *BufStack) Resident() int { return len(s.free) - s.released }

func (s *BufStack) count(inUse, free int64) {
	if s.Metrics != nil {
		s.Metrics.BufferBytes(inUse, free)
	}
}

// ReturnHeap's state: a collection runs, another was asked for meanwhile.
var returning, returnAgain atomic.Bool

// ReturnHeap asks the Go runtime, on a goroutine of its own, to collect
// garbage and give free heap pages back to the system now, as an engine does
// after dropping a burst's worth of buffers or Exchanges: the runtime's own
// scavenger would take minutes. Calls made while a collection runs are
// served by one more collection after it.
func ReturnHeap() {
	returnAgain.Store(true)
	if !returning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for returnAgain.Swap(false) {
				debug.FreeOSMemory()
			}
			returning.Store(false)
			// A call between the last Swap and the Store found the
			// collection running: serve it unless another goroutine does.
			if !returnAgain.Load() || !returning.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}
