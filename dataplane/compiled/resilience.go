package compiled

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
)

// The status range a health check expects when its snapshot names none.
const healthStatusMin, healthStatusMax = 200, 299

// HealthCheck is a backend group's active health check: an HTTP GET of Path
// every Interval (plus up to Jitter) with Timeout, whose status must fall in one of
// Expected, or a gRPC health check (GRPC).
type HealthCheck struct {
	Path string
	// Host is the Host header; empty uses the endpoint address.
	Host     string
	Expected []StatusRange
	Interval time.Duration
	Timeout  time.Duration
	Jitter   time.Duration
	// HealthyThreshold consecutive successes make an unhealthy endpoint healthy,
	// UnhealthyThreshold consecutive failures a healthy one unhealthy.
	HealthyThreshold, UnhealthyThreshold int
	// TLS is the group's backend TLS (Group.TLS): probes speak TLS as requests
	// do. Nil for plain groups.
	TLS *tls.Config
	// H2C probes over cleartext HTTP/2 (the group's protocol is H2C).
	H2C bool
	// GRPC makes the probe a gRPC health check (grpc.health.v1.Health/Check
	// over h2c) of GRPCService: only SERVING is healthy, Path and Expected are
	// unused.
	GRPC        bool
	GRPCService string
}

// Expects reports whether status counts as healthy.
func (h *HealthCheck) Expects(status int) bool {
	for _, r := range h.Expected {
		if status >= r.Min && status <= r.Max {
			return true
		}
	}
	return false
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// OutlierDetection ejects endpoints after consecutive failures.
type OutlierDetection struct {
	// ConsecutiveServerErrors ejects after this many consecutive server errors (5xx
	// responses, resets, timeouts, malformed responses); 0 disables.
	ConsecutiveServerErrors uint32
	// ConsecutiveConnectFailures ejects after this many consecutive failed
	// connects; 0 disables.
	ConsecutiveConnectFailures uint32
	// BaseEjectionTime is multiplied by the number of times the endpoint was
	// ejected, up to MaxEjectionTime.
	BaseEjectionTime, MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of the group's endpoints ejected at once
	// (at least one endpoint may always be ejected).
	MaxEjectionPercent int
}

// CircuitBreakers are a backend group's limits, node-wide; zero means no limit.
type CircuitBreakers struct {
	// MaxConnections bounds the upstream connections in use (HTTP/1.1: one
	// request each); a request finding them all in use waits as pending.
	MaxConnections int64
	// MaxPendingRequests bounds the requests waiting for a connection.
	MaxPendingRequests int64
	// MaxRequests bounds the requests in flight to the group.
	MaxRequests int64
	// MaxRetries bounds the requests in flight that are being retried.
	MaxRetries int64
}

// RetryBudget allows a retry only while the group's retries in flight stay below
// max(MinConcurrency, Percent% of the group's requests in flight), both counted
// over every worker of the dataplane.
type RetryBudget struct {
	// Percent of the requests in flight that may be retries, 0-100.
	Percent int64
	// MinConcurrency retries are always allowed in flight.
	MinConcurrency int64
}

// DefaultRetryBudget is the budget of a group whose snapshot sets none.
var DefaultRetryBudget = RetryBudget{
	Percent:        dataplanev1.DefaultRetryBudgetPercent,
	MinConcurrency: dataplanev1.DefaultRetryBudgetMinConcurrency,
}

// Allowance returns how many retries may be in flight while inFlight requests are.
func (b RetryBudget) Allowance(inFlight int64) int64 {
	return max(b.MinConcurrency, inFlight*b.Percent/100)
}

func compileResilience(g *Group, pg *dataplanev1.BackendGroup) error {
	if hc := pg.GetHealthCheck(); hc != nil {
		h := &HealthCheck{
			Path:               hc.GetPath(),
			Host:               hc.GetHost(),
			Interval:           orDefault(hc.GetInterval().AsDuration(), dataplanev1.DefaultHealthInterval),
			Timeout:            orDefault(hc.GetTimeout().AsDuration(), dataplanev1.DefaultHealthTimeout),
			Jitter:             max(hc.GetJitter().AsDuration(), 0),
			HealthyThreshold:   int(hc.GetHealthyThreshold()),
			UnhealthyThreshold: int(hc.GetUnhealthyThreshold()),
			H2C:                g.H2C,
		}
		if gh := hc.GetGrpc(); gh != nil {
			if !g.H2C {
				return errors.New("healthCheck.grpc: the group's protocol is not H2C")
			}
			h.GRPC, h.GRPCService = true, gh.GetService()
		}
		if h.Path == "" {
			h.Path = dataplanev1.DefaultHealthCheckPath
		}
		if h.Path[0] != '/' {
			return fmt.Errorf("healthCheck.path: %q does not start with /", h.Path)
		}
		if h.HealthyThreshold <= 0 {
			h.HealthyThreshold = dataplanev1.DefaultHealthyThreshold
		}
		if h.UnhealthyThreshold <= 0 {
			h.UnhealthyThreshold = dataplanev1.DefaultUnhealthyThreshold
		}
		if h.Timeout > h.Interval {
			h.Timeout = h.Interval
		}
		for i, r := range hc.GetExpectedStatuses() {
			if r.GetMin() < 100 || r.GetMax() > 599 || r.GetMax() < r.GetMin() {
				return fmt.Errorf("healthCheck.expectedStatuses[%d]: %d-%d is not a range of statuses", i, r.GetMin(), r.GetMax())
			}
			h.Expected = append(h.Expected, StatusRange{Min: int(r.GetMin()), Max: int(r.GetMax())})
		}
		if len(h.Expected) == 0 {
			h.Expected = []StatusRange{{healthStatusMin, healthStatusMax}}
		}
		g.HealthCheck = h
	}
	if od := pg.GetOutlierDetection(); od != nil {
		o := &OutlierDetection{
			ConsecutiveServerErrors:    od.GetConsecutiveServerErrors(),
			ConsecutiveConnectFailures: od.GetConsecutiveConnectFailures(),
			BaseEjectionTime:           orDefault(od.GetBaseEjectionTime().AsDuration(), dataplanev1.DefaultBaseEjectionTime),
			MaxEjectionTime:            dataplanev1.DefaultMaxEjectionTime,
			MaxEjectionPercent:         int(od.GetMaxEjectionPercent()),
		}
		if o.MaxEjectionPercent == 0 {
			o.MaxEjectionPercent = dataplanev1.DefaultMaxEjectionPercent
		}
		if o.MaxEjectionPercent > 100 {
			return errors.New("outlierDetection.maxEjectionPercent: must not exceed 100")
		}
		o.MaxEjectionTime = max(o.MaxEjectionTime, o.BaseEjectionTime)
		if o.ConsecutiveServerErrors > 0 || o.ConsecutiveConnectFailures > 0 {
			g.Outlier = o
		}
	}
	g.RetryBudget = DefaultRetryBudget
	if rb := pg.GetRetryBudget(); rb != nil {
		if rb.GetPercent() > 100 {
			return fmt.Errorf("retryBudget.percent: must not exceed 100, got %d", rb.GetPercent())
		}
		g.RetryBudget = RetryBudget{Percent: int64(rb.GetPercent()), MinConcurrency: int64(rb.GetMinRetryConcurrency())}
	}
	if cb := pg.GetCircuitBreakers(); cb != nil {
		g.Breakers = CircuitBreakers{
			MaxConnections:     int64(cb.GetMaxConnections()),
			MaxPendingRequests: int64(cb.GetMaxPendingRequests()),
			MaxRequests:        int64(cb.GetMaxRequests()),
			MaxRetries:         int64(cb.GetMaxRetries()),
		}
	}
	return nil
}

// EndpointHealth is what the node's health checker publishes for one endpoint set of
// a group: which endpoints to avoid, and where workers count outcomes for outlier
// detection. It is immutable but for the outcome counters; a change publishes a new
// one.
type EndpointHealth struct {
	// Endpoints is the endpoint set the indexes below refer to.
	Endpoints *balancer.Group
	// Unhealthy holds the endpoints failing active health checks or ejected; nil
	// when every endpoint is usable.
	Unhealthy balancer.Bitset
	// Outcomes counts consecutive failures per endpoint; nil without outlier
	// detection.
	Outcomes *Outcomes
}

// Health returns the group's last published health, nil when there is none.
func (g *Group) Health() *EndpointHealth { return g.health.Load() }

// SetHealth publishes h; workers see it from their next pick.
func (g *Group) SetHealth(h *EndpointHealth) { g.health.Store(h) }

// Unhealthy returns the endpoints of eps to avoid, or nil when all are usable or the
// published health was computed for another endpoint set (an endpoint update is
// being taken in: the checker republishes for the new set at once). It does not
// allocate.
func (g *Group) Unhealthy(eps *balancer.Group) balancer.Bitset {
	if h := g.health.Load(); h != nil && h.Endpoints == eps {
		return h.Unhealthy
	}
	return nil
}

// Outcome is how an upstream attempt ended, for outlier detection.
type Outcome uint8

// Outcomes of an attempt.
const (
	// OutcomeSuccess: a response head with a status below 500.
	OutcomeSuccess Outcome = iota
	// OutcomeServerError: a 5xx response, or a reset, timeout or malformed
	// response before a usable one.
	OutcomeServerError
	// OutcomeConnectFailure: the connect failed.
	OutcomeConnectFailure
)

// Report counts the outcome of an attempt on endpoint idx of eps, when eps is the set
// the published health refers to and outlier detection is on. It does not allocate
// and takes no lock: successes only read the shared counters unless they must reset
// them.
func (g *Group) Report(eps *balancer.Group, idx int, o Outcome) {
	h := g.health.Load()
	if h == nil || h.Outcomes == nil || h.Endpoints != eps {
		return
	}
	h.Outcomes.Report(idx, o)
}

// SetEndpointsHook registers fn to be called by UpdateEndpoints with the new endpoint
// set, after it is stored, so that the health checker republishes health for it; nil
// unregisters.
func (g *Group) SetEndpointsHook(fn func(*balancer.Group)) {
	if fn == nil {
		g.hook.Store(nil)
		return
	}
	g.hook.Store(&fn)
}

// Outcomes holds consecutive failure counts per endpoint, shared by every worker
// through atomics. A failure crossing a threshold wakes the group's outlier detector.
type Outcomes struct {
	serverErrors    []atomic.Uint32
	connectFailures []atomic.Uint32
	limitServer     uint32
	limitConnect    uint32
	wake            chan<- struct{}
}

// NewOutcomes returns counters for n endpoints with od's thresholds; wake is signalled
// (without blocking) when an endpoint reaches one.
func NewOutcomes(n int, od *OutlierDetection, wake chan<- struct{}) *Outcomes {
	return &Outcomes{
		serverErrors:    make([]atomic.Uint32, n),
		connectFailures: make([]atomic.Uint32, n),
		limitServer:     od.ConsecutiveServerErrors,
		limitConnect:    od.ConsecutiveConnectFailures,
		wake:            wake,
	}
}

// Report counts one outcome on endpoint idx.
func (o *Outcomes) Report(idx int, r Outcome) {
	if idx < 0 || idx >= len(o.serverErrors) {
		return
	}
	switch r {
	case OutcomeSuccess:
		// Read first: the common case writes nothing, so the counters'
		// cache lines stay shared between cores.
		if o.serverErrors[idx].Load() != 0 {
			o.serverErrors[idx].Store(0)
		}
		if o.connectFailures[idx].Load() != 0 {
			o.connectFailures[idx].Store(0)
		}
	case OutcomeServerError:
		if n := o.serverErrors[idx].Add(1); o.limitServer > 0 && n == o.limitServer {
			o.signal()
		}
	case OutcomeConnectFailure:
		if n := o.connectFailures[idx].Add(1); o.limitConnect > 0 && n == o.limitConnect {
			o.signal()
		}
	}
}

func (o *Outcomes) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Tripped reports whether endpoint idx reached a threshold, and if so resets its
// counters.
func (o *Outcomes) Tripped(idx int) bool {
	if idx < 0 || idx >= len(o.serverErrors) {
		return false
	}
	tripped := (o.limitServer > 0 && o.serverErrors[idx].Load() >= o.limitServer) ||
		(o.limitConnect > 0 && o.connectFailures[idx].Load() >= o.limitConnect)
	if tripped {
		o.serverErrors[idx].Store(0)
		o.connectFailures[idx].Store(0)
	}
	return tripped
}

// Passive avoidance.
//
// A failed connect (refused, unreachable, timed out) marks the endpoint for
// dataplanev1.DefaultConnectFailureAvoidance: workers pass over it while the group
// has another endpoint to offer (proxy.Session). This is on in every group,
// unlike outlier detection: during a scale-down, a deleted pod's address refuses
// or, once its network is gone, swallows connects until the endpoint update
// arrives, and without it round robin keeps sending every few requests there,
// each waiting for the connect timeout. A successful new connection to the
// endpoint clears the mark. The marks belong to one endpoint set: an endpoint
// update starts afresh. Both engines' workers share them through atomics, on
// Clock.

// connectFailures holds, per endpoint of eps, the Clock time until which the
// endpoint is passed over (0: not marked).
type connectFailures struct {
	eps   *balancer.Group
	until []atomic.Int64
}

// ConnectFailed marks endpoint idx of eps as just having failed a connect. It
// allocates once per endpoint set, on its first failure; a failure on a set the
// group no longer uses is dropped.
func (g *Group) ConnectFailed(eps *balancer.Group, idx int) {
	if eps == nil || idx < 0 || idx >= eps.Len() {
		return
	}
	f := g.failed.Load()
	if f == nil || f.eps != eps {
		if eps != g.eps.Load() {
			return // picked before an endpoint update: its indexes are stale
		}
		nf := &connectFailures{eps: eps, until: make([]atomic.Int64, eps.Len())}
		if g.failed.CompareAndSwap(f, nf) {
			f = nf
		} else if f = g.failed.Load(); f == nil || f.eps != eps {
			return // another set took its place meanwhile
		}
	}
	f.until[idx].Store(Clock() + int64(dataplanev1.DefaultConnectFailureAvoidance))
}

// ConnectSucceeded clears the mark of endpoint idx of eps after a new connection
// to it succeeded. It does not allocate; without a mark it only reads.
func (g *Group) ConnectSucceeded(eps *balancer.Group, idx int) {
	if f := g.failed.Load(); f != nil && f.eps == eps && idx >= 0 && idx < len(f.until) && f.until[idx].Load() != 0 {
		f.until[idx].Store(0)
	}
}

// RecentlyFailed reports whether a connect to endpoint idx of eps failed less
// than dataplanev1.DefaultConnectFailureAvoidance ago (and no new connection
// succeeded since). It does not allocate, and reads the clock only for a marked
// endpoint.
func (g *Group) RecentlyFailed(eps *balancer.Group, idx int) bool {
	f := g.failed.Load()
	if f == nil || f.eps != eps || idx < 0 || idx >= len(f.until) {
		return false
	}
	u := f.until[idx].Load()
	return u != 0 && Clock() < u
}

// AnyConnectFailed reports whether an endpoint of eps may be marked: false means
// RecentlyFailed is false for all of them.
func (g *Group) AnyConnectFailed(eps *balancer.Group) bool {
	f := g.failed.Load()
	return f != nil && f.eps == eps
}

// MirrorSender sends copies of requests to a backend group, off the hot path.
type MirrorSender interface {
	// Mirror queues a copy of a complete HTTP/1.1 request (head, then body, which
	// may be empty) for one of g's endpoints. It copies both, never blocks, and
	// reports false when the copy was dropped.
	Mirror(g *Group, head, body []byte) bool
}

type mirrorHolder struct{ s MirrorSender }

// SetMirrorSender makes s the sender of the mirrored requests of every route of c
// (nil: mirrors are not sent). Call it before c is applied.
func (c *Config) SetMirrorSender(s MirrorSender) {
	for _, g := range c.Groups {
		if s == nil {
			g.mirror.Store(nil)
		} else {
			g.mirror.Store(&mirrorHolder{s})
		}
	}
}

// MirrorSender returns the sender of mirrored requests to g, nil when none is set.
func (g *Group) MirrorSender() MirrorSender {
	if h := g.mirror.Load(); h != nil {
		return h.s
	}
	return nil
}
