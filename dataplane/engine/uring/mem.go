//go:build linux

package uring

import (
	"errors"
	"os"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// slabChunkBits sets the number of entries per slab chunk (256).
const slabChunkBits = 8

// slab is a grow-only array of T split in fixed chunks, so entries never
// move: pointers to them stay valid while the slab grows.
type slab[T any] struct {
	chunks []*[1 << slabChunkBits]T
	n      int32
}

// at returns entry i (< n).
func (s *slab[T]) at(i int32) *T {
	return &s.chunks[i>>slabChunkBits][i&(1<<slabChunkBits-1)]
}

// grow appends a zero entry and returns its index.
func (s *slab[T]) grow() int32 {
	if int(s.n) == len(s.chunks)<<slabChunkBits {
		s.chunks = append(s.chunks, new([1 << slabChunkBits]T))
	}
	i := s.n
	s.n++
	return i
}

// arenaAlloc carves small ring-owned structures (sockaddrs, timespecs,
// msghdrs, scratch buffers) out of arenas of the worker's ring, mapping a
// new arena when the current one is full.
type arenaAlloc struct {
	r   *iouring.Ring
	cur *iouring.Arena
}

// with runs f on an arena with room, mapping a new one once if f finds the
// current arena full.
func with[T any](a *arenaAlloc, f func(*iouring.Arena) (T, error)) (T, error) {
	if a.cur == nil {
		ar, err := a.r.NewArena(miscArenaSize)
		if err != nil {
			var zero T
			return zero, err
		}
		a.cur = ar
	}
	v, err := f(a.cur)
	if err == nil || !errors.Is(err, iouring.ErrArenaFull) {
		return v, err
	}
	ar, err := a.r.NewArena(miscArenaSize)
	if err != nil {
		var zero T
		return zero, err
	}
	a.cur = ar
	return f(a.cur)
}

// exchangePool is the proxy.ExchangePool and proxy.BufferPool of a
// worker. Its Exchanges are made without buffers: a session borrows each of
// the four buffers only when its traffic needs it and gives them back when
// it goes idle (proxy.BufferPool). Buffers are carved out of reserved ring
// arenas (address space only: a page takes memory when first touched), so
// sends go to the kernel straight from them; buffers left free for
// Limits.ReleaseAfter give their pages back (Arena.Release), and Exchanges
// left free as long are dropped for the garbage collector, so the worker's
// memory returns near its baseline after a burst (trim).
type exchangePool struct {
	w      *worker
	size   int
	bufs   engine.BufStack
	arenas []*iouring.Arena
	cur    *iouring.Arena
	heap   bool // arenas failed: fall back to heap buffers (sends then copy)

	free []freeExchange // oldest first
}

type freeExchange struct {
	x  *proxy.Exchange
	at int64
}

// pageSize aligns the buffers of reserved arenas: a buffer given back then
// frees all of its pages (Arena.Release frees only whole pages).
var pageSize = os.Getpagesize()

// pageRound rounds n up to whole pages.
func pageRound(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

// exchangeArenaBufs is the number of buffers whose address space one
// reserved arena holds.
const exchangeArenaBufs = 1024

// heapExchanges makes new workers lend heap-allocated buffers, as when
// arenas cannot be mapped (tests exercise the copying send path with it).
var heapExchanges atomic.Bool

func newExchangePool(w *worker, size int) *exchangePool {
	p := &exchangePool{w: w, size: size, heap: heapExchanges.Load()}
	p.bufs = engine.BufStack{Size: size, New: p.newBuffer, Release: p.release, Metrics: w.metrics}
	return p
}

// Get implements proxy.ExchangePool.
func (p *exchangePool) Get() *proxy.Exchange {
	if n := len(p.free); n > 0 {
		x := p.free[n-1].x
		p.free[n-1] = freeExchange{}
		p.free = p.free[:n-1]
		return x
	}
	return proxy.NewExchange(proxy.Buffers{})
}

// Put implements proxy.ExchangePool.
func (p *exchangePool) Put(x *proxy.Exchange) {
	p.free = append(p.free, freeExchange{x: x, at: p.w.now})
}

// GetBuffer implements proxy.BufferPool.
func (p *exchangePool) GetBuffer() []byte { return p.bufs.Get() }

// PutBuffer implements proxy.BufferPool.
func (p *exchangePool) PutBuffer(b []byte) { p.bufs.Put(b, p.w.now) }

// newBuffer carves a buffer out of the current reserved arena, reserving
// another when it is full; a heap buffer when none can be reserved.
func (p *exchangePool) newBuffer() []byte {
	if p.heap {
		return make([]byte, p.size)
	}
	if p.cur != nil {
		if b, err := p.cur.Alloc(p.size, pageSize); err == nil {
			return b
		}
	}
	a, err := p.w.ring.ReserveArena(exchangeArenaBufs * pageRound(p.size))
	if err != nil {
		p.heap = true
		p.w.log.Error(err, "cannot map exchange buffers, falling back to heap buffers")
		return make([]byte, p.size)
	}
	p.arenas = append(p.arenas, a)
	p.cur = a
	b, err := a.Alloc(p.size, pageSize)
	if err != nil {
		return make([]byte, p.size)
	}
	return b
}

// release gives a free buffer's pages back to the kernel; heap buffers are
// dropped.
func (p *exchangePool) release(b []byte) []byte {
	for _, a := range p.arenas {
		if a.Contains(b) {
			if err := a.Release(b); err != nil {
				p.w.log.Error(err, "cannot release exchange buffer")
			}
			return b
		}
	}
	return nil
}

// trim gives back the buffers and drops the Exchanges left free since
// cutoff or longer.
func (p *exchangePool) trim(cutoff int64) {
	dropped := p.bufs.Trim(cutoff) // heap fallback buffers only are garbage
	n := 0
	for n < len(p.free) && p.free[n].at <= cutoff {
		n++
	}
	if n > 0 {
		k := copy(p.free, p.free[n:])
		clear(p.free[k:])
		p.free = p.free[:k]
	}
	if n >= minReturnHeap || (p.heap && dropped >= minReturnHeap) {
		engine.ReturnHeap()
	}
}

// minReturnHeap is the number of Exchanges (a few KiB of Go heap each)
// dropped at once from which the worker has the heap returned to the system
// at once (engine.ReturnHeap).
const minReturnHeap = 64

// owns reports whether b lies in the buffer arenas.
func (p *exchangePool) owns(b []byte) bool {
	for _, a := range p.arenas {
		if a.Contains(b) {
			return true
		}
	}
	return false
}
