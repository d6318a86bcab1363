package proxy

import (
	"time"

	"github.com/flaxlb/flax/dataplane/config"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Circuit breakers.
//
// A backend group's limits (config.CircuitBreakers) are node-wide, as the
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
//   - retries: taken by the first retry of a request (retry policy; the
//     single immediate retry of a stale pooled connection is not counted),
//     held until the request ends; over the limit the request is not
//     retried and its failure is answered as it is.
//
// Every limit reached is counted in flax_circuit_breaker_overflows_total,
// and the 503s in flax_local_replies_total{reason="overflow"}. TCP
// listeners' tunnels are not subject to the limits.

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
func (s *Session) report(o config.Outcome) {
	x := s.x
	if x == nil || !x.hasEP || x.reported || x.group == nil || x.group.Outlier == nil || x.ep.Set == nil {
		return
	}
	x.reported = true
	x.group.Report(x.ep.Set, x.ep.Index, o)
}

// Request mirroring.
//
// A route's RequestMirror filters (config.Route.Mirrors) send a copy of a
// share of its requests to another backend group, fire and forget. The
// session decides (a random draw against the mirror's fraction) and builds
// the copy while routing: the request head as rewritten for the primary
// upstream (filters, X-Forwarded-*), with Connection: close, followed by the
// body when the whole body has already arrived with the head and is at most
// config.DefaultMaxMirrorBody bytes. Otherwise the copy is the head alone,
// its Content-Length and Transfer-Encoding dropped (so a bodiless request),
// because bodies stream through the session and are never buffered whole.
// The group's config.MirrorSender copies the bytes and sends them from its
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
		if in := &x.in; x.reqBodyDone && x.replayOff >= 0 && in.proc-x.replayOff <= config.DefaultMaxMirrorBody {
			body = in.buf[x.replayOff:in.proc]
		} else {
			o.DropFraming = true
		}
		x.mirrorHead = http1.AppendRequestHead(x.mirrorHead[:0], x.hbuf, &x.req, &o)
		snd.Mirror(m.Group, x.mirrorHead, body)
	}
}
