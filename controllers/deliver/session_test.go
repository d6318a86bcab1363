package deliver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
	"github.com/flaxlb/flax/dataplane/snapshot"
	"github.com/flaxlb/flax/test/poll"
)

// The tests in this file drive a Delivery against the real snapshot server on a
// unix socket, without an API server; controllers' envtest tests run it inside
// the whole controller.

// deliverySetup starts a snapshot server with dp and a Delivery to it.
func deliverySetup(t *testing.T, dp *fakedataplane.Dataplane) (*deliver.Delivery, *snapshot.Server) {
	t.Helper()
	dir, err := os.MkdirTemp("", "flax-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "dp.sock")
	ctx, cancel := context.WithCancel(context.Background())
	srv := snapshot.NewServer(dp, snapshot.ServerOptions{NodeName: "node", Log: logr.Discard()})
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx, sock) }()
	d := deliver.New(deliver.Options{Socket: sock, NodeName: "node", Log: logr.Discard()})
	dDone := make(chan error, 1)
	go func() { dDone <- d.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-dDone; err != nil {
			t.Errorf("delivery: %v", err)
		}
		if err := <-srvDone; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return d, srv
}

// validSnapshot returns a snapshot the server accepts: one HTTP listener routing to
// group "ns/echo:80" with the given endpoint addresses.
func validSnapshot(port uint32, addresses ...string) *dataplanev1.Snapshot {
	g := &dataplanev1.BackendGroup{Name: "ns/echo:80"}
	for _, a := range addresses {
		g.Endpoints = append(g.Endpoints, &dataplanev1.Endpoint{Address: a, Port: 8080})
	}
	snap := &dataplanev1.Snapshot{
		Listeners: []*dataplanev1.Listener{{
			Name: "ns/web/80", Port: port, Protocol: dataplanev1.Listener_HTTP,
			VirtualHosts: []*dataplanev1.VirtualHost{{Name: "*", Routes: []*dataplanev1.Route{{
				Name:     "ns/route/rule-0",
				Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: g.Name}, Weight: 1}},
			}}}},
		}},
		BackendGroups: []*dataplanev1.BackendGroup{g},
	}
	snap.Hash = dataplanev1.Hash(snap)
	return snap
}

// runsHash waits until dp runs the snapshot of hash.
func runsHash(t *testing.T, dp *fakedataplane.Dataplane, hash string) {
	t.Helper()
	eventually(t, 10*time.Second, "dataplane runs "+hash[:8], func() error {
		if got := dp.Running().GetHash(); got != hash {
			return fmt.Errorf("dataplane runs %q", got)
		}
		return nil
	})
}

// TestDeliveryFullSnapshotRequired moves the dataplane to another version behind
// the delivery's back (as another controller would); the next EndpointUpdate no
// longer fits, the dataplane answers FULL_SNAPSHOT_REQUIRED, and the delivery sends
// the full snapshot.
func TestDeliveryFullSnapshotRequired(t *testing.T) {
	dp := &fakedataplane.Dataplane{}
	d, srv := deliverySetup(t, dp)
	first := validSnapshot(80, "10.0.0.1")
	d.Publish(first, time.Time{})
	runsHash(t, dp, first.GetHash())

	other := proto.CloneOf(first)
	other.Version = 1
	if reply := srv.Handle(context.Background(), &rpc.ControllerMessage{
		Message: &rpc.ControllerMessage_Snapshot{Snapshot: other},
	}); reply.GetAck() == nil {
		t.Fatalf("out-of-band snapshot not acknowledged: %v", reply)
	}

	second := validSnapshot(80, "10.0.0.1", "10.0.0.2")
	d.Publish(second, time.Now())
	runsHash(t, dp, second.GetHash())
	if full, updates := dp.Counts(); full != 2 || updates != 0 {
		t.Errorf("%d full snapshots and %d endpoint updates applied, want 2 and 0 (the update was refused)", full, updates)
	}
	if r := d.Result(); r.Rejection != nil || !r.InSync || r.AppliedHash != second.GetHash() {
		t.Errorf("result %+v, want in sync at %s without rejection", r, second.GetHash())
	}

	// A later endpoint change takes the fast path again.
	third := validSnapshot(80, "10.0.0.2")
	d.Publish(third, time.Now())
	runsHash(t, dp, third.GetHash())
	if full, updates := dp.Counts(); full != 2 || updates != 1 {
		t.Errorf("%d full snapshots and %d endpoint updates applied, want 2 and 1", full, updates)
	}
}

// TestDeliveryInvalidSnapshot sends a snapshot the dataplane's validation rejects:
// the rejection is recorded with the dataplane's reason, the last good snapshot
// stays in effect, and the next valid snapshot clears the rejection.
func TestDeliveryInvalidSnapshot(t *testing.T) {
	dp := &fakedataplane.Dataplane{}
	d, _ := deliverySetup(t, dp)
	good := validSnapshot(80, "10.0.0.1")
	d.Publish(good, time.Time{})
	runsHash(t, dp, good.GetHash())

	bad := validSnapshot(0, "10.0.0.1") // port 0 is invalid
	d.Publish(bad, time.Time{})
	eventually(t, 10*time.Second, "rejection recorded", func() error {
		r := d.Result()
		if r.Rejection == nil {
			return fmt.Errorf("no rejection in %+v", r)
		}
		if r.Rejection.Code != rpc.Nack_INVALID || !strings.Contains(r.Rejection.Reason, "port") {
			return fmt.Errorf("rejection %+v, want INVALID naming the port", r.Rejection)
		}
		return nil
	})
	if got := dp.Running().GetHash(); got != good.GetHash() {
		t.Errorf("dataplane runs %s after a rejection, want the last good %s", got, good.GetHash())
	}

	fixed := validSnapshot(81, "10.0.0.1")
	d.Publish(fixed, time.Time{})
	runsHash(t, dp, fixed.GetHash())
	eventually(t, 5*time.Second, "rejection cleared", func() error {
		if r := d.Result(); r.Rejection != nil || !r.InSync {
			return fmt.Errorf("result %+v", r)
		}
		return nil
	})
}

// eventually polls check every 20ms until it returns nil (poll.Eventually).
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	poll.Eventually(t, timeout, 20*time.Millisecond, what, check)
}
