// Package fakedataplane is a dataplane for the controller's tests: a
// snapshot.Applier (served by the real snapshot server on a unix socket) that
// records what it applies instead of serving traffic. It imports only the
// contract (api/dataplane/v1), so the controller's packages may use it.
package fakedataplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// Dataplane is a snapshot.Applier that records what it applies. It can refuse
// snapshots with a listener on a given port, report listeners on some ports as not
// bound, and hold every apply until released (a slow dataplane). The zero value
// accepts everything.
type Dataplane struct {
	mu         sync.Mutex
	full       []*dataplanev1.Snapshot
	updates    []EndpointApply
	current    *dataplanev1.Snapshot
	rejectPort uint32
	unbound    map[uint32]string
	gate       chan struct{}
}

// EndpointApply is one ApplyEndpoints call.
type EndpointApply struct {
	// At is when the call came.
	At time.Time
	// Group is the backend group updated.
	Group string
	// Endpoints is the group's number of endpoints after the update.
	Endpoints int
}

// Hold makes every apply wait until the returned release is called.
func (f *Dataplane) Hold() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.gate = nil
			f.mu.Unlock()
			close(gate)
		})
	}
}

// wait blocks while the dataplane is held.
func (f *Dataplane) wait(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Apply implements snapshot.Applier.
func (f *Dataplane) Apply(ctx context.Context, snap *dataplanev1.Snapshot) ([]*rpc.ListenerStatus, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*rpc.ListenerStatus
	for _, l := range snap.GetListeners() {
		if l.GetPort() == f.rejectPort {
			return nil, fmt.Errorf("port %d refused by the test dataplane", l.GetPort())
		}
		st := &rpc.ListenerStatus{Name: l.GetName(), Address: l.GetAddress(), Port: l.GetPort(), Bound: true}
		if msg, ok := f.unbound[l.GetPort()]; ok {
			st.Bound, st.Error = false, msg
		}
		out = append(out, st)
	}
	f.full = append(f.full, snap)
	f.current = snap
	return out, nil
}

// ApplyEndpoints implements snapshot.Applier.
func (f *Dataplane) ApplyEndpoints(ctx context.Context, group string, snap *dataplanev1.Snapshot) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, g := range snap.GetBackendGroups() {
		if g.GetName() == group {
			n = len(g.GetEndpoints())
		}
	}
	f.updates = append(f.updates, EndpointApply{At: time.Now(), Group: group, Endpoints: n})
	f.current = snap
	return nil
}

// Counts returns the number of full snapshots and endpoint updates applied.
func (f *Dataplane) Counts() (full, updates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.full), len(f.updates)
}

// LastUpdate returns the last endpoint update, and false if there was none.
func (f *Dataplane) LastUpdate() (EndpointApply, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.updates) == 0 {
		return EndpointApply{}, false
	}
	return f.updates[len(f.updates)-1], true
}

// Running returns the snapshot in effect (nil before the first apply).
func (f *Dataplane) Running() *dataplanev1.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// Set makes the dataplane refuse snapshots with a listener on rejectPort (0: none)
// and report the listeners on the ports of unbound as not bound, with its error.
func (f *Dataplane) Set(rejectPort uint32, unbound map[uint32]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejectPort, f.unbound = rejectPort, unbound
}
