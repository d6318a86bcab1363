package controllers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
	"github.com/flaxlb/flax/test/envtest"
)

// TestPolicyCRDs checks that the BackendPolicy and RoutePolicy CRDs are installed
// and established as Gateway API direct policies, that the API server takes valid
// policies (the samples of config/samples/policies among them), and that it
// rejects, with the rule's message, what the CRDs' markers and CEL rules forbid.
func TestPolicyCRDs(t *testing.T) {
	env := controlPlane(t)
	c := env.Client
	ctx := t.Context()
	const ns = "policy-crds"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"backendpolicies.flaxlb.io", "routepolicies.flaxlb.io"} {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		if err := c.Get(ctx, types.NamespacedName{Name: name}, crd); err != nil {
			t.Fatalf("CRD %s: %v", name, err)
		}
		if got := crd.GetLabels()["gateway.networking.k8s.io/policy"]; got != "Direct" {
			t.Errorf("CRD %s has policy label %q, want Direct", name, got)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		established := false
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				established = true
			}
		}
		if !established {
			t.Errorf("CRD %s is not established: %v", name, conds)
		}
	}

	svc := func(name string, section ...string) gatewayv1.LocalPolicyTargetReferenceWithSectionName {
		ref := gatewayv1.LocalPolicyTargetReferenceWithSectionName{LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Kind: "Service", Name: gatewayv1.ObjectName(name)}}
		if len(section) > 0 {
			ref.SectionName = ptr.To(gatewayv1.SectionName(section[0]))
		}
		return ref
	}
	route := gatewayv1.LocalPolicyTargetReferenceWithSectionName{LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{
		Group: gatewayv1.GroupName, Kind: "HTTPRoute", Name: "app",
	}}
	dur := func(s string) *gatewayv1.Duration { return ptr.To(gatewayv1.Duration(s)) }

	valid := []client.Object{
		&flaxv1alpha1.BackendPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "valid"},
			Spec: flaxv1alpha1.BackendPolicySpec{
				TargetRefs:    []gatewayv1.LocalPolicyTargetReferenceWithSectionName{svc("web"), svc("web", "http")},
				LoadBalancing: &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingMaglev, HashOn: &flaxv1alpha1.HashOn{SourceIP: ptr.To(true)}},
				HealthCheck:   &flaxv1alpha1.HealthCheck{Interval: dur("5s"), Timeout: dur("5s"), ExpectedStatuses: []flaxv1alpha1.StatusRange{{Min: 200, Max: ptr.To[int32](299)}}},
				RetryBudget:   &flaxv1alpha1.RetryBudget{Percent: ptr.To[int32](0), MinRetryConcurrency: ptr.To[int32](0)},
			},
		},
		&flaxv1alpha1.RoutePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "valid"},
			Spec: flaxv1alpha1.RoutePolicySpec{
				TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{route},
				RateLimit:  &flaxv1alpha1.RateLimit{Requests: 10, Interval: "24h"},
			},
		},
	}
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]client.Object{
		"backendpolicy.yaml": &flaxv1alpha1.BackendPolicy{},
		"routepolicy.yaml":   &flaxv1alpha1.RoutePolicy{},
	}
	for file, obj := range samples {
		data, err := os.ReadFile(filepath.Join(root, "config", "samples", "policies", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			t.Fatalf("sample %s: %v", file, err)
		}
		obj.SetNamespace(ns)
		obj.SetName("sample-" + obj.GetName())
		valid = append(valid, obj)
	}
	for _, obj := range valid {
		if err := c.Create(ctx, obj); err != nil {
			t.Errorf("create valid %T %s: %v", obj, obj.GetName(), err)
		}
	}

	backend := func(edit func(*flaxv1alpha1.BackendPolicySpec)) client.Object {
		p := &flaxv1alpha1.BackendPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "invalid-"},
			Spec:       flaxv1alpha1.BackendPolicySpec{TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{svc("web")}},
		}
		edit(&p.Spec)
		return p
	}
	routePolicy := func(edit func(*flaxv1alpha1.RoutePolicySpec)) client.Object {
		p := &flaxv1alpha1.RoutePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "invalid-"},
			Spec: flaxv1alpha1.RoutePolicySpec{
				TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{route},
				RateLimit:  &flaxv1alpha1.RateLimit{Requests: 1, Interval: "1s"},
			},
		}
		edit(&p.Spec)
		return p
	}
	invalid := []struct {
		name string
		obj  client.Object
		want string
	}{
		{"RingHash without hashOn", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.LoadBalancing = &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingRingHash}
		}), "hashOn must be set for RingHash and Maglev"},
		{"hashOn with RoundRobin", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.LoadBalancing = &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingRoundRobin, HashOn: &flaxv1alpha1.HashOn{Cookie: ptr.To("c")}}
		}), "hashOn must be set for RingHash and Maglev, and only for them"},
		{"two hash keys", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.LoadBalancing = &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingMaglev, HashOn: &flaxv1alpha1.HashOn{Cookie: ptr.To("c"), SourceIP: ptr.To(true)}}
		}), "set exactly one of header, cookie and sourceIP"},
		{"unknown type", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.LoadBalancing = &flaxv1alpha1.LoadBalancing{Type: "Fastest"}
		}), "spec.loadBalancing.type"},
		{"health-check timeout above interval", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.HealthCheck = &flaxv1alpha1.HealthCheck{Interval: dur("5s"), Timeout: dur("10s")}
		}), "timeout must not exceed interval"},
		{"gRPC health check with a path", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.HealthCheck = &flaxv1alpha1.HealthCheck{GRPC: &flaxv1alpha1.GRPCHealthCheck{}, Path: ptr.To("/healthz")}
		}), "path and expectedStatuses must be unset when grpc is set"},
		{"gRPC health check service with a space", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.HealthCheck = &flaxv1alpha1.HealthCheck{GRPC: &flaxv1alpha1.GRPCHealthCheck{Service: ptr.To("echo Echo")}}
		}), "spec.healthCheck.grpc.service"},
		{"status range upside down", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.HealthCheck = &flaxv1alpha1.HealthCheck{ExpectedStatuses: []flaxv1alpha1.StatusRange{{Min: 500, Max: ptr.To[int32](200)}}}
		}), "max must not be below min"},
		{"malformed duration", backend(func(s *flaxv1alpha1.BackendPolicySpec) { s.ConnectTimeout = dur("1.5s") }), "spec.connectTimeout"},
		{"zero idle timeout", backend(func(s *flaxv1alpha1.BackendPolicySpec) { s.IdleTimeout = dur("0s") }), "idleTimeout must be at least 1ms"},
		{"response header timeout above 24h", backend(func(s *flaxv1alpha1.BackendPolicySpec) { s.ResponseHeaderTimeout = dur("25h") }), "responseHeaderTimeout must be between 1ms and 24h"},
		{"zero response body idle timeout", backend(func(s *flaxv1alpha1.BackendPolicySpec) { s.ResponseBodyIdleTimeout = dur("0s") }), "responseBodyIdleTimeout must be between 1ms and 24h"},
		{"outlier detection without trigger", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.OutlierDetection = &flaxv1alpha1.OutlierDetection{BaseEjectionTime: dur("10s")}
		}), "set consecutiveServerErrors, consecutiveConnectFailures or both"},
		{"retry budget above 100%", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.RetryBudget = &flaxv1alpha1.RetryBudget{Percent: ptr.To[int32](150)}
		}), "spec.retryBudget.percent"},
		{"target of another kind", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.TargetRefs = []gatewayv1.LocalPolicyTargetReferenceWithSectionName{route}
		}), "a BackendPolicy targets core Services"},
		{"repeated target", backend(func(s *flaxv1alpha1.BackendPolicySpec) {
			s.TargetRefs = append(s.TargetRefs, svc("web"))
		}), "targetRefs must be unique"},
		{"no target", backend(func(s *flaxv1alpha1.BackendPolicySpec) { s.TargetRefs = nil }), "spec.targetRefs"},
		{"zero requests", routePolicy(func(s *flaxv1alpha1.RoutePolicySpec) { s.RateLimit.Requests = 0 }), "spec.rateLimit.requests"},
		{"interval above 24h", routePolicy(func(s *flaxv1alpha1.RoutePolicySpec) { s.RateLimit.Interval = "25h" }), "interval must be between 1ms and 24h"},
		{"route policy on a Service", routePolicy(func(s *flaxv1alpha1.RoutePolicySpec) {
			s.TargetRefs = []gatewayv1.LocalPolicyTargetReferenceWithSectionName{svc("web")}
		}), "a RoutePolicy targets HTTPRoutes"},
	}
	for _, tc := range invalid {
		err := c.Create(ctx, tc.obj)
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: got %v, want an Invalid error from the API server", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
}

