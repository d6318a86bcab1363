package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// nodeAgent is the in-process kubelet and scheduler of the one node: it keeps the Node
// and its Lease fresh, binds pending pods to the node and runs bound pods.
type nodeAgent struct {
	c      *cluster
	client kubernetes.Interface
	name   string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kubelet *kubeletServer

	mu      sync.Mutex
	pods    map[types.UID]*podRuntime
	binding map[types.UID]bool
}

func newNodeAgent(c *cluster) *nodeAgent {
	return &nodeAgent{c: c, client: c.client, name: c.cfg.nodeName, pods: map[types.UID]*podRuntime{}, binding: map[types.UID]bool{}}
}

// start registers the node, starts the lease loop and the pod informer.
func (a *nodeAgent) start(ctx context.Context) error {
	a.ctx, a.cancel = context.WithCancel(context.Background())
	ks, err := a.startKubeletServer()
	if err != nil {
		return err
	}
	a.kubelet = ks
	if err := a.register(ctx); err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.heartbeat()
	}()
	factory := informers.NewSharedInformerFactory(a.client, 0)
	inf := factory.Core().V1().Pods().Informer()
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.onPod(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { a.onPod(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				a.onPodGone(p)
			}
		},
	})
	if err != nil {
		return err
	}
	factory.Start(a.ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("pod informer did not sync")
	}
	return nil
}

// stop ends the informer and kills every pod.
func (a *nodeAgent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.mu.Lock()
	pods := make([]*podRuntime, 0, len(a.pods))
	for _, p := range a.pods {
		pods = append(pods, p)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.kill(2 * time.Second)
		}()
	}
	wg.Wait()
	a.wg.Wait()
	if a.kubelet != nil {
		a.kubelet.stop()
	}
}

func (a *nodeAgent) nodeConditions(now metav1.Time) []corev1.NodeCondition {
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "localcluster node agent is posting ready status"),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "no memory pressure"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "no pid pressure"),
	}
}

// register creates the Node and sets its status.
func (a *nodeAgent) register(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Labels: map[string]string{
			"kubernetes.io/hostname": a.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
		}},
		Spec: corev1.NodeSpec{PodCIDR: a.c.net.podPrefix.String(), PodCIDRs: []string{a.c.net.podPrefix.String()}},
	}
	created, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", a.name, err)
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions:  a.nodeConditions(now),
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.c.net.nodeIP.String()},
			{Type: corev1.NodeHostName, Address: a.name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: runtime.GOARCH,
			KubeletVersion: "v1.37.2-localcluster", ContainerRuntimeVersion: "local-process://1",
			KernelVersion: kernelVersion(),
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(a.kubelet.port())}},
	}
	updated, err := a.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("setting status of node %s: %w", a.name, err)
	}
	// The API server taints a new Node node.kubernetes.io/not-ready:NoSchedule; the node
	// lifecycle controller, which does not run here, removes it once the Node is Ready.
	// DaemonSet pods do not tolerate it, so remove it ourselves.
	kept := updated.Spec.Taints[:0]
	for _, t := range updated.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			kept = append(kept, t)
		}
	}
	if len(kept) != len(updated.Spec.Taints) {
		updated.Spec.Taints = kept
		if _, err := a.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("removing the not-ready taint of node %s: %w", a.name, err)
		}
	}
	return a.renewLease(ctx)
}

func memTotal() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 4 << 30
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// renewLease creates or renews the node's Lease in kube-node-lease.
func (a *nodeAgent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, a.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(a.name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the lease every 10s and the node's conditions every 40s.
func (a *nodeAgent) heartbeat() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
		if err := a.renewLease(ctx); err != nil && a.ctx.Err() == nil {
			logf("node: renewing lease: %v", err)
		}
		if i%4 == 0 {
			if n, err := a.client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err == nil {
				now := metav1.Now()
				for j := range n.Status.Conditions {
					n.Status.Conditions[j].LastHeartbeatTime = now
				}
				_, _ = a.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			}
		}
		cancel()
	}
}

// onPod reacts to an added or changed pod: binds it if unscheduled, runs or stops it if
// bound here.
func (a *nodeAgent) onPod(p *corev1.Pod) {
	if a.ctx.Err() != nil {
		return
	}
	if p.Spec.NodeName == "" {
		if p.DeletionTimestamp == nil && (p.Spec.SchedulerName == "" || p.Spec.SchedulerName == corev1.DefaultSchedulerName) {
			a.bind(p)
		}
		return
	}
	if p.Spec.NodeName != a.name {
		return
	}
	a.mu.Lock()
	rt := a.pods[p.UID]
	if rt == nil {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			a.mu.Unlock()
			if p.DeletionTimestamp != nil {
				a.finishDelete(p)
			}
			return
		}
		rt = newPodRuntime(a, p)
		a.pods[p.UID] = rt
		a.mu.Unlock()
		go rt.run()
		return
	}
	a.mu.Unlock()
	rt.update(p)
}

// onPodGone stops a pod that disappeared from the API.
func (a *nodeAgent) onPodGone(p *corev1.Pod) {
	a.mu.Lock()
	rt := a.pods[p.UID]
	delete(a.binding, p.UID)
	a.mu.Unlock()
	if rt != nil {
		go rt.kill(2 * time.Second)
	}
}

// forget drops a pod's runtime after it is cleaned up.
func (a *nodeAgent) forget(uid types.UID) {
	a.mu.Lock()
	delete(a.pods, uid)
	a.mu.Unlock()
}

// bind assigns p to this node with a Binding, as the scheduler would.
func (a *nodeAgent) bind(p *corev1.Pod) {
	a.mu.Lock()
	if a.binding[p.UID] {
		a.mu.Unlock()
		return
	}
	a.binding[p.UID] = true
	a.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		defer cancel()
		err := a.client.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: a.name},
		}, metav1.CreateOptions{})
		if err != nil && a.ctx.Err() == nil {
			logf("node: binding pod %s/%s: %v", p.Namespace, p.Name, err)
			a.mu.Lock()
			delete(a.binding, p.UID)
			a.mu.Unlock()
		}
	}()
}

// finishDelete removes the pod object once its processes are gone.
func (a *nodeAgent) finishDelete(p *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &p.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		logf("node: deleting pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}
