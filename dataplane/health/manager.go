package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/h2c"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Options configure a Manager.
type Options struct {
	// Logger receives health transitions and ejections (never per request).
	Logger logr.Logger
}

// Manager runs the node's health checks and outlier detection for every backend
// group that configures them. Its methods are safe for concurrent use.
type Manager struct {
	log logr.Logger

	mu     sync.Mutex
	groups map[string]*groupState
	closed bool
}

// NewManager returns a Manager with no groups; call Apply with each config.
func NewManager(opts Options) *Manager {
	return &Manager{log: opts.Logger, groups: map[string]*groupState{}}
}

// Apply attaches the node's health state to the groups of cfg, starting checkers for
// groups that appeared and stopping those of groups that are gone or no longer
// configure a health check or outlier detection. Call it before cfg is swapped into
// the engine.
func (m *Manager) Apply(cfg *compiled.Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	seen := make(map[string]bool, len(cfg.Groups))
	for _, g := range cfg.Groups {
		seen[g.Name] = true
		gs := m.groups[g.Name]
		if g.HealthCheck == nil && g.Outlier == nil {
			if gs != nil {
				gs.stop()
				delete(m.groups, g.Name)
			}
			g.SetHealth(nil)
			continue
		}
		if gs == nil {
			gs = newGroupState(m, g.Name)
			m.groups[g.Name] = gs
			go gs.run()
		}
		gs.attach(g)
	}
	for name, gs := range m.groups {
		if !seen[name] {
			gs.stop()
			delete(m.groups, name)
		}
	}
}

// Close stops every checker. Apply does nothing afterwards.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for name, gs := range m.groups {
		gs.stop()
		delete(m.groups, name)
	}
}

// Groups returns the names of the groups being checked.
func (m *Manager) Groups() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.groups))
	for name := range m.groups {
		out = append(out, name)
	}
	return out
}

// probeResult is one probe's outcome.
type probeResult struct {
	round uint64
	addr  netip.AddrPort
	ok    bool
	err   error
}

// groupState is the health of one backend group, kept across configs.
type groupState struct {
	m    *Manager
	name string

	wake    chan struct{} // outlier thresholds reached (compiled.Outcomes)
	kick    chan struct{} // settings or endpoints changed
	results chan probeResult
	quit    chan struct{}
	done    chan struct{}

	mu       sync.Mutex // guards the fields below
	group    *compiled.Group
	hc       *compiled.HealthCheck
	od       *compiled.OutlierDetection
	shared   *metrics.Shared
	eps      map[netip.AddrPort]*endpointState
	pub      *compiled.EndpointHealth
	byIdx    []*endpointState // indexed like pub.Endpoints
	rebuild  bool             // the next publication must rebuild pub.Outcomes
	inFlight int              // probes of the current round not yet answered
	round    uint64
	rng      *rand.Rand
}

func newGroupState(m *Manager, name string) *groupState {
	return &groupState{
		m: m, name: name,
		wake:    make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		results: make(chan probeResult, 64),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		eps:     map[netip.AddrPort]*endpointState{},
		rng:     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(len(name)))),
	}
}

// attach makes g the group's current config and publishes its health at once.
func (gs *groupState) attach(g *compiled.Group) {
	gs.mu.Lock()
	prevHC := gs.hc
	gs.group, gs.hc, gs.od, gs.shared = g, g.HealthCheck, g.Outlier, g.Shared
	if gs.hc == nil {
		for _, st := range gs.eps {
			st.healthy, st.successes, st.failures = true, 0, 0
		}
	}
	if gs.od == nil {
		for _, st := range gs.eps {
			st.ejections, st.ejectedUntil, st.decayAt = 0, time.Time{}, time.Time{}
		}
	}
	if prevHC == nil && gs.hc != nil {
		gs.round++ // a probe round of no config is void
		gs.inFlight = 0
	}
	gs.pub = nil
	gs.rebuild = true
	gs.publishLocked(time.Now())
	gs.mu.Unlock()
	g.SetEndpointsHook(func(eps *balancer.Group) { gs.endpointsChanged(g, eps) })
	gs.signal(gs.kick)
}

