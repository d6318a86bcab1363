package http1

import (
	"math/rand/v2"
	"testing"
)

func validValueSlow(b []byte) bool {
	for _, c := range b {
		if charClass[c]&cValue == 0 {
			return false
		}
	}
	return true
}

func TestValidValue(t *testing.T) {
	// Every byte value at every position of buffers of several lengths.
	for n := 1; n <= 19; n++ {
		buf := make([]byte, n)
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				for i := range buf {
					buf[i] = 'a'
				}
				buf[pos] = byte(c)
				if got, want := validValue(buf), validValueSlow(buf); got != want {
					t.Fatalf("len %d pos %d byte %#x: got %v want %v", n, pos, c, got, want)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64)
	for i := 0; i < 100000; i++ {
		for j := range buf {
			// Mostly valid bytes, with boundary values.
			switch rng.IntN(8) {
			case 0:
				buf[j] = byte(rng.IntN(256))
			case 1:
				buf[j] = []byte{0x00, 0x09, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff}[rng.IntN(8)]
			default:
				buf[j] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		l := rng.IntN(len(buf) + 1)
		if got, want := validValue(buf[:l]), validValueSlow(buf[:l]); got != want {
			t.Fatalf("%q: got %v want %v", buf[:l], got, want)
		}
	}
}

func TestCharClasses(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if isToken(b) != (b > 0x20 && b < 0x7f && !indexByteString("\"(),/:;<=>?@[\\]{}", b)) {
			t.Errorf("token class of %#x", c)
		}
	}
	for _, tc := range []struct {
		in string
		n  int64
		ok bool
	}{{"0", 0, true}, {"9223372036854775807", 1<<63 - 1, true}, {"9223372036854775808", 0, false}, {"", 0, false}, {"1a", 0, false}} {
		if n, ok := parseDecimal([]byte(tc.in)); n != tc.n || ok != tc.ok {
			t.Errorf("parseDecimal(%q) = %d, %v", tc.in, n, ok)
		}
	}
}
