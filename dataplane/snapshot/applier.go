package snapshot

import (
	"context"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
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
