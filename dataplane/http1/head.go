package http1

import "bytes"

// Head holds what requests and responses have in common: the protocol
// version, the header fields and the framing and connection-management
// information derived from them. Its spans refer to the buffer that was
// parsed.
type Head struct {
	// Version is HTTP10 or HTTP11.
	Version Version
	// Fields lists every header field line in order of arrival.
	Fields []Field
	// ContentLength is the Content-Length value, or -1 when absent.
	ContentLength int64
	// Chunked is set when Transfer-Encoding ends with the chunked coding.
	Chunked bool
	// Connection holds the options found in Connection fields.
	Connection ConnFlags
	// HasUpgrade is set when an Upgrade field is present; Upgrade is the
	// value of the first one.
	HasUpgrade bool
	Upgrade    Span
	// KeepAlive reports whether the connection may carry another message
	// after this one (RFC 9112 §9.3).
	KeepAlive bool
	// Len is the length of the head, including the empty line ending it.
	Len int

	st parseState
}

// Parse phases.
const (
	phaseInit uint8 = iota
	phaseStartLine
	phaseFields
	phaseDone
	phaseFailed
)

// parseState is the incremental parser's progress within the current head.
type parseState struct {
	phase uint8
	// pos is the offset of the first line not yet processed; scan is the
	// offset from which to keep looking for its LF.
	pos, scan int
	// seen is the length of the (possibly truncated) buffer last parsed.
	seen int
	err  error

	hosts         uint8
	host          Span
	hasCL, hasTE  bool
	teChunked     bool // chunked seen
	teLastChunked bool
	teTwice       bool // chunked applied more than once
	teUnknown     bool // a coding other than chunked
	expect        bool // Expect: 100-continue
	connOptions   int
}

// maxConnOptions bounds the number of Connection options, which keeps the
// search for the fields they name cheap.
const maxConnOptions = 32

// Lookup returns the value of the first field named name (compared without
// regard to ASCII case) in the parsed buffer buf.
func (h *Head) Lookup(buf []byte, name string) (value []byte, ok bool) {
	for i := range h.Fields {
		f := &h.Fields[i]
		if int(f.Name.Len) == len(name) && equalFoldString(f.Name.Bytes(buf), name) {
			return f.Value.Bytes(buf), true
		}
	}
	return nil, false
}

// XForwardedFor returns the n-th address from the end (n >= 1) of the
// X-Forwarded-For list, all its field lines taken as one list, in the
// parsed buffer buf: with n = 1 the address the nearest proxy appended.
// Empty elements and fields named by a Connection option are skipped. It
// reports false when the list has fewer than n elements.
func (h *Head) XForwardedFor(buf []byte, n int) ([]byte, bool) {
	if n < 1 {
		return nil, false
	}
	for i := len(h.Fields) - 1; i >= 0; i-- {
		f := &h.Fields[i]
		if f.ID != HeaderXForwardedFor || f.ConnListed {
			continue
		}
		v := f.Value.Bytes(buf)
		end := len(v)
		for end > 0 {
			start := bytes.LastIndexByte(v[:end], ',') + 1
			s, e := start, end
			for s < e && isOWS(v[s]) {
				s++
			}
			for e > s && isOWS(v[e-1]) {
				e--
			}
			if e > s {
				if n--; n == 0 {
					return v[s:e], true
				}
			}
			end = start - 1
		}
	}
	return nil, false
}

// indexLF returns the index of the first LF in b, or -1.
func indexLF(b []byte) int { return bytes.IndexByte(b, '\n') }

