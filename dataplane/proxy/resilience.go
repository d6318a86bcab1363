package proxy

import (
	"strconv"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Circuit breakers.
//
// A backend group's limits (compiled.CircuitBreakers) are node-wide, as the
// snapshot contract says: the in-flight counts they are compared with live
// in the group's metrics.Shared, shared by every worker through atomics, and
// are only touched for the limits a group sets, so a group without limits
// costs nothing. A request holds its slots in its Exchange and gives them
// back when it ends, whatever the path:
//
//   - requests: taken when the route picks the group, held until the
//     request ends (a tunnel after a 101 holds it while open); over the
//     limit the request gets 503 at once;
//   - connections: taken for each attempt before it asks for an upstream
//     connection, given back when the attempt ends. HTTP/1.1 carries one
//     request per connection, so this bounds the connections in use; idle
//     pooled connections are bounded by max idle connections per endpoint.
//     A request finding none free waits as pending, looking again every
//     pendingPoll, for at most the group's connect timeout, then gets 503;
//   - pending requests: taken while waiting for a connection slot; over the
//     limit the request gets 503 at once;
//   - retries: taken by the first retry of a request that reached a
//     backend (retry policy; a retry after a failed connect, which adds no
//     load to any backend, and the single immediate retry of a stale pooled
//     connection are not counted), held until the request ends; over the
//     limit the request is not retried and its failure is answered as it
//     is.
//
// Every limit reached is counted in flax_circuit_breaker_overflows_total,
// and the 503s in flax_local_replies_total{reason="overflow"}. TCP
// listeners' tunnels are not subject to the limits.
//
// Retry budget.
//
// Every group also has a retry budget (compiled.RetryBudget, 20% and at least
// 3 by default): the retries slot above is counted in every group, limit or
// not, so its gauge is the group's retries in flight, and a request may take
// it only while that count stays within max(min, percent% of the group's
// requests in flight). Requests in flight are counted per worker
// (metrics.GroupCounters: one add when the route picks the group, one when
// the request ends, on the worker's own cache line) and summed over the
// workers only when a request asks to retry. A request whose retry the
// budget denies is not retried: the failed attempt's result (the backend's
// 5xx, or the 502/504 of a failed connect, reset or timeout) goes to the
// client, and flax_upstream_retry_budget_denied_total counts it. The limit
// is checked first, then the budget; a request's later retries ride on the
// slot its first retry took.
//
// Rate limits.
//
// A route's rate limit (compiled.RateLimit, node-wide token buckets, per
// client address if asked) is checked once a request is routed, before
// anything else the route does: a request over the limit gets 429 Too Many
// Requests with Retry-After (whole seconds until a token is back, at least
// 1) and a short body, never reaches a backend, and is counted in
// flax_rate_limited_requests_total{route} and
// flax_local_replies_total{reason="rate_limited"}.

// pendingPoll is how often a pending request looks for a free connection
// slot.
const pendingPoll = 2 * time.Millisecond

// overflowBodies are the bodies of the 503 replies, by limit.
var overflowBodies = [...]string{
	metrics.LimitConnections: "upstream overflow: no connection to the backend group freed in time (circuit breaker max connections)\n",
	metrics.LimitPending:     "upstream overflow: too many requests waiting for a connection (circuit breaker max pending requests)\n",
	metrics.LimitRequests:    "upstream overflow: too many requests in flight to the backend group (circuit breaker max requests)\n",
	metrics.LimitRetries:     "upstream overflow: too many retries in flight (circuit breaker max retries)\n",
}

// acquire takes a slot of limit l of the request's group, if the group sets
// that limit. It reports false, counting the overflow, when none is free.
func (s *Session) acquire(l metrics.Limit, limit int64) bool {
	x := s.x
	sh := x.group.Shared
	if limit <= 0 || x.held[l] || sh == nil {
		return true
	}
	if !sh.Acquire(l, limit) {
		return false
	}
	x.held[l] = true
	x.shared = sh
	return true
}

// retrySlot takes the request's retries slot for its first retry, within the
// group's retry limit and retry budget. It reports false, counting the
// overflow or the denial, when the retry must not be made.
func (s *Session) retrySlot() bool {
	x := s.x
	g := x.group
	sh := g.Shared
	if x.held[metrics.LimitRetries] || sh == nil {
		return true
	}
	// n counts this request among the retries in flight: it must stay
	// within the limit and the budget's allowance. Requests in flight are
	// summed only when the budget's floor does not suffice.
	n := sh.Add(metrics.LimitRetries)
	if limit := g.Breakers.MaxRetries; limit > 0 && n > limit {
		sh.Release(metrics.LimitRetries)
		sh.Overflow(metrics.LimitRetries)
		return false
	}
	if b := g.RetryBudget; n > b.MinConcurrency && n > b.Allowance(sh.RequestsInFlight()) {
		sh.Release(metrics.LimitRetries)
		sh.DenyRetry()
		return false
	}
	x.held[metrics.LimitRetries] = true
	x.shared = sh
	return true
}

// rateLimitedBody is the body of the 429 replies.
const rateLimitedBody = "rate limited: too many requests for this route, retry later\n"

// rateLimited takes a token of the route's rate limit for the request, and
// answers 429 when there is none. It reports whether it answered.
func (s *Session) rateLimited(rl *compiled.RateLimit) bool {
	ok, wait := rl.Allow(s.x.client)
	if ok {
		return false
	}
	x := s.x
	m := s.w.Metrics
	m.RateLimited(m.Route(x.route.Stats))
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	secs := (int64(wait) + int64(time.Second) - 1) / int64(time.Second)
	h := s.replyStart(429)
	h = append(h, "Retry-After: "...)
	h = strconv.AppendInt(h, max(secs, 1), 10)
	h = append(h, "\r\n"...)
	s.replyEnd(h, 429, metrics.ReasonRateLimited, bytesOf(rateLimitedBody))
	return true
}

// overflow answers 503 for limit l.
func (s *Session) overflow(l metrics.Limit) {
	if !s.abandonAttempt() {
		return
	}
	s.replyEnd(s.replyStart(503), 503, metrics.ReasonOverflow, bytesOf(overflowBodies[l]))
}

// connectionSlot takes a connection slot for the next attempt, or makes the
// request wait as pending. It reports whether the attempt may go ahead; on
// false the session either waits (timer armed) or has replied.
func (s *Session) connectionSlot() bool {
	x := s.x
	g := x.group
	limit := g.Breakers.MaxConnections
	if limit <= 0 || x.held[metrics.LimitConnections] || g.Shared == nil {
		return true
	}
	sh := g.Shared
	if sh.TryAcquire(metrics.LimitConnections, limit) {
		x.held[metrics.LimitConnections] = true
		x.shared = sh
		x.release(metrics.LimitPending)
		if x.upState == upPending {
			x.upState = upNone
		}
		x.pollAt, x.pendingUntil = 0, 0
		return true
	}
	now := s.w.Now()
	if x.upState != upPending {
		sh.Overflow(metrics.LimitConnections)
		if !s.acquire(metrics.LimitPending, g.Breakers.MaxPendingRequests) {
			s.overflow(metrics.LimitPending)
			return false
		}
		x.upState = upPending
		x.pendingUntil = now + int64(g.ConnectTimeout)
	}
	if now >= x.pendingUntil {
		x.upState = upNone
		x.release(metrics.LimitPending)
		s.overflow(metrics.LimitConnections)
		return false
	}
	x.pollAt = min(now+int64(pendingPoll), x.pendingUntil)
	return false
}

// report hands the outcome of the current attempt to the group's outlier
// detection, once per attempt.
func (s *Session) report(o compiled.Outcome) {
	x := s.x
	if x == nil || !x.hasEP || x.reported || x.group == nil || x.group.Outlier == nil || x.ep.Set == nil {
		return
	}
	x.reported = true
	x.group.Report(x.ep.Set, x.ep.Index, o)
}

// Request mirroring.
//
// A route's RequestMirror filters (compiled.Route.Mirrors) send a copy of a
// share of its requests to another backend group, fire and forget. The
// session decides (a random draw against the mirror's fraction) and builds
// the copy while routing: the request head as rewritten for the primary
// upstream (filters, X-Forwarded-*), with Connection: close, followed by the
// body when the whole body has already arrived with the head and is at most
// compiled.DefaultMaxMirrorBody bytes. Otherwise the copy is the head alone,
// its Content-Length and Transfer-Encoding dropped (so a bodiless request),
// because bodies stream through the session and are never buffered whole.
// The group's compiled.MirrorSender copies the bytes and sends them from its
// own goroutines; it never blocks the session, and drops (and counts) what
// it cannot queue. Nothing about the mirror changes the primary request, its
// response or its timing beyond that copy. A route without mirrors does
// none of this.

// mirror sends the copies of the request being routed.
func (s *Session) mirror() {
	x := s.x
	rt := x.route
	for i := range rt.Mirrors {
		m := &rt.Mirrors[i]
		if m.Group == nil || m.Numerator == 0 || m.Denominator == 0 {
			continue
		}
		if m.Numerator < m.Denominator && uint64(s.rand())*uint64(m.Denominator)>>32 >= uint64(m.Numerator) {
			continue
		}
		snd := m.Group.MirrorSender()
		if snd == nil {
			if sh := m.Group.Shared; sh != nil {
				sh.Mirror(metrics.MirrorDropped)
			}
			continue
		}
		o := x.rwo
		o.Close = true
		o.KeepUpgrade = false
		var body []byte
		if in := &x.in; x.reqBodyDone && x.replayOff >= 0 && in.proc-x.replayOff <= dataplanev1.DefaultMaxMirrorBody {
			body = in.buf[x.replayOff:in.proc]
		} else {
			o.DropFraming = true
		}
		x.mirrorHead = http1.AppendRequestHead(x.mirrorHead[:0], x.hbuf, &x.req, &o)
		snd.Mirror(m.Group, x.mirrorHead, body)
	}
}
