package iouring

import (
	"testing"
)

func TestPackUnpackRoundTrip(t *testing.T) {
	cases := []struct {
		op   uint8
		gen  uint32
		slot uint32
	}{
		{0, 0, 0},
		{1, 1, 1},
		{255, GenMask, ^uint32(0)},
		{7, 0x123456, 0xdeadbeef},
		{42, 0xabcdef, 12345},
	}
	for _, c := range cases {
		ud := Pack(c.op, c.gen, c.slot)
		op, gen, slot := Unpack(ud)
		if op != c.op || gen != c.gen || slot != c.slot {
			t.Errorf("Unpack(Pack(%d,%#x,%#x)) = %d,%#x,%#x", c.op, c.gen, c.slot, op, gen, slot)
		}
	}
	// Generations are truncated to 24 bits and do not bleed into op.
	op, gen, _ := Unpack(Pack(3, 0xff000001, 9))
	if op != 3 || gen != 1 {
		t.Errorf("generation overflow leaked: op=%d gen=%#x", op, gen)
	}
}

func TestGenerationMismatchDetection(t *testing.T) {
	const slot = 17
	gen := NextGen(0)
	old := Pack(2, gen, slot) // operation issued for the first occupant
	if _, g, _ := Unpack(old); g != gen {
		t.Fatal("completion for current generation not recognised")
	}
	gen = NextGen(gen) // slot reused
	if _, g, _ := Unpack(old); g == gen {
		t.Fatal("late completion for previous occupant not detected")
	}
	if _, g, s := Unpack(old); s != slot || g == gen {
		t.Fatalf("unexpected unpack: gen=%d slot=%d", g, s)
	}
	// Wrap-around skips zero.
	if g := NextGen(GenMask); g != 1 {
		t.Fatalf("NextGen(GenMask) = %d, want 1", g)
	}
}
