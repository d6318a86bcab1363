package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/lb"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Errors of Pool's methods; test for them with errors.Is.
var (
	// ErrUnknownGroup: the current config has no backend group of that name.
	ErrUnknownGroup = errors.New("backend group does not exist")
	// ErrBackendExists: the group already has an endpoint at that address.
	ErrBackendExists = errors.New("backend already in the group")
	// ErrBackendNotFound: the group has no endpoint at that address.
	ErrBackendNotFound = errors.New("backend not in the group")
	// ErrNoConfig: nothing was applied yet.
	ErrNoConfig = errors.New("no config applied yet")
)

// States of a Backend.
const (
	// StateReady: the endpoint takes new requests.
	StateReady = "ready"
	// StateDraining: the endpoint takes no new requests and leaves the group once
	// the requests in flight are done (see Pool.Drain).
	StateDraining = "draining"
	// StateNotReady: the config marks the endpoint not ready (EndpointConditions);
	// it takes requests only when no endpoint of the group is ready and it is
	// serving and terminating.
	StateNotReady = "not-ready"
)

// Backend is one endpoint of a Pool's backend group.
type Backend struct {
	// Address is IP:port.
	Address string `json:"address"`
	// Weight is its weight for the weighted policies (at least 1).
	Weight uint32 `json:"weight"`
	// State is StateReady, StateDraining or StateNotReady.
	State string `json:"state"`
	// Healthy is false while active health checks or outlier detection keep the
	// endpoint out of load balancing.
	Healthy bool `json:"healthy"`
}

// Pool is a live handle on one backend group of the running config: it lists, adds,
// removes and drains the group's endpoints at run time. Each change is validated,
// applied through the endpoint fast path (no route is recompiled; requests in flight
// keep the endpoints they picked) and shows in Current, /config_dump (same version,
// new hash) and flax_runtime_backend_changes_total. Changes last until the next full
// config (Apply) or endpoint update of the group (ApplyEndpoints): a later config
// wins over runtime changes, and pending drains end with it.
//
// A Pool is safe for concurrent use; Daemon.Pool returns the same Pool for a group
// every time, so drains started through one handle (the admin API, say) show in
// every other. A config without the group retires its Pool (ErrUnknownGroup from
// then on, even if the group comes back: ask Pool again).
type Pool struct {
	d     *Daemon
	group string

	// Guarded by d.mu.
	draining map[netip.AddrPort]uint64 // endpoint → token of its drain (never 0)
	drains   uint64                    // drains started: the last token given
	changed  bool                      // the group's endpoints differ from the last config's
	gone     bool                      // a config without the group replaced the one it was made for
}

// Pool returns the live handle on backend group group of the current config.
func (d *Daemon) Pool(group string) (*Pool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		return nil, ErrNoConfig
	}
	if groupOf(d.current, group) == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	p := d.pools[group]
	if p == nil {
		p = &Pool{d: d, group: group, draining: map[netip.AddrPort]uint64{}}
		if d.pools == nil {
			d.pools = map[string]*Pool{}
		}
		d.pools[group] = p
	}
	return p, nil
}

// resetPools forgets the changes and drains of every pool (d.mu held): a new
// config replaced the groups. The pools of groups it lacks are retired: they fail
// with ErrUnknownGroup from then on, and Pool makes a new one if the group returns.
func (d *Daemon) resetPools() {
	for name, p := range d.pools {
		p.reset()
		if groupOf(d.current, name) == nil {
			p.gone = true
			delete(d.pools, name)
		}
	}
}

// reset forgets the pool's changes and drains (d.mu held): a config replaced the
// group. Pending drain goroutines see it and stop.
func (p *Pool) reset() {
	clear(p.draining)
	p.changed = false
}

// Group returns the name of the pool's backend group.
func (p *Pool) Group() string { return p.group }

// List returns the group's endpoints in config order.
func (p *Pool) List() ([]Backend, error) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	g, err := p.groupLocked()
	if err != nil {
		return nil, err
	}
	unhealthy := p.unhealthyLocked()
	out := make([]Backend, 0, len(g.GetEndpoints()))
	for _, e := range g.GetEndpoints() {
		ap := addrOf(e)
		b := Backend{Address: ap.String(), Weight: max(e.GetWeight(), 1), State: StateReady, Healthy: !unhealthy[ap]}
		switch c := e.GetConditions(); {
		case p.draining[ap] != 0:
			b.State = StateDraining
		case c != nil && !c.GetReady():
			b.State = StateNotReady
		}
		out = append(out, b)
	}
	return out, nil
}

