package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers"
	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/iouring/iouringtest"
	"github.com/flaxlb/flax/test/envtest"
)

// Names of the objects the scenario creates.
const (
	namespace   = "flax-it"
	className   = "flax"
	gatewayName = "gw"
	serviceName = "app"
	sliceName   = "app-1"
	routeName   = "app"
	brokenName  = "broken"
	hostname    = "app.example.com"
	nodeName    = "node-it"
	// backendPort is the port the backends listen on inside the namespace.
	backendPort = 8080
)

func TestMain(m *testing.M) {
	// Each test passes its own logger to the manager; this one only silences
	// controller-runtime's warning about a logger never set.
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// TestControllerAndDataplane runs the controller against a real dataplane, once
// per engine, with the backends in a network namespace (see the package comment).
func TestControllerAndDataplane(t *testing.T) {
	requireNetAdmin(t)
	ns := newNetns(t)
	backends := map[string]string{
		"backend-a": net.JoinHostPort(ns.addrs[0], strconv.Itoa(backendPort)),
		"backend-b": net.JoinHostPort(ns.addrs[1], strconv.Itoa(backendPort)),
	}
	for name, addr := range backends {
		ns.startBackend(t, name, addr)
	}
	for _, engine := range []string{daemon.EngineNetpoll, daemon.EngineAuto} {
		t.Run(engine, func(t *testing.T) {
			runScenario(t, engine, ns)
		})
	}
}

// scenario is one run of the controller and a dataplane on a fresh control plane.
type scenario struct {
	t    *testing.T
	ctx  context.Context
	c    client.Client
	flax *controllers.Controller
	// listener is the Gateway listener's address on 127.0.0.1.
	listener string
}

func runScenario(t *testing.T, engine string, ns *netns) {
	log := newLogger(t)
	socket := filepath.Join(t.TempDir(), "dataplane.sock")

	// 1. A dataplane, a control plane, and the controller pointed at the socket.
	dp := startDataplane(t, engine, socket, nodeName, log.WithName("dataplane"))
	if engine == daemon.EngineAuto && dp.daemon.EngineName() == daemon.EngineNetpoll {
		iouringtest.Unavailable(t, "the auto engine selected netpoll here (io_uring unavailable, or its engine not built: "+
			"the dataplane logs why), which the netpoll run already covers")
	}
	t.Logf("dataplane engine: %s", dp.daemon.EngineName())
	env := envtest.Start(t, envtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &scenario{
		t: t, ctx: ctx, c: env.Client,
		listener: net.JoinHostPort("127.0.0.1", strconv.Itoa(enginetest.FreePort(t))),
	}
	s.flax = startController(t, env, socket, log.WithName("controller"))
	// The controller syncs its caches before its first translation: wait for the
	// dataplane's first Ack (of an empty configuration; what /readyz waits for).
	// And the API server takes about two seconds to accept the first write of a
	// Gateway API kind after installing the CRDs (seen with HTTPRoutes, even as a
	// dry run, while lists answer at once): absorb that with dry runs, so that the
	// times below measure Flax alone.
	eventually(t, 60*time.Second, "controller ready (dataplane acknowledged its first configuration)", func() error {
		return s.flax.Delivery.ReadyCheck(nil)
	})
	eventually(t, 30*time.Second, "Gateway API kinds writable", func() error {
		for _, obj := range s.objects(ns.addrs[0]) {
			obj = obj.DeepCopyObject().(client.Object)
			if obj.GetNamespace() != "" {
				obj.SetNamespace(metav1.NamespaceDefault)
			}
			if err := s.c.Create(ctx, obj, client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("dry run of creating %T %s: %w", obj, obj.GetName(), err)
			}
		}
		return nil
	})

	// 2. The objects, then traffic to backend-a.
	addrA, addrB := ns.addrs[0], ns.addrs[1]
	created := time.Now()
	s.createObjects(addrA)
	eventually(t, 60*time.Second, "Gateway Programmed", func() error {
		return s.gatewayProgrammed()
	})
	t.Logf("Gateway Programmed %s after its objects were created", time.Since(created).Round(time.Millisecond))
	eventually(t, 30*time.Second, "HTTPRoute "+routeName+" Accepted and ResolvedRefs", func() error {
		return s.routeConditions(routeName, metav1.ConditionTrue, "")
	})
	t.Logf("HTTPRoute Accepted and ResolvedRefs %s after its objects were created", time.Since(created).Round(time.Millisecond))
	eventually(t, 30*time.Second, "traffic to backend-a", func() error { return s.expect("/", http.StatusOK, "backend-a") })
	t.Logf("first response from backend-a %s after the objects were created", time.Since(created).Round(time.Millisecond))
	s.expectSteady("/", http.StatusOK, "backend-a")

	// 3. The EndpointSlice moves to backend-b: traffic follows without errors, on
	// the controller's endpoint fast path.
	pushes := counter(t, "flax_controller_snapshot_pushes_total", "kind", "endpoints")
	ackCount, ackSum := histogram(t, "flax_controller_endpoint_change_to_ack_seconds")
	start := time.Now()
	update(s, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: sliceName}},
		func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Addresses = []string{addrB} })
	switched, failures := s.waitSwitch(start, "/", "backend-a", "backend-b", 10*time.Second)
	t.Logf("endpoint change: first response from backend-b %s after the EndpointSlice update call", switched.Round(time.Microsecond))
	if len(failures) > 0 {
		t.Errorf("requests failed while the endpoints changed: %v", failures)
	}
	s.expectSteady("/", http.StatusOK, "backend-b")
	if got := counter(t, "flax_controller_snapshot_pushes_total", "kind", "endpoints"); got <= pushes {
		t.Errorf("the EndpointSlice change did not take the endpoint fast path: endpoint pushes stayed at %v", got)
	}
	if n, sum := histogram(t, "flax_controller_endpoint_change_to_ack_seconds"); n > ackCount {
		mean := time.Duration((sum - ackSum) / float64(n-ackCount) * float64(time.Second))
		t.Logf("controller: EndpointSlice event to dataplane Ack %s (mean of %d)", mean.Round(time.Microsecond), n-ackCount)
	}

	// 4. A route to a missing Service: ResolvedRefs=False and 500 on its path; the
	// first route keeps serving.
	start = time.Now()
	s.createBrokenRoute()
	eventually(t, 30*time.Second, "HTTPRoute "+brokenName+" ResolvedRefs=False", func() error {
		return s.routeConditions(brokenName, metav1.ConditionFalse, string(gatewayv1.RouteReasonBackendNotFound))
	})
	eventually(t, 30*time.Second, "500 on /broken", func() error { return s.expect("/broken", http.StatusInternalServerError, "") })
	t.Logf("invalid route: 500 on its path %s after it was created", time.Since(start).Round(time.Millisecond))
	s.expectSteady("/broken/page", http.StatusInternalServerError, "")
	s.expectSteady("/", http.StatusOK, "backend-b")
	if err := s.routeConditions(routeName, metav1.ConditionTrue, ""); err != nil {
		t.Errorf("the valid route after an invalid one was added: %v", err)
	}

	// 5. The dataplane restarts on the same socket and port: the controller
	// reconnects and traffic flows again.
	dp.stop(t)
	if _, _, err := get(s.listener, hostname, "/"); err == nil {
		t.Errorf("the listener %s still answers after the dataplane stopped", s.listener)
	}
	start = time.Now()
	dp = startDataplane(t, engine, socket, nodeName, log.WithName("dataplane-2"))
	eventually(t, 15*time.Second, "traffic after the dataplane restarted", func() error {
		return s.expect("/", http.StatusOK, "backend-b")
	})
	t.Logf("dataplane restart: first response from backend-b %s after the new dataplane started", time.Since(start).Round(time.Millisecond))
	s.expectSteady("/", http.StatusOK, "backend-b")
	s.expectSteady("/broken", http.StatusInternalServerError, "")
	eventually(t, 15*time.Second, "controller in sync with the new dataplane", func() error {
		r := s.flax.Delivery.Result()
		cur := dp.server.Current()
		switch {
		case !r.Connected || !r.InSync:
			return fmt.Errorf("delivery result: connected %v, in sync %v", r.Connected, r.InSync)
		case cur == nil:
			return fmt.Errorf("the new dataplane has applied nothing")
		case cur.GetHash() != r.AppliedHash:
			return fmt.Errorf("the dataplane runs hash %s, the controller recorded %s", cur.GetHash(), r.AppliedHash)
		}
		return nil
	})
	eventually(t, 30*time.Second, "Gateway Programmed after the restart", func() error {
		return s.gatewayProgrammed()
	})
}

