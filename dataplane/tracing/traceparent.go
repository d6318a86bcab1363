package tracing

import "encoding/binary"

// TraceID is a W3C Trace Context trace id.
type TraceID [16]byte

// SpanID is a W3C Trace Context span (parent) id.
type SpanID [8]byte

// IsZero reports whether the id is all zeros (invalid in a traceparent).
func (t TraceID) IsZero() bool { return t == TraceID{} }

// IsZero reports whether the id is all zeros (invalid in a traceparent).
func (s SpanID) IsZero() bool { return s == SpanID{} }

// FlagSampled is the sampled bit of the trace flags.
const FlagSampled = 0x01

// TraceparentLen is the length of a version 00 traceparent value.
const TraceparentLen = 55

// ParseTraceparent parses a traceparent field value (W3C Trace Context,
// version 00, and later versions as the specification says: their first four
// fields read as version 00's, whatever follows a dash after them ignored).
// ok is false for a value to be ignored: wrong length or characters, upper-case
// hex, version ff, an all-zero trace or parent id, or extra data on version 00.
func ParseTraceparent(v []byte) (trace TraceID, parent SpanID, flags byte, ok bool) {
	if len(v) < TraceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace, parent, 0, false
	}
	version, okv := hexByte(v[0], v[1])
	if !okv || version == 0xff || (version == 0 && len(v) != TraceparentLen) ||
		(len(v) > TraceparentLen && v[TraceparentLen] != '-') {
		return trace, parent, 0, false
	}
	for i := range trace {
		b, okb := hexByte(v[3+2*i], v[4+2*i])
		if !okb {
			return trace, parent, 0, false
		}
		trace[i] = b
	}
	for i := range parent {
		b, okb := hexByte(v[36+2*i], v[37+2*i])
		if !okb {
			return trace, parent, 0, false
		}
		parent[i] = b
	}
	flags, okf := hexByte(v[53], v[54])
	if !okf || trace.IsZero() || parent.IsZero() {
		return trace, parent, 0, false
	}
	return trace, parent, flags, true
}

// AppendTraceparent appends the version 00 traceparent value of a span.
func AppendTraceparent(dst []byte, trace TraceID, span SpanID, flags byte) []byte {
	dst = append(dst, '0', '0', '-')
	dst = appendHex(dst, trace[:])
	dst = append(dst, '-')
	dst = appendHex(dst, span[:])
	dst = append(dst, '-')
	return appendHex(dst, []byte{flags})
}

// Sampled reports whether a trace that starts here is sampled at perMillion
// (0 to 1,000,000): a function of the trace id's last 7 bytes, which W3C Trace
// Context (level 2) asks to be random, so every node and worker decides the
// same for one trace.
func Sampled(trace TraceID, perMillion uint32) bool {
	if perMillion >= 1_000_000 {
		return true
	}
	r := binary.BigEndian.Uint64(trace[8:]) & (1<<56 - 1)
	return r < uint64(perMillion)*((1<<56)/1_000_000)
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// hexByte decodes two lower-case hex digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexVal(hi)
	l, ok2 := hexVal(lo)
	return h<<4 | l, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
