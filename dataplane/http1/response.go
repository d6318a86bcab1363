package http1

// Response is a parsed upstream response head. Its spans refer to the buffer
// passed to ParseResponse. Like Request it is reusable through Reset.
type Response struct {
	Head

	// Status is the three-digit status code, 100 to 599.
	Status int
	// Reason is the reason phrase, possibly empty.
	Reason Span
	// Framing tells how the body that follows the head is delimited. It
	// takes the request method into account (RFC 9112 §6.3): responses to
	// HEAD, 1xx, 204 and 304 responses and 2xx responses to CONNECT have
	// no body.
	Framing Framing
}

// Reset clears r for the next response, keeping the capacity of r.Fields.
func (r *Response) Reset() {
	f := r.Fields[:0]
	*r = Response{}
	r.Fields = f
	r.ContentLength = -1
}

// Interim reports whether r is an interim (1xx) response. The proxy forwards
// it and then parses the next response for the same request, except after
// 101 Switching Protocols, which turns the connection into a tunnel.
func (r *Response) Interim() bool { return r.Status < 200 }

// ParseResponse parses the response head at the start of buf, which holds the
// bytes received so far from the upstream. reqMethod is the method of the
// request being answered; it affects body framing. Results are reported as
// for ParseRequest; errors are *Error values with Status 502. Zero fields of
// lim take the response defaults (DefaultResponseLimits).
func ParseResponse(buf []byte, r *Response, reqMethod Method, lim Limits) (n int, err error) {
	st := &r.st
	switch st.phase {
	case phaseDone:
		return r.Len, nil
	case phaseFailed:
		return 0, st.err
	case phaseInit:
		r.Reset()
		st.phase = phaseStartLine
	}
	lim = lim.NormalizedResponse()
	view, restart := st.window(buf, &lim)
	if restart {
		r.Reset()
		st.phase = phaseStartLine
		st.seen = len(view)
	}
	n, code := r.parse(view, reqMethod, &lim)
	return st.finish(n, code, len(buf), &lim, &r.Len, &responseErrors)
}

func (r *Response) parse(buf []byte, reqMethod Method, lim *Limits) (int, errCode) {
	st := &r.st
	if st.phase == phaseStartLine {
		lf := indexLF(buf)
		if lf < 0 {
			return 0, errNone
		}
		end := lf
		crlf := end > 0 && buf[end-1] == '\r'
		if crlf {
			end--
		}
		if c := r.parseStatusLine(buf, end); c != errNone {
			return 0, c
		}
		if !crlf {
			return 0, errBareLF
		}
		st.pos = lf + 1
		st.scan = st.pos
		st.phase = phaseFields
	}
	n, c := r.parseFields(buf, lim, true)
	if c != errNone || n == 0 {
		return 0, c
	}
	if c := r.finish(buf, reqMethod); c != errNone {
		return 0, c
	}
	return n, errNone
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT SP reason" from buf[:end]. The
// SP before an empty reason may be omitted.
func (r *Response) parseStatusLine(buf []byte, end int) errCode {
	const proto = "HTTP/1.1"
	if end < len(proto)+4 {
		return errStatusLine
	}
	for k := 0; k < len(proto); k++ {
		b := buf[k]
		switch k {
		case 5, 7:
			if b < '0' || b > '9' {
				return errStatusLine
			}
		default:
			if b != proto[k] {
				return errStatusLine
			}
		}
	}
	if buf[len(proto)] != ' ' {
		return errStatusLine
	}
	i := len(proto) + 1
	status := 0
	for k := 0; k < 3; k++ {
		b := buf[i+k]
		if b < '0' || b > '9' {
			return errStatusLine
		}
		status = status*10 + int(b-'0')
	}
	i += 3
	switch {
	case i == end:
		r.Reason = mkSpan(i, i)
	case buf[i] != ' ':
		return errStatusLine
	default:
		for j := i + 1; j < end; j++ {
			if charClass[buf[j]]&cValue == 0 {
				return errStatusLine
			}
		}
		r.Reason = mkSpan(i+1, end)
	}
	if buf[5] != '1' || (buf[7] != '0' && buf[7] != '1') {
		return errVersion
	}
	if status < 100 || status > 599 {
		return errStatusCode
	}
	r.Version = HTTP10
	if buf[7] == '1' {
		r.Version = HTTP11
	}
	r.Status = status
	return errNone
}

// finish applies the end-of-head checks and derives framing (RFC 9112 §6.3)
// and connection persistence.
func (r *Response) finish(buf []byte, reqMethod Method) errCode {
	if c := r.checkTransferEncoding(); c != errNone {
		return c
	}
	tunnel := r.Status == 101 || (reqMethod == MethodConnect && r.Status/100 == 2)
	switch {
	case reqMethod == MethodHead || r.Status < 200 || r.Status == 204 || r.Status == 304 || tunnel:
		r.Framing = FramingNone
	case r.Chunked:
		r.Framing = FramingChunked
	case r.ContentLength > 0:
		r.Framing = FramingLength
	case r.ContentLength == 0:
		r.Framing = FramingNone
	default:
		r.Framing = FramingClose
	}
	if r.Version == HTTP11 {
		r.KeepAlive = r.Connection&ConnClose == 0
	} else {
		r.KeepAlive = r.Connection&ConnKeepAlive != 0 && r.Connection&ConnClose == 0
	}
	if r.Framing == FramingClose || tunnel {
		r.KeepAlive = false
	}
	r.markConnListed(buf)
	return errNone
}
