package compiled

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/metrics"
)

func TestCompileResilienceDefaults(t *testing.T) {
	reg := metrics.NewRegistry(1)
	snap := &dataplanev1.Snapshot{BackendGroups: []*dataplanev1.BackendGroup{
		{
			Name:             "a",
			HealthCheck:      &dataplanev1.HealthCheck{Interval: durationpb.New(2 * time.Second)},
			OutlierDetection: &dataplanev1.OutlierDetection{ConsecutiveServerErrors: 5},
			CircuitBreakers:  &dataplanev1.CircuitBreakers{MaxConnections: 3, MaxRetries: 2},
		},
		{Name: "b", OutlierDetection: &dataplanev1.OutlierDetection{}}, // nothing enabled
	}}
	c, err := Compile(snap, reg)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Group("a")
	hc := a.HealthCheck
	if hc == nil || hc.Path != "/" || hc.Interval != 2*time.Second || hc.Timeout != dataplanev1.DefaultHealthTimeout ||
		hc.HealthyThreshold != dataplanev1.DefaultHealthyThreshold || hc.UnhealthyThreshold != dataplanev1.DefaultUnhealthyThreshold ||
		!hc.Expects(200) || !hc.Expects(299) || hc.Expects(300) {
		t.Fatalf("health check %+v", hc)
	}
	od := a.Outlier
	if od == nil || od.BaseEjectionTime != dataplanev1.DefaultBaseEjectionTime || od.MaxEjectionPercent != dataplanev1.DefaultMaxEjectionPercent || od.MaxEjectionTime != dataplanev1.DefaultMaxEjectionTime {
		t.Fatalf("outlier detection %+v", od)
	}
	if a.Breakers != (CircuitBreakers{MaxConnections: 3, MaxRetries: 2}) {
		t.Fatalf("breakers %+v", a.Breakers)
	}
	if a.Shared == nil || a.Shared != reg.Shared(a.Stats) {
		t.Fatal("group without its shared state")
	}
	if b := c.Group("b"); b.Outlier != nil || b.HealthCheck != nil || b.Breakers != (CircuitBreakers{}) {
		t.Fatalf("group b: %+v %+v %+v", b.Outlier, b.HealthCheck, b.Breakers)
	}
	// Health is only used for the endpoint set it was computed for.
	eps := a.Endpoints()
	a.SetHealth(&EndpointHealth{Endpoints: eps, Unhealthy: []uint64{1}})
	if a.Unhealthy(eps) == nil {
		t.Fatal("published health not returned")
	}
	called := 0
	a.SetEndpointsHook(func(*balancer.Group) { called++ })
	if err := c.UpdateEndpoints("a", []*dataplanev1.Endpoint{{Address: "10.0.0.1", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	if called != 1 || a.Unhealthy(a.Endpoints()) != nil {
		t.Fatalf("hook called %d times; stale health used: %v", called, a.Unhealthy(a.Endpoints()))
	}
}

// A failed connect marks one endpoint of the group's current set until a new
// connection to it succeeds; marks belong to that set, and a failure reported on
// a set the group replaced is dropped.
func TestConnectFailureMarks(t *testing.T) {
	c, _ := compile(t, snap)
	g := c.Group("api")
	old := g.Endpoints()
	if g.AnyConnectFailed(old) || g.RecentlyFailed(old, 0) {
		t.Fatal("marks before any failure")
	}
	g.ConnectFailed(old, 1)
	if !g.AnyConnectFailed(old) || !g.RecentlyFailed(old, 1) || g.RecentlyFailed(old, 0) {
		t.Fatal("endpoint 1 not marked alone")
	}
	g.ConnectFailed(old, 7) // out of range: ignored
	g.ConnectSucceeded(old, 1)
	if g.RecentlyFailed(old, 1) {
		t.Fatal("a successful connect left the mark")
	}
	g.ConnectFailed(old, 0)
	if err := c.UpdateEndpoints("api", []*dataplanev1.Endpoint{{Address: "10.0.0.7", Port: 80}, {Address: "10.0.0.8", Port: 80}}); err != nil {
		t.Fatal(err)
	}
	cur := g.Endpoints()
	if g.AnyConnectFailed(cur) || g.RecentlyFailed(cur, 0) {
		t.Fatal("marks carried over to a new endpoint set")
	}
	g.ConnectFailed(cur, 1)
	g.ConnectFailed(old, 0) // a request picked before the update
	if !g.RecentlyFailed(cur, 1) || g.RecentlyFailed(cur, 0) || g.RecentlyFailed(old, 0) {
		t.Fatal("a failure on the replaced set changed the marks")
	}
}
