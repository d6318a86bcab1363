package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
	"github.com/flaxlb/flax/dataplane/snapshot"
	"github.com/flaxlb/flax/test/envtest"
	"github.com/flaxlb/flax/test/poll"
)

// The control plane is shared by the tests of this package: it starts on first use
// (tests of pure logic never start it) and stops in TestMain. Tests keep apart by
// using their own namespace, controller name, GatewayClass and node label.
var shared struct {
	once sync.Once
	env  *envtest.Env
	err  error
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(testLogger())
	code := m.Run()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		}
	}
	os.Exit(code)
}

// testLogger logs to stderr when FLAX_TEST_LOG is a verbosity (0, 1, ...), and
// discards otherwise.
func testLogger() logr.Logger {
	v, err := strconv.Atoi(os.Getenv("FLAX_TEST_LOG"))
	if err != nil {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05.000"), prefix, args) },
		funcr.Options{Verbosity: v})
}

// controlPlane returns the shared etcd and kube-apiserver.
func controlPlane(t *testing.T) *envtest.Env {
	t.Helper()
	shared.once.Do(func() { shared.env, shared.err = envtest.New(envtest.Options{Channel: envtest.Standard}) })
	if shared.err != nil {
		t.Fatalf("start control plane: %v", shared.err)
	}
	return shared.env
}

// world is one test's slice of the cluster.
type world struct {
	t              *testing.T
	env            *envtest.Env
	c              client.Client
	ctx            context.Context
	name           string // namespace, GatewayClass and node label value
	controllerName string
	nodeAddress    string
	socket         string
}

// newWorld creates the namespace name and a Ready node labelled for this test
// with address nodeAddress.
func newWorld(t *testing.T, name, nodeAddress string) *world {
	t.Helper()
	env := controlPlane(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir, err := os.MkdirTemp("", "flax-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &world{
		t: t, env: env, c: env.Client, ctx: ctx, name: name,
		controllerName: "flaxlb.io/test-" + name,
		nodeAddress:    nodeAddress,
		socket:         filepath.Join(dir, "dataplane.sock"),
	}
	w.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + name, Labels: map[string]string{"flax-test": name}}}
	w.create(node)
	node.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeAddress}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if err := w.c.Status().Update(ctx, node); err != nil {
		t.Fatalf("set node status: %v", err)
	}
	return w
}

// create creates obj, failing the test on error.
func (w *world) create(obj client.Object) {
	w.t.Helper()
	if err := w.c.Create(w.ctx, obj); err != nil {
		w.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// update re-reads the object key into obj, applies edit and updates it, retrying
// on conflicts.
func update[T client.Object](w *world, obj T, edit func(T)) {
	w.t.Helper()
	for range 10 {
		if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			w.t.Fatalf("get %T %s: %v", obj, obj.GetName(), err)
		}
		edit(obj)
		err := w.c.Update(w.ctx, obj)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			w.t.Fatalf("update %T %s: %v", obj, obj.GetName(), err)
		}
	}
	w.t.Fatalf("update %T %s: conflicts persist", obj, obj.GetName())
}

// startController runs a manager with the Flax controller of this world until the
// test ends; edits, if any, adjust the manager options.
func (w *world) startController(edits ...func(*ctrl.Options)) *controllers.Controller {
	w.t.Helper()
	c, _ := w.startNode("node-"+w.name, w.socket, nil, edits...)
	return c
}

