package deliver

import (
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// maxEndpointUpdates is the largest number of changed backend groups sent as
// EndpointUpdates; beyond it one full snapshot is cheaper for the dataplane, which
// rehashes the whole snapshot for every update.
const maxEndpointUpdates = 64

// changedEndpointGroups reports whether next differs from prev only in the endpoints
// of some backend groups and, if so, the indexes (in next) of those groups, in order.
// Version and Hash are ignored. ok is false when anything else differs: listeners,
// routes, the set or order of backend groups, or any other field of a group. If the
// two snapshots have the same content, ok is true and groups is empty.
func changedEndpointGroups(prev, next *dataplanev1.Snapshot) (groups []int, ok bool) {
	if prev == nil || next == nil {
		return nil, false
	}
	if len(prev.GetBackendGroups()) != len(next.GetBackendGroups()) {
		return nil, false
	}
	if !proto.Equal(skeleton(prev), skeleton(next)) {
		return nil, false
	}
	for i, g := range next.GetBackendGroups() {
		if !equalEndpoints(prev.GetBackendGroups()[i].GetEndpoints(), g.GetEndpoints()) {
			groups = append(groups, i)
		}
	}
	return groups, true
}

// skeleton returns a shallow copy of snap without version, hash and endpoints: what
// must be equal for two snapshots to differ only in endpoints. snap is not modified.
func skeleton(snap *dataplanev1.Snapshot) *dataplanev1.Snapshot {
	s := dataplanev1.ShallowCopy(snap)
	s.Version = 0
	s.Hash = ""
	s.BackendGroups = make([]*dataplanev1.BackendGroup, len(snap.GetBackendGroups()))
	for i, g := range snap.GetBackendGroups() {
		c := dataplanev1.ShallowCopy(g)
		c.Endpoints = nil
		s.BackendGroups[i] = c
	}
	return s
}

// equalEndpoints reports whether two endpoint lists are equal, order included.
func equalEndpoints(a, b []*dataplanev1.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// planMessages returns what to send to move a dataplane that runs applied (at
// appliedVersion; nil if unknown) to desired: EndpointUpdates, one per changed
// backend group and chained by version, when only endpoints differ, otherwise one
// full snapshot. next allocates versions. The last message carries desired's hash so
// that the dataplane checks that it ends up where the controller expects; desired is
// not modified.
func planMessages(applied *dataplanev1.Snapshot, appliedVersion uint64, desired *dataplanev1.Snapshot, next func() uint64) []*rpc.ControllerMessage {
	if applied != nil && appliedVersion != 0 {
		if groups, ok := changedEndpointGroups(applied, desired); ok && len(groups) > 0 && len(groups) <= maxEndpointUpdates {
			msgs := make([]*rpc.ControllerMessage, 0, len(groups))
			base := appliedVersion
			for n, i := range groups {
				g := desired.GetBackendGroups()[i]
				upd := &dataplanev1.EndpointUpdate{
					BaseVersion:  base,
					Version:      next(),
					BackendGroup: g.GetName(),
					Endpoints:    g.GetEndpoints(),
				}
				if n == len(groups)-1 {
					upd.Hash = desired.GetHash()
				}
				base = upd.GetVersion()
				msgs = append(msgs, &rpc.ControllerMessage{
					Message: &rpc.ControllerMessage_EndpointUpdate{EndpointUpdate: upd},
				})
			}
			return msgs
		}
	}
	full := dataplanev1.ShallowCopy(desired)
	full.Version = next()
	return []*rpc.ControllerMessage{{Message: &rpc.ControllerMessage_Snapshot{Snapshot: full}}}
}
