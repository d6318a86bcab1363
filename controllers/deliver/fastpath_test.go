package deliver

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// testSnapshot returns a snapshot with one HTTP listener and one backend group per
// name, each with one endpoint, its hash set.
func testSnapshot(groups ...string) *dataplanev1.Snapshot {
	snap := &dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{{
		Name: "ns/gw/80", Port: 80, Protocol: dataplanev1.Listener_HTTP,
		VirtualHosts: []*dataplanev1.VirtualHost{{Name: "*", Routes: []*dataplanev1.Route{{
			Name:     "ns/route/rule-0",
			Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: groups[0]}, Weight: 1}},
		}}}},
	}}}
	for i, g := range groups {
		snap.BackendGroups = append(snap.BackendGroups, &dataplanev1.BackendGroup{
			Name:      g,
			Endpoints: []*dataplanev1.Endpoint{{Address: "10.0.0." + string(rune('1'+i)), Port: 8080}},
		})
	}
	snap.Hash = dataplanev1.Hash(snap)
	return snap
}

// rehash returns snap with its hash recomputed.
func rehash(snap *dataplanev1.Snapshot) *dataplanev1.Snapshot {
	snap.Hash = dataplanev1.Hash(snap)
	return snap
}

func TestChangedEndpointGroups(t *testing.T) {
	base := testSnapshot("ns/a:80", "ns/b:80", "ns/c:80")
	tests := []struct {
		name       string
		edit       func(s *dataplanev1.Snapshot)
		wantOK     bool
		wantGroups []int
	}{
		{name: "same content", edit: func(*dataplanev1.Snapshot) {}, wantOK: true},
		{name: "version and hash ignored", edit: func(s *dataplanev1.Snapshot) { s.Version, s.Hash = 42, "x" }, wantOK: true},
		{name: "one group's endpoints", wantOK: true, wantGroups: []int{1}, edit: func(s *dataplanev1.Snapshot) {
			s.BackendGroups[1].Endpoints = append(s.BackendGroups[1].Endpoints, &dataplanev1.Endpoint{Address: "10.9.9.9", Port: 8080})
		}},
		{name: "two groups, one emptied", wantOK: true, wantGroups: []int{0, 2}, edit: func(s *dataplanev1.Snapshot) {
			s.BackendGroups[0].Endpoints = nil
			s.BackendGroups[2].Endpoints[0].Conditions = &dataplanev1.EndpointConditions{Serving: true, Terminating: true}
		}},
		{name: "listener port", edit: func(s *dataplanev1.Snapshot) { s.Listeners[0].Port = 81 }},
		{name: "route", edit: func(s *dataplanev1.Snapshot) { s.Listeners[0].VirtualHosts[0].Routes[0].Name = "other" }},
		{name: "group added", edit: func(s *dataplanev1.Snapshot) {
			s.BackendGroups = append(s.BackendGroups, &dataplanev1.BackendGroup{Name: "ns/d:80"})
		}},
		{name: "group renamed", edit: func(s *dataplanev1.Snapshot) { s.BackendGroups[2].Name = "ns/z:80" }},
		{name: "group setting and endpoints", edit: func(s *dataplanev1.Snapshot) {
			s.BackendGroups[1].LoadBalancing = &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_RANDOM}
			s.BackendGroups[1].Endpoints = nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := proto.CloneOf(base)
			tt.edit(next)
			groups, ok := changedEndpointGroups(base, next)
			if ok != tt.wantOK || !slices.Equal(groups, tt.wantGroups) {
				t.Errorf("changedEndpointGroups = %v, %v; want %v, %v", groups, ok, tt.wantGroups, tt.wantOK)
			}
		})
	}
	if !proto.Equal(base, testSnapshot("ns/a:80", "ns/b:80", "ns/c:80")) {
		t.Error("changedEndpointGroups modified its input")
	}
}

// versions returns a version allocator counting up from start.
func versions(start uint64) func() uint64 {
	v := start
	return func() uint64 { v++; return v }
}

