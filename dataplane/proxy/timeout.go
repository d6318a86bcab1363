package proxy

import (
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Timeouts.
//
// Every wait of a session is bounded. Before a request head is complete the
// session waits on the client alone, with a fixed deadline: the request head
// timeout from the connection's acceptance (or from the first byte of a
// later request) to the end of the head (408 when part of a head came, else
// a quiet close), and the keep-alive idle timeout between requests (a quiet
// close). The route's request and backend request timeouts are fixed
// deadlines too (504).
//
// Once a request is under way, the session waits for progress: a timer
// bounds the time since a byte last moved, in either direction, and every
// byte moved restarts it, so a transfer that is slow but moving is never
// cut. What the session waits on decides which timeout applies (the first
// that holds):
//
//   - a send to the client is in flight: the listener's send stall timeout;
//     the connection is closed (reason send_stall). In a tunnel (a 101
//     upgrade, a TCP listener) a send to the upstream counts the same way.
//   - a send to the upstream is in flight (the backend does not take the
//     request): the group's response header timeout before the response
//     head, its response body idle timeout after it.
//   - the request body is not all in and the session is ready for more:
//     the listener's request body idle timeout; 408 with Connection: close
//     (reason request_body_timeout) if no response was started, else the
//     connection is closed.
//   - the response head has not come: the group's response header timeout;
//     504 (reason upstream_header_timeout), an outlier detection failure,
//     never retried (the backend may have acted on the request).
//   - the response body is not all in: the group's response body idle
//     timeout; both connections are closed (reason upstream_body_timeout).
//   - a tunnel with nothing in flight: the listener's tunnel idle timeout
//     (default 1h); both connections are closed (reason tunnel_idle).
//
// While connecting, backing off before a retry or waiting for a connection
// slot, the connect timeout, the backoff and the circuit breaker's wait
// bound the session instead. A wait that runs out closes the upstream
// connection (it never goes back to the pool) and is counted in
// flax_timeouts_total{kind}; the reason goes to the access log.
//
// Engines see bytes move: ClientData, UpstreamData and Sent, and
// SendProgress for a send that wrote part of its bytes (an engine whose
// sends complete only once whole must report partial writes, or a slow
// reader of a large response would be taken for a stalled one). Times are
// read from Worker.Coarse, so that moving bytes costs no clock read on the
// io_uring engine.

// What an exchange waits on, for the timers of progress.
const (
	waitNone       uint8 = iota
	waitSend             // a send to the client (or, in a tunnel, to either side)
	waitBody             // the next bytes of the request body
	waitRespHeader       // the upstream: the response head (or taking the request)
	waitRespBody         // the upstream: the response body (or taking the request)
	waitTunnel           // either end of a tunnel with nothing in flight
)

// coarse returns the worker's coarse time.
func (s *Session) coarse() int64 {
	if c := s.w.Coarse; c != nil {
		return c()
	}
	return s.w.Now()
}

// headTimeout returns the request head timeout of listener l (nil: none).
func (s *Session) headTimeout(l *compiled.Listener) int64 {
	if l != nil && l.Timeouts.RequestHead > 0 {
		return int64(l.Timeouts.RequestHead)
	}
	return int64(s.w.opts.HeaderTimeout)
}

// keepAliveTimeout returns the keep-alive idle timeout of listener l.
func (s *Session) keepAliveTimeout(l *compiled.Listener) int64 {
	if l != nil && l.Timeouts.KeepAliveIdle > 0 {
		return int64(l.Timeouts.KeepAliveIdle)
	}
	return int64(s.w.opts.IdleTimeout)
}

// listenerTimeouts returns the timeouts of the exchange's listener.
func (s *Session) listenerTimeouts() *compiled.ListenerTimeouts {
	l := s.x.listener
	if l == nil {
		if l = s.lref.Load(); l == nil {
			return &noTimeouts
		}
	}
	return &l.Timeouts
}

var noTimeouts compiled.ListenerTimeouts

func timeoutOr(v, def time.Duration) int64 {
	if v > 0 {
		return int64(v)
	}
	return int64(def)
}

// progressWait returns what the exchange waits on, and for how long since
// a byte last moved.
func (s *Session) progressWait() (uint8, int64) {
	x := s.x
	o := &s.w.opts
	switch {
	case !x.csends.empty() || (x.phase == phTunnel && !x.usends.empty()):
		return waitSend, timeoutOr(s.listenerTimeouts().SendStall, o.SendStallTimeout)
	case x.phase == phTunnel:
		return waitTunnel, timeoutOr(s.listenerTimeouts().TunnelIdle, o.TunnelIdleTimeout)
	case x.phase != phProxy || x.upState != upConnected:
		return waitNone, 0
	case x.usends.empty() && !x.reqBodyDone && !x.upBroken && x.in.hasRoom():
		return waitBody, timeoutOr(s.listenerTimeouts().RequestBodyIdle, o.RequestBodyIdleTimeout)
	case !x.respHeadDone:
		return waitRespHeader, timeoutOr(x.group.ResponseHeaderTimeout, o.ResponseHeaderTimeout)
	case !x.respDone || !x.usends.empty():
		return waitRespBody, timeoutOr(x.group.ResponseBodyIdleTimeout, o.ResponseBodyIdleTimeout)
	}
	return waitNone, 0
}

// progressTimeout ends the exchange whose wait w ran out.
func (s *Session) progressTimeout(w uint8) {
	x := s.x
	m := s.w.Metrics
	switch w {
	case waitSend:
		m.Timeout(metrics.TimeoutSendStall)
		x.setReason(metrics.ReasonSendStall)
		s.abort(499)
	case waitBody:
		m.Timeout(metrics.TimeoutRequestBodyIdle)
		x.setReason(metrics.ReasonRequestBodyTimeout)
		if x.respStarted {
			s.abort(408)
			return
		}
		s.closeUpstream()
		s.closeAfter = true
		s.linger = true
		s.localReplyText(408, metrics.ReasonRequestBodyTimeout, "request body timeout\n")
	case waitRespHeader:
		m.Timeout(metrics.TimeoutUpstreamResponseHeader)
		s.report(compiled.OutcomeServerError)
		s.fail(504, metrics.ReasonUpstreamHeaderTimeout)
	case waitRespBody:
		m.Timeout(metrics.TimeoutUpstreamBodyIdle)
		x.setReason(metrics.ReasonUpstreamBodyTimeout)
		s.abort(x.status)
	case waitTunnel:
		m.Timeout(metrics.TimeoutTunnelIdle)
		x.setReason(metrics.ReasonTunnelIdle)
		s.abort(x.status)
	}
}
