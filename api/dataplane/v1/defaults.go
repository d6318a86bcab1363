package dataplanev1

import "time"

// Defaults the dataplane applies to fields a snapshot leaves unset. The controller
// uses them where a Flax policy sets part of a message that the snapshot can only
// carry whole.
const (
	// DefaultConnectTimeout bounds an upstream connect (BackendGroup.connect_timeout).
	// A connect to a pod takes well under a millisecond, and a lost SYN is only sent
	// again after a second, so a connect still pending after half a second is to an
	// address that is gone (a deleted pod's, whose network went away) or to a backend
	// that cannot take it; the request is better retried on another endpoint (a failed
	// connect is retried by default, nothing having been sent). Backends far away set
	// their own (BackendPolicy connectTimeout).
	DefaultConnectTimeout = 500 * time.Millisecond
	// DefaultConnectFailureAvoidance is how long workers pass over an endpoint after a
	// connect to it failed, while the group has another one (passive avoidance, always
	// on): longer than an endpoint update takes to arrive after a pod goes away.
	DefaultConnectFailureAvoidance = 5 * time.Second
	// DefaultIdleTimeout closes pooled upstream connections idle this long
	// (BackendGroup.idle_timeout).
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxIdlePerEndpoint is how many idle upstream connections a worker keeps
	// per endpoint. HTTP/1.1 upstreams take one request per connection at a time, and
	// a worker serving HTTP/2 clients has up to max_concurrent_streams (100) requests
	// in flight per client connection: a pool smaller than that concurrency closes on
	// release connections the next streams open again (with h2load -c16 -m20 against
	// one worker, a cap of 64 opened a new upstream connection for 44% of the requests
	// and doubled the CPU per request). Idle connections past the demand go unused at
	// the pool's tail and close after idle_timeout.
	DefaultMaxIdlePerEndpoint = 512

	// Timeouts of a listener's client connections (ListenerTimeouts) and of a backend
	// group's responses. Like nginx's (client_header_timeout aside, which is shorter
	// here: a head is small, and a slow head is the cheapest attack), each waits for
	// progress: a transfer that keeps moving is never cut.
	DefaultRequestHeadTimeout     = 10 * time.Second
	DefaultRequestBodyIdleTimeout = 60 * time.Second
	DefaultSendStallTimeout       = 60 * time.Second
	DefaultKeepAliveIdleTimeout   = 60 * time.Second
	// DefaultTunnelIdleTimeout closes tunnels (WebSocket, TCP) where nothing moved
	// either way for this long (ListenerTimeouts.tunnel_idle). Applications keep
	// quiet tunnels open for minutes (WebSocket pings often come every 30-60s), so
	// this is far longer than the other waits: it reclaims abandoned connections.
	DefaultTunnelIdleTimeout = time.Hour
	// DefaultUDPIdleTimeout ends a UDP flow when nothing moved either way for this
	// long (UDPRoute.idle_timeout). Most datagram protocols (DNS, QUIC, game and
	// media sessions) send more often than this or set up again when a flow ends.
	DefaultUDPIdleTimeout = 60 * time.Second
	// DefaultUDPMaxFlows bounds the flows of a UDP listener per worker
	// (UDPRoute.max_flows): each holds an upstream socket (a file descriptor).
	DefaultUDPMaxFlows = 16384
	// DefaultResponseHeaderTimeout bounds the wait for a response head
	// (BackendGroup.response_header_timeout).
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultResponseBodyIdleTimeout bounds the wait for the next byte of a response
	// body (BackendGroup.response_body_idle_timeout).
	DefaultResponseBodyIdleTimeout = 60 * time.Second

	// Active health checks (HealthCheck).
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 3
	DefaultHealthCheckPath    = "/"

	// Outlier detection (OutlierDetection).
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionTime    = 300 * time.Second
	DefaultMaxEjectionPercent = 10

	// DefaultMaxMirrorBody is the largest request body copied to a mirror.
	DefaultMaxMirrorBody = 64 << 10

	// The retry budget of a group that sets none (RetryBudget): retries in flight may
	// be this percentage of the group's requests in flight, and at least this many.
	DefaultRetryBudgetPercent        = 20
	DefaultRetryBudgetMinConcurrency = 3
)
