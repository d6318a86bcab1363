package proxy

import (
	"errors"
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// processResponse parses the upstream response head and frames its body.
func (s *Session) processResponse() {
	x := s.x
	up := &x.up
	for !x.respHeadDone {
		if up.w == up.r {
			if x.upEOF {
				s.upstreamGone()
			}
			return
		}
		n, err := http1.ParseResponse(up.buf[up.r:up.w], &x.res, x.method, s.w.responseLimits(x.listener))
		if errors.Is(err, http1.ErrNeedMore) {
			if x.upEOF {
				s.upstreamGone()
			} else if up.r == 0 && up.w == len(up.buf) {
				s.growForResponseHead()
			}
			return
		}
		if err != nil {
			s.report(compiled.OutcomeServerError)
			s.markAvoid()
			s.closeUpstream()
			s.fail(502, metrics.ReasonBadResponse)
			return
		}
		if !s.responseHead(n) {
			return
		}
	}
	if !x.respDone && up.proc < up.w {
		var err error
		if x.dechunk {
			err = s.dechunkBody()
		} else {
			var n int
			var done bool
			n, done, err = x.resBody.Feed(up.buf[up.proc:up.w])
			up.proc += n
			up.ready = up.proc
			x.respDone = done
		}
		if err != nil {
			// The response is under way: all that can be done is to
			// close the client.
			x.setReason(metrics.ReasonBadResponse)
			s.abort(x.status)
			return
		}
	}
	if !x.respDone && x.upEOF {
		if x.resBody.Framing() != http1.FramingClose {
			x.setReason(metrics.ReasonUpstreamReset)
			s.abort(x.status)
			return
		}
		x.respDone = true
	}
	if x.respDone && up.proc < up.w {
		x.upBroken = true
	}
}

// growForResponseHead moves a response head that filled the upstream
// buffer before it was complete into large buffers lent by the worker
// (Options.BufferSize), if the response limits allow a longer head than the
// buffer holds. Otherwise the head is over the limit and the parser will
// say so.
func (s *Session) growForResponseHead() {
	x := s.x
	if x.large != nil || s.w.largeSize <= len(x.up.buf) {
		return
	}
	x.useLarge(s.w.large.Get().(*largeBuffers))
}

// dechunkBody decodes a chunked response body in place, for an HTTP/1.0
// client or an authorization service's denial: the decoded data is moved
// down to follow the bytes ready to send.
func (s *Session) dechunkBody() error {
	x := s.x
	up := &x.up
	for up.proc < up.w && !x.respDone {
		n, data, done, err := x.resBody.Next(up.buf[up.proc:up.w])
		if err != nil {
			return err
		}
		if len(data) > 0 {
			copy(up.buf[up.ready:], data)
			up.ready += len(data)
		}
		up.proc += n
		x.respDone = done
		if n == 0 {
			break
		}
	}
	return nil
}

// responseHead acts on a response head of n bytes at the start of the
// upstream stream. It reports whether parsing should go on (after an
// interim response).
func (s *Session) responseHead(n int) bool {
	x := s.x
	res := &x.res
	up := &x.up
	if res.Status == 101 {
		if !x.upgrade {
			s.markAvoid()
			s.closeUpstream()
			s.fail(502, metrics.ReasonBadResponse)
			return false
		}
		o := s.responseOptions(false)
		h := http1.AppendResponseHead(s.headRoom(), up.buf[up.r:], res, &o)
		if !s.commitHead(h) {
			s.closeUpstream()
			s.fail(502, metrics.ReasonBadResponse)
			return false
		}
		up.r += n
		x.status = 101
		x.respHeadDone, x.respStarted = true, true
		x.replayOff = -1
		s.startTunnel()
		return false
	}
	if s.h2 != nil && s.h2.ws && res.Status/100 == 2 {
		// A WebSocket stream's 200 means the tunnel is up (RFC 8441):
		// a backend that answered the upgrade with a 2xx of its own did
		// not open one.
		s.closeUpstream()
		s.fail(502, metrics.ReasonBadResponse)
		return false
	}
	if !res.Interim() && x.group != nil && x.headSent {
		m := s.w.Metrics
		m.ObserveUpstream(m.Group(x.group.Stats), time.Duration(s.w.Now()-x.sentAt))
	}
	if res.Status >= 500 {
		s.report(compiled.OutcomeServerError)
	} else if !res.Interim() {
		s.report(compiled.OutcomeSuccess)
	}
	if res.Interim() {
		// RFC 9110 §15.2: no 1xx to an HTTP/1.0 client. And the client
		// that got the proxy's own 100 (Continue) gets no second one.
		if x.version == http1.HTTP11 && !(res.Status == 100 && x.sentContinue) {
			h := http1.AppendResponseHead(s.headRoom(), up.buf[up.r:], res, nil)
			s.commitHead(h)
		}
		up.r += n
		up.ready, up.proc = up.r, up.r
		res.Reset()
		return true
	}
	if s.retryAllowed(causeStatus, res.Status) {
		s.markAvoid()
		s.closeUpstream()
		s.retry(causeStatus, res.Status)
		return false
	}
	x.status = res.Status
	if res.Framing == http1.FramingClose || s.draining {
		s.closeAfter = true
	}
	if !x.reqBodyDone {
		// An early response: the rest of the request body will most
		// likely not be read, and then the connection cannot be reused.
		s.closeAfter = true
		s.linger = true
	}
	if x.version == http1.HTTP10 && res.Framing == http1.FramingChunked {
		x.dechunk = true
		s.closeAfter = true
	}
	o := s.responseOptions(x.dechunk)
	h := http1.AppendResponseHead(s.headRoom(), up.buf[up.r:], res, &o)
	if !s.commitHead(h) {
		s.closeUpstream()
		s.fail(502, metrics.ReasonBadResponse)
		return false
	}
	up.r += n
	up.ready, up.proc = up.r, up.r
	x.resBody.ForResponse(res, s.w.responseLimits(x.listener))
	x.respHeadDone, x.respStarted = true, true
	x.respDone = x.resBody.Done()
	x.replayOff = -1
	return true
}

// responseOptions builds the rewrite options of a response head: the
// route's and backend's response header modifiers, the route's CORS fields,
// the connection fields.
func (s *Session) responseOptions(dechunk bool) http1.ResponseRewriteOptions {
	x := s.x
	x.remove, x.add = x.remove[:0], x.add[:0]
	if x.route != nil {
		x.remove, x.add = appendModifier(x.remove, x.add, &x.route.ResponseHeaders)
	}
	if x.backend != nil {
		x.remove, x.add = appendModifier(x.remove, x.add, &x.backend.ResponseHeaders)
	}
	if dechunk {
		x.remove = append(x.remove, bytesOf("transfer-encoding"))
	}
	if x.route != nil && x.route.CORS != nil {
		x.remove, x.add = x.corsFields(x.route.CORS, x.remove, x.add)
	}
	if x.route != nil && len(x.route.Filters.Response) > 0 {
		s.runResponseFilters(x.route.Filters.Response)
	}
	x.add = s.affinityField(x.add)
	if !s.closeAfter && x.version == http1.HTTP10 {
		x.add = append(x.add, http1.HeaderField{Name: bytesOf("Connection"), Value: bytesOf("keep-alive")})
	}
	return http1.ResponseRewriteOptions{Close: s.closeAfter, Remove: x.remove, Add: x.add}
}

// markAvoid remembers the current endpoint as one to avoid on a retry.
func (s *Session) markAvoid() {
	x := s.x
	if x.hasEP {
		if i := x.ep.Index; i >= 0 && i < 64*len(x.avoid) {
			x.avoid[i/64] |= 1 << (uint(i) % 64)
		}
	}
}

// startTunnel turns the session into a byte tunnel.
func (s *Session) startTunnel() {
	x := s.x
	x.phase = phTunnel
	x.reqBodyDone = true
	x.replayOff = -1
	x.reqBytes += int64(x.in.w - x.in.proc)
	x.in.proc, x.in.ready = x.in.w, x.in.w
	x.up.proc, x.up.ready = x.up.w, x.up.w
	s.push(Action{Kind: ActStartTunnel})
}

// stepTunnel forwards bytes both ways and propagates half-closes.
func (s *Session) stepTunnel() {
	x := s.x
	in, up := &x.in, &x.up
	x.reqBytes += int64(in.w - in.proc)
	in.proc, in.ready = in.w, in.w
	up.proc, up.ready = up.w, up.w
	connected := x.upState == upConnected
	if connected && !in.busy && in.pending() {
		s.sendStream(Upstream, in)
	}
	if !up.busy && up.pending() {
		s.sendStream(Client, up)
	}
	if s.clientEOF && !x.shutUp && !in.busy && !in.pending() {
		x.shutUp = true
		if connected {
			s.push(Action{Kind: ActShutdownUpstream})
		}
	}
	if (x.upEOF || !connected) && !x.shutCli && !up.busy && !up.pending() && x.csends.empty() {
		x.shutCli = true
		if !s.clientEOF {
			s.push(Action{Kind: ActShutdownClient})
		}
	}
	if x.shutUp && x.shutCli && x.csends.empty() {
		s.observe(x.status)
		s.logEnd(x.status)
		s.closeUpstream()
		s.closeClient(false)
	}
}

// openTCP starts a TCP listener's session: pick a backend and connect.
func (s *Session) openTCP(l *compiled.Listener, now int64) {
	x := s.exchange()
	x.listener = l
	x.route = l.TCP
	x.start = now
	x.began = true
	s.connectTunnel()
}

// connectTunnel starts the tunnel of a TCP listener's connection, or of a
// TLS listener's once its route is chosen (and, on a terminating route,
// TLS established): the listener's connection hooks, a backend of
// x.route by weight, an endpoint, the connect. The client bytes received
// meanwhile are forwarded once connected (startTunnel).
func (s *Session) connectTunnel() {
	x := s.x
	l := x.listener
	x.phase = phConnect
	x.reqBodyDone = true
	x.status = 200
	if len(l.ConnFilters) > 0 && !s.runConnFilters(l.ConnFilters) {
		s.w.Metrics.LocalReply(metrics.ReasonFilter)
		x.setReason(metrics.ReasonFilter)
		s.logEnd(x.fStatus)
		s.closeClient(false)
		return
	}
	// A connection hook may have chosen the backend group (filter.go).
	b := x.backend
	if b == nil && x.route != nil {
		b = x.route.PickBackend(s.rand())
	}
	if b == nil || b.Group == nil {
		s.w.Metrics.LocalReply(metrics.ReasonNoEndpoint)
		x.setReason(metrics.ReasonNoEndpoint)
		s.logEnd(503)
		s.closeClient(false)
		return
	}
	x.backend = b
	x.group = b.Group
	x.key = x.key[:0]
	if x.group.HashSourceIP {
		a := s.remote.Addr().Unmap().As16()
		x.key = append(x.key, a[:]...)
	}
	if !s.dialTunnel() {
		s.w.Metrics.LocalReply(metrics.ReasonNoEndpoint)
		x.setReason(metrics.ReasonNoEndpoint)
		s.logEnd(503)
		s.closeClient(false)
	}
}

// dialTunnel picks an endpoint of the tunnel's group, passing over those
// whose connect failed moments ago (passive avoidance, pick) and those this
// connection tried already, and connects to it. It reports false when the
// group has no endpoint to offer.
func (s *Session) dialTunnel() bool {
	x := s.x
	ep, ok := s.pick()
	if !ok {
		return false
	}
	x.resetAttempt()
	x.ep = ep
	x.hasEP = true
	x.attempts++
	x.upState = upConnecting
	s.push(Action{Kind: ActConnectUpstream})
	return true
}

// retryTunnel connects a tunnel whose connect failed to another endpoint,
// while the group has eligible endpoints it has not tried (at most
// compiled.MaxConnectAttempts in all, as the default HTTP retry does): no
// byte has reached a backend yet, so the retry adds no load to any. It
// reports whether it did.
func (s *Session) retryTunnel() bool {
	x := s.x
	if !s.untriedEndpoints() || !s.dialTunnel() {
		return false
	}
	if sh := x.group.Shared; sh != nil {
		sh.Retried(metrics.RetryConnectFailed)
	}
	return true
}