// endpointsChanged republishes health for the new endpoint set of g.
func (gs *groupState) endpointsChanged(g *compiled.Group, _ *balancer.Group) {
	gs.mu.Lock()
	if gs.group == g {
		gs.publishLocked(time.Now())
	}
	gs.mu.Unlock()
	gs.signal(gs.kick)
}

func (gs *groupState) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// stop ends the group's goroutine and withdraws its health from the current group.
func (gs *groupState) stop() {
	close(gs.quit)
	<-gs.done
	gs.mu.Lock()
	if g := gs.group; g != nil {
		g.SetEndpointsHook(nil)
		g.SetHealth(nil)
		gs.shared.SetUnhealthy(0)
	}
	gs.mu.Unlock()
}

// publishLocked publishes the group's health for its current endpoint set.
func (gs *groupState) publishLocked(now time.Time) {
	g := gs.group
	eps := g.Endpoints()
	rebuild := gs.rebuild || gs.pub == nil || gs.pub.Endpoints != eps
	if rebuild {
		gs.rebuild = false
		gs.byIdx = gs.byIdx[:0]
		keep := make(map[netip.AddrPort]*endpointState, eps.Len())
		for i := range eps.Len() {
			a := eps.Endpoint(i).Addr
			st := gs.eps[a]
			if st == nil {
				st = newEndpointState(a)
			}
			keep[a] = st
			gs.byIdx = append(gs.byIdx, st)
		}
		gs.eps = keep
	}
	h := &compiled.EndpointHealth{Endpoints: eps}
	switch {
	case gs.od == nil:
	case rebuild:
		h.Outcomes = compiled.NewOutcomes(eps.Len(), gs.od, gs.wake)
	default:
		h.Outcomes = gs.pub.Outcomes
	}
	n := 0
	for i, st := range gs.byIdx {
		if !st.healthy || st.ejected(now) {
			if h.Unhealthy == nil {
				h.Unhealthy = balancer.NewBitset(len(gs.byIdx))
			}
			h.Unhealthy.Set(i)
			n++
		}
	}
	gs.pub = h
	g.SetHealth(h)
	gs.shared.SetUnhealthy(n)
}

