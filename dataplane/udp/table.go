package udp

import "net/netip"

// ID names a flow of a Table: its slot and the slot's generation, so that an
// ID kept after its flow ended (a late event) is recognised as stale.
type ID uint64

func newID(slot int32, gen uint32) ID { return ID(uint64(gen)<<32 | uint64(uint32(slot))) }

// Slot returns the slot part of id.
func (id ID) Slot() int32 { return int32(uint32(id)) }

// Gen returns the generation part of id.
func (id ID) Gen() uint32 { return uint32(id >> 32) }

// Table is the flow table of one listener socket: flows by client address,
// each with a value V (the driver's upstream state), kept in order of their
// last activity so that the idlest flow is found at once for expiry and
// eviction. Lookups, touches and removals do not allocate; inserts allocate
// only while the table grows to its largest size. A Table is owned by one
// goroutine.
type Table[V any] struct {
	index      map[netip.AddrPort]int32
	slots      []slot[V]
	head, tail int32 // most and least recently active flow; -1 when empty
	free       int32 // first free slot, linked through next; -1 when none
	n          int
}

type slot[V any] struct {
	client     netip.AddrPort
	seen       int64 // last activity
	gen        uint32
	used       bool
	prev, next int32
	v          V
}

// NewTable returns an empty table with room for hint flows before it grows.
func NewTable[V any](hint int) *Table[V] {
	return &Table[V]{
		index: make(map[netip.AddrPort]int32, hint),
		slots: make([]slot[V], 0, hint),
		head:  -1, tail: -1, free: -1,
	}
}

// Len returns the number of flows.
func (t *Table[V]) Len() int { return t.n }

// Lookup returns the flow of client.
func (t *Table[V]) Lookup(client netip.AddrPort) (ID, bool) {
	i, ok := t.index[client]
	if !ok {
		return 0, false
	}
	return newID(i, t.slots[i].gen), true
}

// live returns id's slot index when id names a current flow.
func (t *Table[V]) live(id ID) (int32, bool) {
	i := id.Slot()
	if i < 0 || int(i) >= len(t.slots) || !t.slots[i].used || t.slots[i].gen != id.Gen() {
		return 0, false
	}
	return i, true
}

// Value returns the value of flow id, valid until the next Insert or Remove;
// false when id is stale.
func (t *Table[V]) Value(id ID) (*V, bool) {
	i, ok := t.live(id)
	if !ok {
		return nil, false
	}
	return &t.slots[i].v, true
}

// At returns the flow in slot i, whatever its generation; false when the
// slot holds none. A driver whose events carry a shortened generation
// compares it with the ID's.
func (t *Table[V]) At(i int32) (ID, bool) {
	if i < 0 || int(i) >= len(t.slots) || !t.slots[i].used {
		return 0, false
	}
	return newID(i, t.slots[i].gen), true
}

// Client returns the client address of flow id (zero when id is stale).
func (t *Table[V]) Client(id ID) netip.AddrPort {
	i, ok := t.live(id)
	if !ok {
		return netip.AddrPort{}
	}
	return t.slots[i].client
}

// Touch records activity of flow id at now, making it the most recent.
func (t *Table[V]) Touch(id ID, now int64) {
	i, ok := t.live(id)
	if !ok {
		return
	}
	t.slots[i].seen = now
	if t.head != i {
		t.unlink(i)
		t.pushFront(i)
	}
}

// Insert adds a flow for client, active at now, with value v, and returns its
// ID. The client must not have a flow (Lookup first).
func (t *Table[V]) Insert(client netip.AddrPort, now int64, v V) ID {
	var i int32
	if t.free >= 0 {
		i = t.free
		t.free = t.slots[i].next
	} else {
		t.slots = append(t.slots, slot[V]{})
		i = int32(len(t.slots) - 1)
	}
	s := &t.slots[i]
	s.client, s.seen, s.used, s.v = client, now, true, v
	s.gen++
	t.pushFront(i)
	t.index[client] = i
	t.n++
	return newID(i, s.gen)
}

// Remove ends flow id and returns its value and client; false when id is
// stale.
func (t *Table[V]) Remove(id ID) (V, netip.AddrPort, bool) {
	var zero V
	i, ok := t.live(id)
	if !ok {
		return zero, netip.AddrPort{}, false
	}
	s := &t.slots[i]
	v, client := s.v, s.client
	t.unlink(i)
	delete(t.index, client)
	s.v, s.used, s.client = zero, false, netip.AddrPort{}
	s.next = t.free
	t.free = i
	t.n--
	return v, client, true
}

// Oldest returns the flow idle the longest and its last activity; false
// when the table is empty.
func (t *Table[V]) Oldest() (ID, int64, bool) {
	if t.tail < 0 {
		return 0, 0, false
	}
	s := &t.slots[t.tail]
	return newID(t.tail, s.gen), s.seen, true
}

// Expired returns a flow whose last activity is at least idle before now
// (the idlest one); false when there is none. Remove it, and ask again.
func (t *Table[V]) Expired(now, idle int64) (ID, bool) {
	id, seen, ok := t.Oldest()
	if !ok || now-seen < idle {
		return 0, false
	}
	return id, true
}

// NextExpiry returns when the idlest flow expires given idle; false when the
// table is empty.
func (t *Table[V]) NextExpiry(idle int64) (int64, bool) {
	_, seen, ok := t.Oldest()
	return seen + idle, ok
}

func (t *Table[V]) pushFront(i int32) {
	s := &t.slots[i]
	s.prev, s.next = -1, t.head
	if t.head >= 0 {
		t.slots[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *Table[V]) unlink(i int32) {
	s := &t.slots[i]
	if s.prev >= 0 {
		t.slots[s.prev].next = s.next
	} else {
		t.head = s.next
	}
	if s.next >= 0 {
		t.slots[s.next].prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

// OverBound returns the flow to end so that a new one fits under max flows
// (the idlest one); false when there is room.
func (t *Table[V]) OverBound(max int) (ID, bool) {
	if t.n < max {
		return 0, false
	}
	id, _, ok := t.Oldest()
	return id, ok
}
