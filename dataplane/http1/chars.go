package http1

import (
	"encoding/binary"
	"math"
)

// Byte classes.
const (
	cToken  = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue              // field-value byte: HTAB, SP, VCHAR, obs-text
	cTarget             // request-target byte: VCHAR
	cHost               // authority byte: unreserved, sub-delims, ':', '[', ']', '%'
)

var charClass = buildCharClass()

func buildCharClass() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9')
		if alnum || indexByteString("!#$%&'*+-.^_`|~", b) {
			t[c] |= cToken
		}
		if b == '\t' || (b >= 0x20 && b != 0x7f) {
			t[c] |= cValue
		}
		if b > 0x20 && b < 0x7f {
			t[c] |= cTarget
		}
		if alnum || indexByteString("-._~!$&'()*+,;=:[]%", b) {
			t[c] |= cHost
		}
	}
	return t
}

func indexByteString(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

func isToken(c byte) bool { return charClass[c]&cToken != 0 }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFold reports whether b equals the lowercase ASCII string s, ignoring
// the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a and b are equal ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// equalFoldString is equalFold for a name of any case.
func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns the bounds of b[start:end] without leading and trailing
// optional whitespace.
func trimOWS(b []byte, start, end int) (int, int) {
	for start < end && isOWS(b[start]) {
		start++
	}
	for end > start && isOWS(b[end-1]) {
		end--
	}
	return start, end
}

// parseDecimal parses a non-empty run of ASCII digits into a non-negative
// int64; ok is false for any other byte, an empty input or overflow.
func parseDecimal(b []byte) (n int64, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func unhex(c byte) int64 {
	switch {
	case '0' <= c && c <= '9':
		return int64(c - '0')
	case 'a' <= c && c <= 'f':
		return int64(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int64(c-'A') + 10
	}
	return -1
}

// lookupHeaderID classifies a field name.
func lookupHeaderID(name []byte) HeaderID {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return HeaderTE
		}
	case 4:
		if equalFold(name, "host") {
			return HeaderHost
		}
	case 6:
		if equalFold(name, "expect") {
			return HeaderExpect
		}
	case 7:
		if equalFold(name, "upgrade") {
			return HeaderUpgrade
		}
		if equalFold(name, "trailer") {
			return HeaderTrailer
		}
	case 9:
		if equalFold(name, "forwarded") {
			return HeaderForwarded
		}
	case 10:
		if equalFold(name, "connection") {
			return HeaderConnection
		}
		if equalFold(name, "keep-alive") {
			return HeaderKeepAlive
		}
	case 14:
		if equalFold(name, "content-length") {
			return HeaderContentLength
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return HeaderXForwardedFor
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			return HeaderProxyConnection
		}
		if equalFold(name, "x-forwarded-host") {
			return HeaderXForwardedHost
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return HeaderTransferEncoding
		}
		if equalFold(name, "x-forwarded-proto") {
			return HeaderXForwardedProto
		}
	}
	return HeaderOther
}

// listIter walks the elements of a comma-separated list value (RFC 9110
// §5.6.1), yielding each element with surrounding whitespace removed. Empty
// elements are yielded too; callers decide whether to accept them.
type listIter struct {
	b   []byte
	pos int
	end int
}

func (it *listIter) next() (start, end int, ok bool) {
	if it.pos > it.end {
		return 0, 0, false
	}
	i := it.pos
	for i < it.end && it.b[i] != ',' {
		i++
	}
	start, end = trimOWS(it.b, it.pos, i)
	it.pos = i + 1
	return start, end, true
}

const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// validValue reports whether every byte of b may appear in a field value
// (HTAB, SP, VCHAR, obs-text). It checks eight bytes at a time and falls
// back to the byte table for words holding a control byte or DEL.
func validValue(b []byte) bool {
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// A byte below 0x20 (high bit clear) or equal to 0x7f.
		lt := (w - swarOnes*0x20) &^ w & swarHigh
		x := w ^ (swarOnes * 0x7f)
		del := (x - swarOnes) &^ x & swarHigh
		if lt|del != 0 {
			for _, c := range b[:8] {
				if charClass[c]&cValue == 0 {
					return false
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if charClass[c]&cValue == 0 {
			return false
		}
	}
	return true
}