// run is the group's goroutine.
func (gs *groupState) run() {
	defer close(gs.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextProbe time.Time
	for {
		now := time.Now()
		gs.mu.Lock()
		if gs.hc != nil && gs.inFlight == 0 {
			if nextProbe.IsZero() {
				// First round soon, spread by the jitter.
				nextProbe = now.Add(probeDelay(0, gs.hc.Jitter, gs.rng))
			}
			if !now.Before(nextProbe) {
				gs.startRoundLocked()
				nextProbe = now.Add(probeDelay(gs.hc.Interval, gs.hc.Jitter, gs.rng))
			}
		}
		if gs.hc == nil {
			nextProbe = time.Time{}
		}
		if gs.outliersLocked(now) {
			gs.publishLocked(now)
		}
		wakeAt := nextProbe
		if gs.inFlight > 0 {
			wakeAt = time.Time{}
		}
		for _, st := range gs.byIdx {
			if t := st.next(); !t.IsZero() && (wakeAt.IsZero() || t.Before(wakeAt)) {
				wakeAt = t
			}
		}
		gs.mu.Unlock()

		d := time.Hour
		if !wakeAt.IsZero() {
			d = max(time.Until(wakeAt), 0)
		}
		timer.Reset(d)
		select {
		case <-gs.quit:
			return
		case <-timer.C:
		case <-gs.wake:
		case <-gs.kick:
		case r := <-gs.results:
			gs.onResult(r)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// outliersLocked ejects endpoints that reached a threshold and returns those whose
// time is up. It reports whether anything changed.
func (gs *groupState) outliersLocked(now time.Time) bool {
	od := gs.od
	if od == nil || gs.pub == nil || gs.pub.Outcomes == nil {
		return false
	}
	changed := false
	ejected := 0
	for _, st := range gs.byIdx {
		if st.tick(now, od.BaseEjectionTime) {
			changed = true
			gs.m.log.Info("endpoint returned from ejection", "backendGroup", gs.name, "endpoint", st.addr.String())
		}
		if st.ejected(now) {
			ejected++
		}
	}
	limit := maxEjected(len(gs.byIdx), od.MaxEjectionPercent)
	for i, st := range gs.byIdx {
		if !gs.pub.Outcomes.Tripped(i) || st.ejected(now) {
			continue
		}
		if ejected >= limit {
			gs.m.log.V(1).Info("ejection skipped: too many endpoints ejected", "backendGroup", gs.name, "endpoint", st.addr.String(), "ejected", ejected)
			continue
		}
		d := st.eject(now, od.BaseEjectionTime, od.MaxEjectionTime)
		ejected++
		changed = true
		gs.shared.Ejection()
		gs.m.log.Info("endpoint ejected", "backendGroup", gs.name, "endpoint", st.addr.String(), "for", d, "times", st.ejections)
	}
	return changed
}

// startRoundLocked probes every endpoint of the current set concurrently.
func (gs *groupState) startRoundLocked() {
	gs.round++
	hc := *gs.hc
	for _, st := range gs.byIdx {
		gs.inFlight++
		go func(round uint64, addr netip.AddrPort) {
			err := Probe(context.Background(), addr, &hc)
			select {
			case gs.results <- probeResult{round: round, addr: addr, ok: err == nil, err: err}:
			case <-gs.quit:
			}
		}(gs.round, st.addr)
	}
}

// onResult applies a probe result.
func (gs *groupState) onResult(r probeResult) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if r.round != gs.round {
		return
	}
	gs.inFlight--
	st := gs.eps[r.addr]
	if st == nil || gs.hc == nil {
		return
	}
	if st.observe(r.ok, gs.hc.HealthyThreshold, gs.hc.UnhealthyThreshold) {
		gs.shared.HealthTransition(st.healthy)
		if st.healthy {
			gs.m.log.Info("endpoint healthy", "backendGroup", gs.name, "endpoint", r.addr.String())
		} else {
			gs.m.log.Info("endpoint unhealthy", "backendGroup", gs.name, "endpoint", r.addr.String(), "error", errString(r.err))
		}
		gs.publishLocked(time.Now())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ErrUnexpectedStatus is wrapped by Probe's error for a status outside the expected
// ranges.
var ErrUnexpectedStatus = errors.New("unexpected status")

// Probe sends one health check request to addr on its own connection and reads the
// status line. It returns nil when the status is expected.
func Probe(ctx context.Context, addr netip.AddrPort, hc *compiled.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	defer nc.Close()
	c := nc
	if hc.TLS != nil {
		tc := tls.Client(nc, hc.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("health check %s: tls handshake: %w", addr, err)
		}
		c = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	host := hc.Host
	if host == "" {
		host = addr.String()
	}
	if hc.GRPC {
		if err := probeGRPC(c, host, hc.GRPCService); err != nil {
			return fmt.Errorf("health check %s: %w", addr, err)
		}
		return nil
	}
	var status int
	if hc.H2C {
		status, err = probeH2C(c, host, hc.Path)
	} else {
		status, err = probeHTTP1(c, host, hc.Path)
	}
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	if !hc.Expects(status) {
		return fmt.Errorf("health check %s: %w %d", addr, ErrUnexpectedStatus, status)
	}
	return nil
}

// probeRequest is the health check request.
func probeRequest(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: flax-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
}

// probeHTTP1 sends the health check request over HTTP/1.1 and returns the
// response status.
func probeHTTP1(c net.Conn, host, path string) (int, error) {
	if _, err := c.Write([]byte(probeRequest(host, path))); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	line, err := bufio.NewReaderSize(c, 512).ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("read status line: %w", err)
	}
	return parseStatusLine(line)
}

// probeH2C sends the health check request as the first stream of a
// cleartext HTTP/2 connection (prior knowledge, as the proxy does for the
// group) and returns the response status.
func probeH2C(c net.Conn, host, path string) (int, error) {
	return h2c.RoundTrip(c, []byte(probeRequest(host, path)))
}

// parseStatusLine returns the status of an HTTP/1.x status line.
func parseStatusLine(line []byte) (int, error) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ' && line[12] != '\r') {
		return 0, fmt.Errorf("malformed status line %q", truncate(line))
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 599 {
		return 0, fmt.Errorf("malformed status line %q", truncate(line))
	}
	return status, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