// unhealthyLocked returns the endpoints that health checks or outlier detection
// keep out of load balancing (d.mu held).
func (p *Pool) unhealthyLocked() map[netip.AddrPort]bool {
	g := p.d.config.Group(p.group)
	if g == nil {
		return nil
	}
	eps := g.Endpoints()
	bits := g.Unhealthy(eps)
	if bits == nil {
		return nil
	}
	out := map[netip.AddrPort]bool{}
	for i := range eps.Len() {
		if bits.Has(i) {
			out[eps.Endpoint(i).Addr] = true
		}
	}
	return out
}

// InFlight returns the requests in flight to the group, over all its endpoints
// (the dataplane counts requests per group, not per endpoint).
func (p *Pool) InFlight() int64 {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	return p.inFlightLocked()
}

func (p *Pool) inFlightLocked() int64 {
	g := p.d.config.Group(p.group)
	if g == nil {
		return 0
	}
	return p.d.metrics.Shared(g.Stats).RequestsInFlight()
}

// Add adds an endpoint at addr (IP:port) with weight 1, ready.
func (p *Pool) Add(addr string) error { return p.AddWeighted(addr, lb.DefaultWeight) }

// AddWeighted adds an endpoint at addr (IP:port) with weight (0 means 1), ready. It
// fails with ErrBackendExists when the group has one there already, draining or
// not.
func (p *Pool) AddWeighted(addr string, weight uint32) error {
	e, err := lb.Endpoint(addr, weight)
	if err != nil {
		return err
	}
	ap := addrOf(e)
	return p.change(metrics.RuntimeAdd, func(eps []*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error) {
		if slices.IndexFunc(eps, func(x *dataplanev1.Endpoint) bool { return addrOf(x) == ap }) >= 0 {
			return nil, fmt.Errorf("%w: %s", ErrBackendExists, ap)
		}
		return append(eps, e), nil
	})
}

// Remove takes the endpoint at addr out of the group at once: it takes no new
// requests; those in flight carry on on their connections.
func (p *Pool) Remove(addr string) error {
	ap, err := parseAddr(addr)
	if err != nil {
		return err
	}
	return p.change(metrics.RuntimeRemove, func(eps []*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error) {
		i := slices.IndexFunc(eps, func(x *dataplanev1.Endpoint) bool { return addrOf(x) == ap })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrBackendNotFound, ap)
		}
		delete(p.draining, ap)
		return slices.Delete(eps, i, i+1), nil
	})
}

// Drain stops sending new requests to the endpoint at addr (it stays in the group
// as not ready, neither serving nor terminating, so it is never picked, even as a
// last resort) and removes it in the background once the requests in flight are
// done. The dataplane counts requests in flight per group, not per endpoint, so
// "done" is the first moment the group has none in flight (for a group that TCP
// routes use, also no open upstream connection), which proves the drained
// endpoint's are over; a group that UDP routes use also waits for its flows to
// end (they end when idle); under steady traffic that moment may not come, and the
// endpoint is removed after the daemon's DrainTimeout instead. Draining an
// endpoint that is already draining does nothing.
func (p *Pool) Drain(addr string) error { return p.DrainWithin(addr, 0) }

// DrainWithin is Drain with its own bound on the wait for requests in flight; 0
// means the daemon's DrainTimeout.
func (p *Pool) DrainWithin(addr string, timeout time.Duration) error {
	if timeout < 0 {
		return fmt.Errorf("drain timeout %s: must not be negative", timeout)
	}
	if timeout == 0 {
		timeout = p.d.opts.DrainTimeout
	}
	ap, err := parseAddr(addr)
	if err != nil {
		return err
	}
	var token uint64
	err = p.change(metrics.RuntimeDrain, func(eps []*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error) {
		i := slices.IndexFunc(eps, func(x *dataplanev1.Endpoint) bool { return addrOf(x) == ap })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrBackendNotFound, ap)
		}
		if p.draining[ap] != 0 {
			return nil, errAlreadyDraining
		}
		e := proto.CloneOf(eps[i])
		e.Conditions = &dataplanev1.EndpointConditions{Ready: false, Serving: false, Terminating: true}
		eps[i] = e
		p.drains++
		token = p.drains
		p.draining[ap] = token
		return eps, nil
	})
	if errors.Is(err, errAlreadyDraining) {
		return nil
	}
	if err != nil {
		return err
	}
	go p.finishDrain(ap, token, timeout)
	return nil
}

// errAlreadyDraining ends a Drain of a draining endpoint without a change.
var errAlreadyDraining = errors.New("already draining")

// drainPoll is how often a drain checks whether the requests in flight are done.
const drainPoll = 20 * time.Millisecond

