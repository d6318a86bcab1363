package balancer

import "math/bits"

// Bitset is a set of endpoint indexes, one bit per endpoint, used to tell
// [Picker.Pick] which endpoints are unhealthy. Indexes beyond its length
// are absent. The zero value (nil) is the empty set.
type Bitset []uint64

// NewBitset returns an empty Bitset able to hold indexes [0, n).
func NewBitset(n int) Bitset { return make(Bitset, (n+63)/64) }

// Set adds i to the set; i must be below the capacity given to NewBitset.
func (b Bitset) Set(i int) { b[i/64] |= 1 << (uint(i) % 64) }

// Has reports whether i is in the set.
func (b Bitset) Has(i int) bool {
	w := i / 64
	return w < len(b) && b[w]&(1<<(uint(i)%64)) != 0
}

// countAnd returns the number of indexes in both b and mask.
func (b Bitset) countAnd(mask Bitset) int {
	n := 0
	for i := range min(len(b), len(mask)) {
		n += bits.OnesCount64(b[i] & mask[i])
	}
	return n
}
