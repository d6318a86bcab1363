package snapshot

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine"
)

// engineFake reports one bound and one unbound listener.
type engineFake struct{ group string }

func (engineFake) Apply(context.Context, *dataplanev1.Snapshot) ([]engine.ListenerStatus, error) {
	return []engine.ListenerStatus{
		{Name: "web", Addr: netip.MustParseAddrPort("127.0.0.1:8003"), Bound: true},
		{Name: "dup", Addr: netip.MustParseAddrPort("[::1]:8004"), Err: errors.New("address in use")},
	}, nil
}

func (e *engineFake) ApplyEndpoints(_ context.Context, group string, _ *dataplanev1.Snapshot) error {
	e.group = group
	return nil
}

func TestAdapt(t *testing.T) {
	e := &engineFake{}
	a := Adapt(e)
	st, err := a.Apply(context.Background(), &dataplanev1.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || !st[0].GetBound() || st[0].GetPort() != 8003 || st[0].GetAddress() != "127.0.0.1" {
		t.Errorf("statuses = %v", st)
	}
	if st[1].GetBound() || st[1].GetError() != "address in use" || st[1].GetAddress() != "::1" {
		t.Errorf("unbound status = %v", st[1])
	}
	if err := a.ApplyEndpoints(context.Background(), "be", nil); err != nil || e.group != "be" {
		t.Errorf("ApplyEndpoints reached group %q, err %v", e.group, err)
	}
}
