package router

import (
	"bytes"
	"sync"
)

// Match finds the route serving req. It returns the winning route's Action,
// its table-wide route index (see [Table.RouteAt]) and ok=true, or
// (-1, -1, false) when no route matches. It does not allocate and does not
// retain req.
func (t *Table) Match(req *RequestView) (action int, routeIdx int, ok bool) {
	ht := t.lookupHost(req.Host)
	if ht == nil {
		return -1, -1, false
	}
	if c := ht.match(req); c != nil {
		return c.action, c.route, true
	}
	return -1, -1, false
}

// MatchHost finds the route serving a bare host name, such as the server
// name of a TLS ClientHello (no port is stripped), by host alone: an exact
// hostname, then the longest wildcard suffix, then the catch-all, each
// virtual host's first route that matches every request. An empty name
// selects the catch-all. It does not allocate.
func (t *Table) MatchHost(name []byte) (action int, ok bool) {
	ht := t.lookupName(name)
	if ht == nil {
		return -1, false
	}
	if c := ht.match(&anyRequest); c != nil {
		return c.action, true
	}
	return -1, false
}

// MatchAuthority is MatchHost for a Host header value or an :authority: the
// port, if any, is stripped first. It does not allocate.
func (t *Table) MatchAuthority(host []byte) (action int, ok bool) {
	return t.MatchHost(stripPort(host))
}

// anyRequest is the request MatchHost matches routes against: only routes
// without conditions match it. It is never modified.
var anyRequest = RequestView{Path: []byte("/")}

// lookupHost selects the host entry for a Host header value.
func (t *Table) lookupHost(host []byte) *hostTable { return t.lookupName(stripPort(host)) }

// lookupName selects the host entry for a host name without a port.
func (t *Table) lookupName(host []byte) *hostTable {
	if n := len(host); n > 0 && n <= maxHostLen && (len(t.exact) > 0 || len(t.wildcard) > 0) {
		var buf [maxHostLen]byte
		for i, c := range host {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		h := buf[:n]
		if ht, ok := t.exact[string(h)]; ok {
			return ht
		}
		if len(t.wildcard) > 0 {
			// Left to right: the first suffix found is the longest one.
			// Starting at 1 keeps at least one character before the dot,
			// so "*.example.com" never matches "example.com".
			for i := 1; i < n-1; i++ {
				if h[i] == '.' && t.wildLens[(n-i)/64]&(1<<((n-i)%64)) != 0 {
					if ht, ok := t.wildcard[string(h[i:])]; ok {
						return ht
					}
				}
			}
		}
	}
	return t.catchAll
}

// stripPort removes a ":port" suffix from a host, keeping IPv6 literals in
// brackets intact.
func stripPort(host []byte) []byte {
	for i := len(host) - 1; i >= 0; i-- {
		c := host[i]
		switch {
		case c == ':':
			return host[:i]
		case c < '0' || c > '9':
			return host
		}
	}
	return host
}

// match returns the first candidate, in rank order, that matches req.
func (ht *hostTable) match(req *RequestView) *candidate {
	path := req.Path
	if len(ht.exact) > 0 {
		if cs, ok := ht.exact[string(path)]; ok {
			if c := firstMatch(cs, req); c != nil {
				return c
			}
		}
	}
	for i := range ht.regex {
		rc := &ht.regex[i]
		if rc.re.Match(path) && rc.matches(req) {
			return &rc.candidate
		}
	}
	if len(ht.prefix) > 0 {
		// Probe element boundaries from the longest to the shortest: the
		// whole path, then the part before every '/'.
		for i := min(len(path), ht.maxPrefix); i > 0; i-- {
			if i < len(path) && path[i] != '/' {
				continue
			}
			if ht.prefixLens[i/64]&(1<<(i%64)) == 0 {
				continue
			}
			if cs, ok := ht.prefix[string(path[:i])]; ok {
				if c := firstMatch(cs, req); c != nil {
					return c
				}
			}
		}
	}
	return firstMatch(ht.root, req)
}

func firstMatch(cs []candidate, req *RequestView) *candidate {
	for i := range cs {
		if cs[i].matches(req) {
			return &cs[i]
		}
	}
	return nil
}

// matches checks the method, header and query conditions of c.
func (c *candidate) matches(req *RequestView) bool {
	if c.method != "" && string(req.Method) != c.method {
		return false
	}
	if len(c.headers) > 0 {
		if req.Headers == nil {
			return false
		}
		for i := range c.headers {
			m := &c.headers[i]
			v, ok := req.Headers.Header(m.name)
			if !ok {
				return false
			}
			if m.re != nil {
				if !m.re.Match(v) {
					return false
				}
			} else if string(v) != m.value {
				return false
			}
		}
	}
	for i := range c.query {
		m := &c.query[i]
		v, ok := queryParam(req.Query, m.name)
		if !ok {
			return false
		}
		if m.re != nil {
			if !matchDecodedRegex(m, v) {
				return false
			}
		} else if !decodedEqual(v, m.value) {
			return false
		}
	}
	return true
}

// queryParam returns the raw value of the first parameter of the raw query
// whose percent-decoded name is name.
func queryParam(query []byte, name string) ([]byte, bool) {
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		key, value := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, value = pair[:i], pair[i+1:]
		}
		if decodedEqual(key, name) {
			return value, true
		}
	}
	return nil, false
}

// unhex returns the value of a hexadecimal digit and whether c is one.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeAt returns the byte at raw[i] after percent-decoding and the number
// of raw bytes it used. Malformed escapes are taken literally.
func decodeAt(raw []byte, i int) (byte, int) {
	if raw[i] == '%' && i+2 < len(raw) {
		hi, ok1 := unhex(raw[i+1])
		lo, ok2 := unhex(raw[i+2])
		if ok1 && ok2 {
			return hi<<4 | lo, 3
		}
	}
	return raw[i], 1
}

// decodedEqual reports whether raw, percent-decoded, equals want.
func decodedEqual(raw []byte, want string) bool {
	if bytes.IndexByte(raw, '%') < 0 {
		return string(raw) == want
	}
	j := 0
	for i := 0; i < len(raw); {
		b, n := decodeAt(raw, i)
		if j >= len(want) || want[j] != b {
			return false
		}
		i += n
		j++
	}
	return j == len(want)
}

// scratchPool holds buffers for percent-decoding query values that a
// regular expression must see decoded. sync.Pool does not allocate in
// steady state, and the buffers are never shared between goroutines.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 256)
	return &b
}}

// matchDecodedRegex matches a raw query value, percent-decoded, against the
// regular expression of m.
func matchDecodedRegex(m *valueMatcher, raw []byte) bool {
	if bytes.IndexByte(raw, '%') < 0 {
		return m.re.Match(raw)
	}
	bp := scratchPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for i := 0; i < len(raw); {
		b, n := decodeAt(raw, i)
		buf = append(buf, b)
		i += n
	}
	ok := m.re.Match(buf)
	*bp = buf[:0]
	scratchPool.Put(bp)
	return ok
}
