// Package tlshello reads the server name (SNI) out of a TLS ClientHello
// without doing any I/O: a Reader is given the bytes received from a client
// so far, again and again as more arrive, and says when the whole
// ClientHello is in, whether the bytes are not a ClientHello at all, and the
// server name it carries. It never modifies or keeps the bytes (a TLS
// passthrough forwards them unchanged) and it never allocates: a Reader is a
// fixed-size value meant to live in per-connection state that is reused.
//
// The ClientHello may arrive in any number of TCP segments and TLS records
// (RFC 8446 §5.1 lets a handshake message span records); a Reader scans each
// record header once, so feeding a hello byte by byte costs linear time, and
// it gives up on a ClientHello whose records, headers included, would exceed
// MaxBytes. The server name is read the way crypto/tls reads it (RFC 6066
// §3): the first host_name entry of the server_name extension, a list with
// two host_name entries or a name ending in a dot is malformed; names are
// returned in lowercase.
package tlshello

import "errors"

// Record and handshake constants (RFC 8446 §5.1, §4).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	maxRecordPayload    = 1 << 14
	handshakeHeaderLen  = 4
	typeClientHello     = 1
	extServerName       = 0
	nameTypeHostName    = 0
)

// MaxBytes bounds the bytes a Reader waits for: the TLS records carrying
// the ClientHello, headers included. Real ClientHellos are far smaller (about
// 1.8 KB with an X25519MLKEM768 key share).
const MaxBytes = maxRecordPayload + recordHeaderLen

// MaxNameLen is the longest server name a Reader keeps. DNS names are at most
// 253 characters; a longer name is cut to its first MaxNameLen bytes, which
// no hostname matches either.
const MaxNameLen = 256

// Errors a Reader returns. Each means the connection does not start with a
// ClientHello the proxy can route.
var (
	// ErrNotTLS: the first bytes are not a TLS handshake record.
	ErrNotTLS = errors.New("tlshello: not a TLS handshake")
	// ErrMalformed: the records or the ClientHello are malformed.
	ErrMalformed = errors.New("tlshello: malformed ClientHello")
	// ErrTooLarge: the ClientHello does not fit in MaxBytes.
	ErrTooLarge = errors.New("tlshello: ClientHello larger than the limit")
)

// Reader extracts the server name of a ClientHello from the bytes a
// connection received so far. Its zero value is ready; Reset makes it ready
// for another connection.
type Reader struct {
	off  int // where the next record header starts: the records before are whole and checked
	got  int // handshake bytes in those records
	need int // handshake bytes making up the ClientHello, 0 until its header is in
	done bool
	err  error

	n    int // length of the server name in name
	name [MaxNameLen]byte
}

// Reset forgets everything read, for a new connection.
func (r *Reader) Reset() {
	r.off, r.got, r.need, r.done, r.err, r.n = 0, 0, 0, false, nil, 0
}

// Read looks at b, every byte the connection received so far (each call
// must be given at least the bytes of the previous one, unchanged). It
// returns done once the whole ClientHello is in b, an error when b cannot
// start with one, and neither (need more bytes) otherwise. After done,
// ServerName and End tell what was read; later calls return the same result.
// Read does not allocate.
func (r *Reader) Read(b []byte) (done bool, err error) {
	if r.done || r.err != nil {
		return r.done, r.err
	}
	for {
		if r.off == 0 && len(b) > 0 && b[0] != recordTypeHandshake {
			return r.fail(ErrNotTLS)
		}
		if len(b)-r.off < recordHeaderLen {
			if r.off > 0 && len(b) > r.off && b[r.off] != recordTypeHandshake {
				return r.fail(ErrMalformed)
			}
			return false, nil
		}
		h := b[r.off : r.off+recordHeaderLen]
		n := int(h[3])<<8 | int(h[4])
		switch {
		case h[0] != recordTypeHandshake:
			return r.fail(ErrMalformed)
		case h[1] != 3:
			if r.off == 0 {
				return r.fail(ErrNotTLS)
			}
			return r.fail(ErrMalformed)
		case n == 0 || n > maxRecordPayload:
			return r.fail(ErrMalformed)
		case r.off+recordHeaderLen+n > MaxBytes:
			return r.fail(ErrTooLarge)
		case len(b) < r.off+recordHeaderLen+n:
			return false, nil
		}
		r.off += recordHeaderLen + n
		r.got += n
		if r.need == 0 && r.got >= handshakeHeaderLen {
			c := cursor{b: b[:r.off]}
			c.start()
			if c.u8() != typeClientHello {
				return r.fail(ErrMalformed)
			}
			r.need = handshakeHeaderLen + c.u24()
			switch {
			case r.need == handshakeHeaderLen:
				return r.fail(ErrMalformed)
			case r.need+recordHeaderLen > MaxBytes:
				// Even in one record the ClientHello would not fit.
				return r.fail(ErrTooLarge)
			}
		}
		if r.need > 0 && r.got >= r.need {
			return r.parse(b[:r.off])
		}
	}
}