// startNode runs a manager with the Flax controller of this world for node, with
// its dataplane at socket, until the test ends or stop is called; edit, if not
// nil, adjusts the controller options and edits the manager options.
func (w *world) startNode(node, socket string, edit func(*controllers.Options), edits ...func(*ctrl.Options)) (c *controllers.Controller, stop func()) {
	w.t.Helper()
	opts := ctrl.Options{
		Scheme:     w.env.Scheme,
		Cache:      controllers.CacheOptions(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     testLogger().WithValues("test", w.name),
	}
	for _, edit := range edits {
		edit(&opts)
	}
	mgr, err := ctrl.NewManager(w.env.Config, opts)
	if err != nil {
		w.t.Fatalf("create manager: %v", err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	// FLAX_TEST_COALESCE_DELAY overrides the coalescing quiet period, e.g. to see
	// the delivery latency without it.
	delay, _ := time.ParseDuration(os.Getenv("FLAX_TEST_COALESCE_DELAY"))
	copts := controllers.Options{
		ControllerName:  w.controllerName,
		NodeName:        node,
		NodeSelector:    labels.SelectorFromSet(labels.Set{"flax-test": w.name}),
		DataplaneSocket: socket,
		CoalesceDelay:   delay,
		LeaseNamespace:  w.name,
	}
	if edit != nil {
		edit(&copts)
	}
	c, err = controllers.New(ctx, mgr, copts)
	if err != nil {
		cancel()
		w.t.Fatalf("create controller: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("manager: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	return c, stop
}

// startDataplane serves the dataplane API with f on the world's socket; the
// returned function stops it (as a dataplane restart would), and the test's end
// stops it too.
func (w *world) startDataplane(f *fakedataplane.Dataplane) (stop func()) {
	w.t.Helper()
	return w.startDataplaneAt(f, "node-"+w.name, w.socket)
}

// startDataplaneAt serves the dataplane API of node with f on socket, as
// startDataplane.
func (w *world) startDataplaneAt(f *fakedataplane.Dataplane, node, socket string) (stop func()) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(w.ctx)
	srv := snapshot.NewServer(f, snapshot.ServerOptions{NodeName: node, Engine: "fake", Log: testLogger().WithName("dataplane")})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, socket) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("dataplane server: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

// eventually polls check every 20ms until it returns nil (poll.Eventually).
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	poll.Eventually(t, timeout, 20*time.Millisecond, what, check)
}

// hasCondition returns an error unless conds holds typ with status and, if not
// empty, reason.
func hasCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %+v", typ, conds)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

// routeParent returns the parent status of route for gateway written by
// controllerName.
func routeParent(route *gatewayv1.HTTPRoute, gateway, controllerName string) (*gatewayv1.RouteParentStatus, error) {
	for i, p := range route.Status.Parents {
		if string(p.ParentRef.Name) == gateway && string(p.ControllerName) == controllerName {
			return &route.Status.Parents[i], nil
		}
	}
	return nil, fmt.Errorf("route %s has no parent status for %s by %s: %+v", route.Name, gateway, controllerName, route.Status.Parents)
}

// gatewayClass returns a GatewayClass for controllerName.
func gatewayClass(name, controllerName string) *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: gatewayv1.GatewayController(controllerName)},
	}
}

// gateway returns a Gateway of class with one HTTP listener "http" on port.
func gateway(ns, name, class string, port int32) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: gatewayv1.ObjectName(class),
			Listeners:        []gatewayv1.Listener{{Name: "http", Port: gatewayv1.PortNumber(port), Protocol: gatewayv1.HTTPProtocolType}},
		},
	}
}

// httpRoute returns an HTTPRoute attached to gateway that sends everything to
// service:port.
func httpRoute(ns, name, gateway, service string, port int32) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayv1.ObjectName(gateway)}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: ptr.To(gatewayv1.PortNumber(port))},
			}}}}},
		},
	}
}

// service returns a ClusterIP Service with one unnamed TCP port.
func service(ns, name string, port, targetPort int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Port: port, TargetPort: intstr.FromInt32(targetPort), Protocol: corev1.ProtocolTCP,
		}}},
	}
}

// endpointSlice returns an EndpointSlice of service with ready endpoints at
// addresses, on port.
func endpointSlice(ns, name, service string, port int32, addresses ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	s.Endpoints = readyEndpoints(addresses...)
	return s
}

// readyEndpoints returns ready endpoints at addresses.
func readyEndpoints(addresses ...string) []discoveryv1.Endpoint {
	out := make([]discoveryv1.Endpoint, len(addresses))
	for i, a := range addresses {
		out[i] = discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	}
	return out
}

// endpointAckHistogram returns the sample count and sum of
// flax_controller_endpoint_change_to_ack_seconds.
func endpointAckHistogram(t *testing.T) (uint64, float64) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() == "flax_controller_endpoint_change_to_ack_seconds" && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// backendGroup returns the named group of snap.
func backendGroup(snap *dataplanev1.Snapshot, name string) (*dataplanev1.BackendGroup, error) {
	for _, g := range snap.GetBackendGroups() {
		if g.GetName() == name {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no backend group %q in snapshot (groups: %d)", name, len(snap.GetBackendGroups()))
}

// getGateway reads a Gateway.
func (w *world) getGateway(name string) (*gatewayv1.Gateway, error) {
	var gw gatewayv1.Gateway
	err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: name}, &gw)
	return &gw, err
}

// listenerStatus returns the status of the named listener of gw.
func listenerStatus(gw *gatewayv1.Gateway, name string) (*gatewayv1.ListenerStatus, error) {
	for i, l := range gw.Status.Listeners {
		if string(l.Name) == name {
			return &gw.Status.Listeners[i], nil
		}
	}
	return nil, fmt.Errorf("gateway %s has no status for listener %s: %+v", gw.Name, name, gw.Status.Listeners)
}

// findEvent returns an error unless an Event with reason regards the named object.
func (w *world) findEvent(name, reason string) error {
	var events corev1.EventList
	if err := w.c.List(w.ctx, &events, client.InNamespace(w.name)); err != nil {
		return err
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			return nil
		}
	}
	return errors.New("no event " + reason + " for " + name)
}
