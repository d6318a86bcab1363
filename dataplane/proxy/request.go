package proxy

import (
	"net/netip"
	"time"
	"unsafe"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/router"
)

// bytesOf returns the bytes of s without copying; they must not be
// modified.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Retry causes.
const (
	causeConnect uint8 = iota
	causeReset
	causeStatus
	causeTimeout
)

// retryReasons are the metrics reasons of the retry causes.
var retryReasons = [...]metrics.RetryReason{
	causeConnect: metrics.RetryConnectFailed,
	causeReset:   metrics.RetryUpstreamReset,
	causeStatus:  metrics.RetryStatus,
	causeTimeout: metrics.RetryBackendTimeout,
}

// continueHead is the proxy's own interim response to a request that
// expects 100-continue (the Expect field is not forwarded).
const continueHead = "HTTP/1.1 100 Continue\r\n\r\n"

// beginRequest acts on a complete request head of n bytes at the start of
// the client stream: route it, then reply locally or start forwarding.
func (s *Session) beginRequest(n int) {
	x := s.x
	r := &x.req
	in := &x.in
	x.hbuf = in.buf[in.r : in.r+n]
	x.began = true
	x.reqBytes = int64(n)
	if s.w.opts.AccessLog != nil {
		x.copyRequestLine()
	}
	in.r += n
	in.ready, in.proc = in.r, in.r
	x.replayOff = in.r
	x.method = r.Method
	x.version = r.Version
	if !r.KeepAlive {
		s.closeAfter = true
	}
	x.reqBody.ForRequest(r, s.w.opts.Limits)
	x.reqBodyDone = x.reqBody.Done()
	x.upgrade = r.Version == http1.HTTP11 && r.UpgradeRequested() &&
		!equalFold(r.Upgrade.Bytes(x.hbuf), "h2c")
	x.listener = s.lref.Load()
	if x.start == 0 {
		x.start = s.w.Now()
	}
	s.clientAddr()
	if !s.feedRequestBody() {
		return
	}
	// The proxy answers 100 (Continue) itself once the request goes to an
	// upstream, unless body bytes came already (RFC 9110 §10.1.1).
	x.expect = r.ExpectContinue && !x.reqBodyDone && x.in.proc == x.replayOff
	if p := s.w.Metrics.Pressure(); p != metrics.PressureNone {
		// The worker sheds load (metrics.Pressure): from 80% of its memory
		// budget on connections are not kept alive, from 100% new
		// requests are refused.
		s.closeAfter = true
		if p >= metrics.PressureRejectRequests {
			s.w.Metrics.OverloadAction(metrics.OverloadRejectRequest)
			s.replyDiscardingBody(503, metrics.ReasonOverload)
			return
		}
	}
	if r.Method == http1.MethodConnect {
		s.replyDiscardingBody(501, metrics.ReasonBadRequest)
		return
	}

	// Route.
	path := r.Path.Bytes(x.hbuf)
	switch {
	case r.Form == http1.FormAsterisk:
		path = bytesOf("*")
	case len(path) == 0:
		path = bytesOf("/")
	}
	normalized := false
	if p, changed := normalizePath(x.path[:0], path); changed {
		x.path = p
		path = p
		normalized = true
	}
	x.view.Host = r.Authority.Bytes(x.hbuf)
	x.view.Path = path
	x.view.Query = r.Query.Bytes(x.hbuf)
	x.view.Method = r.MethodSpan.Bytes(x.hbuf)
	x.view.Headers = x
	var m *compiled.Matched
	if x.listener != nil {
		if s.misdirected(x.view.Host) {
			s.replyDiscardingBody(421, metrics.ReasonMisdirected)
			return
		}
		m = x.listener.Match(&x.view)
	}
	if m == nil {
		s.replyDiscardingBody(404, metrics.ReasonNoRoute)
		return
	}
	rt := m.Route
	x.route = rt
	x.prefix = m.Prefix
	if t := x.listener.Tracing; t != nil {
		s.startTrace(t)
	}
	if rt.Timeouts.Request > 0 {
		x.reqDeadline = x.start + int64(rt.Timeouts.Request)
	}
	if rt.RateLimit != nil && s.rateLimited(rt.RateLimit) {
		return
	}
	if rt.CORS != nil && s.cors(rt.CORS) {
		return
	}
	if len(rt.Filters.Request) > 0 && s.runRequestFilters(rt.Filters.Request) {
		return
	}
	// A request hook may have chosen the backend group (filter.go).
	b := x.backend
	if b == nil {
		if rt.Redirect != nil {
			s.redirect(path)
			return
		}
		b = rt.PickBackend(s.rand())
		if b == nil {
			s.replyDiscardingBody(500, metrics.ReasonDirectResponse)
			return
		}
		x.backend = b
	}
	if b.Group == nil {
		s.directResponse(b)
		return
	}
	x.group = b.Group
	if gc := s.w.Metrics.Group(x.group.Stats); gc != nil {
		gc.AddInFlight(1)
		x.inflight = gc
	}
	if !s.acquire(metrics.LimitRequests, x.group.Breakers.MaxRequests) {
		s.overflow(metrics.LimitRequests)
		return
	}
	s.hashKey()
	s.affinityRequest()
	if len(rt.Filters.Upstream) > 0 && s.runUpstreamFilters(rt.Filters.Upstream) {
		return
	}
	if !s.buildUpstreamHead(path, normalized) {
		s.closeAfter = true
		s.linger = true
		s.localReply(431, metrics.ReasonBadRequest)
		return
	}
	if len(rt.Mirrors) > 0 {
		s.mirror()
	}
	if rt.ExtAuth != nil && !s.buildAuthHead(rt.ExtAuth, path) {
		return
	}
	// The head is not needed any more: only its copy upstream is.
	x.hbuf = nil
	x.rwo = http1.RewriteOptions{}
	x.view = router.RequestView{}
	if rt.ExtAuth != nil {
		s.startAuth(rt.ExtAuth)
		return
	}
	x.phase = phProxy
	s.connect()
}

