package proxy

import (
	"errors"
	"strconv"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// External authorization.
//
// A route with an ExternalAuth filter (compiled.ExtAuth) asks an HTTP
// authorization service about each of its requests before forwarding it.
// The check is a side exchange on the session's one upstream slot, with
// the engine's ordinary connection machinery: once the request is routed
// and its upstream head built, the session enters phAuth, points the slot
// at the auth group (Target returns it; the route's group is kept in
// Exchange.authSaved), picks an endpoint, asks for a connection
// (ActConnectUpstream: a pooled one when there is one), sends the check
// head (built while routing, in Exchange.authHead) and, when the filter
// forwards bodies, the request body already buffered, then reads the
// response. The check speaks HTTP/1.1 whatever the auth group's
// protocol field would otherwise imply for H2C (the contract refuses H2C
// auth groups).
//
//   - 200 allows: the allowed response headers are set on the upstream head
//     (replacing the client's fields of those names), the check connection
//     goes back to the pool when its response is complete, and the request
//     goes on to its own group as if it had just been routed.
//   - Another final status denies: the session waits for the response body
//     (while it fits the upstream buffer; a larger one is dropped) and
//     answers the client with that status, the response's end-to-end
//     headers and the body, plus the route's response headers and CORS
//     fields. The request never reaches a backend.
//   - No endpoint, a failed connect, a reset, a malformed or 101 response,
//     or the filter's timeout fail closed with 403 (reason ext_auth_error),
//     as Envoy's ext_authz does by default; the route's request timeout
//     passing first gives 504 as for any request.
//
// A request the filter forwards the body of waits for the whole body (at
// most MaxBody bytes, and it must fit the client buffer: larger ones get 413
// before any check; a chunked body is sent decoded, with Content-Length,
// from the scratch buffer of the check head) and gets its own 100
// (Continue) if it asked for one. The check request is
// the client's method, PathPrefix and the routed (normalised) path and
// query, Host, Authorization, the allowed request headers,
// X-Forwarded-For and X-Forwarded-Proto, and Content-Length. Nothing here
// allocates once the Exchange's scratch buffer has grown to the largest
// check head.

// extAuthErrorBody is the body of the 403 of a check that failed.
const extAuthErrorBody = "external authorization failed\n"

// extAuthBodyTooLarge is the body of the 413 of a request whose body the
// filter cannot forward.
const extAuthBodyTooLarge = "request body too large for external authorization\n"

// buildAuthHead writes the check request of the request being routed into
// Exchange.authHead. path is the routed path. It reports false after
// replying (413) when the request's body cannot be forwarded.
func (s *Session) buildAuthHead(a *compiled.ExtAuth, path []byte) bool {
	x := s.x
	r := &x.req
	x.authBody = false
	if a.MaxBody > 0 && (r.Chunked || r.ContentLength > 0) {
		if !r.Chunked && (r.ContentLength > int64(a.MaxBody) || r.ContentLength > int64(len(x.in.buf))) {
			s.replyFinishBody(413, metrics.ReasonBadRequest, extAuthBodyTooLarge)
			return false
		}
		x.authBody = true
	}
	h := append(x.authHead[:0], r.MethodSpan.Bytes(x.hbuf)...)
	h = append(h, ' ')
	h = append(h, a.PathPrefix...)
	h = append(h, path...)
	h = appendQuery(h, r, x.hbuf)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, r.Authority.Bytes(x.hbuf)...)
	h = append(h, "\r\n"...)
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.ID != http1.HeaderOther || f.ConnListed {
			continue
		}
		name := f.Name.Bytes(x.hbuf)
		if !equalFold(name, "authorization") && !allowedName(name, a.RequestHeaders) {
			continue
		}
		h = append(h, name...)
		h = append(h, ": "...)
		h = append(h, f.Value.Bytes(x.hbuf)...)
		h = append(h, "\r\n"...)
	}
	h = append(h, "X-Forwarded-For: "...)
	h = x.client.AppendTo(h)
	h = append(h, "\r\nX-Forwarded-Proto: "...)
	if s.secure {
		h = append(h, "https"...)
	} else {
		h = append(h, "http"...)
	}
	h = append(h, "\r\n"...)
	if !x.authBody {
		// A body goes with the check: its Content-Length is added once it
		// is all in (authAddBody).
		h = append(h, "Content-Length: 0\r\n\r\n"...)
	}
	x.authHead = h
	return true
}

