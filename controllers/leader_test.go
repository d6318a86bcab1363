package controllers_test

import (
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestStatusOnlyFromLeader runs the controller with leader election while another
// replica holds the lease: the local dataplane still gets its configuration, but
// no status is written until the lease is free and this replica takes it.
func TestStatusOnlyFromLeader(t *testing.T) {
	w := newWorld(t, "leader", "10.15.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)
	const leaseName = "flax-test-leader"
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: leaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("another-replica"),
			LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	w.create(lease)
	class := gatewayClass("leader", w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))
	w.create(service(w.name, "echo", 80, 8080))
	w.create(endpointSlice(w.name, "echo-1", "echo", 8080, "10.25.0.1"))
	w.create(httpRoute(w.name, "route", "web", "echo", 80))

	w.startController(func(o *ctrl.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = leaseName
		o.LeaderElectionNamespace = w.name
		o.LeaseDuration = ptr.To(3 * time.Second)
		o.RenewDeadline = ptr.To(2 * time.Second)
		o.RetryPeriod = ptr.To(200 * time.Millisecond)
	})
	eventually(t, 30*time.Second, "follower delivers to its dataplane", func() error {
		_, err := backendGroup(dp.Running(), w.name+"/echo:80")
		return err
	})
	// Give a (wrong) status write time to happen.
	time.Sleep(time.Second)
	gw, err := w.getGateway("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionUnknown, "Pending"); err != nil {
		t.Fatalf("a follower wrote Gateway status: %v", err)
	}

	if err := w.c.Delete(w.ctx, lease); err != nil {
		t.Fatalf("release the lease: %v", err)
	}
	eventually(t, 20*time.Second, "new leader writes status", func() error {
		gw, err := w.getGateway("web")
		if err != nil {
			return err
		}
		if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
			return fmt.Errorf("gateway %s: %w", gw.Name, err)
		}
		return nil
	})
	var gc gatewayv1.GatewayClass
	if err := w.c.Get(w.ctx, types.NamespacedName{Name: class.Name}, &gc); err != nil {
		t.Fatal(err)
	}
	if err := hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
		t.Errorf("gatewayclass: %v", err)
	}
}