// parseFields consumes field lines from buf starting at st.pos until the
// empty line ending the head. It returns the head length, 0 when more bytes
// are needed, or an error code.
func (h *Head) parseFields(buf []byte, lim *Limits, isResp bool) (int, errCode) {
	st := &h.st
	for {
		lf := indexLF(buf[st.scan:])
		if lf < 0 {
			st.scan = len(buf)
			return 0, errNone
		}
		lf += st.scan
		start := st.pos
		end := lf
		crlf := end > start && buf[end-1] == '\r'
		if crlf {
			end--
		}
		if end == start {
			if !crlf {
				return 0, errBareLF
			}
			return lf + 1, errNone
		}
		if len(h.Fields) >= lim.MaxHeaderCount {
			return 0, errTooManyFields
		}
		if c := h.parseField(buf, start, end, isResp); c != errNone {
			return 0, c
		}
		if !crlf {
			return 0, errBareLF
		}
		st.pos = lf + 1
		st.scan = st.pos
	}
}

// parseField validates the field line buf[start:end] (without its line
// terminator), records it and interprets the fields the codec acts on.
func (h *Head) parseField(buf []byte, start, end int, isResp bool) errCode {
	if isOWS(buf[start]) {
		return errObsFold
	}
	i := start
	for i < end && isToken(buf[i]) {
		i++
	}
	if i == end {
		return errFieldLine
	}
	switch c := buf[i]; {
	case c == ':':
		if i == start {
			return errFieldName
		}
	case isOWS(c):
		return errSpaceBeforeColon
	default:
		return errFieldName
	}
	nameEnd := i
	vs, ve := trimOWS(buf, i+1, end)
	if !validValue(buf[vs:ve]) {
		return errFieldValue
	}
	id := lookupHeaderID(buf[start:nameEnd])
	h.Fields = append(h.Fields, Field{Name: mkSpan(start, nameEnd), Value: mkSpan(vs, ve), ID: id})

	st := &h.st
	switch id {
	case HeaderHost:
		if isResp {
			break
		}
		st.hosts++
		if st.hosts > 1 {
			return errDuplicateHost
		}
		if ve > vs && !validAuthority(buf[vs:ve], false) {
			return errHost
		}
		st.host = mkSpan(vs, ve)
	case HeaderContentLength:
		return h.parseContentLength(buf, vs, ve)
	case HeaderTransferEncoding:
		return h.parseTransferEncoding(buf, vs, ve)
	case HeaderConnection:
		return h.parseConnection(buf, vs, ve)
	case HeaderUpgrade:
		if !h.HasUpgrade {
			h.HasUpgrade = true
			h.Upgrade = mkSpan(vs, ve)
		}
	case HeaderExpect:
		if equalFold(buf[vs:ve], "100-continue") {
			st.expect = true
		}
	}
	return errNone
}

// parseContentLength accepts "1*DIGIT" or a list of identical values, and
// requires every Content-Length field to carry the same value.
func (h *Head) parseContentLength(buf []byte, vs, ve int) errCode {
	it := listIter{b: buf, pos: vs, end: ve}
	for {
		s, e, ok := it.next()
		if !ok {
			return errNone
		}
		n, ok := parseDecimal(buf[s:e])
		if !ok {
			return errContentLength
		}
		if h.st.hasCL && n != h.ContentLength {
			return errContentLengthConflict
		}
		h.st.hasCL = true
		h.ContentLength = n
	}
}

// parseTransferEncoding records the transfer codings of one field line. The
// codings of all Transfer-Encoding lines form one list, checked at the end
// of the head.
func (h *Head) parseTransferEncoding(buf []byte, vs, ve int) errCode {
	st := &h.st
	st.hasTE = true
	it := listIter{b: buf, pos: vs, end: ve}
	for {
		s, e, ok := it.next()
		if !ok {
			return errNone
		}
		if s == e {
			return errTransferEncoding
		}
		j := s
		for j < e && isToken(buf[j]) {
			j++
		}
		if j == s {
			return errTransferEncoding
		}
		if j < e {
			// Only parameters may follow a coding name, and the
			// chunked coding has none.
			k := j
			for k < e && isOWS(buf[k]) {
				k++
			}
			if k == e || buf[k] != ';' {
				return errTransferEncoding
			}
		}
		if equalFold(buf[s:j], "chunked") {
			if j < e {
				return errTransferEncoding
			}
			if st.teChunked {
				st.teTwice = true
			}
			st.teChunked = true
			st.teLastChunked = true
			continue
		}
		st.teLastChunked = false
		st.teUnknown = true
	}
}