// authAddBody completes the check head of a request whose body goes with
// it, once the body is all in: Content-Length and, for a chunked body, the
// decoded body after the head (a Content-Length body is sent from the
// client buffer). It reports false after replying 413 to a body over the
// filter's bound.
func (s *Session) authAddBody() bool {
	x := s.x
	a := x.route.ExtAuth
	in := &x.in
	body := in.buf[x.replayOff:in.proc]
	h := x.authHead
	if !x.req.Chunked {
		x.authHead = appendContentLength(h, len(body))
		return true
	}
	var br http1.BodyReader
	br.Reset(http1.FramingChunked, -1, s.w.requestLimits(x.listener))
	start := len(h)
	for len(body) > 0 {
		n, data, done, err := br.Next(body)
		if err != nil || len(h)-start+len(data) > a.MaxBody {
			// (The request's framing was checked as it arrived: what is
			// left is a body over the bound.)
			s.authTooLarge()
			return false
		}
		h = append(h, data...)
		body = body[n:]
		if done || n == 0 {
			break
		}
	}
	// Insert Content-Length between the fields and the decoded body.
	n := len(h) - start
	var line [32]byte
	cl := appendContentLength(line[:0], n)
	h = append(h, cl...)
	copy(h[start+len(cl):], h[start:start+n])
	copy(h[start:], cl)
	x.authHead = h
	return true
}

// appendContentLength appends the last field and the end of a head.
func appendContentLength(h []byte, n int) []byte {
	h = append(h, "Content-Length: "...)
	h = strconv.AppendInt(h, int64(n), 10)
	return append(h, "\r\n\r\n"...)
}

// authTooLarge answers 413 to a request whose body the filter cannot
// forward, before any check.
func (s *Session) authTooLarge() {
	s.authEnd()
	s.replyFinishBody(413, metrics.ReasonBadRequest, extAuthBodyTooLarge)
}

// replyFinishBody answers status with a text body, closing the connection
// after it when the request body was not read.
func (s *Session) replyFinishBody(status int, reason metrics.Reason, body string) {
	if !s.x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	s.localReplyText(status, reason, body)
}

// allowedName reports whether name is one of the lower-case names.
func allowedName(name []byte, names []string) bool {
	for _, n := range names {
		if equalFold(name, n) {
			return true
		}
	}
	return false
}

// startAuth moves the routed request into the check.
func (s *Session) startAuth(a *compiled.ExtAuth) {
	x := s.x
	x.phase = phAuth
	x.authSaved = x.group
	x.group = a.Group
	x.authDeadline = s.w.Now() + int64(a.Timeout)
}

// authConnect picks an endpoint of the auth group and asks for a
// connection to it.
func (s *Session) authConnect() {
	x := s.x
	ep, ok := s.w.Endpoints.Pick(x.group, nil, nil)
	if !ok {
		s.authFailed()
		return
	}
	x.resetAttempt()
	x.fresh = false
	x.ep = ep
	x.hasEP = true
	x.upState = upConnecting
	s.push(Action{Kind: ActConnectUpstream})
}

// stepAuth drives the check: wait for a forwarded body, connect, send, read
// the response.
func (s *Session) stepAuth() bool {
	x := s.x
	if !s.feedRequestBody() {
		return true
	}
	if x.upState == upNone {
		if x.authBody && !x.reqBodyDone {
			if !x.in.hasRoom() {
				// The body does not fit the client buffer.
				s.authTooLarge()
				return true
			}
			if x.expect {
				// The body is needed before anything else happens.
				x.expect = false
				x.sentContinue = true
				s.sendClientHead(bytesOf(continueHead))
			}
			return false
		}
		if x.authBody && !s.authAddBody() {
			return true
		}
		s.authConnect()
		return x.phase != phAuth
	}
	if x.upState != upConnected {
		return false
	}
	if !x.headSent {
		x.headSent = true
		x.sentAt = s.w.Now()
		x.usends.push(sendRec{data: x.authHead})
		s.push(Action{Kind: ActSendUpstream, Data: x.authHead})
		if x.authBody && !x.req.Chunked {
			// The body stays where it is (in.busy stops compaction) until
			// the send completes; the request replays it from replayOff.
			b := x.in.buf[x.replayOff:x.in.proc]
			x.in.busy = true
			x.usends.push(sendRec{data: b})
			s.push(Action{Kind: ActSendUpstream, Data: b})
		}
	}
	if x.authBody && !x.req.Chunked && x.usends.empty() {
		x.in.busy = false
	}
	return s.authResponse()
}

