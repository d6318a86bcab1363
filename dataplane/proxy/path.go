package proxy

import (
	"bytes"
	"strings"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
)

// normalizePath normalizes a request path for routing and forwarding:
// percent-encoded unreserved characters are decoded and dot segments
// removed (RFC 3986 §6.2.2), so that "/public/../admin" is routed, and
// forwarded, as "/admin". Encoded slashes and other reserved characters
// stay encoded. It writes into dst and reports whether the path changed;
// when it did not, it returns p itself.
func normalizePath(dst, p []byte) ([]byte, bool) {
	if len(p) == 0 || p[0] != '/' {
		return p, false
	}
	needs := false
	for i, c := range p {
		if c == '%' || (c == '.' && p[i-1] == '/') {
			needs = true
			break
		}
	}
	if !needs {
		return p, false
	}
	d := dst[:0]
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			hi, lo := unhex(p[i+1]), unhex(p[i+2])
			if hi >= 0 && lo >= 0 {
				if v := byte(hi<<4 | lo); unreserved(v) {
					d = append(d, v)
					i += 2
					continue
				}
			}
		}
		d = append(d, c)
	}
	d = removeDotSegments(d)
	if bytes.Equal(d, p) {
		return p, false
	}
	return d, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments removes "." and ".." segments from an absolute path in
// place.
func removeDotSegments(b []byte) []byte {
	w, i, n := 0, 0, len(b)
	for i < n {
		j := i + 1
		for j < n && b[j] != '/' {
			j++
		}
		seg := b[i+1 : j]
		last := j == n
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				b[w] = '/'
				w++
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			k := w - 1
			for k > 0 && b[k] != '/' {
				k--
			}
			w = max(k, 0)
			if last {
				b[w] = '/'
				w++
			}
		default:
			b[w] = '/'
			copy(b[w+1:], seg)
			w += 1 + len(seg)
		}
		i = j
	}
	if w == 0 {
		b[0] = '/'
		w = 1
	}
	return b[:w]
}

// rewritePath appends to dst the path p rewritten by m: replaced whole, or
// with the matched prefix replaced (Gateway API ReplacePrefixMatch: the
// prefix matches whole path elements and a trailing slash is not
// significant).
func rewritePath(dst, p []byte, m *compiled.PathModifier, prefix string) []byte {
	if !m.IsPrefix {
		return append(dst, m.FullPath...)
	}
	pre := strings.TrimSuffix(prefix, "/")
	var rest []byte
	if len(p) > len(pre) {
		rest = p[len(pre):]
	}
	rep := strings.TrimSuffix(m.PrefixReplace, "/")
	switch {
	case len(rest) == 0:
		if m.PrefixReplace == "" {
			return append(dst, '/')
		}
		return append(dst, m.PrefixReplace...)
	case rep == "":
		if rest[0] != '/' {
			dst = append(dst, '/')
		}
		return append(dst, rest...)
	}
	dst = append(dst, rep...)
	if rest[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, rest...)
}

// stripPort removes a ":port" suffix from a host, keeping IPv6 literals.
func stripPort(h []byte) []byte {
	for i := len(h) - 1; i >= 0; i-- {
		switch c := h[i]; {
		case c == ':':
			return h[:i]
		case c < '0' || c > '9':
			return h
		}
	}
	return h
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// cookieValue returns the value of the first cookie named name in the
// request's Cookie fields.
func cookieValue(buf []byte, r *http1.Request, name string) ([]byte, bool) {
	for i := range r.Fields {
		f := &r.Fields[i]
		if !equalFold(f.Name.Bytes(buf), "cookie") {
			continue
		}
		v := f.Value.Bytes(buf)
		for len(v) > 0 {
			var pair []byte
			if k := bytes.IndexByte(v, ';'); k >= 0 {
				pair, v = v[:k], v[k+1:]
			} else {
				pair, v = v, nil
			}
			pair = bytes.TrimLeft(pair, " \t")
			eq := bytes.IndexByte(pair, '=')
			if eq < 0 || string(pair[:eq]) != name {
				continue
			}
			val := bytes.TrimRight(pair[eq+1:], " \t")
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, true
		}
	}
	return nil, false
}
