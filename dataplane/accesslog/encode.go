package accesslog

import (
	"encoding/hex"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// timeLayout is RFC 3339 with milliseconds, for UTC times.
const timeLayout = "2006-01-02T15:04:05.000Z"

// appendRecord appends r's JSON line (with its newline) to dst; now is the wall clock
// time at r.End. It does not allocate when dst has room.
func appendRecord(dst []byte, r *Record, now time.Time) []byte {
	dst, d := appendLineStart(dst, r.Start, r.End, now, r.Listener, r.Route)
	dst = append(dst, `,"method":`...)
	dst = appendBytes(dst, r.Method, MaxStringBytes)
	dst = append(dst, `,"path":`...)
	dst = appendBytes(dst, r.Path, MaxPathBytes)
	dst = append(dst, `,"protocol":`...)
	dst = appendString(dst, r.Protocol, MaxStringBytes)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, `,"response_bytes":`...)
	dst = strconv.AppendInt(dst, r.ResponseBytes, 10)
	dst = append(dst, `,"request_bytes":`...)
	dst = strconv.AppendInt(dst, r.RequestBytes, 10)
	dst = append(dst, `,"duration_ms":`...)
	dst = appendMillis(dst, d)
	dst = append(dst, `,"upstream":`...)
	dst = appendAddr(dst, r.Upstream)
	dst = append(dst, `,"backend_group":`...)
	dst = appendString(dst, r.BackendGroup, MaxStringBytes)
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(r.Attempts), 10)
	dst = append(dst, `,"client":`...)
	dst = appendAddr(dst, r.Client)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, r.Reason, MaxStringBytes)
	dst = append(dst, `,"trace_id":"`...)
	if r.Traced {
		dst = hex.AppendEncode(dst, r.TraceID[:])
	}
	return append(dst, "\"}\n"...)
}

// appendFlow appends f's JSON line (with its newline) to dst; now is the wall clock
// time at f.End. It does not allocate when dst has room.
func appendFlow(dst []byte, f *Flow, now time.Time) []byte {
	dst, d := appendLineStart(dst, f.Start, f.End, now, f.Listener, f.Route)
	dst = append(dst, `,"protocol":"UDP","client":`...)
	dst = appendAddr(dst, f.Client)
	dst = append(dst, `,"upstream":`...)
	dst = appendAddr(dst, f.Upstream)
	dst = append(dst, `,"backend_group":`...)
	dst = appendString(dst, f.BackendGroup, MaxStringBytes)
	dst = append(dst, `,"request_bytes":`...)
	dst = strconv.AppendInt(dst, f.RequestBytes, 10)
	dst = append(dst, `,"response_bytes":`...)
	dst = strconv.AppendInt(dst, f.ResponseBytes, 10)
	dst = append(dst, `,"request_datagrams":`...)
	dst = strconv.AppendInt(dst, f.RequestDatagrams, 10)
	dst = append(dst, `,"response_datagrams":`...)
	dst = strconv.AppendInt(dst, f.ResponseDatagrams, 10)
	dst = append(dst, `,"duration_ms":`...)
	dst = appendMillis(dst, d)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, f.Reason, MaxStringBytes)
	return append(dst, "}\n"...)
}

// appendLineStart opens the JSON line of a request or flow that lasted from start
// to end (the workers' clock) and ended at wall clock time now: its start time,
// listener and route. It returns the duration, never negative.
func appendLineStart(dst []byte, start, end int64, now time.Time, listener, route string) ([]byte, int64) {
	d := max(end-start, 0)
	dst = append(dst, `{"time":"`...)
	dst = now.Add(-time.Duration(d)).UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","listener":`...)
	dst = appendString(dst, listener, MaxStringBytes)
	dst = append(dst, `,"route":`...)
	dst = appendString(dst, route, MaxStringBytes)
	return dst, d
}

// appendMillis appends d nanoseconds as milliseconds with three decimals.
func appendMillis(dst []byte, d int64) []byte {
	us := d / 1e3
	dst = strconv.AppendInt(dst, us/1e3, 10)
	frac := us % 1e3
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendAddr appends a quoted ip:port (ip alone when the port is 0), or ""
// for an invalid address.
func appendAddr(dst []byte, a netip.AddrPort) []byte {
	dst = append(dst, '"')
	if a.IsValid() {
		if a.Addr().Is4In6() {
			a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		}
		if a.Port() == 0 {
			// An address without a port (a client address taken from
			// X-Forwarded-For).
			dst = a.Addr().AppendTo(dst)
		} else {
			dst = a.AppendTo(dst)
		}
	}
	return append(dst, '"')
}

// appendString appends s as a JSON string, escaped, of at most limit bytes of s.
func appendString(dst []byte, s string, limit int) []byte {
	return appendBytes(dst, unsafe.Slice(unsafe.StringData(s), len(s)), limit)
}

const hexDigits = "0123456789abcdef"

// appendBytes appends s as a JSON string, escaped, of at most limit bytes of s (a
// character cut in two at the limit becomes \ufffd): quotes, backslashes, control
// characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced by \ufffd.
func appendBytes(dst, s []byte, limit int) []byte {
	if len(s) > limit {
		s = s[:limit]
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
