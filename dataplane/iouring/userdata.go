package iouring

// user_data layout (64 bits):
//
//	63        56 55                32 31                         0
//	+-----------+--------------------+----------------------------+
//	|    op     |  generation (24)   |           slot             |
//	+-----------+--------------------+----------------------------+
const (
	genBits   = 24
	slotBits  = 32
	genShift  = slotBits
	opShift   = slotBits + genBits
	slotMask  = 1<<slotBits - 1
	genFieldM = 1<<genBits - 1
)

// GenMask is the largest generation that fits in user_data. Pack keeps only
// the low 24 bits of a generation; use NextGen to advance one.
const GenMask uint32 = genFieldM

// Pack encodes an operation code, a 24-bit generation and a slot index into
// an SQE user_data value. Workers keep a generation per slot and bump it
// (NextGen) whenever the slot is reused, so a completion that arrives late for
// the previous occupant is recognised: its generation differs from the slot's
// current one.
func Pack(op uint8, gen uint32, slot uint32) uint64 {
	return uint64(op)<<opShift | uint64(gen&GenMask)<<genShift | uint64(slot)
}

// Unpack is the inverse of Pack.
func Unpack(userData uint64) (op uint8, gen uint32, slot uint32) {
	return uint8(userData >> opShift), uint32(userData>>genShift) & GenMask, uint32(userData & slotMask)
}

// NextGen returns the generation following gen, wrapping within 24 bits. It
// never returns 0, so a zero generation can mean "slot never used".
func NextGen(gen uint32) uint32 {
	gen = (gen + 1) & GenMask
	if gen == 0 {
		gen = 1
	}
	return gen
}
