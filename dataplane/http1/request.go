package http1

// Request is a parsed request head. Its spans refer to the buffer passed to
// ParseRequest. A Request is reusable: call Reset before parsing the next
// request; the Fields slice keeps its capacity, so steady-state parsing does
// not allocate.
type Request struct {
	Head

	// Method is the request method; MethodSpan holds its bytes.
	Method     Method
	MethodSpan Span
	// Target is the whole request target and Form its form.
	Target Span
	Form   TargetForm
	// Path is the path of an origin-form or absolute-form target (empty
	// for "http://host"). Query is the query without its '?'; HasQuery
	// tells an empty query ("/p?") from none ("/p").
	Path     Span
	Query    Span
	HasQuery bool
	// Host is the value of the Host field when HasHost is set.
	Host    Span
	HasHost bool
	// Authority is the host the request is for: the authority of an
	// absolute-form or authority-form target, else the Host value.
	Authority Span
	// ExpectContinue is set for an HTTP/1.1 request with
	// "Expect: 100-continue".
	ExpectContinue bool
}

// Reset clears r for the next request, keeping the capacity of r.Fields.
func (r *Request) Reset() {
	f := r.Fields[:0]
	*r = Request{}
	r.Fields = f
	r.ContentLength = -1
}

// Framing returns how the request body is delimited: chunked, by
// Content-Length, or absent (requests are never close-delimited).
func (r *Request) Framing() Framing {
	switch {
	case r.Chunked:
		return FramingChunked
	case r.ContentLength > 0:
		return FramingLength
	}
	return FramingNone
}

// UpgradeRequested reports whether r asks for a protocol upgrade: an Upgrade
// field whose option is listed in Connection (RFC 9110 §7.8). The proxy then
// decides whether to forward it with RewriteOptions.KeepUpgrade.
func (r *Request) UpgradeRequested() bool {
	return r.HasUpgrade && r.Connection&ConnUpgrade != 0
}

// ParseRequest parses the request head at the start of buf, which holds the
// bytes received so far. It returns the length of the head once it is
// complete; the body or the next pipelined request starts at buf[n:]. While
// the head is incomplete it returns ErrNeedMore: call it again with the same
// r once more bytes have been appended (the bytes already passed must be
// unchanged at the start of buf). Any other error is an *Error whose Status
// the proxy should reply with before closing the connection; r must then not
// be forwarded. Once ParseRequest has returned a result for r it keeps
// returning it until r is Reset.
func ParseRequest(buf []byte, r *Request, lim Limits) (n int, err error) {
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
	lim = lim.Normalized()
	view, restart := st.window(buf, &lim)
	if restart {
		r.Reset()
		st.phase = phaseStartLine
		st.seen = len(view)
	}
	n, code := r.parse(view, &lim)
	return st.finish(n, code, len(buf), &lim, &r.Len, &requestErrors)
}

func (r *Request) parse(buf []byte, lim *Limits) (int, errCode) {
	st := &r.st
	for st.phase == phaseStartLine {
		pos := st.pos
		lf := indexLF(buf[pos:])
		if lf < 0 {
			// Report a bad method or an over-long target without
			// waiting for the end of the line.
			c, _ := r.parseRequestLine(buf, pos, len(buf), false, lim)
			return 0, c
		}
		lf += pos
		end := lf
		crlf := end > pos && buf[end-1] == '\r'
		if crlf {
			end--
		}
		if end == pos {
			// RFC 9112 §2.2: ignore empty lines before the request line.
			if !crlf {
				return 0, errBareLF
			}
			st.pos = lf + 1
			continue
		}
		if c, _ := r.parseRequestLine(buf, pos, end, true, lim); c != errNone {
			return 0, c
		}
		if !crlf {
			return 0, errBareLF
		}
		st.pos = lf + 1
		st.scan = st.pos
		st.phase = phaseFields
	}
	n, c := r.parseFields(buf, lim, false)
	if c != errNone || n == 0 {
		return 0, c
	}
	if c := r.finish(buf); c != errNone {
		return 0, c
	}
	return n, errNone
}

