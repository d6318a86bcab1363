package http2

// Message validation (RFC 9113 section 8): a header block that breaks these
// rules makes the message malformed, a stream error of type PROTOCOL_ERROR.

type blockKind uint8

const (
	blockRequest blockKind = iota
	blockResponse
	blockTrailers
)

// pseudo holds the pseudo-header fields of a block, as slices into the
// HeaderList's buffer.
type pseudo struct {
	method, scheme, authority, path, protocol []byte
	status                                    int
	contentLength                             int64 // -1 when absent
}

// tokenChars marks the bytes allowed in an HTTP/2 field name: tchar
// without uppercase letters (RFC 9110 section 5.6.2, RFC 9113 section 8.2).
var tokenChars = func() (t [256]bool) {
	for _, c := range "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz" {
		t[c] = true
	}
	return t
}()

func validName(n []byte) bool {
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validValue rejects NUL, CR and LF anywhere and whitespace at either end
// (RFC 9113 section 8.2.1).
func validValue(v []byte) bool {
	if len(v) > 0 && (isWS(v[0]) || isWS(v[len(v)-1])) {
		return false
	}
	for _, c := range v {
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// validProtocol reports whether v is a token (RFC 9110 section 5.6.2), as
// the :protocol of an extended CONNECT must be (the Upgrade token it
// stands for, RFC 8441 section 4). Uppercase letters are allowed: the
// registry's tokens are case-insensitive.
func validProtocol(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if !tokenChars[c] && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func parseContentLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// checkBlock validates a decoded block of the given kind and extracts its
// pseudo-header fields. It reports false for a malformed message.
func checkBlock(h *HeaderList, kind blockKind, p *pseudo) bool {
	*p = pseudo{contentLength: -1}
	regular := false
	var host []byte
	for i := range h.Len() {
		name, value := h.Field(i)
		if len(name) > 0 && name[0] == ':' {
			if regular || kind == blockTrailers {
				return false
			}
			var slot *[]byte
			switch string(name) {
			case ":method":
				slot = &p.method
			case ":scheme":
				slot = &p.scheme
			case ":authority":
				slot = &p.authority
			case ":path":
				slot = &p.path
			case ":protocol":
				slot = &p.protocol
			case ":status":
				if kind != blockResponse || p.status != 0 || len(value) != 3 {
					return false
				}
				for _, c := range value {
					if c < '0' || c > '9' {
						return false
					}
					p.status = p.status*10 + int(c-'0')
				}
				if p.status < 100 {
					return false
				}
				continue
			default:
				return false
			}
			if kind != blockRequest || *slot != nil || !validValue(value) {
				return false
			}
			*slot = value[:len(value):len(value)]
			continue
		}
		regular = true
		if !validName(name) || !validValue(value) {
			return false
		}
		switch string(name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false // connection-specific (RFC 9113 section 8.2.2)
		case "te":
			if !asciiEqualFold(value, []byte("trailers")) {
				return false
			}
		case "content-length":
			if kind == blockTrailers {
				continue
			}
			n := parseContentLength(value)
			if n < 0 || (p.contentLength >= 0 && n != p.contentLength) {
				return false
			}
			p.contentLength = n
		case "host":
			host = value
		}
	}
	switch kind {
	case blockRequest:
		if p.method == nil {
			return false
		}
		if string(p.method) == "CONNECT" && p.protocol == nil {
			// Plain CONNECT: authority only (RFC 9113 section 8.5).
			if p.authority == nil || p.scheme != nil || p.path != nil {
				return false
			}
		} else if p.scheme == nil || len(p.path) == 0 ||
			(p.protocol != nil && string(p.method) != "CONNECT") {
			return false
		} else if p.path[0] != '/' && (string(p.path) != "*" || string(p.method) != "OPTIONS") {
			return false // origin-form or asterisk-form only (section 8.3.1)
		} else if p.protocol != nil && (len(p.authority) == 0 || !validProtocol(p.protocol)) {
			// Extended CONNECT (RFC 8441 section 4): :scheme, :path and
			// :authority of the target, and a protocol token.
			return false
		}
		if p.authority != nil && host != nil && !asciiEqualFold(p.authority, host) {
			return false // RFC 9113 section 8.3.1
		}
		for _, c := range p.method {
			if !tokenChars[c] && (c < 'A' || c > 'Z') {
				return false
			}
		}
	case blockResponse:
		if p.status == 0 || p.status == 101 {
			return false // 101 does not exist in HTTP/2 (section 8.6)
		}
	}
	return true
}
