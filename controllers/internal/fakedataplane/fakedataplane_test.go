package fakedataplane

import (
	"context"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// TestDataplane checks what the controller's tests rely on: refusals, unbound
// listeners, counts, and Hold.
func TestDataplane(t *testing.T) {
	ctx := context.Background()
	snap := func(port uint32) *dataplanev1.Snapshot {
		return &dataplanev1.Snapshot{
			Listeners:     []*dataplanev1.Listener{{Name: "l", Port: port}},
			BackendGroups: []*dataplanev1.BackendGroup{{Name: "g", Endpoints: []*dataplanev1.Endpoint{{Address: "10.0.0.1"}}}},
		}
	}
	var f Dataplane
	f.Set(81, map[uint32]string{80: "in use"})
	if _, err := f.Apply(ctx, snap(81)); err == nil {
		t.Error("a snapshot on the refused port was applied")
	}
	st, err := f.Apply(ctx, snap(80))
	if err != nil || len(st) != 1 || st[0].GetBound() || st[0].GetError() != "in use" {
		t.Errorf("Apply = %v, %v; want one unbound listener", st, err)
	}
	if err := f.ApplyEndpoints(ctx, "g", snap(80)); err != nil {
		t.Fatal(err)
	}
	if full, updates := f.Counts(); full != 1 || updates != 1 {
		t.Errorf("counts %d, %d; want 1, 1", full, updates)
	}
	if u, ok := f.LastUpdate(); !ok || u.Group != "g" || u.Endpoints != 1 {
		t.Errorf("last update %+v, %v", u, ok)
	}

	release := f.Hold()
	done := make(chan error, 1)
	go func() { _, err := f.Apply(ctx, snap(82)); done <- err }()
	select {
	case <-done:
		t.Fatal("Apply returned while held")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil || f.Running().GetListeners()[0].GetPort() != 82 {
		t.Errorf("after release: %v, running %v", err, f.Running())
	}
}
