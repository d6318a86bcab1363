package tracing

import "sync/atomic"

// queue is a bounded multi-producer, single-consumer queue of spans (a ring
// of slots, each with a sequence number saying whether it is free for the
// producer at a position or ready for the consumer). A worker's requests
// produce (several goroutines on the netpoll engine), the exporter consumes.
type queue struct {
	slots []slot
	mask  uint64
	head  atomic.Uint64 // next position to produce
	_     [56]byte      // keep head and tail on separate cache lines
	tail  atomic.Uint64 // next position to consume (written by the exporter only)
}

type slot struct {
	seq  atomic.Uint64
	span Span
}

// newQueue returns a queue of size slots, a power of two.
func newQueue(size int) *queue {
	q := &queue{slots: make([]slot, size), mask: uint64(size - 1)}
	for i := range q.slots {
		q.slots[i].seq.Store(uint64(i))
	}
	return q
}

// push copies s into the queue and returns its position, or -1 when the queue
// is full.
func (q *queue) push(s *Span) int64 {
	pos := q.head.Load()
	for {
		sl := &q.slots[pos&q.mask]
		seq := sl.seq.Load()
		switch diff := int64(seq - pos); {
		case diff == 0:
			if q.head.CompareAndSwap(pos, pos+1) {
				sl.span = *s
				sl.seq.Store(pos + 1)
				return int64(pos)
			}
			pos = q.head.Load()
		case diff < 0:
			return -1 // the slot still holds a span a lap behind: full
		default:
			pos = q.head.Load() // another producer took pos
		}
	}
}

// peek returns the oldest span ready for the consumer, or nil. The span stays
// in its slot until pop.
func (q *queue) peek() *Span {
	t := q.tail.Load()
	sl := &q.slots[t&q.mask]
	if sl.seq.Load() != t+1 {
		return nil
	}
	return &sl.span
}

// pop frees the slot peek returned.
func (q *queue) pop() {
	t := q.tail.Load()
	q.slots[t&q.mask].seq.Store(t + q.mask + 1)
	q.tail.Store(t + 1)
}