// copyRequestLine copies the method and the target (path and query) of
// the request head for the access log, since the head does not outlive
// routing. The copy is bounded, so its buffer stops growing.
func (x *Exchange) copyRequestLine() {
	r := &x.req
	b := append(x.logLine[:0], clip(r.MethodSpan.Bytes(x.hbuf), accesslog.MaxStringBytes)...)
	x.logMethod = len(b)
	if r.Form == http1.FormOrigin || r.Form == http1.FormAbsolute {
		p := clip(r.Path.Bytes(x.hbuf), accesslog.MaxPathBytes)
		b = append(b, p...)
		if r.HasQuery && len(p) < accesslog.MaxPathBytes {
			b = append(b, '?')
			b = append(b, clip(r.Query.Bytes(x.hbuf), accesslog.MaxPathBytes-len(p)-1)...)
		}
	} else {
		b = append(b, clip(r.Target.Bytes(x.hbuf), accesslog.MaxPathBytes)...)
	}
	x.logLine = b
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// feedRequestBody runs the request body framing over the bytes received.
// It reports false when the body is malformed, after replying.
func (s *Session) feedRequestBody() bool {
	x := s.x
	in := &x.in
	if x.reqBodyDone || in.proc == in.w {
		return true
	}
	n, done, err := x.reqBody.Feed(in.buf[in.proc:in.w])
	if n > 0 {
		// The client sends the body without waiting for 100 (Continue).
		x.expect = false
	}
	in.proc += n
	x.reqBytes += int64(n)
	in.ready = in.proc
	if err != nil {
		s.closeUpstream()
		status := http1.StatusOf(err)
		if status == 0 {
			status = 400
		}
		s.closeAfter = true
		s.linger = true
		if x.respStarted {
			s.abort(status)
		} else {
			s.localReply(status, metrics.ReasonBadRequest)
		}
		return false
	}
	if done {
		x.reqBodyDone = true
	}
	return true
}

// replyDiscardingBody replies locally to a request that will not be
// forwarded. A request body already received in full is skipped; otherwise
// the connection is closed after the reply.
func (s *Session) replyDiscardingBody(status int, reason metrics.Reason) {
	if !s.x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	s.localReply(status, reason)
}

// hashKey computes the pick key of the request for its group: the group's
// algorithm computes it when it is a balancer.Keyer, else it is the value
// the group hashes on.
func (s *Session) hashKey() {
	x := s.x
	g := x.group
	x.key = x.key[:0]
	switch {
	case g.Keyer != nil:
		x.key = g.Keyer.AppendKey(x.key, (*requestView)(x))
	case g.HashHeader != "":
		if v, ok := x.req.Lookup(x.hbuf, g.HashHeader); ok {
			x.key = append(x.key, v...)
		}
	case g.HashCookie != "":
		if v, ok := cookieValue(x.hbuf, &x.req, g.HashCookie); ok {
			x.key = append(x.key, v...)
		}
	case g.HashSourceIP:
		a := x.client.As16()
		x.key = append(x.key, a[:]...)
	}
}

// trustedHops returns the number of proxies in front of the listener whose
// forwarding headers are trusted (Options.TrustedHops).
func (s *Session) trustedHops() int {
	if l := s.x.listener; l != nil && l.TrustedHopsSet {
		return l.TrustedHops
	}
	return s.w.opts.TrustedHops
}

// clientAddr decides the request's client address: the connection's peer,
// or with N trusted hops the N-th address from the end of X-Forwarded-For
// when there is one and it parses.
func (s *Session) clientAddr() {
	x := s.x
	x.client = s.remote.Addr().Unmap()
	if n := s.trustedHops(); n > 0 {
		if v, ok := x.req.XForwardedFor(x.hbuf, n); ok {
			if a, ok := parseForwardedAddr(v); ok {
				x.client = a
			}
		}
	}
}

// parseForwardedAddr parses an X-Forwarded-For entry: an IP address, or an
// address and port ("192.0.2.1:80", "[2001:db8::1]:80") as some proxies
// write. Entries that cannot be an address ("unknown", obfuscated names)
// are turned down without calling the parser, whose errors allocate.
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > len("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535") {
		return netip.Addr{}, false
	}
	colons, dots := 0, 0
	for _, c := range b {
		switch {
		case c == ':':
			colons++
		case c == '.':
			dots++
		case c == '[' || c == ']' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F'):
		default:
			return netip.Addr{}, false
		}
	}
	str := unsafe.String(&b[0], len(b))
	if b[0] == '[' || (colons == 1 && dots > 0) {
		ap, err := netip.ParseAddrPort(str)
		return ap.Addr().Unmap(), err == nil
	}
	a, err := netip.ParseAddr(str)
	return a.Unmap(), err == nil
}

