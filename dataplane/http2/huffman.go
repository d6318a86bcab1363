package http2

// The HPACK Huffman code (RFC 7541 Appendix B) is canonical: codes of equal
// length are consecutive in symbol order and each length's first code
// follows the previous length's last code. The code is therefore fully
// described by the bit length of each of the 257 symbols (256 is EOS); the
// codes and the decoding tables are derived from these lengths at init.
var huffLens = [257]uint8{
	13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
	28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
	6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
	5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
	13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
	15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
	6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
	20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
	24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
	22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
	21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
	26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
	19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
	20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
	26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
	30,
}

const (
	huffMinLen = 5
	huffMaxLen = 30
	huffEOS    = 256
)

var (
	huffCodes [257]uint32
	// For each code length L: the first code of that length, how many codes
	// have it, and where its symbols start in huffSyms.
	huffFirst [huffMaxLen + 1]uint32
	huffCount [huffMaxLen + 1]uint32
	huffStart [huffMaxLen + 1]uint16
	huffSyms  [257]uint16 // symbols ordered by (length, symbol)
	// huffFast maps the next 8 bits to the symbol they start with when its
	// code is at most 8 bits long (the common characters): length<<8 |
	// symbol, or 0 when the code is longer.
	huffFast [256]uint16
)

func init() {
	n := 0
	for l := uint8(huffMinLen); l <= huffMaxLen; l++ {
		huffStart[l] = uint16(n)
		for s := range huffLens {
			if huffLens[s] == l {
				huffSyms[n] = uint16(s)
				n++
			}
		}
		huffCount[l] = uint32(n) - uint32(huffStart[l])
	}
	code := uint32(0)
	prev := uint8(huffMinLen)
	for i := range n {
		s := huffSyms[i]
		l := huffLens[s]
		code <<= l - prev
		prev = l
		if uint16(i) == huffStart[l] {
			huffFirst[l] = code
		}
		huffCodes[s] = code
		code++
		if l <= 8 {
			for j := range 1 << (8 - l) {
				huffFast[int(huffCodes[s])<<(8-l)|j] = uint16(l)<<8 | s
			}
		}
	}
}

// huffmanEncodedLen returns the length of s Huffman-encoded.
func huffmanEncodedLen(s []byte) int {
	bits := 0
	for _, c := range s {
		bits += int(huffLens[c])
	}
	return (bits + 7) / 8
}

// appendHuffman appends the Huffman encoding of s, padded with the most
// significant bits of EOS (all ones).
func appendHuffman(dst, s []byte) []byte {
	var acc uint64
	var nbits uint
	for _, c := range s {
		l := uint(huffLens[c])
		acc = acc<<l | uint64(huffCodes[c])
		nbits += l
		for nbits >= 8 {
			nbits -= 8
			dst = append(dst, byte(acc>>nbits))
		}
	}
	if nbits > 0 {
		dst = append(dst, byte(acc<<(8-nbits))|byte(1<<(8-nbits)-1))
	}
	return dst
}

// appendHuffmanDecoded appends the decoding of the Huffman string src. It
// fails on an EOS symbol, on padding longer than 7 bits and on padding that
// is not a prefix of EOS (RFC 7541 section 5.2).
func appendHuffmanDecoded(dst, src []byte) ([]byte, bool) {
	var acc uint64 // pending bits, left-aligned
	var nbits uint
	i := 0
	for {
		for nbits <= 56 && i < len(src) {
			acc |= uint64(src[i]) << (56 - nbits)
			i++
			nbits += 8
		}
		if nbits == 0 {
			return dst, true
		}
		if nbits >= 8 {
			if e := huffFast[acc>>56]; e != 0 {
				l := uint(e >> 8)
				dst = append(dst, byte(e))
				acc <<= l
				nbits -= l
				continue
			}
		}
		matched := false
		for l := uint(huffMinLen); l <= huffMaxLen && l <= nbits; l++ {
			c := uint32(acc >> (64 - l))
			if d := c - huffFirst[l]; d < huffCount[l] {
				s := huffSyms[uint32(huffStart[l])+d]
				if s == huffEOS {
					return dst, false
				}
				dst = append(dst, byte(s))
				acc <<= l
				nbits -= l
				matched = true
				break
			}
		}
		if !matched {
			// What is left must be padding: at most 7 bits, all ones.
			if nbits > 7 || i < len(src) || acc>>(64-nbits) != 1<<nbits-1 {
				return dst, false
			}
			return dst, true
		}
	}
}