// parseConnection records the connection options of a Connection field.
func (h *Head) parseConnection(buf []byte, vs, ve int) errCode {
	it := listIter{b: buf, pos: vs, end: ve}
	for {
		s, e, ok := it.next()
		if !ok {
			return errNone
		}
		if s == e {
			continue
		}
		for j := s; j < e; j++ {
			if !isToken(buf[j]) {
				return errConnection
			}
		}
		h.st.connOptions++
		if h.st.connOptions > maxConnOptions {
			return errConnection
		}
		switch opt := buf[s:e]; {
		case equalFold(opt, "close"):
			h.Connection |= ConnClose
		case equalFold(opt, "keep-alive"):
			h.Connection |= ConnKeepAlive
		case equalFold(opt, "upgrade"):
			h.Connection |= ConnUpgrade
		default:
			h.Connection |= ConnOther
		}
	}
}

// markConnListed flags every field whose name is a Connection option.
func (h *Head) markConnListed(buf []byte) {
	if h.Connection&ConnOther == 0 {
		return
	}
	for i := range h.Fields {
		c := &h.Fields[i]
		if c.ID != HeaderConnection {
			continue
		}
		it := listIter{b: buf, pos: int(c.Value.Off), end: c.Value.End()}
		for {
			s, e, ok := it.next()
			if !ok {
				break
			}
			if s == e {
				continue
			}
			opt := buf[s:e]
			for j := range h.Fields {
				f := &h.Fields[j]
				if int(f.Name.Len) == len(opt) && equalFoldBytes(f.Name.Bytes(buf), opt) {
					f.ConnListed = true
				}
			}
		}
	}
}

// checkTransferEncoding applies the end-of-head Transfer-Encoding rules
// shared by requests and responses.
func (h *Head) checkTransferEncoding() errCode {
	st := &h.st
	if !st.hasTE {
		return errNone
	}
	if st.hasCL {
		return errContentLengthAndTE
	}
	if h.Version == HTTP10 {
		// RFC 9112 §6.1: HTTP/1.0 has no transfer codings; the framing
		// of such a message cannot be trusted.
		return errTransferEncoding
	}
	if !st.teLastChunked {
		return errTENotChunked
	}
	if st.teTwice {
		return errTransferEncoding
	}
	h.Chunked = true
	return errNone
}

// window returns the part of buf a resumed parse looks at (at most a whole head)
// and records its length. It reports whether the parse must start over because the
// caller passed fewer bytes than last time, breaking the resumption contract; the
// caller then resets its message.
func (st *parseState) window(buf []byte, lim *Limits) (view []byte, restart bool) {
	view = buf
	if len(view) > lim.MaxHeaderBytes {
		view = view[:lim.MaxHeaderBytes]
	}
	restart = len(view) < st.seen
	st.seen = len(view)
	return view, restart
}

// finish records the outcome of one parse step: a complete head of n bytes
// (stored in *headLen), "need more" while buf still fits the head limit, or the
// error of code from errs, which the message keeps reporting until it is reset.
func (st *parseState) finish(n int, code errCode, bufLen int, lim *Limits, headLen *int, errs *[numErrCodes]*Error) (int, error) {
	if code == errNone {
		if n > 0 {
			st.phase = phaseDone
			*headLen = n
			return n, nil
		}
		if bufLen <= lim.MaxHeaderBytes {
			return 0, ErrNeedMore
		}
		code = errHeaderTooLarge
	}
	st.phase = phaseFailed
	st.err = errs[code]
	return 0, st.err
}