// buildUpstreamHead writes the request head to send upstream. path is the
// routed (normalized) path.
func (s *Session) buildUpstreamHead(path []byte, normalized bool) bool {
	x := s.x
	r := &x.req
	rt := x.route
	b := x.backend
	var o http1.RewriteOptions
	x.remove, x.add = x.remove[:0], x.add[:0]
	x.remove, x.add = appendModifier(x.remove, x.add, &rt.RequestHeaders)
	x.remove, x.add = appendModifier(x.remove, x.add, &b.RequestHeaders)
	if len(x.fRemove) > 0 || len(x.fAdd) > 0 {
		x.remove, x.add = mergeFilterEdits(x.remove, x.add, x.fRemove, x.fAdd)
	}
	if x.trace.active {
		// The backend's parent is this request's span (the proxy's value
		// replaces any other edit of the field).
		x.remove = append(x.remove, bytesOf(traceparentName))
		x.add = append(x.add, http1.HeaderField{Name: bytesOf(traceparentName), Value: x.trace.header[:]})
	}
	o.Remove = x.remove
	o.Add = x.add
	rw := rt.Rewrite
	switch {
	case rw != nil && rw.Path != nil:
		x.target = rewritePath(x.target[:0], path, rw.Path, x.prefix)
		x.target = appendQuery(x.target, r, x.hbuf)
		o.Target = x.target
	case normalized:
		x.target = append(x.target[:0], path...)
		x.target = appendQuery(x.target, r, x.hbuf)
		o.Target = x.target
	}
	if rw != nil && rw.Hostname != "" {
		o.Host = bytesOf(rw.Hostname)
	}
	o.KeepUpgrade = x.upgrade
	o.XForwarded = true
	o.TrustForwarded = s.trustedHops() > 0
	o.StripExpectContinue = true
	x.addr = s.remote.Addr().Unmap().AppendTo(x.addr[:0])
	o.ClientAddr = x.addr
	o.Proto = bytesOf("http")
	if s.secure {
		o.Proto = bytesOf("https")
	}
	x.rwo = o
	if x.group.H2C {
		v, ok := r.Lookup(x.hbuf, "te")
		x.teTrailers = ok && hasToken(v, "trailers")
		o.KeepTrailer = true
	}
	buf := s.buffer(&x.bufs.UpstreamHead, lentUpstreamHead)
	h := http1.AppendRequestHead(buf[:0:cap(buf)], x.hbuf, r, &o)
	if cap(h) != cap(buf) {
		return false
	}
	x.upHead = h
	return true
}