// startController runs a manager with the Flax controller, set up as
// cmd/flax-controller sets it up (without leader election, so this replica writes
// status) and a short coalescing delay, until the test ends.
func startController(t *testing.T, env *envtest.Env, socket string, log logr.Logger) *controllers.Controller {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Every engine's run creates a controller named "flax" in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     log,
	})
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := controllers.New(ctx, mgr, controllers.Options{
		ControllerName:  controllers.DefaultControllerName,
		NodeName:        nodeName,
		DataplaneSocket: socket,
		CoalesceDelay:   5 * time.Millisecond,
		CoalesceMaxWait: 50 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatalf("create controller: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s")
		}
	})
	return c
}

// createObjects creates the objects of the scenario (see objects).
func (s *scenario) createObjects(endpoint string) {
	s.t.Helper()
	for _, obj := range s.objects(endpoint) {
		s.create(obj)
	}
}

// objects returns the namespace, the GatewayClass, a Gateway listening for HTTP
// on s.listener, the Service, its EndpointSlice with one ready endpoint at
// endpoint:backendPort, and an HTTPRoute sending hostname to the Service.
func (s *scenario) objects(endpoint string) []client.Object {
	_, port, _ := net.SplitHostPort(s.listener)
	listenerPort, _ := strconv.Atoi(port)
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&gatewayv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: className},
			Spec:       gatewayv1.GatewayClassSpec{ControllerName: controllers.DefaultControllerName},
		},
		&gatewayv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: gatewayName},
			Spec: gatewayv1.GatewaySpec{
				GatewayClassName: className,
				// Bind loopback only: the test talks to 127.0.0.1.
				Addresses: []gatewayv1.GatewaySpecAddress{{Type: ptr.To(gatewayv1.IPAddressType), Value: "127.0.0.1"}},
				Listeners: []gatewayv1.Listener{{Name: "http", Port: gatewayv1.PortNumber(listenerPort), Protocol: gatewayv1.HTTPProtocolType}},
			},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceName},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(backendPort), Protocol: corev1.ProtocolTCP,
			}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: namespace, Name: sliceName,
				Labels: map[string]string{discoveryv1.LabelServiceName: serviceName},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](backendPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{endpoint},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
			}},
		},
		httpRoute(routeName, "/", serviceName),
	}
}