func TestPlanMessages(t *testing.T) {
	applied := testSnapshot("ns/a:80", "ns/b:80", "ns/c:80")

	t.Run("unknown base sends a full snapshot", func(t *testing.T) {
		msgs := planMessages(nil, 0, applied, versions(100))
		if len(msgs) != 1 || msgs[0].GetSnapshot() == nil {
			t.Fatalf("got %v, want one full snapshot", msgs)
		}
		if got := msgs[0].GetSnapshot(); got.GetVersion() != 101 || got.GetHash() != applied.GetHash() {
			t.Errorf("snapshot version %d hash %s, want 101 and %s", got.GetVersion(), got.GetHash(), applied.GetHash())
		}
		if applied.GetVersion() != 0 {
			t.Error("planMessages set the version of the desired snapshot itself")
		}
	})

	t.Run("endpoint changes chain one update per group", func(t *testing.T) {
		desired := proto.CloneOf(applied)
		desired.BackendGroups[0].Endpoints = nil
		desired.BackendGroups[2].Endpoints = append(desired.BackendGroups[2].Endpoints, &dataplanev1.Endpoint{Address: "10.1.1.1", Port: 1})
		rehash(desired)
		msgs := planMessages(applied, 7, desired, versions(100))
		if len(msgs) != 2 {
			t.Fatalf("got %d messages, want 2 endpoint updates", len(msgs))
		}
		u0, u1 := msgs[0].GetEndpointUpdate(), msgs[1].GetEndpointUpdate()
		if u0 == nil || u1 == nil {
			t.Fatalf("got %v, want endpoint updates", msgs)
		}
		if u0.GetBaseVersion() != 7 || u0.GetVersion() != 101 || u1.GetBaseVersion() != 101 || u1.GetVersion() != 102 {
			t.Errorf("versions %d→%d, %d→%d; want 7→101, 101→102", u0.GetBaseVersion(), u0.GetVersion(), u1.GetBaseVersion(), u1.GetVersion())
		}
		if u0.GetBackendGroup() != "ns/a:80" || u1.GetBackendGroup() != "ns/c:80" {
			t.Errorf("groups %q, %q", u0.GetBackendGroup(), u1.GetBackendGroup())
		}
		if u0.GetHash() != "" || u1.GetHash() != desired.GetHash() {
			t.Errorf("hashes %q, %q; want only the last one set to %s", u0.GetHash(), u1.GetHash(), desired.GetHash())
		}
		// The dataplane, applying the chain, ends with exactly the desired content.
		cur := proto.CloneOf(applied)
		cur.Version = 7
		for _, m := range msgs {
			next, err := dataplanev1.ApplyEndpointUpdate(cur, m.GetEndpointUpdate())
			if err != nil {
				t.Fatalf("ApplyEndpointUpdate: %v", err)
			}
			cur = next
		}
		if cur.GetHash() != desired.GetHash() {
			t.Errorf("chain ends at hash %s, want %s", cur.GetHash(), desired.GetHash())
		}
	})

	t.Run("other changes send a full snapshot", func(t *testing.T) {
		desired := proto.CloneOf(applied)
		desired.Listeners[0].Port = 8080
		desired.BackendGroups[0].Endpoints = nil
		rehash(desired)
		msgs := planMessages(applied, 7, desired, versions(100))
		if len(msgs) != 1 || msgs[0].GetSnapshot().GetVersion() != 101 {
			t.Fatalf("got %v, want one full snapshot of version 101", msgs)
		}
	})

	t.Run("too many changed groups send a full snapshot", func(t *testing.T) {
		names := make([]string, maxEndpointUpdates+1)
		for i := range names {
			names[i] = "ns/g" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ":80"
		}
		slices.Sort(names)
		base := testSnapshot(names...)
		desired := proto.CloneOf(base)
		for _, g := range desired.BackendGroups {
			g.Endpoints = nil
		}
		rehash(desired)
		msgs := planMessages(base, 7, desired, versions(100))
		if len(msgs) != 1 || msgs[0].GetSnapshot() == nil {
			t.Fatalf("got %d messages, want one full snapshot", len(msgs))
		}
	})
}