func (r *Reader) fail(err error) (bool, error) {
	r.err = err
	return false, err
}

// ServerName returns the server name in lowercase, empty when the
// ClientHello has none. It is valid until the next Reset and does not
// allocate.
func (r *Reader) ServerName() []byte { return r.name[:r.n] }

// End returns how many bytes of the stream the records carrying the
// ClientHello take (after done); whatever follows them came later.
func (r *Reader) End() int { return r.off }

// parse reads the whole ClientHello in the records of b (RFC 8446 §4.1.2).
func (r *Reader) parse(b []byte) (bool, error) {
	c := cursor{b: b}
	c.start()
	c.skip(handshakeHeaderLen)
	c.left = r.need - handshakeHeaderLen // bytes of the ClientHello body
	c.skip(2 + 32)                       // legacy_version, random
	// As lenient as crypto/tls: the reader routes; the TLS server behind it
	// judges the rest of the hello.
	c.skip(c.u8()) // legacy_session_id
	cs := c.u16()
	if cs%2 != 0 {
		return r.fail(ErrMalformed)
	}
	c.skip(cs)     // cipher_suites
	c.skip(c.u8()) // legacy_compression_methods
	if c.bad {
		return r.fail(ErrMalformed)
	}
	if c.left == 0 {
		// No extensions, no server name.
		r.done = true
		return true, nil
	}
	if c.u16() != c.left {
		return r.fail(ErrMalformed)
	}
	seen := false
	for c.left > 0 && !c.bad {
		typ, n := c.u16(), c.u16()
		if n > c.left {
			return r.fail(ErrMalformed)
		}
		if typ != extServerName {
			c.skip(n)
			continue
		}
		if seen {
			return r.fail(ErrMalformed)
		}
		seen = true
		if !r.serverName(&c, n) {
			return r.fail(ErrMalformed)
		}
	}
	if c.bad {
		return r.fail(ErrMalformed)
	}
	r.done = true
	return true, nil
}

// serverName reads a server_name extension of n bytes.
func (r *Reader) serverName(c *cursor, n int) bool {
	end := c.left - n
	list := c.u16()
	if list == 0 || list != n-2 {
		return false
	}
	for c.left > end && !c.bad {
		typ, l := c.u8(), c.u16()
		if l == 0 || l > c.left-end {
			return false
		}
		if typ != nameTypeHostName {
			c.skip(l)
			continue
		}
		if r.n > 0 {
			return false // two host names
		}
		var last byte
		for i := 0; i < l; i++ {
			ch := byte(c.u8())
			if 'A' <= ch && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			if i < MaxNameLen {
				r.name[i] = ch
			}
			last = ch
		}
		r.n = min(l, MaxNameLen)
		if last == '.' {
			return false
		}
	}
	return !c.bad && c.left == end
}

// cursor reads the handshake bytes of a run of whole, checked records in
// order, stepping over their headers. Reading past the limit (left) or the
// records sets bad and yields zeros.
type cursor struct {
	b    []byte
	pos  int // next byte in b
	rec  int // bytes left in the current record
	left int // bytes left in the message part being read
	bad  bool
}

// start positions c at the first handshake byte.
func (c *cursor) start() {
	c.pos = recordHeaderLen
	c.rec = int(c.b[3])<<8 | int(c.b[4])
	c.left = len(c.b)
}

// next makes the current record have a byte, stepping to the next record.
func (c *cursor) next() bool {
	for c.rec == 0 {
		if c.pos+recordHeaderLen > len(c.b) {
			return false
		}
		c.rec = int(c.b[c.pos+3])<<8 | int(c.b[c.pos+4])
		c.pos += recordHeaderLen
	}
	return true
}

func (c *cursor) u8() int {
	if c.bad || c.left < 1 || !c.next() {
		c.bad = true
		return 0
	}
	v := c.b[c.pos]
	c.pos++
	c.rec--
	c.left--
	return int(v)
}

func (c *cursor) u16() int { return c.u8()<<8 | c.u8() }

func (c *cursor) u24() int { return c.u8()<<16 | c.u8()<<8 | c.u8() }

// skip steps over n bytes.
func (c *cursor) skip(n int) {
	if c.bad || n > c.left {
		c.bad = true
		return
	}
	c.left -= n
	for n > 0 {
		if !c.next() {
			c.bad = true
			return
		}
		k := min(n, c.rec)
		c.pos += k
		c.rec -= k
		n -= k
	}
}
