package snapshot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// fakeApplier records what it is asked to apply and fails when told to.
type fakeApplier struct {
	mu             sync.Mutex
	applied        []*dataplanev1.Snapshot
	endpointGroups []string
	applyErr       error
	endpointsErr   error
}

// Apply records snap and reports every listener bound, except those on port 1.
func (a *fakeApplier) Apply(_ context.Context, snap *dataplanev1.Snapshot) ([]*rpc.ListenerStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.applyErr != nil {
		return nil, a.applyErr
	}
	a.applied = append(a.applied, snap)
	var statuses []*rpc.ListenerStatus
	for _, l := range snap.GetListeners() {
		st := &rpc.ListenerStatus{Name: l.GetName(), Address: l.GetAddress(), Port: l.GetPort(), Bound: true}
		if l.GetPort() == 1 {
			st.Bound, st.Error = false, "permission denied"
		}
		statuses = append(statuses, st)
	}
	return statuses, nil
}

// ApplyEndpoints records group and snap.
func (a *fakeApplier) ApplyEndpoints(_ context.Context, group string, snap *dataplanev1.Snapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.endpointsErr != nil {
		return a.endpointsErr
	}
	a.applied = append(a.applied, snap)
	a.endpointGroups = append(a.endpointGroups, group)
	return nil
}

// setErrors sets the errors Apply and ApplyEndpoints return.
func (a *fakeApplier) setErrors(apply, endpoints error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applyErr, a.endpointsErr = apply, endpoints
}

// count returns how many snapshots were applied.
func (a *fakeApplier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.applied)
}

// last returns the last snapshot applied, or nil.
func (a *fakeApplier) last() *dataplanev1.Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.applied) == 0 {
		return nil
	}
	return a.applied[len(a.applied)-1]
}

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

// logger returns a logger writing to the sink, at all verbosities.
func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
}

// contains returns how many lines contain all of subs.
func (s *logSink) count(subs ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
next:
	for _, l := range s.lines {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue next
			}
		}
		n++
	}
	return n
}

// String returns all lines.
func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clone returns a deep copy of snap.
func clone(snap *dataplanev1.Snapshot) *dataplanev1.Snapshot { return proto.CloneOf(snap) }
