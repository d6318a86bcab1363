package udp

import (
	"net/netip"
	"testing"
)

func client(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(40000+i))
}

func TestTableOrderExpiryAndBound(t *testing.T) {
	tb := NewTable[int](2)
	a := tb.Insert(client(1), 100, 1)
	b := tb.Insert(client(2), 200, 2)
	c := tb.Insert(client(3), 300, 3)
	if tb.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tb.Len())
	}
	if id, ok := tb.Lookup(client(2)); !ok || id != b {
		t.Fatalf("Lookup(client 2) = %v, %v; want %v", id, ok, b)
	}
	if _, ok := tb.Lookup(client(9)); ok {
		t.Fatal("Lookup of an unknown client found a flow")
	}
	// Activity reorders: a becomes the most recent, b the idlest.
	tb.Touch(a, 400)
	if id, seen, _ := tb.Oldest(); id != b || seen != 200 {
		t.Fatalf("Oldest = %v at %d, want flow b at 200", id, seen)
	}
	// The bound names the idlest flow only when the table is full.
	if _, over := tb.OverBound(4); over {
		t.Fatal("OverBound(4) with 3 flows asked for an eviction")
	}
	if id, over := tb.OverBound(3); !over || id != b {
		t.Fatalf("OverBound(3) = %v, %v; want flow b", id, over)
	}
	// Expiry: idle 150 at 460 expires b (200) and c (300), not a (400).
	var expired []int
	for {
		id, ok := tb.Expired(460, 150)
		if !ok {
			break
		}
		v, _, _ := tb.Remove(id)
		expired = append(expired, v)
	}
	if len(expired) != 2 || expired[0] != 2 || expired[1] != 3 {
		t.Fatalf("expired %v, want [2 3] (idlest first)", expired)
	}
	if at, ok := tb.NextExpiry(150); !ok || at != 550 {
		t.Fatalf("NextExpiry = %d, %v; want 550", at, ok)
	}
	// A removed flow's ID is stale even once its slot is reused.
	d := tb.Insert(client(4), 500, 4)
	if d.Slot() != b.Slot() && d.Slot() != c.Slot() {
		t.Fatalf("new flow took slot %d, want a freed one", d.Slot())
	}
	for _, stale := range []ID{b, c} {
		if _, ok := tb.Value(stale); ok {
			t.Fatalf("Value(%v) of an ended flow succeeded", stale)
		}
		if _, _, ok := tb.Remove(stale); ok {
			t.Fatalf("Remove(%v) of an ended flow succeeded", stale)
		}
	}
	if v, ok := tb.Value(d); !ok || *v != 4 || tb.Client(d) != client(4) {
		t.Fatalf("Value(d) = %v, %v, client %v", v, ok, tb.Client(d))
	}
	tb.Remove(a)
	tb.Remove(d)
	if _, _, ok := tb.Oldest(); ok || tb.Len() != 0 {
		t.Fatalf("table not empty after removing every flow: Len %d", tb.Len())
	}
}

func TestTableSteadyStateAllocatesNothing(t *testing.T) {
	const flows = 1024
	tb := NewTable[int](flows)
	for i := range flows {
		tb.Insert(client(i), int64(i), i)
	}
	now := int64(flows)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		now++
		// A datagram of a known flow, then a new client over the bound.
		id, _ := tb.Lookup(client(i % flows))
		tb.Touch(id, now)
		if old, over := tb.OverBound(flows); over {
			v, _, _ := tb.Remove(old)
			tb.Insert(client(flows+v), now, v)
			i++
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per datagram, want 0", allocs)
	}
}

// BenchmarkTableDatagram is the table's work per datagram of a known flow.
func BenchmarkTableDatagram(b *testing.B) {
	const flows = 4096
	tb := NewTable[int](flows)
	for i := range flows {
		tb.Insert(client(i), int64(i), i)
	}
	b.ReportAllocs()
	now := int64(flows)
	for i := 0; b.Loop(); i++ {
		now++
		id, ok := tb.Lookup(client(i % flows))
		if !ok {
			b.Fatal("flow lost")
		}
		tb.Touch(id, now)
	}
}

// BenchmarkTableChurn is a new flow over the bound per datagram: the idlest
// flow is evicted and its slot reused.
func BenchmarkTableChurn(b *testing.B) {
	const flows = 4096
	tb := NewTable[int](flows)
	for i := range flows {
		tb.Insert(client(i), int64(i), i)
	}
	b.ReportAllocs()
	now := int64(flows)
	for i := 0; b.Loop(); i++ {
		now++
		old, _ := tb.OverBound(flows)
		tb.Remove(old)
		tb.Insert(client((flows+i)%60000), now, i)
	}
}