// finishDrain removes the draining endpoint ap once the group has nothing in
// flight, or after timeout, unless a newer config or a Remove got there first.
func (p *Pool) finishDrain(ap netip.AddrPort, token uint64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		time.Sleep(drainPoll)
		p.d.mu.Lock()
		if p.draining[ap] != token {
			p.d.mu.Unlock()
			return // removed, or replaced by a later config
		}
		done := p.idleLocked()
		timedOut := time.Now().After(deadline)
		if done || timedOut {
			err := p.changeLocked(metrics.RuntimeDrained, func(eps []*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error) {
				delete(p.draining, ap)
				return slices.DeleteFunc(eps, func(x *dataplanev1.Endpoint) bool { return addrOf(x) == ap }), nil
			})
			p.d.mu.Unlock()
			if err != nil {
				p.d.log.Error(err, "drained endpoint not removed", "group", p.group, "endpoint", ap.String())
			} else {
				p.d.log.Info("drained endpoint removed", "group", p.group, "endpoint", ap.String(), "timedOut", timedOut && !done)
			}
			return
		}
		p.d.mu.Unlock()
	}
}

// idleLocked reports whether the group has no request in flight and, when a TCP
// or UDP route uses it, no open upstream connection or flow (d.mu held).
func (p *Pool) idleLocked() bool {
	g := p.d.config.Group(p.group)
	if g == nil {
		return true
	}
	if p.d.metrics.Shared(g.Stats).RequestsInFlight() > 0 {
		return false
	}
	return !usedByTunnels(p.d.current, p.group) || p.d.metrics.UpstreamConnections(g.Stats) == 0
}

// usedByTunnels reports whether a TCP route of snap sends connections to group,
// or a UDP route flows (each flow counts as an upstream connection).
func usedByTunnels(snap *dataplanev1.Snapshot, group string) bool {
	for _, l := range snap.GetListeners() {
		for _, b := range slices.Concat(l.GetTcpRoute().GetBackends(), l.GetUdpRoute().GetBackends()) {
			if b.GetBackendGroup() == group {
				return true
			}
		}
	}
	return false
}

// change applies edit to a copy of the group's endpoints and makes the result the
// running config.
func (p *Pool) change(op metrics.RuntimeOp, edit func([]*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error)) error {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	return p.changeLocked(op, edit)
}

// changeLocked is change with d.mu held. The snapshot keeps its version (versions
// belong to whoever sends configs) and gets a new hash.
func (p *Pool) changeLocked(op metrics.RuntimeOp, edit func([]*dataplanev1.Endpoint) ([]*dataplanev1.Endpoint, error)) error {
	base := p.d.current
	if base == nil {
		return ErrNoConfig
	}
	idx := slices.IndexFunc(base.GetBackendGroups(), func(g *dataplanev1.BackendGroup) bool { return g.GetName() == p.group })
	if idx < 0 || p.gone {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, p.group)
	}
	// Snapshots are shared read-only: copy the spine down to the endpoint list.
	drainingBefore := maps.Clone(p.draining)
	eps, err := edit(slices.Clone(base.GetBackendGroups()[idx].GetEndpoints()))
	if err != nil {
		p.draining = drainingBefore
		return err
	}
	group := dataplanev1.ShallowCopy(base.GetBackendGroups()[idx])
	group.Endpoints = eps
	next := dataplanev1.ShallowCopy(base)
	next.BackendGroups = slices.Clone(base.GetBackendGroups())
	next.BackendGroups[idx] = group
	next.Hash = dataplanev1.Hash(next)
	if err := p.d.applyEndpointsLocked(p.group, next); err != nil {
		p.draining = drainingBefore
		return err
	}
	p.changed = true
	p.d.metrics.RuntimeChange(op)
	p.d.log.Info("backend group changed at run time", "group", p.group, "op", op.String(), "endpoints", len(eps))
	return nil
}

// groupLocked returns the pool's group in the current config (d.mu held).
func (p *Pool) groupLocked() (*dataplanev1.BackendGroup, error) {
	if p.d.current == nil {
		return nil, ErrNoConfig
	}
	g := groupOf(p.d.current, p.group)
	if g == nil || p.gone {
		return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, p.group)
	}
	return g, nil
}

// addrOf returns an endpoint's address and port; a valid config has valid ones.
func addrOf(e *dataplanev1.Endpoint) netip.AddrPort {
	a, _ := netip.ParseAddr(e.GetAddress())
	return netip.AddrPortFrom(a.Unmap(), uint16(e.GetPort()))
}

// parseAddr parses IP:port as the pool compares addresses.
func parseAddr(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ap, fmt.Errorf("backend %q: want IP:port: %w", addr, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