// createBrokenRoute creates an HTTPRoute for /broken whose backend Service does not
// exist.
func (s *scenario) createBrokenRoute() {
	s.t.Helper()
	s.create(httpRoute(brokenName, "/broken", "missing"))
}

// httpRoute returns an HTTPRoute attached to the Gateway that sends hostname
// requests under pathPrefix to port 80 of Service service.
func httpRoute(name, pathPrefix, service string) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayName}}},
			Hostnames:       []gatewayv1.Hostname{hostname},
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
					Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(pathPrefix),
				}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{
						Name: gatewayv1.ObjectName(service), Port: ptr.To[gatewayv1.PortNumber](80),
					},
				}}},
			}},
		},
	}
}

// create creates obj, failing the test on error.
func (s *scenario) create(obj client.Object) {
	s.t.Helper()
	if err := s.c.Create(s.ctx, obj); err != nil {
		s.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// update re-reads obj, applies edit and updates it, retrying on conflicts.
func update[T client.Object](s *scenario, obj T, edit func(T)) {
	s.t.Helper()
	for range 10 {
		if err := s.c.Get(s.ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			s.t.Fatalf("get %T %s: %v", obj, obj.GetName(), err)
		}
		edit(obj)
		err := s.c.Update(s.ctx, obj)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			s.t.Fatalf("update %T %s: %v", obj, obj.GetName(), err)
		}
	}
	s.t.Fatalf("update %T %s: conflicts persist", obj, obj.GetName())
}

// gatewayProgrammed returns nil when the Gateway's current generation is
// Programmed.
func (s *scenario) gatewayProgrammed() error {
	var gw gatewayv1.Gateway
	if err := s.c.Get(s.ctx, client.ObjectKey{Namespace: namespace, Name: gatewayName}, &gw); err != nil {
		return err
	}
	c := meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed))
	switch {
	case c == nil:
		return fmt.Errorf("no Programmed condition (conditions %+v)", gw.Status.Conditions)
	case c.ObservedGeneration != gw.Generation:
		return fmt.Errorf("Programmed is for generation %d, the Gateway is at %d", c.ObservedGeneration, gw.Generation)
	case c.Status != metav1.ConditionTrue:
		return fmt.Errorf("Programmed is %s: %s: %s", c.Status, c.Reason, c.Message)
	}
	return nil
}