// authResponse reads the check's response and acts on it once it can. It
// reports whether the phase changed. The final response's head stays at
// up.r (the stream may move it, with everything after it, to the start of
// the buffer; x.res's spans are relative to it) and the body follows it.
func (s *Session) authResponse() bool {
	x := s.x
	up := &x.up
	for !x.respHeadDone {
		if up.w == up.r {
			if x.upEOF || x.upBroken {
				if x.upReused && !x.upGotBytes && !x.authRetried {
					// A pooled connection the service had closed: once more
					// on a fresh one.
					x.authRetried = true
					s.closeUpstream()
					s.authConnect()
					x.fresh = true
					return x.phase != phAuth
				}
				s.authFailed()
				return true
			}
			return false
		}
		n, err := http1.ParseResponse(up.buf[up.r:up.w], &x.res, x.method, s.w.responseLimits(x.listener))
		if errors.Is(err, http1.ErrNeedMore) {
			if x.upEOF || x.upBroken || (up.r == 0 && up.w == len(up.buf)) {
				s.authFailed()
				return true
			}
			return false
		}
		if err != nil || x.res.Status == 101 {
			s.report(compiled.OutcomeServerError)
			s.authFailed()
			return true
		}
		if x.res.Interim() {
			up.r += n
			up.ready, up.proc = up.r, up.r
			x.res.Reset()
			continue
		}
		up.ready, up.proc = up.r+n, up.r+n
		if x.res.Status >= 500 {
			s.report(compiled.OutcomeServerError)
		} else {
			s.report(compiled.OutcomeSuccess)
		}
		x.respHeadDone = true
		x.resBody.ForResponse(&x.res, s.w.responseLimits(x.listener))
		x.respDone = x.resBody.Done()
	}
	if x.res.Status == 200 {
		// The body of an allowing response is not used: the connection is
		// kept only if all of it is in already.
		if !x.respDone && up.proc < up.w {
			n, done, err := x.resBody.Feed(up.buf[up.proc:up.w])
			up.proc += n
			x.respDone = done && err == nil
		}
		return s.authAllow()
	}
	// A denial: collect its body, decoded, after the head.
	if err := s.dechunkBody(); err != nil {
		x.upBroken = true
		up.ready = up.r + x.res.Len // no body rather than part of one
		return s.authDeny()
	}
	switch {
	case x.respDone:
	case x.upEOF && x.resBody.Framing() == http1.FramingClose:
		x.respDone = true
	case x.upEOF || x.upBroken || !up.hasRoom():
		// Truncated, or larger than the buffer: no body.
		x.upBroken = true
		up.ready = up.r + x.res.Len
	default:
		return false
	}
	return s.authDeny()
}

// authRespHead returns the check response's head, to which x.res's spans
// refer.
func (x *Exchange) authRespHead() []byte {
	up := &x.up
	return up.buf[up.r : up.r+x.res.Len]
}

// authAllow forwards the request, with the allowed headers of the check's
// response set on its upstream head.
func (s *Session) authAllow() bool {
	x := s.x
	a := x.route.ExtAuth
	if !s.authHeaders(a) {
		s.authFailed()
		return true
	}
	s.authEnd()
	x.phase = phProxy
	s.connect()
	return true
}

// authHeaders sets the allowed header fields of the check's response on
// the upstream head, in place: the head's fields of those names are
// removed first. It reports false if the head outgrew its buffer.
func (s *Session) authHeaders(a *compiled.ExtAuth) bool {
	x := s.x
	hb := x.authRespHead()
	res := &x.res
	h := x.upHead
	end := len(h) - 2 // before the empty line
	any := false
	for i := range res.Fields {
		f := &res.Fields[i]
		if !authCopied(a, f, hb) {
			continue
		}
		any = true
		end = removeFields(h[:end], f.Name.Bytes(hb))
	}
	if !any {
		return true
	}
	h = h[:end]
	for i := range res.Fields {
		f := &res.Fields[i]
		if !authCopied(a, f, hb) {
			continue
		}
		h = appendHeaderLine(h, f.Name.Bytes(hb), f.Value.Bytes(hb))
	}
	h = append(h, "\r\n"...)
	if cap(h) != cap(x.upHead) {
		return false
	}
	x.upHead = h
	return true
}