// parseRequestLine parses "method SP target SP HTTP/1.x" from buf[start:end].
// complete tells whether end is the end of the line (excluding CRLF) or just
// the end of the bytes received so far; in the latter case the checks that
// can be made are made, in the same order, and more reports that the line
// must be completed first.
func (r *Request) parseRequestLine(buf []byte, start, end int, complete bool, lim *Limits) (c errCode, more bool) {
	i := start
	for i < end && isToken(buf[i]) {
		i++
	}
	if i == end {
		if complete {
			return errRequestLine, false
		}
		return errNone, true
	}
	if buf[i] != ' ' {
		if !complete && partialCR(buf, i, end) {
			return errNone, true
		}
		return errMethod, false
	}
	if i == start {
		return errRequestLine, false
	}
	mEnd := i
	i++
	t := i
	for i < end && charClass[buf[i]]&cTarget != 0 {
		if i-t == lim.MaxURIBytes {
			return errURITooLong, false
		}
		i++
	}
	if i == end {
		if complete {
			return errRequestLine, false
		}
		return errNone, true
	}
	if buf[i] != ' ' {
		if !complete && partialCR(buf, i, end) {
			return errNone, true
		}
		return errTarget, false
	}
	if i == t {
		return errRequestLine, false
	}
	tEnd := i
	i++
	const proto = "HTTP/1.1"
	for k := 0; k < len(proto); k++ {
		if i+k == end {
			if complete {
				return errRequestLine, false
			}
			return errNone, true
		}
		b := buf[i+k]
		switch k {
		case 5, 7:
			if b < '0' || b > '9' {
				return errRequestLine, false
			}
		default:
			if b != proto[k] {
				return errRequestLine, false
			}
		}
	}
	i += len(proto)
	if i < end {
		if !complete && partialCR(buf, i, end) {
			return errNone, true
		}
		return errRequestLine, false
	}
	if !complete {
		return errNone, true
	}
	if buf[i-3] != '1' || (buf[i-1] != '0' && buf[i-1] != '1') {
		return errVersion, false
	}
	r.Version = HTTP10
	if buf[i-1] == '1' {
		r.Version = HTTP11
	}
	r.MethodSpan = mkSpan(start, mEnd)
	r.Method = lookupMethod(buf[start:mEnd])
	r.Target = mkSpan(t, tEnd)
	return r.parseTarget(buf, t, tEnd), false
}

// parseTarget classifies the request target buf[t:end] (RFC 9112 §3.2) and
// records its path, query and authority.
func (r *Request) parseTarget(buf []byte, t, end int) errCode {
	switch {
	case r.Method == MethodConnect:
		r.Form = FormAuthority
		if !validAuthority(buf[t:end], true) {
			return errTarget
		}
		r.Authority = mkSpan(t, end)
		return errNone
	case buf[t] == '/':
		r.Form = FormOrigin
		return r.splitPath(buf, t, end)
	case end-t == 1 && buf[t] == '*':
		if r.Method != MethodOptions {
			return errTarget
		}
		r.Form = FormAsterisk
		return errNone
	}
	var a int
	switch {
	case end-t > len("http://") && equalFold(buf[t:t+len("http://")], "http://"):
		a = t + len("http://")
	case end-t > len("https://") && equalFold(buf[t:t+len("https://")], "https://"):
		a = t + len("https://")
	default:
		return errTarget
	}
	p := a
	for p < end && buf[p] != '/' && buf[p] != '?' {
		p++
	}
	if !validAuthority(buf[a:p], false) {
		return errTarget
	}
	r.Form = FormAbsolute
	r.Authority = mkSpan(a, p)
	return r.splitPath(buf, p, end)
}

// splitPath records the path and query of buf[p:end]. The path must be
// validly percent-encoded; the query is opaque.
func (r *Request) splitPath(buf []byte, p, end int) errCode {
	q := p
	for q < end && buf[q] != '?' {
		q++
	}
	if !validPercent(buf[p:q]) {
		return errTarget
	}
	r.Path = mkSpan(p, q)
	if q < end {
		r.HasQuery = true
		r.Query = mkSpan(q+1, end)
	}
	return errNone
}

// validPercent reports whether every '%' in b starts a "%" HEXDIG HEXDIG
// triplet.
func validPercent(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || unhex(b[i+1]) < 0 || unhex(b[i+2]) < 0 {
				return false
			}
			i += 2
		}
	}
	return true
}

// validAuthority checks an authority of the request target: a non-empty
// host with an optional port, without userinfo. needPort requires the port
// (CONNECT).
func validAuthority(b []byte, needPort bool) bool {
	if len(b) == 0 || b[0] == ':' || !validPercent(b) {
		return false
	}
	colon := -1
	for i, c := range b {
		if charClass[c]&cHost == 0 {
			return false
		}
		if c == ':' {
			colon = i
		}
		if c == ']' {
			colon = -1
		}
	}
	if colon < 0 {
		return !needPort
	}
	port := b[colon+1:]
	if len(port) == 0 {
		return !needPort
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// finish applies the checks that need the whole head and derives the
// connection and framing information.
func (r *Request) finish(buf []byte) errCode {
	st := &r.st
	if c := r.checkTransferEncoding(); c != errNone {
		return c
	}
	if st.teUnknown {
		return errTEUnsupported
	}
	if st.hosts == 1 {
		r.HasHost = true
		r.Host = st.host
		if r.Form != FormAbsolute && r.Form != FormAuthority {
			r.Authority = st.host
		}
	} else if r.Version == HTTP11 {
		return errMissingHost
	}
	r.ExpectContinue = st.expect && r.Version == HTTP11
	if r.Version == HTTP11 {
		r.KeepAlive = r.Connection&ConnClose == 0
	} else {
		r.KeepAlive = r.Connection&ConnKeepAlive != 0 && r.Connection&ConnClose == 0
	}
	r.markConnListed(buf)
	return errNone
}

// partialCR reports whether buf[i] is the last byte received and a CR, which
// may start the terminator of a line not yet complete.
func partialCR(buf []byte, i, end int) bool { return i == end-1 && buf[i] == '\r' }
