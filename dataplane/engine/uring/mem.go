//go:build linux

package uring

import (
	"errors"
	"sync/atomic"

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

// bytes allocates n bytes aligned to 64.
func (a *arenaAlloc) bytes(n int) ([]byte, error) {
	return with(a, func(ar *iouring.Arena) ([]byte, error) { return ar.Alloc(n, 64) })
}

// exchangePool is the proxy.ExchangePool of a worker: Exchanges whose four
// buffers are carved out of ring arenas, so sends go to the kernel straight
// from them. It grows by arenas holding grow Exchanges (doubling up to
// maxExchangeChunk) and never shrinks; an Exchange costs memory only while
// a connection is active, because sessions give it back when idle.
type exchangePool struct {
	w      *worker
	size   int
	grow   int
	free   []*proxy.Exchange
	arenas []*iouring.Arena
	heap   bool // arenas failed: fall back to heap buffers (sends then copy)
}

const maxExchangeChunk = 256

// heapExchanges makes new workers lend heap-allocated Exchanges, as when
// arenas cannot be mapped (tests exercise the copying send path with it).
var heapExchanges atomic.Bool

// Get implements proxy.ExchangePool.
func (p *exchangePool) Get() *proxy.Exchange {
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return x
	}
	if !p.heap && p.refill() {
		return p.Get()
	}
	return proxy.NewExchange(proxy.NewBuffers(p.size))
}

// Put implements proxy.ExchangePool.
func (p *exchangePool) Put(x *proxy.Exchange) { p.free = append(p.free, x) }

// refill maps an arena for the next chunk of Exchanges.
func (p *exchangePool) refill() bool {
	n := p.grow
	a, err := p.w.ring.NewArena(n * 4 * (p.size + 64))
	if err != nil {
		p.heap = true
		p.w.log.Error(err, "cannot map exchange buffers, falling back to heap buffers")
		return false
	}
	p.grow = min(2*p.grow, maxExchangeChunk)
	p.arenas = append(p.arenas, a)
	for k := 0; k < n; k++ {
		var b [4][]byte
		for j := range b {
			buf, err := a.Alloc(p.size, 64)
			if err != nil {
				return k > 0
			}
			b[j] = buf
		}
		p.free = append(p.free, proxy.NewExchange(proxy.Buffers{
			ClientIn: b[0], UpstreamIn: b[1], UpstreamHead: b[2], ClientHead: b[3],
		}))
	}
	return true
}

// owns reports whether b lies in the Exchange arenas.
func (p *exchangePool) owns(b []byte) bool {
	for _, a := range p.arenas {
		if a.Contains(b) {
			return true
		}
	}
	return false
}
