package snapshot

import (
	"context"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/dataplane/engine"
)

// Applier is the dataplane's compile-and-swap step: it turns a validated snapshot
// into running configuration. Server and Watcher call it one call at a time, never
// concurrently, and only with snapshots that passed Validate and carry their Hash.
// Implementations must not modify the snapshots they are given.
type Applier interface {
	// Apply makes snap the running configuration and reports the state of each of
	// its listeners. A listener that cannot be bound is reported in its
	// ListenerStatus, not as an error; an error means the snapshot was not applied
	// at all and the previous configuration is still running.
	Apply(ctx context.Context, snap *dataplanev1.Snapshot) ([]*rpc.ListenerStatus, error)
	// ApplyEndpoints makes snap the running configuration when it differs from the
	// running one only in the endpoints of the backend group named group, so that
	// the dataplane can update that group without recompiling routes. An error means
	// nothing changed.
	ApplyEndpoints(ctx context.Context, group string, snap *dataplanev1.Snapshot) error
}

// Engine is an Applier that reports listener statuses in the engine's own form, as
// dataplane/daemon's Daemon does (which keeps the daemon free of the gRPC types).
type Engine interface {
	Apply(ctx context.Context, snap *dataplanev1.Snapshot) ([]engine.ListenerStatus, error)
	ApplyEndpoints(ctx context.Context, group string, snap *dataplanev1.Snapshot) error
}

// Adapt returns e as an Applier, for a Server or a Watcher.
func Adapt(e Engine) Applier { return adapter{e} }

type adapter struct{ e Engine }

func (a adapter) Apply(ctx context.Context, snap *dataplanev1.Snapshot) ([]*rpc.ListenerStatus, error) {
	st, err := a.e.Apply(ctx, snap)
	if err != nil {
		return nil, err
	}
	return ListenerStatuses(st), nil
}

func (a adapter) ApplyEndpoints(ctx context.Context, group string, snap *dataplanev1.Snapshot) error {
	return a.e.ApplyEndpoints(ctx, group, snap)
}

// ListenerStatuses converts engine listener statuses to their API form.
func ListenerStatuses(st []engine.ListenerStatus) []*rpc.ListenerStatus {
	out := make([]*rpc.ListenerStatus, 0, len(st))
	for _, s := range st {
		p := &rpc.ListenerStatus{
			Name:    s.Name,
			Address: s.Addr.Addr().String(),
			Port:    uint32(s.Addr.Port()),
			Bound:   s.Bound,
		}
		if s.Err != nil {
			p.Error = s.Err.Error()
		}
		out = append(out, p)
	}
	return out
}
