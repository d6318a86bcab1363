package dataplanev1_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// appliedSnapshot returns validSnapshot with its hash set, as a Server keeps it.
func appliedSnapshot(t *testing.T) *dataplanev1.Snapshot {
	s := validSnapshot(t)
	s.Hash = dataplanev1.Hash(s)
	return s
}

func TestApplyEndpointUpdate(t *testing.T) {
	base := appliedSnapshot(t)
	before := clone(base)
	upd := &dataplanev1.EndpointUpdate{
		BaseVersion:  7,
		Version:      8,
		BackendGroup: "api",
		Endpoints: []*dataplanev1.Endpoint{
			{Address: "fd00::2", Port: 9000, Weight: 1, Conditions: &dataplanev1.EndpointConditions{Ready: true, Serving: true}},
			{Address: "fd00::3", Port: 9000},
		},
	}
	next, err := dataplanev1.ApplyEndpointUpdate(base, upd)
	if err != nil {
		t.Fatalf("ApplyEndpointUpdate: %v", err)
	}
	if !proto.Equal(base, before) {
		t.Fatal("ApplyEndpointUpdate modified the base snapshot")
	}
	if next.GetVersion() != 8 {
		t.Errorf("version = %d, want 8", next.GetVersion())
	}
	if next.GetHash() != dataplanev1.Hash(next) || next.GetHash() == base.GetHash() {
		t.Errorf("hash = %s, want the new content's hash %s (base %s)", next.GetHash(), dataplanev1.Hash(next), base.GetHash())
	}
	if err := dataplanev1.Validate(next); err != nil {
		t.Errorf("Validate(result) = %v", err)
	}
	if got := next.GetBackendGroups()[1].GetEndpoints(); len(got) != 2 || !proto.Equal(got[0], upd.Endpoints[0]) || !proto.Equal(got[1], upd.Endpoints[1]) {
		t.Errorf("endpoints = %v, want %v", got, upd.Endpoints)
	}
	// Everything else is unchanged: the result equals the base with the endpoints
	// replaced by hand.
	want := clone(base)
	want.Version, want.Hash = 8, next.GetHash()
	want.BackendGroups[1].Endpoints = upd.Endpoints
	if !proto.Equal(next, want) {
		t.Errorf("result differs from base beyond the endpoints:\n%s", cmpDiff(want, next))
	}
	// The update's endpoints were copied, so changing the update later does not
	// change the result.
	upd.Endpoints[0].Port = 1
	if next.GetBackendGroups()[1].GetEndpoints()[0].GetPort() != 9000 {
		t.Error("result shares endpoints with the update")
	}

	// An update may remove all endpoints, and chain on the previous result.
	next2, err := dataplanev1.ApplyEndpointUpdate(next, &dataplanev1.EndpointUpdate{BaseVersion: 8, Version: 9, BackendGroup: "web"})
	if err != nil {
		t.Fatalf("second ApplyEndpointUpdate: %v", err)
	}
	if len(next2.GetBackendGroups()[0].GetEndpoints()) != 0 || len(next.GetBackendGroups()[0].GetEndpoints()) != 2 {
		t.Error("second update did not empty group web, or changed its base")
	}

	// The expected hash, when given, must match.
	expected := clone(next2)
	expected.BackendGroups[0].Endpoints = before.BackendGroups[0].Endpoints
	upd3 := &dataplanev1.EndpointUpdate{
		BaseVersion: 9, Version: 10, BackendGroup: "web",
		Endpoints: before.BackendGroups[0].Endpoints, Hash: dataplanev1.Hash(expected),
	}
	if next3, err := dataplanev1.ApplyEndpointUpdate(next2, upd3); err != nil {
		t.Errorf("update with the right expected hash: %v", err)
	} else if next3.GetHash() != upd3.Hash {
		t.Errorf("hash = %s, want %s", next3.GetHash(), upd3.Hash)
	}
}

func TestApplyEndpointUpdateErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		upd     *dataplanev1.EndpointUpdate
		wantErr error
		want    string
	}{
		{
			"base version mismatch", &dataplanev1.EndpointUpdate{BaseVersion: 6, Version: 8, BackendGroup: "api"},
			dataplanev1.ErrBaseVersionMismatch, "the update is for version 6, the snapshot is version 7",
		},
		{
			"version not newer", &dataplanev1.EndpointUpdate{BaseVersion: 7, Version: 7, BackendGroup: "api"},
			nil, "version 7 must be greater than base version 7",
		},
		{
			"unknown group", &dataplanev1.EndpointUpdate{BaseVersion: 7, Version: 8, BackendGroup: "nope"},
			dataplanev1.ErrUnknownBackendGroup, `"nope"`,
		},
		{
			"invalid endpoint", &dataplanev1.EndpointUpdate{
				BaseVersion: 7, Version: 8, BackendGroup: "api",
				Endpoints: []*dataplanev1.Endpoint{{Address: "fd00::1", Port: 1}, {Address: "api-0", Port: 1}},
			},
			nil, "backendGroups[1].endpoints[1].address: must be an IPv4 or IPv6 address",
		},
		{
			"duplicate endpoint", &dataplanev1.EndpointUpdate{
				BaseVersion: 7, Version: 8, BackendGroup: "api",
				Endpoints: []*dataplanev1.Endpoint{{Address: "fd00::1", Port: 1}, {Address: "fd00::1", Port: 1}},
			},
			nil, "backendGroups[1].endpoints[1]: duplicate endpoint",
		},
		{
			"hash mismatch", &dataplanev1.EndpointUpdate{BaseVersion: 7, Version: 8, BackendGroup: "api", Hash: "abc"},
			dataplanev1.ErrHashMismatch, "the update expects abc",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := appliedSnapshot(t)
			before := clone(base)
			next, err := dataplanev1.ApplyEndpointUpdate(base, tc.upd)
			if err == nil {
				t.Fatalf("ApplyEndpointUpdate succeeded with %v", next)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !proto.Equal(base, before) {
				t.Error("failed update modified the base snapshot")
			}
		})
	}
	if _, err := dataplanev1.ApplyEndpointUpdate(nil, &dataplanev1.EndpointUpdate{}); err == nil {
		t.Error("nil base accepted")
	}
	if _, err := dataplanev1.ApplyEndpointUpdate(appliedSnapshot(t), nil); err == nil {
		t.Error("nil update accepted")
	}
}

func TestValidateGroupEndpoints(t *testing.T) {
	s := appliedSnapshot(t)
	if err := dataplanev1.ValidateGroupEndpoints(s, "api"); err != nil {
		t.Fatalf("valid group: %v", err)
	}
	if err := dataplanev1.ValidateGroupEndpoints(s, "nope"); !errors.Is(err, dataplanev1.ErrUnknownBackendGroup) {
		t.Errorf("unknown group: err = %v", err)
	}
	g := s.GetBackendGroups()[slices.IndexFunc(s.GetBackendGroups(), func(g *dataplanev1.BackendGroup) bool { return g.GetName() == "api" })]
	g.Endpoints = append(g.Endpoints, proto.CloneOf(g.Endpoints[0]))
	if err := dataplanev1.ValidateGroupEndpoints(s, "api"); err == nil || !strings.Contains(err.Error(), "duplicate endpoint") {
		t.Errorf("duplicate endpoint: err = %v", err)
	}
}