// routeConditions returns nil when route is Accepted by the Gateway and its
// ResolvedRefs condition has status resolved (and reason, if not empty), for the
// route's current generation.
func (s *scenario) routeConditions(route string, resolved metav1.ConditionStatus, reason string) error {
	var r gatewayv1.HTTPRoute
	if err := s.c.Get(s.ctx, client.ObjectKey{Namespace: namespace, Name: route}, &r); err != nil {
		return err
	}
	for _, p := range r.Status.Parents {
		if string(p.ControllerName) != controllers.DefaultControllerName || string(p.ParentRef.Name) != gatewayName {
			continue
		}
		accepted := meta.FindStatusCondition(p.Conditions, string(gatewayv1.RouteConditionAccepted))
		refs := meta.FindStatusCondition(p.Conditions, string(gatewayv1.RouteConditionResolvedRefs))
		switch {
		case accepted == nil || refs == nil:
			return fmt.Errorf("conditions Accepted and ResolvedRefs missing: %+v", p.Conditions)
		case accepted.ObservedGeneration != r.Generation || refs.ObservedGeneration != r.Generation:
			return fmt.Errorf("conditions are for generation %d and %d, the route is at %d", accepted.ObservedGeneration, refs.ObservedGeneration, r.Generation)
		case accepted.Status != metav1.ConditionTrue:
			return fmt.Errorf("Accepted is %s: %s: %s", accepted.Status, accepted.Reason, accepted.Message)
		case refs.Status != resolved || (reason != "" && refs.Reason != reason):
			return fmt.Errorf("ResolvedRefs is %s %s (%s), want %s %s", refs.Status, refs.Reason, refs.Message, resolved, reason)
		}
		return nil
	}
	return fmt.Errorf("no parent status from %s for Gateway %s: %+v", controllers.DefaultControllerName, gatewayName, r.Status.Parents)
}

// expect sends one request for path and returns nil if it is answered with code
// and, unless body is empty, body.
func (s *scenario) expect(path string, code int, body string) error {
	gotCode, gotBody, err := get(s.listener, hostname, path)
	if err != nil {
		return err
	}
	if gotCode != code || (body != "" && gotBody != body) {
		return fmt.Errorf("GET %s: got %d %q, want %d %q", path, gotCode, gotBody, code, body)
	}
	return nil
}

// expectSteady checks that 20 requests in a row for path get code and body.
func (s *scenario) expectSteady(path string, code int, body string) {
	s.t.Helper()
	for i := range 20 {
		if err := s.expect(path, code, body); err != nil {
			s.t.Fatalf("request %d of 20: %v", i+1, err)
		}
	}
}

// waitSwitch sends requests for path back to back until one is answered by to,
// and returns how long after start that was and the requests, if any, answered
// by neither from nor to (or failed). It fails the test after timeout.
func (s *scenario) waitSwitch(start time.Time, path, from, to string, timeout time.Duration) (time.Duration, []string) {
	s.t.Helper()
	var failures []string
	for time.Since(start) < timeout {
		code, body, err := get(s.listener, hostname, path)
		switch {
		case err != nil:
			failures = append(failures, err.Error())
		case code == http.StatusOK && body == to:
			return time.Since(start), failures
		case code != http.StatusOK || body != from:
			failures = append(failures, fmt.Sprintf("%d %q", code, body))
		}
	}
	s.t.Fatalf("no response from %s within %s after the EndpointSlice update (unexpected answers: %v)", to, timeout, failures)
	return 0, nil
}

// counter returns the value of the controller's counter name with the label, from
// controller-runtime's registry (0 if it has no such series yet).
func counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	for _, m := range metricFamily(t, name).GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// histogram returns the sample count and sum of the controller's histogram name.
func histogram(t *testing.T, name string) (uint64, float64) {
	t.Helper()
	for _, m := range metricFamily(t, name).GetMetric() {
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	return 0, 0
}

// metricFamily gathers the metric family name from controller-runtime's registry
// (nil if absent).
func metricFamily(t *testing.T, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}
