package balancer

import (
	"encoding/binary"
	"math/bits"
)

// Mixing constants: the 64-bit golden ratio and the SplitMix64 finaliser
// multipliers.
const (
	golden = 0x9e3779b97f4a7c15
	mixA   = 0xbf58476d1ce4e5b9
	mixB   = 0x94d049bb133111eb
)

// Hash returns the package's fixed 64-bit hash of b. It does not allocate,
// and its output never changes between processes, machines or releases of
// the package without a deliberate, documented change: consistent hashing
// depends on it.
func Hash(b []byte) uint64 { return HashSeed(b, 0) }

// HashSeed is [Hash] with a seed, giving an independent hash function per
// seed.
func HashSeed(b []byte, seed uint64) uint64 {
	h := (seed + golden) ^ uint64(len(b))*mixB
	for len(b) >= 8 {
		h = hashRound(h, binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) > 0 {
		// The length is already mixed in, so zero padding is unambiguous.
		var w uint64
		for i, c := range b {
			w |= uint64(c) << (8 * i)
		}
		h = hashRound(h, w)
	}
	return fmix(h)
}

// hashString is Hash for a string, used while building.
func hashString(s string, seed uint64) uint64 { return HashSeed([]byte(s), seed) }

// hashRound absorbs one 64-bit word into the state.
func hashRound(h, w uint64) uint64 {
	w *= mixA
	w ^= w >> 31
	h ^= w
	h *= golden
	return bits.RotateLeft64(h, 27)
}

// fmix is the SplitMix64 finaliser: every input bit affects every output
// bit.
func fmix(h uint64) uint64 {
	h ^= h >> 30
	h *= mixA
	h ^= h >> 27
	h *= mixB
	h ^= h >> 31
	return h
}

// rng is a SplitMix64 generator: tiny state, no allocation, good enough for
// load balancing decisions.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += golden
	return fmix(r.state)
}

// intn returns a uniform value in [0, n) for n > 0 (multiply-high
// reduction; the bias is negligible for the n used here).
func (r *rng) intn(n int) int { return int(r.uint64n(uint64(n))) }

// uint64n returns a uniform value in [0, n) for n > 0.
func (r *rng) uint64n(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}