// TestBackendPolicy runs the controller against a real API server: a
// BackendPolicy on the Service a route uses shows up in the backend group the
// dataplane gets and is Accepted with the Gateway as ancestor; editing it changes
// the group; a younger policy on the same Service is Conflicted and changes
// nothing; a policy on a Service that does not exist is TargetNotFound until the
// Service is created.
func TestBackendPolicy(t *testing.T) {
	w := newWorld(t, "backend-policy", "10.16.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)
	class := gatewayClass(w.name, w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))
	echo := service(w.name, "echo", 80, 8080)
	echo.Spec.Ports[0].Name = "http"
	w.create(echo)
	slice := endpointSlice(w.name, "echo-1", "echo", 8080, "10.26.0.1")
	slice.Ports[0].Name = ptr.To("http")
	w.create(slice)
	w.create(httpRoute(w.name, "route", "web", "echo", 80))

	policy := &flaxv1alpha1.BackendPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "echo"},
		Spec: flaxv1alpha1.BackendPolicySpec{
			TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{serviceTarget("echo", "http")},
			LoadBalancing: &flaxv1alpha1.LoadBalancing{
				Type: flaxv1alpha1.LoadBalancingMaglev, HashOn: &flaxv1alpha1.HashOn{Header: ptr.To(gatewayv1.HTTPHeaderName("X-User"))},
			},
			HealthCheck:     &flaxv1alpha1.HealthCheck{Path: ptr.To("/healthz"), Interval: ptr.To(gatewayv1.Duration("2s"))},
			CircuitBreakers: &flaxv1alpha1.CircuitBreakers{MaxRequests: ptr.To[int32](100)},
			RetryBudget:     &flaxv1alpha1.RetryBudget{Percent: ptr.To[int32](30)},
			ConnectTimeout:  ptr.To(gatewayv1.Duration("750ms")),
		},
	}
	w.create(policy)
	t.Cleanup(func() { _ = w.c.Delete(w.ctx, policy) })
	w.startController()

	group := w.name + "/echo:80"
	eventually(t, 30*time.Second, "the policy's settings in the dataplane's backend group", func() error {
		g, err := backendGroup(dp.Running(), group)
		if err != nil {
			return err
		}
		lb := g.GetLoadBalancing()
		switch {
		case lb.GetPolicy() != dataplanev1.LoadBalancing_MAGLEV || lb.GetHashOn().GetHeader() != "X-User":
			return fmt.Errorf("load balancing %v, want MAGLEV on header X-User", lb)
		case g.GetHealthCheck().GetPath() != "/healthz" || g.GetHealthCheck().GetInterval().AsDuration() != 2*time.Second:
			return fmt.Errorf("health check %v, want /healthz every 2s", g.GetHealthCheck())
		case g.GetCircuitBreakers().GetMaxRequests() != 100:
			return fmt.Errorf("circuit breakers %v, want max requests 100", g.GetCircuitBreakers())
		case g.GetRetryBudget().GetPercent() != 30 || g.GetRetryBudget().GetMinRetryConcurrency() != 3:
			return fmt.Errorf("retry budget %v, want 30%% and at least 3", g.GetRetryBudget())
		case g.GetConnectTimeout().AsDuration() != 750*time.Millisecond:
			return fmt.Errorf("connect timeout %v, want 750ms", g.GetConnectTimeout())
		}
		return nil
	})
	eventually(t, 10*time.Second, "the policy accepted for Gateway web", func() error {
		return w.policyAccepted(&flaxv1alpha1.BackendPolicy{}, "echo", "Gateway", "web", metav1.ConditionTrue, "Accepted")
	})

	update(w, policy, func(p *flaxv1alpha1.BackendPolicy) {
		p.Spec.LoadBalancing = &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingLeastRequest}
	})
	eventually(t, 10*time.Second, "the edited policy in the dataplane's backend group", func() error {
		g, err := backendGroup(dp.Running(), group)
		if err != nil {
			return err
		}
		if g.GetLoadBalancing().GetPolicy() != dataplanev1.LoadBalancing_LEAST_REQUEST || g.GetLoadBalancing().GetHashOn() != nil {
			return fmt.Errorf("load balancing %v, want LEAST_REQUEST", g.GetLoadBalancing())
		}
		return nil
	})

	// Creation times have a resolution of a second: make sure the rival is younger.
	time.Sleep(1100 * time.Millisecond)
	rival := &flaxv1alpha1.BackendPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "rival"},
		Spec: flaxv1alpha1.BackendPolicySpec{
			TargetRefs:    []gatewayv1.LocalPolicyTargetReferenceWithSectionName{serviceTarget("echo", "http")},
			LoadBalancing: &flaxv1alpha1.LoadBalancing{Type: flaxv1alpha1.LoadBalancingRandom},
		},
	}
	w.create(rival)
	t.Cleanup(func() { _ = w.c.Delete(w.ctx, rival) })
	eventually(t, 10*time.Second, "the younger policy Conflicted", func() error {
		return w.policyAccepted(&flaxv1alpha1.BackendPolicy{}, "rival", "Gateway", "web", metav1.ConditionFalse, "Conflicted")
	})
	if g, err := backendGroup(dp.Running(), group); err != nil || g.GetLoadBalancing().GetPolicy() != dataplanev1.LoadBalancing_LEAST_REQUEST {
		t.Errorf("after a conflicting policy, group %v (%v), want LEAST_REQUEST still", g, err)
	}

	late := &flaxv1alpha1.BackendPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "late"},
		Spec:       flaxv1alpha1.BackendPolicySpec{TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{serviceTarget("late")}},
	}
	w.create(late)
	t.Cleanup(func() { _ = w.c.Delete(w.ctx, late) })
	eventually(t, 10*time.Second, "a policy on a missing Service TargetNotFound", func() error {
		return w.policyAccepted(&flaxv1alpha1.BackendPolicy{}, "late", "Service", "late", metav1.ConditionFalse, "TargetNotFound")
	})
	// The Service is used by no route: only the policy makes its creation matter,
	// and it must be noticed at once (not at the next periodic translation).
	w.create(service(w.name, "late", 80, 8080))
	eventually(t, 2*time.Second, "the policy accepted once its Service exists", func() error {
		return w.policyAccepted(&flaxv1alpha1.BackendPolicy{}, "late", "Service", "late", metav1.ConditionTrue, "Accepted")
	})
	// The ancestorRef of a Service keeps the core group: the API server's default
	// for ancestorRef.group (gateway.networking.k8s.io) must not replace it.
	var stored flaxv1alpha1.BackendPolicy
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(late), &stored); err != nil {
		t.Fatal(err)
	}
	for _, a := range stored.Status.Ancestors {
		if string(a.ControllerName) == w.controllerName && (a.AncestorRef.Group == nil || *a.AncestorRef.Group != "") {
			t.Errorf("ancestorRef %+v of the Service target, want group \"\"", a.AncestorRef)
		}
	}
}

