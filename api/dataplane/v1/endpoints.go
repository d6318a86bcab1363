package dataplanev1

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
)

// Errors of ApplyEndpointUpdate that mean the update does not fit the base
// snapshot, so the controller should send a full snapshot instead. Test for them
// with errors.Is.
var (
	// ErrBaseVersionMismatch: the update's base version is not the base
	// snapshot's version.
	ErrBaseVersionMismatch = errors.New("endpoint update does not apply to this snapshot version")
	// ErrUnknownBackendGroup: the base snapshot has no backend group of the
	// update's name.
	ErrUnknownBackendGroup = errors.New("backend group does not exist")
	// ErrHashMismatch: the result's hash is not the hash the update expects.
	ErrHashMismatch = errors.New("hash does not match")
)

// ApplyEndpointUpdate returns the snapshot that results from replacing the
// endpoints of backend group upd.BackendGroup of base with upd.Endpoints: it has
// version upd.Version and its Hash computed. The new endpoints are validated; the
// rest of base is assumed valid. base and upd are not modified; the result shares
// every sub-message except the updated group with base (and copies the endpoints
// of upd), so neither may be modified afterwards.
func ApplyEndpointUpdate(base *Snapshot, upd *EndpointUpdate) (*Snapshot, error) {
	if base == nil {
		return nil, errors.New("applying endpoint update: base snapshot is nil")
	}
	if upd == nil {
		return nil, errors.New("applying endpoint update: update is nil")
	}
	if upd.GetBaseVersion() != base.GetVersion() {
		return nil, fmt.Errorf("%w: the update is for version %d, the snapshot is version %d",
			ErrBaseVersionMismatch, upd.GetBaseVersion(), base.GetVersion())
	}
	if upd.GetVersion() <= upd.GetBaseVersion() {
		return nil, fmt.Errorf("applying endpoint update: version %d must be greater than base version %d",
			upd.GetVersion(), upd.GetBaseVersion())
	}
	idx := slices.IndexFunc(base.GetBackendGroups(), func(g *BackendGroup) bool {
		return g.GetName() == upd.GetBackendGroup()
	})
	if idx < 0 {
		return nil, fmt.Errorf("applying endpoint update: %w: %q in snapshot version %d",
			ErrUnknownBackendGroup, upd.GetBackendGroup(), base.GetVersion())
	}
	endpoints := make([]*Endpoint, len(upd.GetEndpoints()))
	for i, e := range upd.GetEndpoints() {
		endpoints[i] = proto.CloneOf(e)
	}
	if err := validateEndpoints(idx, endpoints); err != nil {
		return nil, fmt.Errorf("applying endpoint update to backend group %q: %w", upd.GetBackendGroup(), err)
	}

	group := ShallowCopy(base.GetBackendGroups()[idx])
	group.Endpoints = endpoints
	next := ShallowCopy(base)
	next.BackendGroups = slices.Clone(base.GetBackendGroups())
	next.BackendGroups[idx] = group
	next.Version = upd.GetVersion()
	hash, err := computeHash(next)
	if err != nil {
		return nil, fmt.Errorf("applying endpoint update: %w", err)
	}
	next.Hash = hash
	if upd.GetHash() != "" && upd.GetHash() != hash {
		return nil, fmt.Errorf("applying endpoint update: %w: the update expects %s, the result is %s",
			ErrHashMismatch, upd.GetHash(), hash)
	}
	return next, nil
}

// ValidateGroupEndpoints validates the endpoints of the backend group named group
// in snap, the only part an endpoint-only update changes: the checks Validate makes
// on them (addresses, ports, weights, no endpoint twice). It fails when snap has no
// such group.
func ValidateGroupEndpoints(snap *Snapshot, group string) error {
	idx := slices.IndexFunc(snap.GetBackendGroups(), func(g *BackendGroup) bool { return g.GetName() == group })
	if idx < 0 {
		return fmt.Errorf("%w: %q", ErrUnknownBackendGroup, group)
	}
	return validateEndpoints(idx, snap.GetBackendGroups()[idx].GetEndpoints())
}
