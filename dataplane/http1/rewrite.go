package http1

import (
	"bytes"
	"strconv"
)

// HeaderField is a header field to add to a rewritten head. The caller is
// responsible for the validity of its bytes (a token name, a value without
// CR, LF or other control bytes).
type HeaderField struct {
	Name  []byte
	Value []byte
}

// RewriteOptions controls AppendRequestHead. The zero value forwards the
// request with hop-by-hop fields removed and nothing added.
type RewriteOptions struct {
	// Target replaces the request target when non-nil (a path rewrite).
	// Otherwise an absolute-form target is sent in origin-form and any
	// other target unchanged.
	Target []byte
	// Host replaces the Host sent upstream when non-nil. Otherwise the
	// request's Authority is sent.
	Host []byte
	// KeepUpgrade forwards the Upgrade fields with "Connection: upgrade",
	// for a protocol upgrade (WebSocket) the proxy will tunnel.
	KeepUpgrade bool
	// KeepTrailer forwards Trailer fields (the names of a chunked body's
	// trailer fields), for an upstream the proxy speaks HTTP/2 to, which
	// reads the trailers of a request that announced them.
	KeepTrailer bool
	// Close asks the upstream to close the connection after responding.
	Close bool
	// DropFraming omits Content-Length and Transfer-Encoding, for a proxy
	// that re-encodes the body and adds its own framing through Add.
	// Otherwise the framing of the parsed request is written in canonical
	// form ("Transfer-Encoding: chunked" or "Content-Length: N").
	DropFraming bool
	// XForwarded adds X-Forwarded-For (ClientAddr), X-Forwarded-Proto
	// (Proto), X-Forwarded-Host (the request's authority) and a Forwarded
	// element (RFC 7239: for=ClientAddr;proto=Proto;host=authority),
	// replacing any received ones. A field or Forwarded parameter whose
	// value would be empty is omitted.
	XForwarded bool
	// TrustForwarded, with XForwarded, keeps the received X-Forwarded-For
	// and Forwarded lists and appends this hop's entry to each, and keeps
	// received X-Forwarded-Proto and X-Forwarded-Host values, for a proxy
	// behind a trusted one. Received fields named by a Connection option
	// are hop-by-hop and never kept.
	TrustForwarded bool
	// StripExpectContinue removes "Expect: 100-continue" fields, for a
	// proxy that answers 100 (Continue) to the client itself.
	StripExpectContinue bool
	// ClientAddr is the client IP address for X-Forwarded-For.
	ClientAddr []byte
	// Proto is "http" or "https" for X-Forwarded-Proto.
	Proto []byte
	// Remove lists names of further fields to drop (ASCII case-insensitive).
	Remove [][]byte
	// Add lists fields to append.
	Add []HeaderField
}

