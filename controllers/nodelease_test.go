package controllers_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
	"github.com/flaxlb/flax/controllers/nodes"
)

// TestNodeLeases runs two nodes' controllers: node-a leads and writes status,
// node-b follows, and its dataplane cannot bind the listener's port. node-b's
// Lease carries that to the leader, whose listener condition names node-b; when
// node-b stops, its Lease expires and the condition and the addresses recover.
func TestNodeLeases(t *testing.T) {
	w := newWorld(t, "nodes", "10.16.0.1")
	nodeA, nodeB := "node-nodes", "node-nodes-b"
	const addrB = "10.16.0.2"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeB, Labels: map[string]string{"flax-test": w.name}}}
	w.create(node)
	node.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addrB}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if err := w.c.Status().Update(w.ctx, node); err != nil {
		t.Fatalf("set node status: %v", err)
	}
	class := gatewayClass("nodes", w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))

	dpA := &fakedataplane.Dataplane{}
	w.startDataplaneAt(dpA, nodeA, w.socket)
	dpB := &fakedataplane.Dataplane{}
	dpB.Set(0, map[uint32]string{8080: "address already in use"})
	socketB := filepath.Join(filepath.Dir(w.socket), "b.sock")
	w.startDataplaneAt(dpB, nodeB, socketB)

	leader := startLeadingNode(t, w, nodeA, w.socket, "flax-test-nodes")
	_, stopB := w.startNode(nodeB, socketB, func(o *controllers.Options) {
		o.NodeLeaseDuration = 2 * time.Second
		o.NodeLeaseRenewInterval = 300 * time.Millisecond
	}, leader)

	listenerProgrammed := func(status metav1.ConditionStatus, mention string) func() error {
		return func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			ls, err := listenerStatus(gw, "http")
			if err != nil {
				return err
			}
			if err := hasCondition(ls.Conditions, "Programmed", status, ""); err != nil {
				return err
			}
			c := ls.Conditions[slices.IndexFunc(ls.Conditions, func(c metav1.Condition) bool { return c.Type == "Programmed" })]
			if mention != "" && !strings.Contains(c.Message, mention) {
				return fmt.Errorf("listener Programmed message %q does not name %s", c.Message, mention)
			}
			if mention == "" && strings.Contains(c.Message, nodeB) {
				return fmt.Errorf("listener Programmed message %q still names %s", c.Message, nodeB)
			}
			return nil
		}
	}
	addresses := func(want ...string) func() error {
		return func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			var got []string
			for _, a := range gw.Status.Addresses {
				got = append(got, a.Value)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("gateway addresses %v, want %v", got, want)
			}
			return nil
		}
	}

	eventually(t, 30*time.Second, "node-b's unbound listener reaches the leader's status",
		listenerProgrammed(metav1.ConditionFalse, nodeB))
	eventually(t, 10*time.Second, "both connected nodes are Gateway addresses", addresses("10.16.0.1", addrB))
	var lease coordinationv1.Lease
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "flax-node-" + nodeB}, &lease); err != nil {
		t.Fatalf("node-b lease: %v", err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != nodeB {
		t.Errorf("node-b lease holder %q", h)
	}
	if a := lease.Annotations[nodes.ResultAnnotation]; !strings.Contains(a, "address already in use") {
		t.Errorf("node-b lease result %q lacks the bind error", a)
	}

	stopB()
	eventually(t, 30*time.Second, "node-b's lease expires and the listener recovers",
		listenerProgrammed(metav1.ConditionTrue, ""))
	eventually(t, 10*time.Second, "node-b leaves the Gateway addresses", addresses("10.16.0.1"))
}

// TestProgrammedWaitsForEveryNode runs two nodes' controllers, node-a leading. A
// route change reaches node-a's dataplane at once, while node-b's dataplane holds
// it: the Gateway the route attaches to is Programmed=False/Pending naming node-b
// (not node-a), and another Gateway stays Programmed. A node that is not Ready is
// not waited for. Once node-b's dataplane applies the change, the Gateway is
// Programmed again.
func TestProgrammedWaitsForEveryNode(t *testing.T) {
	w := newWorld(t, "lagging", "10.17.0.1")
	nodeA, nodeB := "node-lagging", "node-lagging-b"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeB, Labels: map[string]string{"flax-test": w.name}}}
	w.create(node)
	setReady := func(ready corev1.ConditionStatus) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(node), node); err != nil {
				return err
			}
			node.Status = corev1.NodeStatus{
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.17.0.2"}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "Test", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			}
			return w.c.Status().Update(w.ctx, node)
		})
		if err != nil {
			t.Fatalf("set node %s Ready=%s: %v", nodeB, ready, err)
		}
	}
	setReady(corev1.ConditionTrue)
	class := gatewayClass("lagging", w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))
	w.create(gateway(w.name, "other", class.Name, 8081))
	w.create(service(w.name, "echo", 80, 8080))
	w.create(endpointSlice(w.name, "echo-1", "echo", 8080, "10.26.0.1"))

	dpA, dpB := &fakedataplane.Dataplane{}, &fakedataplane.Dataplane{}
	w.startDataplaneAt(dpA, nodeA, w.socket)
	socketB := filepath.Join(filepath.Dir(w.socket), "b.sock")
	w.startDataplaneAt(dpB, nodeB, socketB)
	leader := startLeadingNode(t, w, nodeA, w.socket, "flax-test-lagging")
	w.startNode(nodeB, socketB, func(o *controllers.Options) {
		o.NodeLeaseDuration = 5 * time.Second
		o.NodeLeaseRenewInterval = 300 * time.Millisecond
	}, leader)

	programmed := func(name string, status metav1.ConditionStatus, reason, mention string) func() error {
		return func() error {
			gw, err := w.getGateway(name)
			if err != nil {
				return err
			}
			if err := hasCondition(gw.Status.Conditions, "Programmed", status, reason); err != nil {
				return fmt.Errorf("gateway %s: %w", name, err)
			}
			c := gw.Status.Conditions[slices.IndexFunc(gw.Status.Conditions, func(c metav1.Condition) bool { return c.Type == "Programmed" })]
			if mention != "" && !strings.Contains(c.Message, mention) {
				return fmt.Errorf("gateway %s: Programmed message %q does not name %s", name, c.Message, mention)
			}
			if strings.Contains(c.Message, nodeA) && !strings.Contains(c.Message, nodeB) {
				return fmt.Errorf("gateway %s: Programmed message %q names node-a", name, c.Message)
			}
			return nil
		}
	}
	bothNodesReport := func() error {
		for _, n := range []string{nodeA, nodeB} {
			var l coordinationv1.Lease
			if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "flax-node-" + n}, &l); err != nil {
				return err
			}
			if a := l.Annotations[nodes.ResultAnnotation]; !strings.Contains(a, w.name+"/web") {
				return fmt.Errorf("lease of %s reports no config hash for web: %s", n, a)
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, "both nodes report web's config hash", bothNodesReport)
	eventually(t, 10*time.Second, "web Programmed on both nodes", programmed("web", metav1.ConditionTrue, "Programmed", ""))
	eventually(t, 10*time.Second, "other Programmed on both nodes", programmed("other", metav1.ConditionTrue, "Programmed", ""))

	release := dpB.Hold()
	defer release()
	w.create(httpRoute(w.name, "route", "web", "echo", 80))
	eventually(t, 10*time.Second, "node-a runs the route", func() error {
		_, err := backendGroup(dpA.Running(), w.name+"/echo:80")
		return err
	})
	eventually(t, 10*time.Second, "web waits for node-b", programmed("web", metav1.ConditionFalse, "Pending", nodeB))
	if err := programmed("other", metav1.ConditionTrue, "Programmed", "")(); err != nil {
		t.Errorf("a Gateway the route does not touch: %v", err)
	}
	if _, err := backendGroup(dpB.Running(), w.name+"/echo:80"); err == nil {
		t.Fatal("node-b's held dataplane runs the route already")
	}

	setReady(corev1.ConditionFalse)
	eventually(t, 10*time.Second, "a node that is not Ready is not waited for", programmed("web", metav1.ConditionTrue, "Programmed", ""))
	setReady(corev1.ConditionTrue)
	eventually(t, 10*time.Second, "web waits for node-b again once it is Ready", programmed("web", metav1.ConditionFalse, "Pending", nodeB))

	release()
	eventually(t, 10*time.Second, "node-b runs the route", func() error {
		_, err := backendGroup(dpB.Running(), w.name+"/echo:80")
		return err
	})
	eventually(t, 10*time.Second, "web Programmed once node-b caught up", programmed("web", metav1.ConditionTrue, "Programmed", ""))
	gw, err := w.getGateway("web")
	if err != nil {
		t.Fatal(err)
	}
	if c := gw.Status.Conditions[slices.IndexFunc(gw.Status.Conditions, func(c metav1.Condition) bool { return c.Type == "Programmed" })]; strings.Contains(c.Message, nodeB) {
		t.Errorf("web's Programmed message still names node-b: %q", c.Message)
	}
}

// startLeadingNode starts the controller of node with leader election on the Lease
// leaseID and waits until some controller leads; it returns the manager options that
// make another node's controller compete for the same Lease.
func startLeadingNode(t *testing.T, w *world, node, socket, leaseID string) func(o *ctrl.Options) {
	t.Helper()
	leader := func(o *ctrl.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = leaseID
		o.LeaderElectionNamespace = w.name
		o.LeaseDuration = ptr.To(30 * time.Second)
		o.RenewDeadline = ptr.To(20 * time.Second)
		o.RetryPeriod = ptr.To(200 * time.Millisecond)
	}
	w.startNode(node, socket, nil, leader)
	eventually(t, 30*time.Second, node+" leads", func() error {
		var l coordinationv1.Lease
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: leaseID}, &l); err != nil {
			return err
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	return leader
}
