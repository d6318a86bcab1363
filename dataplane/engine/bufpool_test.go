package engine

import (
	"testing"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// TestBufStackTrim checks that buffers go back to the system only once left
// free long enough, oldest first, that the byte counts follow, and that a
// stack keeping reserved address ranges reuses them.
func TestBufStackTrim(t *testing.T) {
	for _, keep := range []bool{false, true} {
		reg := metrics.NewRegistry(1)
		m := reg.Worker(0)
		made, released := 0, 0
		s := BufStack{Size: 100, Metrics: m, New: func() []byte { made++; return make([]byte, 100) }}
		if keep {
			s.Release = func(b []byte) []byte { released++; return b }
		}
		check := func(what string, inUse, free int64) {
			t.Helper()
			if m.BufferBytesInUse() != inUse || m.BufferBytesFree() != free {
				t.Fatalf("keep=%v %s: in use %d, free %d; want %d, %d", keep, what, m.BufferBytesInUse(), m.BufferBytesFree(), inUse, free)
			}
		}
		a, b, c := s.Get(), s.Get(), s.Get()
		check("three lent", 300, 0)
		s.Put(a, 10)
		s.Put(b, 20)
		s.Put(c, 30)
		check("three back", 0, 300)
		if n := s.Trim(5); n != 0 {
			t.Fatalf("trim before any buffer was old enough gave back %d", n)
		}
		if n := s.Trim(20); n != 2 || s.Resident() != 1 {
			t.Fatalf("trim(20) gave back %d, %d resident; want 2, 1", n, s.Resident())
		}
		check("two given back", 0, 100)
		if got := s.Get(); &got[0] != &c[0] {
			t.Fatal("the resident buffer is not reused first")
		}
		check("resident one lent", 100, 0)
		s.Get()
		check("two lent", 200, 0)
		if keep && (made != 3 || released != 2) {
			t.Fatalf("kept address ranges: %d made, %d released; want 3, 2", made, released)
		}
		if !keep && made != 4 {
			t.Fatalf("dropped buffers: %d made, want 4", made)
		}
		if s.Lent() != 2 {
			t.Fatalf("lent %d, want 2", s.Lent())
		}
	}
}
