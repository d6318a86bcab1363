package proxy

import (
	"strconv"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// localReply answers the current request with status and a short text body
// naming it (none for 1xx, 204 and 304).
func (s *Session) localReply(status int, reason metrics.Reason) {
	s.localReplyText(status, reason, statusBody(status))
}

// localReplyText answers the current request with status and body.
func (s *Session) localReplyText(status int, reason metrics.Reason, body string) {
	h := s.replyStart(status)
	s.replyEnd(h, status, reason, bytesOf(body))
}

// replyStart begins a reply head in the free part of the client head
// buffer.
func (s *Session) replyStart(status int) []byte {
	h := s.headRoom()
	if s.grpcReply(status) {
		// A gRPC client reads the outcome from grpc-status (replyEnd).
		return append(h, "HTTP/1.1 200 OK\r\n"...)
	}
	h = append(h, "HTTP/1.1 "...)
	h = strconv.AppendInt(h, int64(status), 10)
	h = append(h, ' ')
	h = append(h, statusText(status)...)
	return append(h, "\r\n"...)
}

// replyEnd completes a reply head started by replyStart, queues it with
// body, and moves the session to the local-reply phase.
func (s *Session) replyEnd(h []byte, status int, reason metrics.Reason, body []byte) {
	s.replyFinish(h, status, reason, body, true)
}

// replyFinish is replyEnd; typed adds a text/plain Content-Type to a body
// (a head that has its own says false).
func (s *Session) replyFinish(h []byte, status int, reason metrics.Reason, body []byte, typed bool) {
	x := s.x
	x.status = status
	x.setReason(reason)
	s.w.Metrics.LocalReply(reason)
	noContent := status < 200 || status == 204 || status == 304
	if s.grpcReply(status) {
		// Trailers-only (gRPC over HTTP/2): the stream ends with this
		// head, which carries the status.
		h = appendGRPCStatus(h, status)
		body, noContent = nil, true
		h = append(h, "Content-Length: 0\r\n"...)
	}
	if noContent {
		body = nil
	} else {
		if len(body) > 0 && typed {
			h = append(h, "Content-Type: text/plain; charset=utf-8\r\n"...)
		}
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, int64(len(body)), 10)
		h = append(h, "\r\n"...)
	}
	if s.draining {
		s.closeAfter = true
	}
	switch {
	case s.closeAfter:
		h = append(h, "Connection: close\r\n"...)
	case x.version == http1.HTTP10:
		h = append(h, "Connection: keep-alive\r\n"...)
	}
	h = append(h, "\r\n"...)
	if x.method == http1.MethodHead {
		body = nil
	}
	// The body goes out through the head buffer: sends only ever refer
	// to Exchange memory. What does not fit follows in pieces.
	k := min(len(body), cap(h)-len(h))
	h = append(h, body[:k]...)
	x.replyRest = body[k:]
	x.phase = phLocal
	if !s.commitHead(h) {
		s.abort(status)
	}
}

// stepLocal sends the rest of a local reply's body, then ends the
// exchange.
func (s *Session) stepLocal() bool {
	x := s.x
	if !x.csends.empty() || x.cliUsed != 0 {
		return false
	}
	if len(x.replyRest) > 0 {
		h := s.headRoom()
		k := min(len(x.replyRest), cap(h))
		h = append(h, x.replyRest[:k]...)
		x.replyRest = x.replyRest[k:]
		s.commitHead(h)
		return false
	}
	s.finishExchange()
	return true
}

// appendFields appends a header modifier's Set and Add fields to a reply
// head.
func appendFields(h []byte, m *compiled.HeaderModifier) []byte {
	for i := range m.Set {
		h = appendField(h, m.Set[i].Name, m.Set[i].Value)
	}
	for i := range m.Add {
		h = appendField(h, m.Add[i].Name, m.Add[i].Value)
	}
	return h
}

func appendField(h []byte, name, value string) []byte {
	h = append(h, name...)
	h = append(h, ": "...)
	h = append(h, value...)
	return append(h, "\r\n"...)
}

// directResponse answers with a backend's direct response.
func (s *Session) directResponse(b *compiled.Backend) {
	x := s.x
	status := 500
	var body []byte
	if d := b.Direct; d != nil {
		status, body = d.Status, d.Body
	}
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	h := s.replyStart(status)
	h = appendFields(h, &x.route.ResponseHeaders)
	h = appendFields(h, &b.ResponseHeaders)
	h = s.appendCORS(h)
	s.replyEnd(h, status, metrics.ReasonDirectResponse, body)
}

// redirect answers with the route's redirect. path is the routed path.
func (s *Session) redirect(path []byte) {
	x := s.x
	rd := x.route.Redirect
	r := &x.req
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	h := s.replyStart(rd.Status)
	h = append(h, "Location: "...)
	scheme := "http"
	if s.secure {
		scheme = "https"
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	h = append(h, scheme...)
	h = append(h, "://"...)
	if rd.Hostname != "" {
		h = append(h, rd.Hostname...)
	} else {
		h = append(h, stripPort(r.Authority.Bytes(x.hbuf))...)
	}
	port := rd.Port
	if port == 0 {
		switch {
		case rd.Scheme == "https":
			port = 443
		case rd.Scheme == "http":
			port = 80
		case x.listener != nil:
			port = uint32(x.listener.Addr.Port())
		}
	}
	if port != 0 && !(scheme == "http" && port == 80) && !(scheme == "https" && port == 443) {
		h = append(h, ':')
		h = strconv.AppendUint(h, uint64(port), 10)
	}
	if rd.Path != nil {
		h = rewritePath(h, path, rd.Path, x.prefix)
	} else {
		h = append(h, path...)
	}
	h = appendQuery(h, r, x.hbuf)
	h = append(h, "\r\n"...)
	h = appendFields(h, &x.route.ResponseHeaders)
	h = s.appendCORS(h)
	s.replyEnd(h, rd.Status, metrics.ReasonDirectResponse, nil)
}

// statusBody is the body of the proxy's own error replies.
func statusBody(status int) string {
	switch status {
	case 400:
		return "bad request\n"
	case 404:
		return "no route\n"
	case 408:
		return "request header timeout\n"
	case 414:
		return "request target too long\n"
	case 431:
		return "request header fields too large\n"
	case 500:
		return "internal server error\n"
	case 501:
		return "not implemented\n"
	case 502:
		return "bad gateway\n"
	case 503:
		return "no healthy upstream\n"
	case 504:
		return "upstream request timeout\n"
	case 505:
		return "http version not supported\n"
	}
	return ""
}

// statusText returns the reason phrase of a status code, or "" for codes
// without one here (an empty reason phrase is valid).
func statusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 204:
		return "No Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 421:
		return "Misdirected Request"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return ""
}