// TestRoutePolicy runs the controller against a real API server: a RoutePolicy on
// a named rule of an HTTPRoute puts a rate limit on that rule's dataplane route
// (bucket named after the rule) and none on the other rule, and is Accepted with
// the Gateway as ancestor, written once; deleting it removes the limit.
func TestRoutePolicy(t *testing.T) {
	w := newWorld(t, "route-policy", "10.17.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)
	class := gatewayClass(w.name, w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))
	w.create(service(w.name, "echo", 80, 8080))
	w.create(endpointSlice(w.name, "echo-1", "echo", 8080, "10.27.0.1"))
	route := httpRoute(w.name, "route", "web", "echo", 80)
	limited := *route.Spec.Rules[0].DeepCopy()
	limited.Name = ptr.To(gatewayv1.SectionName("limited"))
	limited.Matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Value: ptr.To("/limited")}}}
	route.Spec.Rules = append(route.Spec.Rules, limited)
	w.create(route)

	policy := &flaxv1alpha1.RoutePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "limit"},
		Spec: flaxv1alpha1.RoutePolicySpec{
			TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{{
				LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Name: "route"},
				SectionName:                ptr.To(gatewayv1.SectionName("limited")),
			}},
			RateLimit: &flaxv1alpha1.RateLimit{Requests: 20, Interval: "1s", Burst: ptr.To[int32](40), PerClientIP: ptr.To(true)},
		},
	}
	w.create(policy)
	flax := w.startController()

	rule0, rule1 := w.name+"/route/rule-0", w.name+"/route/rule-1"
	eventually(t, 30*time.Second, "the rate limit on the named rule's route", func() error {
		r0, r1 := dataplaneRoute(dp.Running(), rule0), dataplaneRoute(dp.Running(), rule1)
		if r0 == nil || r1 == nil {
			return fmt.Errorf("routes %s and %s not both in the snapshot", rule0, rule1)
		}
		if r0.GetRateLimit() != nil {
			return fmt.Errorf("rule 0 has rate limit %v, want none", r0.GetRateLimit())
		}
		rl := r1.GetRateLimit()
		if rl.GetBucket() != rule1 || rl.GetRequests() != 20 || rl.GetInterval().AsDuration() != time.Second || rl.GetBurst() != 40 || !rl.GetPerClientIp() {
			return fmt.Errorf("rule 1 has rate limit %v, want bucket %s, 20 per 1s, burst 40, per client IP", rl, rule1)
		}
		return nil
	})
	eventually(t, 10*time.Second, "the policy accepted for Gateway web", func() error {
		return w.policyAccepted(&flaxv1alpha1.RoutePolicy{}, "limit", "Gateway", "web", metav1.ConditionTrue, "Accepted")
	})
	// An unchanged status is not written again.
	var before, after flaxv1alpha1.RoutePolicy
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(policy), &before); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := flax.Status.Sync(w.ctx); err != nil {
			t.Fatalf("status sync: %v", err)
		}
	}
	if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(policy), &after); err != nil {
		t.Fatal(err)
	}
	if before.ResourceVersion != after.ResourceVersion {
		t.Errorf("syncing an unchanged status rewrote the policy (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}

	if err := w.c.Delete(w.ctx, policy); err != nil {
		t.Fatalf("delete policy: %v", err)
	}
	eventually(t, 10*time.Second, "no rate limit once the policy is gone", func() error {
		if r1 := dataplaneRoute(dp.Running(), rule1); r1 == nil || r1.GetRateLimit() != nil {
			return fmt.Errorf("rule 1 is %v, want it without rate limit", r1)
		}
		return nil
	})
}

// serviceTarget is a policy target reference to a Service, with a port name if
// section is given.
func serviceTarget(name string, section ...string) gatewayv1.LocalPolicyTargetReferenceWithSectionName {
	ref := gatewayv1.LocalPolicyTargetReferenceWithSectionName{LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{
		Kind: "Service", Name: gatewayv1.ObjectName(name),
	}}
	if len(section) > 0 {
		ref.SectionName = ptr.To(gatewayv1.SectionName(section[0]))
	}
	return ref
}

// policyAccepted reads the policy name of this world into obj and returns an error
// unless it has an ancestor entry of this world's controller for the object
// ancestorKind/ancestorName of the world's namespace whose Accepted condition has
// status and reason, observing the policy's generation.
func (w *world) policyAccepted(obj client.Object, name, ancestorKind, ancestorName string, status metav1.ConditionStatus, reason string) error {
	if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: name}, obj); err != nil {
		return err
	}
	var st gatewayv1.PolicyStatus
	switch p := obj.(type) {
	case *flaxv1alpha1.BackendPolicy:
		st = p.Status
	case *flaxv1alpha1.RoutePolicy:
		st = p.Status
	default:
		return fmt.Errorf("not a policy: %T", obj)
	}
	for _, a := range st.Ancestors {
		ref := a.AncestorRef
		if string(a.ControllerName) != w.controllerName || ref.Kind == nil || string(*ref.Kind) != ancestorKind ||
			string(ref.Name) != ancestorName || ref.Namespace == nil || string(*ref.Namespace) != w.name {
			continue
		}
		if err := hasCondition(a.Conditions, "Accepted", status, reason); err != nil {
			return fmt.Errorf("policy %s, ancestor %s %s: %w", name, ancestorKind, ancestorName, err)
		}
		if c := meta.FindStatusCondition(a.Conditions, "Accepted"); c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("policy %s: Accepted observed generation %d, want %d", name, c.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	}
	return fmt.Errorf("policy %s has no ancestor %s %s by %s: %+v", name, ancestorKind, ancestorName, w.controllerName, st.Ancestors)
}

// dataplaneRoute returns the first route named name in snap, or nil.
func dataplaneRoute(snap *dataplanev1.Snapshot, name string) *dataplanev1.Route {
	for _, l := range snap.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetName() == name {
					return r
				}
			}
		}
	}
	return nil
}
