package http2

// Bridges to the HTTP/1.1 pipeline: the proxy's request path (routing,
// filters, the http1 upstream codec) works on HTTP/1.1 heads, so a server
// Conn's request can be rewritten as one and parsed by dataplane/http1.

// AppendRequestHTTP1 appends the HTTP/1.1 request head equivalent to a
// request EventHeaders (RFC 9113 section 8.3.1): the request line from
// :method and :path (:authority for CONNECT), Host from :authority (a host
// field is then dropped: Conn has checked that they agree), cookie fields
// joined into one (section 8.2.3), and the other fields as they are. When
// the request has a body of unknown length (no END_STREAM, no
// content-length) it adds "transfer-encoding: chunked": the caller then
// frames the DATA it forwards as chunks.
func AppendRequestHTTP1(dst []byte, ev *Event) []byte {
	dst = append(dst, ev.Method...)
	dst = append(dst, ' ')
	if string(ev.Method) == "CONNECT" && ev.Protocol == nil {
		dst = append(dst, ev.Authority...)
	} else {
		dst = append(dst, ev.Path...)
	}
	dst = append(dst, " HTTP/1.1\r\n"...)
	if ev.Authority != nil {
		dst = append(dst, "host: "...)
		dst = append(dst, ev.Authority...)
		dst = append(dst, "\r\n"...)
	}
	h := ev.Header
	cookies := 0
	for i := range h.Len() {
		name, value := h.Field(i)
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		switch string(name) {
		case "host":
			if ev.Authority != nil {
				continue
			}
		case "cookie":
			cookies++
			continue
		}
		dst = appendFieldLine(dst, name, value)
	}
	if cookies > 0 {
		dst = append(dst, "cookie: "...)
		n := 0
		for i := range h.Len() {
			name, value := h.Field(i)
			if string(name) != "cookie" {
				continue
			}
			if n > 0 {
				dst = append(dst, "; "...)
			}
			dst = append(dst, value...)
			n++
		}
		dst = append(dst, "\r\n"...)
	}
	if !ev.EndStream && ev.ContentLength < 0 {
		dst = append(dst, "transfer-encoding: chunked\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func appendFieldLine(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// AddStatus adds the :status field of a response head.
func (c *Conn) AddStatus(code int) {
	var b [3]byte
	if code < 100 || code > 999 {
		code = 500
	}
	b[0], b[1], b[2] = byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)
	c.addHeader(stringBytes(":status"), b[:], false)
}
