package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/compiled"
)

// Engine serves a dataplane configuration.
type Engine interface {
	// Name identifies the engine in metrics and logs ("netpoll",
	// "io_uring").
	Name() string
	// Apply makes cfg the running configuration. It binds new listeners,
	// swaps the configuration of addresses already bound and closes
	// listeners that are gone, and returns one status per listener of cfg,
	// in order. A listener that cannot be bound is reported in its status,
	// not as an error; an error means nothing was applied and the previous
	// configuration is still running. Apply may be called before Run (the
	// sockets are bound, and accept once Run starts) and while running.
	Apply(cfg *compiled.Config) ([]ListenerStatus, error)
	// Current returns the running configuration, nil before the first
	// Apply. Endpoint-only updates are applied to it in place
	// (compiled.Config.UpdateEndpoints).
	Current() *compiled.Config
	// Run serves until ctx is done, then closes every listener and
	// connection and returns.
	Run(ctx context.Context) error
	// Drain stops accepting, closes idle keep-alive connections, lets
	// requests in flight finish (their responses say Connection: close)
	// and returns once no connection is left or ctx is done; then it closes
	// what is left and returns ctx's error. Run keeps running until its own
	// context is done.
	Drain(ctx context.Context) error
}

// ListenerStatus is the outcome of binding one listener.
type ListenerStatus struct {
	// Name is the listener's name.
	Name string
	// Addr is the address it binds.
	Addr netip.AddrPort
	// Bound is true when its sockets are bound and accepting (or will
	// accept once Run starts).
	Bound bool
	// Err says why it is not bound.
	Err error
}

// Slot is one bound address. Its Listener is the configuration currently
// served on it: sessions load it at the start of every request, and Apply
// replaces it when a new configuration keeps the address.
type Slot struct {
	// Addr is the bound address.
	Addr netip.AddrPort
	// Listener is the listener served on Addr.
	Listener atomic.Pointer[compiled.Listener]

	conns atomic.Int64 // open client connections (Admit, Release)
}

// Conns returns the number of client connections open on the slot.
func (s *Slot) Conns() int64 { return s.conns.Load() }

// Binding pairs a slot with the listener it should serve.
type Binding struct {
	Slot     *Slot
	Listener *compiled.Listener
}

// Plan is what Apply must do to move from the bound addresses to a
// configuration's listeners.
type Plan struct {
	// Keep are addresses already bound that stay; their slot gets the new
	// listener.
	Keep []Binding
	// Bind are new addresses; their slots are not in the set yet.
	Bind []Binding
	// Close are bound addresses no listener uses any more.
	Close []*Slot
	// Rejected are listeners that cannot be served whatever happens (an
	// address already used by an earlier listener of the same config).
	Rejected []ListenerStatus
}

// ListenerSet is the set of bound addresses of an engine. It is not safe
// for concurrent use; engines guard it with their Apply lock.
type ListenerSet struct {
	slots map[netip.AddrPort]*Slot
}

// ErrDuplicateAddress is reported for a listener whose address an earlier
// listener of the same configuration already uses.
var ErrDuplicateAddress = errors.New("address already used by another listener")

// Plan diffs cfg's listeners against the bound addresses. It changes
// nothing: apply the plan with Commit.
func (s *ListenerSet) Plan(cfg *compiled.Config) *Plan {
	p := &Plan{}
	used := map[netip.AddrPort]string{}
	for _, l := range cfg.Listeners {
		if other, dup := used[l.Addr]; dup {
			p.Rejected = append(p.Rejected, ListenerStatus{
				Name: l.Name, Addr: l.Addr,
				Err: fmt.Errorf("listener %s: %w (%s)", l.Name, ErrDuplicateAddress, other),
			})
			continue
		}
		used[l.Addr] = l.Name
		if slot := s.slots[l.Addr]; slot != nil {
			p.Keep = append(p.Keep, Binding{Slot: slot, Listener: l})
		} else {
			p.Bind = append(p.Bind, Binding{Slot: &Slot{Addr: l.Addr}, Listener: l})
		}
	}
	for addr, slot := range s.slots {
		if _, ok := used[addr]; !ok {
			p.Close = append(p.Close, slot)
		}
	}
	sort.Slice(p.Close, func(i, j int) bool { return p.Close[i].Addr.String() < p.Close[j].Addr.String() })
	return p
}

// Commit records the outcome of a plan: the slots of bound (the subset of
// p.Bind that was bound) join the set, p.Close leave it, and every kept or
// bound slot gets its new listener.
func (s *ListenerSet) Commit(p *Plan, bound []Binding) {
	if s.slots == nil {
		s.slots = map[netip.AddrPort]*Slot{}
	}
	for _, b := range p.Keep {
		b.Slot.Listener.Store(b.Listener)
	}
	for _, b := range bound {
		b.Slot.Listener.Store(b.Listener)
		s.slots[b.Slot.Addr] = b.Slot
	}
	for _, sl := range p.Close {
		delete(s.slots, sl.Addr)
	}
}

// Slots returns the bound slots, ordered by address.
func (s *ListenerSet) Slots() []*Slot {
	out := make([]*Slot, 0, len(s.slots))
	for _, sl := range s.slots {
		out = append(out, sl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.String() < out[j].Addr.String() })
	return out
}

// Statuses assembles the listener statuses of cfg from a plan and the bind
// errors of its new addresses (nil for those bound).
func Statuses(cfg *compiled.Config, p *Plan, bindErr map[netip.AddrPort]error) []ListenerStatus {
	rejected := map[string]ListenerStatus{}
	for _, r := range p.Rejected {
		rejected[r.Name] = r
	}
	out := make([]ListenerStatus, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		if r, ok := rejected[l.Name]; ok {
			out = append(out, r)
			continue
		}
		st := ListenerStatus{Name: l.Name, Addr: l.Addr, Bound: true}
		if err := bindErr[l.Addr]; err != nil {
			st.Bound, st.Err = false, err
		}
		out = append(out, st)
	}
	return out
}

// ConfigHolder holds the running configuration.
type ConfigHolder struct {
	p atomic.Pointer[compiled.Config]
}

// Load returns the running configuration.
func (h *ConfigHolder) Load() *compiled.Config { return h.p.Load() }

// Store makes c the running configuration.
func (h *ConfigHolder) Store(c *compiled.Config) { h.p.Store(c) }