// AppendRequestHead appends to dst the head to send upstream for the request
// r parsed from buf, and returns the extended slice. It allocates only when
// dst lacks capacity.
//
// The request line is written as HTTP/1.1 and Host comes first. Hop-by-hop
// fields are removed (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Upgrade unless opts.KeepUpgrade, and every field named by a Connection
// option), as are the received Host, Content-Length and Transfer-Encoding
// fields, which are replaced by canonical ones.
func AppendRequestHead(dst, buf []byte, r *Request, opts *RewriteOptions) []byte {
	var o RewriteOptions
	if opts != nil {
		o = *opts
	}
	dst = append(dst, r.MethodSpan.Bytes(buf)...)
	dst = append(dst, ' ')
	switch {
	case o.Target != nil:
		dst = append(dst, o.Target...)
	case r.Form == FormAbsolute:
		if r.Path.Len == 0 {
			dst = append(dst, '/')
		}
		dst = append(dst, buf[r.Path.Off:r.Target.End()]...)
	default:
		dst = append(dst, r.Target.Bytes(buf)...)
	}
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if o.Host != nil {
		dst = append(dst, o.Host...)
	} else {
		dst = append(dst, r.Authority.Bytes(buf)...)
	}
	dst = append(dst, "\r\n"...)

	keepUpgrade := o.KeepUpgrade && r.HasUpgrade
	for i := range r.Fields {
		f := &r.Fields[i]
		switch f.ID {
		case HeaderHost, HeaderContentLength, HeaderTransferEncoding,
			HeaderConnection, HeaderKeepAlive, HeaderProxyConnection,
			HeaderTE:
			continue
		case HeaderTrailer:
			if !o.KeepTrailer || f.ConnListed {
				continue
			}
		case HeaderUpgrade:
			if !keepUpgrade {
				continue
			}
		case HeaderXForwardedFor, HeaderXForwardedProto, HeaderXForwardedHost, HeaderForwarded:
			if o.XForwarded || f.ConnListed {
				continue
			}
		case HeaderExpect:
			if f.ConnListed || (o.StripExpectContinue && equalFold(f.Value.Bytes(buf), "100-continue")) {
				continue
			}
		default:
			if f.ConnListed {
				continue
			}
		}
		if removed(buf, f, o.Remove) {
			continue
		}
		dst = appendField(dst, f.Name.Bytes(buf), f.Value.Bytes(buf))
	}

	if !o.DropFraming {
		if r.Chunked {
			dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
		} else if r.ContentLength >= 0 {
			dst = append(dst, "Content-Length: "...)
			dst = strconv.AppendInt(dst, r.ContentLength, 10)
			dst = append(dst, "\r\n"...)
		}
	}
	if o.XForwarded {
		dst = appendXForwarded(dst, buf, &r.Head, r.Authority, &o)
	}
	for _, h := range o.Add {
		dst = appendField(dst, h.Name, h.Value)
	}
	switch {
	case keepUpgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
	case o.Close:
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func appendXForwarded(dst, buf []byte, h *Head, authority Span, o *RewriteOptions) []byte {
	mark := len(dst)
	dst, sep := appendReceived(dst, buf, h, HeaderXForwardedFor, "X-Forwarded-For: ", o.TrustForwarded)
	if len(o.ClientAddr) > 0 {
		if sep {
			dst = append(dst, ", "...)
		}
		dst = append(dst, o.ClientAddr...)
		sep = true
	}
	dst = endList(dst, mark, sep)
	if v := trustedValue(buf, h, HeaderXForwardedProto, o.Proto, o.TrustForwarded); len(v) > 0 {
		dst = appendField(dst, []byte("X-Forwarded-Proto"), v)
	}
	host := authority.Bytes(buf)
	if v := trustedValue(buf, h, HeaderXForwardedHost, host, o.TrustForwarded); len(v) > 0 {
		dst = appendField(dst, []byte("X-Forwarded-Host"), v)
	}
	mark = len(dst)
	dst, sep = appendReceived(dst, buf, h, HeaderForwarded, "Forwarded: ", o.TrustForwarded)
	if len(o.ClientAddr) > 0 || len(o.Proto) > 0 || len(host) > 0 {
		if sep {
			dst = append(dst, ", "...)
		}
		dst = appendForwardedElement(dst, o.ClientAddr, o.Proto, host)
		sep = true
	}
	return endList(dst, mark, sep)
}

// appendReceived appends prefix ("Name: ") and, when trust is set, the
// received values of field id joined with commas. It reports whether a
// value was appended.
func appendReceived(dst, buf []byte, h *Head, id HeaderID, prefix string, trust bool) ([]byte, bool) {
	dst = append(dst, prefix...)
	sep := false
	if trust {
		for i := range h.Fields {
			f := &h.Fields[i]
			if f.ID != id || f.Value.Len == 0 || f.ConnListed {
				continue
			}
			if sep {
				dst = append(dst, ", "...)
			}
			dst = append(dst, f.Value.Bytes(buf)...)
			sep = true
		}
	}
	return dst, sep
}

// endList ends the list field started at mark with CRLF, or removes it
// when it holds no value.
func endList(dst []byte, mark int, nonEmpty bool) []byte {
	if !nonEmpty {
		return dst[:mark]
	}
	return append(dst, "\r\n"...)
}

// appendForwardedElement appends one Forwarded element (RFC 7239 §4):
// for=addr;proto=proto;host=host, omitting empty parameters. An IPv6
// address is bracketed and quoted (for="[2001:db8::1]"); any other value
// that is not a token is quoted.
func appendForwardedElement(dst, addr, proto, host []byte) []byte {
	n := len(dst)
	dst = appendForwardedParam(dst, n, "for=", addr, bytes.IndexByte(addr, ':') >= 0)
	dst = appendForwardedParam(dst, n, "proto=", proto, false)
	return appendForwardedParam(dst, n, "host=", host, false)
}

// appendForwardedParam appends name and the value v of a Forwarded
// parameter, after a ';' unless it is the first of the element starting at
// start; an empty v appends nothing.
func appendForwardedParam(dst []byte, start int, name string, v []byte, bracket bool) []byte {
	if len(v) == 0 {
		return dst
	}
	if len(dst) > start {
		dst = append(dst, ';')
	}
	dst = append(dst, name...)
	if !bracket && allToken(v) {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	if bracket {
		dst = append(dst, '[')
	}
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	if bracket {
		dst = append(dst, ']')
	}
	return append(dst, '"')
}

func allToken(b []byte) bool {
	for _, c := range b {
		if !isToken(c) {
			return false
		}
	}
	return true
}

// trustedValue returns the first non-empty received value of field id when
// trust is set and there is one, else def.
func trustedValue(buf []byte, h *Head, id HeaderID, def []byte, trust bool) []byte {
	if trust {
		for i := range h.Fields {
			if f := &h.Fields[i]; f.ID == id && f.Value.Len > 0 {
				return f.Value.Bytes(buf)
			}
		}
	}
	return def
}

func removed(buf []byte, f *Field, names [][]byte) bool {
	for _, n := range names {
		if len(n) == int(f.Name.Len) && equalFoldBytes(f.Name.Bytes(buf), n) {
			return true
		}
	}
	return false
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// ResponseRewriteOptions controls AppendResponseHead.
type ResponseRewriteOptions struct {
	// Close adds "Connection: close", for a client connection the proxy
	// will close after this response.
	Close bool
	// Remove lists names of further fields to drop (ASCII case-insensitive).
	Remove [][]byte
	// Add lists fields to append.
	Add []HeaderField
}

// AppendResponseHead appends to dst the head to send to the client for the
// response r parsed from buf, and returns the extended slice. The status
// line is written as HTTP/1.1. Hop-by-hop fields are removed as for
// AppendRequestHead, except that a 101 response keeps its Upgrade fields and
// gets "Connection: upgrade". Transfer-Encoding fields are kept as received
// (the body is forwarded unchanged) and Content-Length is written in
// canonical form; both are dropped from 1xx and 204 responses, which have
// no content.
func AppendResponseHead(dst, buf []byte, r *Response, opts *ResponseRewriteOptions) []byte {
	var o ResponseRewriteOptions
	if opts != nil {
		o = *opts
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, r.Reason.Bytes(buf)...)
	dst = append(dst, "\r\n"...)
	upgrade := r.Status == 101
	noContent := r.Status < 200 || r.Status == 204
	for i := range r.Fields {
		f := &r.Fields[i]
		switch f.ID {
		case HeaderContentLength, HeaderConnection, HeaderKeepAlive,
			HeaderProxyConnection, HeaderTE, HeaderTrailer:
			continue
		case HeaderTransferEncoding:
			if noContent {
				continue
			}
		case HeaderUpgrade:
			if !upgrade {
				continue
			}
		default:
			if f.ConnListed {
				continue
			}
		}
		if removed(buf, f, o.Remove) {
			continue
		}
		dst = appendField(dst, f.Name.Bytes(buf), f.Value.Bytes(buf))
	}
	if r.ContentLength >= 0 && !r.Chunked && !noContent {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, r.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	for _, h := range o.Add {
		dst = appendField(dst, h.Name, h.Value)
	}
	switch {
	case upgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
	case o.Close:
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}
