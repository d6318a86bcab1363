package http2

import (
	"encoding/base64"
	"math/rand/v2"
)

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
//
// An extended CONNECT for WebSocket (RFC 8441 section 5, WebSocket) becomes
// the HTTP/1.1 opening handshake of RFC 6455 section 4.1: GET of :path with
// "connection: upgrade", "upgrade: websocket" and a fresh random
// sec-websocket-key (the client sends none over HTTP/2), its other fields
// (sec-websocket-version, -protocol, -extensions, origin...) as they are,
// and no body framing (a content-length is dropped): the DATA that follows
// is the tunnel's bytes. An
// extended CONNECT for another protocol is written as a plain CONNECT to
// :authority, which the proxy does not serve (501).
func AppendRequestHTTP1(dst []byte, ev *Event) []byte {
	ws := ev.WebSocket()
	switch {
	case ws:
		dst = append(dst, "GET "...)
		dst = append(dst, ev.Path...)
	case string(ev.Method) == "CONNECT":
		dst = append(dst, "CONNECT "...)
		dst = append(dst, ev.Authority...)
		if ev.Protocol != nil && !hasPort(ev.Authority) {
			// An authority-form target names its port (RFC 9110
			// section 9.3.6): the scheme's default one.
			if string(ev.Scheme) == "https" {
				dst = append(dst, ":443"...)
			} else {
				dst = append(dst, ":80"...)
			}
		}
	default:
		dst = append(dst, ev.Method...)
		dst = append(dst, ' ')
		dst = append(dst, ev.Path...)
	}
	dst = append(dst, " HTTP/1.1\r\n"...)
	if ev.Authority != nil {
		dst = append(dst, "host: "...)
		dst = append(dst, ev.Authority...)
		dst = append(dst, "\r\n"...)
	}
	if ws {
		dst = append(dst, "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: "...)
		dst = appendWebSocketKey(dst)
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
		case "sec-websocket-key", "content-length":
			if ws {
				continue // the proxy's own key; the DATA is no body
			}
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
	if !ws && !ev.EndStream && ev.ContentLength < 0 {
		dst = append(dst, "transfer-encoding: chunked\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// hasPort reports whether an authority ends with a port.
func hasPort(a []byte) bool {
	for i := len(a) - 1; i >= 0; i-- {
		switch c := a[i]; {
		case c == ':':
			return i < len(a)-1
		case c < '0' || c > '9':
			return false
		}
	}
	return false
}

// WebSocket reports whether the request is an extended CONNECT for the
// WebSocket protocol (RFC 8441): :method CONNECT, :protocol websocket.
func (ev *Event) WebSocket() bool {
	return ev.Protocol != nil && string(ev.Method) == "CONNECT" && asciiEqualFold(ev.Protocol, []byte("websocket"))
}

// appendWebSocketKey appends a sec-websocket-key value: 16 random bytes in
// base64 (RFC 6455 section 4.1). The proxy does not check the backend's
// sec-websocket-accept (nothing forwards it over HTTP/2), so the key needs
// to be unpredictable to the backend only as RFC 6455 asks of any client:
// the runtime's generator serves.
func appendWebSocketKey(dst []byte) []byte {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i], raw[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	var enc [24]byte
	base64.StdEncoding.Encode(enc[:], raw[:])
	return append(dst, enc[:]...)
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
