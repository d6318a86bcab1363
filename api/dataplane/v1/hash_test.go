package dataplanev1_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

func TestHashEmpty(t *testing.T) {
	// An empty snapshot serializes to no bytes at all.
	sum := sha256.Sum256(nil)
	want := hex.EncodeToString(sum[:])
	for _, s := range []*dataplanev1.Snapshot{nil, {}, {Version: 9, Hash: "x"}} {
		if got := dataplanev1.Hash(s); got != want {
			t.Errorf("Hash(%v) = %s, want %s", s, got, want)
		}
	}
}

func TestHashDeterministic(t *testing.T) {
	s := validSnapshot(t)
	h := dataplanev1.Hash(s)
	if len(h) != 64 {
		t.Fatalf("Hash = %q, want 64 hex digits", h)
	}
	for i := 0; i < 20; i++ {
		if got := dataplanev1.Hash(s); got != h {
			t.Fatalf("Hash changed between calls: %s then %s", h, got)
		}
	}
	if got := dataplanev1.Hash(clone(s)); got != h {
		t.Errorf("Hash(clone) = %s, want %s", got, h)
	}
	// A snapshot built separately, and one that went through YAML, hash the same.
	if got := dataplanev1.Hash(validSnapshot(t)); got != h {
		t.Errorf("Hash(rebuilt) = %s, want %s", got, h)
	}
	y, err := dataplanev1.MarshalYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := dataplanev1.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	if got := dataplanev1.Hash(parsed); got != h {
		t.Errorf("Hash(after YAML round trip) = %s, want %s", got, h)
	}
	// Version and hash are not part of the content.
	other := clone(s)
	other.Version, other.Hash = 12345, "whatever"
	if got := dataplanev1.Hash(other); got != h {
		t.Errorf("Hash with another version/hash = %s, want %s", got, h)
	}
	// dataplanev1.Hash does not modify its argument.
	if s.Version != 7 || s.Hash != "" || !proto.Equal(s, validSnapshot(t)) {
		t.Errorf("Hash modified its argument")
	}
}

func TestHashSensitive(t *testing.T) {
	base := dataplanev1.Hash(validSnapshot(t))
	seen := map[string]string{base: "base"}
	for name, mutate := range map[string]func(s *dataplanev1.Snapshot){
		"listener port":  func(s *dataplanev1.Snapshot) { s.Listeners[0].Port++ },
		"listener order": func(s *dataplanev1.Snapshot) { s.Listeners[0], s.Listeners[1] = s.Listeners[1], s.Listeners[0] },
		"hostname":       func(s *dataplanev1.Snapshot) { s.Listeners[0].VirtualHosts[1].Hostnames[0] = "old.example.com" },
		"route weight":   func(s *dataplanev1.Snapshot) { s.Listeners[0].VirtualHosts[0].Routes[1].Backends[0].Weight++ },
		"header value": func(s *dataplanev1.Snapshot) {
			s.Listeners[0].VirtualHosts[0].Routes[1].Matches[0].Headers[0].Value = "dev"
		},
		"endpoint added": func(s *dataplanev1.Snapshot) {
			s.BackendGroups[3].Endpoints = []*dataplanev1.Endpoint{{Address: "10.1.1.1", Port: 5432}}
		},
		"endpoint ready":    func(s *dataplanev1.Snapshot) { s.BackendGroups[0].Endpoints[0].Conditions.Ready = false },
		"certificate bytes": func(s *dataplanev1.Snapshot) { s.Listeners[1].Certificates[1].KeyPem = append([]byte{}, "x"...) },
		"policy": func(s *dataplanev1.Snapshot) {
			s.BackendGroups[0].LoadBalancing.Policy = dataplanev1.LoadBalancing_RANDOM
		},
		"empty message set": func(s *dataplanev1.Snapshot) { s.BackendGroups[3].CircuitBreakers = &dataplanev1.CircuitBreakers{} },
	} {
		s := validSnapshot(t)
		mutate(s)
		h := dataplanev1.Hash(s)
		if prev, dup := seen[h]; dup {
			t.Errorf("%s: hash %s equals the hash of %s", name, h, prev)
		}
		seen[h] = name
	}
}
