package proxy

// Side names one of the two connections of a session.
type Side uint8

// The two sides of a session.
const (
	// Client is the downstream connection the request came in on.
	Client Side = iota
	// Upstream is the connection to the chosen backend endpoint.
	Upstream
)

// String returns "client" or "upstream".
func (s Side) String() string {
	if s == Upstream {
		return "upstream"
	}
	return "client"
}

// ActionKind is what an Action asks the engine to do.
type ActionKind uint8

// Actions a Session asks its engine to perform, in queue order.
const (
	// ActNone is the zero Action; Next never returns it.
	ActNone ActionKind = iota
	// ActSendClient writes Data to the client. The engine reports the
	// completion with Sent(Client, n, err).
	ActSendClient
	// ActSendUpstream writes Data to the upstream connection. The engine
	// reports the completion with Sent(Upstream, n, err).
	ActSendUpstream
	// ActConnectUpstream asks for a connection to the endpoint described by
	// Session.Target: an idle pooled one unless Target.Fresh is set, or a
	// new one. The engine reports UpstreamConnected.
	ActConnectUpstream
	// ActReleaseUpstream hands the upstream connection back to the engine's
	// keep-alive pool: the exchange on it is complete and the connection is
	// reusable. The session forgets it.
	ActReleaseUpstream
	// ActCloseUpstream closes the upstream connection (and abandons any send
	// still in flight on it). The engine reports no further event for it.
	ActCloseUpstream
	// ActShutdownUpstream half-closes the upstream connection (shutdown of
	// its write side) in a tunnel whose client sent EOF.
	ActShutdownUpstream
	// ActCloseClient closes the client connection; the session is finished
	// and the engine calls Session.Close once it has released the
	// connections. With Linger set the client may still be sending: the
	// engine should half-close, discard input for a short while, then
	// close, so that a response already sent is not destroyed by a reset.
	ActCloseClient
	// ActShutdownClient half-closes the client connection in a tunnel whose
	// upstream sent EOF.
	ActShutdownClient
	// ActArmTimer sets the session's single timer to the deadline
	// Session.Deadline returns (in the worker clock's nanoseconds),
	// replacing any earlier one; 0 disarms it. The engine calls
	// Session.Timer once the deadline has passed. (The deadline is not in
	// the Action: that keeps actions, and the queue in every Session,
	// small.)
	ActArmTimer
	// ActStartTunnel reports that the session became a byte tunnel (a 101
	// Switching Protocols response was forwarded, or a TCP listener's
	// upstream connected). Engines may ignore it: the session keeps
	// forwarding the bytes it is given.
	ActStartTunnel
	// ActTerminateTLS asks the engine to terminate TLS on the client
	// connection of a TLS listener whose ClientHello chose a terminating
	// route: run a TLS server with the certificates of Session.Listener
	// (its TLS config), first on Data, the bytes received so far (the
	// ClientHello included; the engine copies them before the next event),
	// then on what it receives, including what it read but the session did
	// not take. From then on the session is given plaintext and its client
	// sends are encrypted. The engine calls Session.TLSEstablished when the
	// handshake succeeds, and closes the connection when it fails.
	ActTerminateTLS
	// ActStartHTTP2 reports that the client opened the connection with the
	// HTTP/2 preface (h2c with prior knowledge, or after ALPN "h2"): the
	// session is finished and the engine serves the connection with an
	// H2Conn from now on, handing its Open Data (the bytes received so
	// far, copied before the next event) and then what it receives. The
	// engine calls Session.Close without closing the connection.
	ActStartHTTP2
)

var actionNames = [...]string{
	ActNone:             "None",
	ActSendClient:       "SendClient",
	ActSendUpstream:     "SendUpstream",
	ActConnectUpstream:  "ConnectUpstream",
	ActReleaseUpstream:  "ReleaseUpstream",
	ActCloseUpstream:    "CloseUpstream",
	ActShutdownUpstream: "ShutdownUpstream",
	ActCloseClient:      "CloseClient",
	ActShutdownClient:   "ShutdownClient",
	ActArmTimer:         "ArmTimer",
	ActStartTunnel:      "StartTunnel",
	ActTerminateTLS:     "TerminateTLS",
	ActStartHTTP2:       "StartHTTP2",
}

// String returns the name of k.
func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return "ActionKind(?)"
}

// Action is one thing the engine must do for a session. Data of a send
// refers to memory owned by the session (its Exchange buffers) or to
// immutable configuration, and stays valid and unchanged until the engine
// reports the send's completion with Sent (or until the connection it was
// meant for is closed).
type Action struct {
	Kind ActionKind
	// Linger qualifies ActCloseClient.
	Linger bool
	// Data is the bytes to write, for ActSendClient and ActSendUpstream,
	// and the bytes received before ActTerminateTLS and ActStartHTTP2.
	Data []byte
}

// queueSize bounds the actions pending in a session; an event queues at
// most a handful.
const queueSize = 8

// actionQueue is a fixed-size FIFO of actions.
type actionQueue struct {
	a          [queueSize]Action
	head, size uint8
}

func (q *actionQueue) push(a Action) {
	if q.size == queueSize {
		panic("proxy: action queue overflow")
	}
	q.a[(q.head+q.size)%queueSize] = a
	q.size++
}

func (q *actionQueue) pop() (Action, bool) {
	if q.size == 0 {
		return Action{}, false
	}
	a := q.a[q.head]
	q.a[q.head] = Action{}
	q.head = (q.head + 1) % queueSize
	q.size--
	return a, true
}