func appendHeaderLine(h, name, value []byte) []byte {
	h = append(h, name...)
	h = append(h, ": "...)
	h = append(h, value...)
	return append(h, "\r\n"...)
}

// authCopied reports whether the check response's field f goes onto the
// forwarded request: never a hop-by-hop, framing or Host field; with no
// list, every other field but those describing the response itself.
func authCopied(a *compiled.ExtAuth, f *http1.Field, buf []byte) bool {
	if f.ID != http1.HeaderOther || f.ConnListed {
		return false
	}
	name := f.Name.Bytes(buf)
	if len(a.ResponseHeaders) > 0 {
		return allowedName(name, a.ResponseHeaders)
	}
	for _, n := range responseOnly {
		if equalFold(name, n) {
			return false
		}
	}
	return true
}

// responseOnly are the fields an allowing response with no list of allowed
// headers does not copy: they describe the response, not the request.
var responseOnly = [...]string{"host", "content-type", "content-encoding", "date", "server", "upgrade", "trailer", "transfer-encoding", "content-length"}

// removeFields removes the field lines named name from the head h (after its
// request line) in place and returns the new length.
func removeFields(h, name []byte) int {
	i := 0
	for i < len(h) && h[i] != '\n' {
		i++
	}
	i++ // the first field line
	n := len(h)
	for i < n {
		e := i
		for e < n && h[e] != '\n' {
			e++
		}
		e++ // past the line
		if e-i > len(name) && h[i+len(name)] == ':' && equalFoldBytes(h[i:i+len(name)], name) {
			copy(h[i:], h[e:n])
			n -= e - i
			continue
		}
		i = e
	}
	return n
}

// authDeny answers the client with the check's response.
func (s *Session) authDeny() bool {
	x := s.x
	status := x.res.Status
	hb := x.authRespHead()
	body := x.up.buf[x.up.r+x.res.Len : x.up.ready]
	h := s.replyStart(status)
	typed := false
	for i := range x.res.Fields {
		f := &x.res.Fields[i]
		if f.ID != http1.HeaderOther || f.ConnListed {
			continue
		}
		name := f.Name.Bytes(hb)
		if equalFold(name, "content-type") {
			typed = true
		}
		h = appendHeaderLine(h, name, f.Value.Bytes(hb))
	}
	h = appendFields(h, &x.route.ResponseHeaders)
	h = s.appendCORS(h)
	s.authEnd()
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	s.replyFinish(h, status, metrics.ReasonExtAuthDenied, body, !typed)
	return true
}

// authFailed fails the request closed: 403.
func (s *Session) authFailed() {
	x := s.x
	x.upBroken = true
	s.authEnd()
	s.replyFinishBody(403, metrics.ReasonExtAuthError, extAuthErrorBody)
}

// authTimeout ends a check whose time ran out: 403, or 504 when the
// route's request timeout passed.
func (s *Session) authTimeout(now int64) {
	x := s.x
	if x.reqDeadline != 0 && now >= x.reqDeadline {
		x.upBroken = true
		s.authEnd()
		x.setReason(metrics.ReasonTimeout)
		s.replyFinishBody(504, metrics.ReasonTimeout, statusBody(504))
		return
	}
	if x.upState == upNone && x.authBody && !x.reqBodyDone {
		x.upBroken = true
		s.authEnd()
		s.replyFinishBody(408, metrics.ReasonRequestBodyTimeout, "request body timeout\n")
		return
	}
	s.w.Metrics.Timeout(metrics.TimeoutExtAuth)
	s.report(compiled.OutcomeServerError)
	s.authFailed()
}

// authEnd lets go of the check's connection (back to the pool when its
// exchange is complete and clean) and gives the request its group back.
func (s *Session) authEnd() {
	x := s.x
	if x.upState == upConnected && !x.upBroken && !x.upEOF && x.respDone && x.res.KeepAlive &&
		x.up.proc == x.up.w && x.usends.empty() {
		s.push(Action{Kind: ActReleaseUpstream})
		x.upState = upNone
		s.endAttempt()
	} else {
		s.closeUpstream()
	}
	if x.authSaved != nil {
		x.group = x.authSaved
		x.authSaved = nil
	}
	x.in.busy = false
}