// hasToken reports whether the comma-separated list v has the token tok
// (ASCII case-insensitive), with or without parameters.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		e := v[:i]
		for j := range e {
			if e[j] == ';' {
				e = e[:j]
				break
			}
		}
		if equalFold(trimOWS(e), tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

// appendModifier adds a header modifier's removals (Set names included) and
// additions to the rewrite lists.
func appendModifier(remove [][]byte, add []http1.HeaderField, m *compiled.HeaderModifier) ([][]byte, []http1.HeaderField) {
	for _, n := range m.Remove {
		remove = append(remove, bytesOf(n))
	}
	for i := range m.Set {
		h := &m.Set[i]
		remove = append(remove, bytesOf(h.Lower))
		add = append(add, http1.HeaderField{Name: bytesOf(h.Name), Value: bytesOf(h.Value)})
	}
	for i := range m.Add {
		h := &m.Add[i]
		add = append(add, http1.HeaderField{Name: bytesOf(h.Name), Value: bytesOf(h.Value)})
	}
	return remove, add
}

// appendQuery appends "?query" when the request has a query.
func appendQuery(dst []byte, r *http1.Request, buf []byte) []byte {
	if r.HasQuery {
		dst = append(dst, '?')
		dst = append(dst, r.Query.Bytes(buf)...)
	}
	return dst
}

// connect picks an endpoint and asks the engine for a connection to it.
func (s *Session) connect() {
	x := s.x
	if !s.connectionSlot() {
		return
	}
	var ep Endpoint
	ok := false
	if x.hasToken && x.avoid == [2]uint64{} {
		ep, ok = s.affinityEndpoint()
		x.affinityHit = ok
	}
	if !ok {
		ep, ok = s.pick()
	}
	if !ok {
		s.fail(503, metrics.ReasonNoEndpoint)
		return
	}
	x.resetAttempt()
	x.fresh, x.freshNext = x.freshNext, false
	x.attempts++
	x.ep = ep
	x.hasEP = true
	x.upState = upConnecting
	if d := x.route.Timeouts.BackendRequest; d > 0 {
		x.tryDeadline = s.w.Now() + int64(d)
	}
	if x.replayOff >= 0 {
		// Send the body again from its start.
		x.in.r = x.replayOff
		x.in.busy = false
	}
	s.push(Action{Kind: ActConnectUpstream})
}

// maxRepicks bounds how many more picks pick makes for one attempt.
const maxRepicks = 8

// pick chooses the endpoint of the next attempt with the worker's picker,
// passing over endpoints whose connect failed moments ago
// (compiled.Group.RecentlyFailed): while it gets a marked one, it asks
// again, and the picker moves on (round robin's next, another random draw),
// keeping its own rules (health, the endpoints the request avoids). A
// picker that offers the same endpoint again (a hash policy) is asked once
// more with that endpoint added to those to avoid. When every offer is
// marked, the last one is used: nothing else is left. Without marks in the
// group it costs one atomic load.
func (s *Session) pick() (Endpoint, bool) {
	x := s.x
	g := x.group
	p := s.w.Endpoints
	ep, ok := p.Pick(g, x.key, x.avoid[:])
	if !ok || !g.AnyConnectFailed(ep.Set) {
		return ep, ok
	}
	skip, skipping := x.avoid[:], false
	for range min(ep.Set.NumEligible(), maxRepicks) {
		i := ep.Index
		if !g.RecentlyFailed(ep.Set, i) {
			break
		}
		next, ok := p.Pick(g, x.key, skip)
		if !ok {
			break
		}
		if next.Index == i {
			p.Done(next)
			if skipping || i < 0 || i >= 64*len(x.pickSkip) {
				break
			}
			x.pickSkip = x.avoid
			x.pickSkip[i/64] |= 1 << (uint(i) % 64)
			skip, skipping = x.pickSkip[:], true
			continue
		}
		p.Done(ep)
		ep = next
	}
	return ep, true
}

// retryAllowed reports whether a failed attempt may be retried: by the
// stale connection rule (an idempotent request that failed on a pooled
// connection before any response byte) or by the route's retry policy. In
// both cases no response byte may have been sent to the client and the
// request body must still be replayable.
func (s *Session) retryAllowed(cause uint8, status int) bool {
	x := s.x
	if x.respStarted || x.replayOff < 0 || x.route == nil || x.phase != phProxy {
		return false
	}
	if s.staleRetry(cause) {
		return true
	}
	p := &x.route.Retry
	if x.retries >= p.Attempts && !(cause == causeConnect && p.ConnectEveryEndpoint && s.untriedEndpoints()) {
		return false
	}
	ok := false
	switch cause {
	case causeConnect:
		// Nothing has reached a backend: the retry adds no load to any, so
		// it takes no slot of the group's retry limit and budget (a request
		// whose earlier attempt did reach one already holds its slot).
		return p.OnConnectFailure
	case causeReset:
		// A policy retrying failed connects also replays an idempotent
		// request (RFC 9110 §9.2.2) whose connection failed before any
		// response byte: the endpoint may be going away, as after a
		// connect failure, and replaying it is safe.
		ok = p.OnReset || (p.OnConnectFailure && idempotent(x.method) && !x.upGotBytes)
	case causeStatus:
		ok = p.RetriesStatus(status)
	case causeTimeout:
		ok = p.OnBackendTimeout
	}
	// A retry the policy allows takes a retry slot, within the group's
	// retry limit and retry budget; it is held until the request ends.
	return ok && s.retrySlot()
}

// untriedEndpoints reports whether the request's group may have an eligible
// endpoint it has not tried yet, within compiled.MaxConnectAttempts.
func (s *Session) untriedEndpoints() bool {
	x := s.x
	return int(x.attempts) < min(compiled.MaxConnectAttempts, x.group.Endpoints().NumEligible())
}

func (s *Session) staleRetry(cause uint8) bool {
	x := s.x
	return cause != causeConnect && x.upReused && !x.upGotBytes && !x.staleRetried && idempotent(x.method)
}

// retry starts another attempt if retryAllowed, and reports whether it
// did. The previous attempt's connection must be closed already.
func (s *Session) retry(cause uint8, status int) bool {
	if !s.retryAllowed(cause, status) {
		return false
	}
	x := s.x
	if s.staleRetry(cause) {
		// A pooled connection the upstream had closed: try once more on a
		// fresh connection, right away.
		x.staleRetried = true
		x.freshNext = true
		if sh := x.group.Shared; sh != nil {
			sh.Retried(metrics.RetryStaleConnection)
		}
		s.connect()
		return true
	}
	p := &x.route.Retry
	x.retries++
	if sh := x.group.Shared; sh != nil {
		sh.Retried(retryReasons[cause])
	}
	base, maxd := p.BackoffBase, p.BackoffMax
	if base <= 0 {
		base = s.w.opts.RetryBackoffBase
	}
	if maxd < base {
		maxd = max(s.w.opts.RetryBackoffMax, base)
	}
	d := base << (x.retries - 1)
	if d > maxd || d <= 0 {
		d = maxd
	}
	// Jitter: a delay in [d/2, d].
	d = d/2 + time.Duration(uint64(s.rand())*uint64(d/2)>>32)
	x.resetAttempt()
	x.upState = upBackoff
	x.backoffUntil = s.w.Now() + int64(d)
	return true
}

func idempotent(m http1.Method) bool {
	switch m {
	case http1.MethodGet, http1.MethodHead, http1.MethodOptions, http1.MethodTrace, http1.MethodPut, http1.MethodDelete:
		return true
	}
	return false
}

// fail ends a proxied request with a local reply, or closes the client if
// a response is already under way.
func (s *Session) fail(status int, reason metrics.Reason) {
	s.x.setReason(reason)
	if s.abandonAttempt() {
		s.localReply(status, reason)
	}
}

// abandonAttempt closes the upstream of a request that ends without a backend
// response. It reports whether a local reply may still be sent; if a response is
// already under way it aborts the client instead. A request whose body has not all
// arrived closes the connection after the reply.
func (s *Session) abandonAttempt() bool {
	x := s.x
	s.closeUpstream()
	if x.respStarted {
		s.abort(x.status)
		return false
	}
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	return true
}

// upstreamGone handles an upstream that closed or failed before a complete
// response head.
func (s *Session) upstreamGone() {
	s.report(compiled.OutcomeServerError)
	s.markAvoid()
	s.closeUpstream()
	if !s.retry(causeReset, 0) {
		s.fail(502, metrics.ReasonUpstreamReset)
	}
}

// upstreamWriteFailed handles a failed send to the upstream. The upstream
// may have answered and closed before reading the whole request (a 413, an
// early error): stop sending but keep reading. A response is forwarded;
// an EOF without one is handled like a reset (retry or 502).
func (s *Session) upstreamWriteFailed() {
	x := s.x
	x.upBroken = true
	x.usends.clear()
	x.in.busy = false
	if !x.reqBodyDone {
		// The rest of the request body will not be read.
		s.closeAfter = true
		s.linger = true
	}
}

// stepProxy forwards request bytes upstream and response bytes to the
// client.
func (s *Session) stepProxy() bool {
	x := s.x
	in := &x.in
	if !s.feedRequestBody() {
		return true
	}
	if x.h2 != nil && x.upState == upConnected {
		if s.h2Step() {
			return true
		}
	} else if x.upState == upConnected && !x.upBroken {
		if !x.headSent {
			x.headSent = true
			x.sentAt = s.w.Now()
			if x.expect {
				// An upstream took the request: let the client send
				// the body.
				x.expect = false
				x.sentContinue = true
				s.sendClientHead(bytesOf(continueHead))
			}
			x.usends.push(sendRec{data: x.upHead})
			s.push(Action{Kind: ActSendUpstream, Data: x.upHead})
		}
		if !in.busy && in.pending() {
			s.sendStream(Upstream, in)
		}
	}
	if x.upState == upConnected {
		s.processResponse()
		if x.phase != phProxy || s.state != sOpen || s.h2Again() {
			return true
		}
	}
	up := &x.up
	if x.respHeadDone && !up.busy && up.pending() {
		s.sendStream(Client, up)
	}
	if x.respDone {
		if !x.reqBodyDone && x.upState != upNone {
			// An early response: the rest of the request body will not
			// be read.
			s.closeUpstream()
			s.closeAfter = true
			s.linger = true
		}
		if x.upState == upConnected && x.usends.empty() {
			s.releaseUpstream()
		}
		if x.upState == upNone && x.csends.empty() && !up.pending() {
			s.finishExchange()
			return true
		}
	}
	return false
}
