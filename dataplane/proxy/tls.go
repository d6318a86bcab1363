package proxy

import (
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/tlshello"
)

// TLS listeners. A connection's bytes are kept in the client stream while
// the ClientHello comes in (phHello, bounded by the request head timeout and
// by tlshello.MaxBytes); its server name picks a route of the listener
// (compiled.Listener.MatchTLS). A passthrough route connects and tunnels
// like a TCP listener, the buffered bytes going first, unchanged. A
// terminating route hands them to the engine's TLS server
// (ActTerminateTLS) and waits for the handshake (phHandshake, still under
// the head timeout); then it tunnels the plaintext like a TCP listener.
// What closes a connection before a route is chosen: bytes that are not a
// ClientHello (access log 400, flax_local_replies_total reason
// bad_request), a server name no route matches (404, no_route), the head
// timeout (408, flax_timeouts_total kind request_head), the client leaving
// (499).

// openTLS starts a TLS listener's session: read the ClientHello.
func (s *Session) openTLS(l *compiled.Listener, now int64) {
	x := s.exchange()
	x.listener = l
	x.start = now
	x.phase = phHello
	x.hello.Reset()
	x.began = true
}

// stepHello reads the ClientHello buffered so far and, once it is whole,
// chooses the route.
func (s *Session) stepHello() {
	x := s.x
	in := &x.in
	done, err := x.hello.Read(in.buf[in.r:in.w])
	if err == nil && !done {
		switch {
		case s.clientEOF:
			s.logEnd(499)
			s.closeClient(false)
			return
		case !in.hasRoom():
			err = tlshello.ErrTooLarge // the buffer is smaller than tlshello.MaxBytes
		default:
			return
		}
	}
	if err != nil {
		s.helloRefused(metrics.ReasonBadRequest, 400)
		return
	}
	r := x.listener.MatchTLS(x.hello.ServerName())
	if r == nil {
		s.helloRefused(metrics.ReasonNoRoute, 404)
		return
	}
	x.route = r.Route
	if !r.Terminate {
		s.connectTunnel()
		return
	}
	x.phase = phHandshake
	s.secure = true
	s.push(Action{Kind: ActTerminateTLS, Data: in.buf[in.r:in.w]})
	// The stream carries plaintext from now on; the engine copies the
	// ciphertext before it delivers another event.
	in.r, in.ready, in.proc, in.w = 0, 0, 0, 0
}

// helloRefused closes a connection whose ClientHello cannot be routed.
func (s *Session) helloRefused(reason metrics.Reason, status int) {
	x := s.x
	s.w.Metrics.LocalReply(reason)
	x.setReason(reason)
	x.reqBytes = int64(x.in.w - x.in.r)
	s.logEnd(status)
	s.closeClient(false)
}

// helloTimeout closes a connection whose ClientHello, or TLS handshake on a
// terminating route, did not complete within the request head timeout.
func (s *Session) helloTimeout() {
	x := s.x
	s.w.Metrics.Timeout(metrics.TimeoutRequestHead)
	x.setReason(metrics.ReasonHeaderTimeout)
	if x.phase == phHello {
		x.reqBytes = int64(x.in.w - x.in.r)
	}
	s.logEnd(408)
	s.closeClient(false)
}

// TLSEstablished reports that the TLS handshake asked for by
// ActTerminateTLS completed: the session connects to the route's backend
// and tunnels the plaintext. It does nothing in any other state (an engine
// may call it after every handshake).
func (s *Session) TLSEstablished() {
	x := s.x
	if s.state != sOpen || x == nil || x.phase != phHandshake {
		return
	}
	s.connectTunnel()
	s.run()
}

// TLSHandshake counts a TLS handshake of the connection that completed (ok)
// or failed, for the listener it was accepted on (flax_tls_handshakes_total).
func (s *Session) TLSHandshake(ok bool) { s.w.Metrics.TLSHandshake(s.lstats, ok) }

// TLSServerName tells the session the server name of its connection's
// completed TLS handshake (crypto/tls's ConnectionState().ServerName), so
// that requests whose Host belongs to another certificate of the listener
// are answered 421 (Misdirected Request): a client reusing a connection for
// another host, or sending a Host that does not match its SNI, reaches the
// listener its SNI selected only for that listener's hostnames. It does not
// allocate.
func (s *Session) TLSServerName(name string) {
	s.sni = 0
	lst := s.lref.Load()
	if name == "" || lst == nil {
		return
	}
	if d, ok := lst.CertificateDomain(bytesOf(name)); ok {
		s.sni = d
	}
}

// misdirected reports whether the current request's host belongs to another
// certificate domain of its listener than the connection's server name.
func (s *Session) misdirected(host []byte) bool {
	if s.sni == 0 {
		return false
	}
	d, ok := s.x.listener.CertificateDomain(host)
	return !ok || d != s.sni
}

// Listener returns the listener configuration the current connection or
// request was routed with (that of ActTerminateTLS's certificates), nil
// before routing.
func (s *Session) Listener() *compiled.Listener {
	if s.x == nil {
		return nil
	}
	return s.x.listener
}
