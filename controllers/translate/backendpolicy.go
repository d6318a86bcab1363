package translate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// defaultHealthCheckPath is the probe path of a health check without path, as the
// API documents it (the dataplane requires a path).
const defaultHealthCheckPath = "/"

// minPolicyDuration is the shortest timeout, interval or ejection time a policy
// may set.
const minPolicyDuration = time.Millisecond

// loadBalancingPolicies maps the API's load-balancing types to the dataplane's.
var loadBalancingPolicies = map[flaxv1alpha1.LoadBalancingType]dataplanev1.LoadBalancing_Policy{
	flaxv1alpha1.LoadBalancingRoundRobin:         dataplanev1.LoadBalancing_ROUND_ROBIN,
	flaxv1alpha1.LoadBalancingWeightedRoundRobin: dataplanev1.LoadBalancing_WEIGHTED_ROUND_ROBIN,
	flaxv1alpha1.LoadBalancingLeastRequest:       dataplanev1.LoadBalancing_LEAST_REQUEST,
	flaxv1alpha1.LoadBalancingRandom:             dataplanev1.LoadBalancing_RANDOM,
	flaxv1alpha1.LoadBalancingRingHash:           dataplanev1.LoadBalancing_RING_HASH,
	flaxv1alpha1.LoadBalancingMaglev:             dataplanev1.LoadBalancing_MAGLEV,
}

// translateBackendPolicies translates the settings of every BackendPolicy,
// resolves its targets, gives every Service port to the policy that holds it and
// finds the Gateways each target concerns. It runs once the routes are placed,
// which decides the backend groups in use.
func (t *translator) translateBackendPolicies() {
	for i := range t.in.BackendPolicies {
		bp := &t.in.BackendPolicies[i]
		p := newPolicy(flaxv1alpha1.KindBackendPolicy, bp, bp.Spec.TargetRefs, kindService, describeServiceTarget)
		var problems []string
		p.backend, problems = backendSettings(&bp.Spec)
		p.invalid = append(p.invalid, problems...)
		for _, tg := range p.targets {
			t.resolveServiceTarget(tg)
		}
		t.backendPolicies = append(t.backendPolicies, p)
	}
	sortPolicies(t.backendPolicies)
	t.backendHolders = claimSlots(t.backendPolicies)
	names := make([]string, 0, len(t.groups))
	for name, g := range t.groups {
		if g.used {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, p := range t.backendPolicies {
		for _, tg := range p.targets {
			t.serviceTargetGateways(p, tg, names)
		}
	}
}

// describeServiceTarget names a BackendPolicy target in messages.
func describeServiceTarget(name, section string) string {
	if section == "" {
		return "Service " + name
	}
	return fmt.Sprintf("port %s of Service %s", section, name)
}

// resolveServiceTarget checks that the Service of tg exists and has the port
// its sectionName names.
func (t *translator) resolveServiceTarget(tg *policyTarget) {
	if tg.foreign {
		return
	}
	svc, ok := t.services[tg.slot.object]
	if !ok {
		tg.notFound = fmt.Sprintf("targetRefs[%d]: Service %s does not exist; create it or fix the reference", tg.index, tg.slot.object)
		return
	}
	if tg.slot.section == "" {
		return
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == tg.slot.section }) {
		tg.notFound = fmt.Sprintf("targetRefs[%d]: Service %s has no port named %s (%s); fix sectionName",
			tg.index, tg.slot.object, tg.slot.section, namedPorts(svc))
	}
}

// namedPorts lists the port names of a Service for messages.
func namedPorts(svc *corev1.Service) string {
	var names []string
	for _, p := range svc.Spec.Ports {
		if p.Name != "" {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return "it has no named ports"
	}
	return "its named ports are " + strings.Join(names, ", ")
}

// serviceTargetGateways finds the Gateways whose routes use the Service ports tg
// targets, among the backend groups in use (names). A whole-Service target of the
// policy in effect leaves out the ports that more specific policies hold, and
// notes them.
func (t *translator) serviceTargetGateways(p *policyInfo, tg *policyTarget, names []string) {
	if !tg.resolved() {
		return
	}
	holds := p.applies(tg) && tg.slot.section == ""
	for _, name := range names {
		g := t.groups[name]
		if key(g.service) != tg.slot.object || (tg.slot.section != "" && g.port.Name != tg.slot.section) {
			continue
		}
		if holds {
			if h := holder(t.backendHolders, tg.slot.object, g.port.Name); h != p {
				tg.notes = append(tg.notes, fmt.Sprintf("port %s of Service %s is configured by the more specific BackendPolicy %s",
					g.port.Name, tg.slot.object, h.key))
				continue
			}
		}
		if grpcHealthCheckSkips(p.backend, g) {
			tg.notes = append(tg.notes, fmt.Sprintf("routes speak HTTP/1.1 to port %s of Service %s, so the gRPC health check does not apply to them there (gRPC health checks speak h2c: give the port appProtocol kubernetes.io/h2c or grpc)",
				portName(g.port), tg.slot.object))
		}
		for gw := range g.gateways {
			tg.gateways[gw] = true
		}
	}
}

// grpcHealthCheckSkips reports whether the BackendPolicy settings s carry a
// gRPC health check that group g cannot take: it speaks HTTP/1.1, and gRPC
// health checks speak h2c.
func grpcHealthCheckSkips(s *dataplanev1.BackendGroup, g *groupInfo) bool {
	return s.GetHealthCheck().GetGrpc() != nil && g.protocol != dataplanev1.BackendGroup_H2C
}

// portName names a Service port in messages: its name, or its number.
func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// applyBackendPolicy sets the fields of bg, the group of g, from the BackendPolicy
// in effect for its Service port, if any.
func (t *translator) applyBackendPolicy(g *groupInfo, bg *dataplanev1.BackendGroup) {
	h := holder(t.backendHolders, key(g.service), g.port.Name)
	if h == nil {
		return
	}
	s := h.backend
	if s.LoadBalancing != nil {
		bg.LoadBalancing = proto.CloneOf(s.LoadBalancing)
	}
	if grpcHealthCheckSkips(s, g) {
		bg.HealthCheck = nil // noted on the policy by serviceTargetGateways
	} else {
		bg.HealthCheck = proto.CloneOf(s.HealthCheck)
	}
	bg.OutlierDetection = proto.CloneOf(s.OutlierDetection)
	bg.CircuitBreakers = proto.CloneOf(s.CircuitBreakers)
	bg.RetryBudget = proto.CloneOf(s.RetryBudget)
	bg.ConnectTimeout = proto.CloneOf(s.ConnectTimeout)
	bg.IdleTimeout = proto.CloneOf(s.IdleTimeout)
	bg.ResponseHeaderTimeout = proto.CloneOf(s.ResponseHeaderTimeout)
	bg.ResponseBodyIdleTimeout = proto.CloneOf(s.ResponseBodyIdleTimeout)
	bg.MaxIdleConnectionsPerEndpoint = s.MaxIdleConnectionsPerEndpoint
}

// backendSettings translates the settings of a BackendPolicy into the fields of a
// backend group, and returns what is wrong with them: the API's rules (which the
// API server enforces too, but objects may predate them), then the dataplane's own
// validation of the result.
func backendSettings(spec *flaxv1alpha1.BackendPolicySpec) (*dataplanev1.BackendGroup, []string) {
	var fp fieldProblems
	g := &dataplanev1.BackendGroup{}
	if lb := spec.LoadBalancing; lb != nil {
		g.LoadBalancing = loadBalancing(lb, &fp)
	}
	if hc := spec.HealthCheck; hc != nil {
		g.HealthCheck = healthCheck(hc, &fp)
	}
	if od := spec.OutlierDetection; od != nil {
		o := &dataplanev1.OutlierDetection{
			ConsecutiveServerErrors:    count(&fp, "outlierDetection.consecutiveServerErrors", od.ConsecutiveServerErrors, 1, 0),
			ConsecutiveConnectFailures: count(&fp, "outlierDetection.consecutiveConnectFailures", od.ConsecutiveConnectFailures, 1, 0),
			BaseEjectionTime:           policyDuration(&fp, "outlierDetection.baseEjectionTime", od.BaseEjectionTime, minPolicyDuration),
			MaxEjectionPercent:         count(&fp, "outlierDetection.maxEjectionPercent", od.MaxEjectionPercent, 1, 100),
		}
		if od.ConsecutiveServerErrors == nil && od.ConsecutiveConnectFailures == nil {
			fp.add("outlierDetection", "set consecutiveServerErrors, consecutiveConnectFailures or both; without them nothing is ejected")
		}
		g.OutlierDetection = o
	}
	if cb := spec.CircuitBreakers; cb != nil {
		g.CircuitBreakers = &dataplanev1.CircuitBreakers{
			MaxConnections:     count(&fp, "circuitBreakers.maxConnections", cb.MaxConnections, 1, 0),
			MaxPendingRequests: count(&fp, "circuitBreakers.maxPendingRequests", cb.MaxPendingRequests, 1, 0),
			MaxRequests:        count(&fp, "circuitBreakers.maxRequests", cb.MaxRequests, 1, 0),
			MaxRetries:         count(&fp, "circuitBreakers.maxRetries", cb.MaxRetries, 1, 0),
		}
	}
	if rb := spec.RetryBudget; rb != nil {
		// A field left out keeps the dataplane's default: the snapshot cannot leave
		// one field of a budget unset.
		g.RetryBudget = &dataplanev1.RetryBudget{
			Percent:             dataplanev1.DefaultRetryBudgetPercent,
			MinRetryConcurrency: dataplanev1.DefaultRetryBudgetMinConcurrency,
		}
		if rb.Percent != nil {
			g.RetryBudget.Percent = count(&fp, "retryBudget.percent", rb.Percent, 0, 100)
		}
		if rb.MinRetryConcurrency != nil {
			g.RetryBudget.MinRetryConcurrency = count(&fp, "retryBudget.minRetryConcurrency", rb.MinRetryConcurrency, 0, 100000)
		}
	}
	g.ConnectTimeout = policyDuration(&fp, "connectTimeout", spec.ConnectTimeout, minPolicyDuration)
	g.IdleTimeout = policyDuration(&fp, "idleTimeout", spec.IdleTimeout, minPolicyDuration)
	g.ResponseHeaderTimeout = policyDuration(&fp, "responseHeaderTimeout", spec.ResponseHeaderTimeout, minPolicyDuration)
	g.ResponseBodyIdleTimeout = policyDuration(&fp, "responseBodyIdleTimeout", spec.ResponseBodyIdleTimeout, minPolicyDuration)
	g.MaxIdleConnectionsPerEndpoint = count(&fp, "maxIdleConnectionsPerEndpoint", spec.MaxIdleConnectionsPerEndpoint, 1, 65535)

	// The dataplane's validation of the group, for what the API does not say.
	check := proto.CloneOf(g)
	check.Name = "check"
	if g.GetHealthCheck().GetGrpc() != nil {
		// A gRPC health check applies to the target's h2c ports only, which
		// applyBackendPolicy sees; it is not a problem of the policy.
		check.Protocol = dataplanev1.BackendGroup_H2C
	}
	if err := dataplanev1.Validate(&dataplanev1.Snapshot{BackendGroups: []*dataplanev1.BackendGroup{check}}); err != nil {
		for _, e := range unjoin(err) {
			var fe *dataplanev1.FieldError
			if !errors.As(e, &fe) {
				fp.add("spec", "%v", e)
				continue
			}
			field := strings.TrimPrefix(fe.Field, "backendGroups[0].")
			field = strings.ReplaceAll(field, "hashOn.sourceIp", "hashOn.sourceIP")
			fp.add(field, "%s", fe.Detail)
		}
	}
	return g, fp.msgs
}

// loadBalancing translates the load-balancing settings of a BackendPolicy.
func loadBalancing(lb *flaxv1alpha1.LoadBalancing, fp *fieldProblems) *dataplanev1.LoadBalancing {
	policy, ok := loadBalancingPolicies[lb.Type]
	if !ok {
		fp.add("loadBalancing.type", "%q is not a load-balancing type; use RoundRobin, WeightedRoundRobin, LeastRequest, Random, RingHash or Maglev", lb.Type)
		return nil
	}
	out := &dataplanev1.LoadBalancing{Policy: policy}
	hashed := policy == dataplanev1.LoadBalancing_RING_HASH || policy == dataplanev1.LoadBalancing_MAGLEV
	h := lb.HashOn
	switch {
	case hashed && h == nil:
		fp.add("loadBalancing.hashOn", "must be set for type %s: set header, cookie or sourceIP", lb.Type)
	case !hashed && h != nil:
		fp.add("loadBalancing.hashOn", "must not be set for type %s; only RingHash and Maglev hash", lb.Type)
	case h == nil:
	case countSet(h.Header != nil, h.Cookie != nil, h.SourceIP != nil) != 1:
		fp.add("loadBalancing.hashOn", "set exactly one of header, cookie and sourceIP")
	case h.Header != nil:
		out.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_Header{Header: string(*h.Header)}}
	case h.Cookie != nil:
		out.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_Cookie{Cookie: *h.Cookie}}
	case !*h.SourceIP:
		fp.add("loadBalancing.hashOn.sourceIP", "must be true when set")
	default:
		out.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_SourceIp{SourceIp: true}}
	}
	return out
}

// healthCheck translates the health check of a BackendPolicy.
func healthCheck(hc *flaxv1alpha1.HealthCheck, fp *fieldProblems) *dataplanev1.HealthCheck {
	out := &dataplanev1.HealthCheck{
		Path:               defaultHealthCheckPath,
		Interval:           policyDuration(fp, "healthCheck.interval", hc.Interval, minPolicyDuration),
		Timeout:            policyDuration(fp, "healthCheck.timeout", hc.Timeout, minPolicyDuration),
		Jitter:             policyDuration(fp, "healthCheck.jitter", hc.Jitter, 0),
		HealthyThreshold:   count(fp, "healthCheck.healthyThreshold", hc.HealthyThreshold, 1, 1000),
		UnhealthyThreshold: count(fp, "healthCheck.unhealthyThreshold", hc.UnhealthyThreshold, 1, 1000),
	}
	if hc.Path != nil {
		out.Path = *hc.Path
	}
	if g := hc.GRPC; g != nil {
		// The probe calls grpc.health.v1.Health/Check: no path, no statuses.
		out.Path = ""
		out.Grpc = &dataplanev1.GRPCHealthCheck{}
		if g.Service != nil {
			out.Grpc.Service = *g.Service
		}
		if hc.Path != nil {
			fp.add("healthCheck.path", "must be unset when grpc is set (the probe calls grpc.health.v1.Health/Check)")
		}
		if len(hc.ExpectedStatuses) > 0 {
			fp.add("healthCheck.expectedStatuses", "must be unset when grpc is set (only the SERVING status is healthy)")
		}
	}
	if hc.Host != nil {
		out.Host = *hc.Host
	}
	for i, r := range hc.ExpectedStatuses {
		where := fmt.Sprintf("healthCheck.expectedStatuses[%d]", i)
		lo := count(fp, where+".min", &r.Min, 100, 599)
		hi := lo
		if r.Max != nil {
			hi = count(fp, where+".max", r.Max, 100, 599)
		}
		if hi < lo {
			fp.add(where+".max", "must not be below min (%d), got %d", lo, hi)
		}
		out.ExpectedStatuses = append(out.ExpectedStatuses, &dataplanev1.StatusRange{Min: lo, Max: hi})
	}
	interval, intervalFrom := dataplanev1.DefaultHealthInterval, "the default interval"
	if out.Interval != nil {
		interval, intervalFrom = out.Interval.AsDuration(), "interval"
	}
	if out.Timeout != nil && out.Timeout.AsDuration() > interval {
		fp.add("healthCheck.timeout", "must not exceed %s (%s), got %s", intervalFrom, interval, out.Timeout.AsDuration())
	}
	return out
}

// policyDuration parses the Gateway API duration d of field (nil gives nil) and
// checks that it is at least least.
func policyDuration(fp *fieldProblems, field string, d *gatewayv1.Duration, least time.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	v, err := parseDuration(string(*d))
	if err != nil {
		fp.add(field, "%v", err)
		return nil
	}
	if v < least {
		fp.add(field, "must be at least %s, got %s", least, v)
		return nil
	}
	return durationpb.New(v)
}

// count returns the value of field (0 when nil) and checks that it lies between
// least and most (no upper bound when most is 0).
func count(fp *fieldProblems, field string, v *int32, least, most int32) uint32 {
	if v == nil {
		return 0
	}
	if *v < least || (most > 0 && *v > most) {
		if most > 0 {
			fp.add(field, "must be between %d and %d, got %d", least, most, *v)
		} else {
			fp.add(field, "must be at least %d, got %d", least, *v)
		}
		return 0
	}
	return uint32(*v)
}

// countSet counts the true values.
func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// unjoin splits an error made by errors.Join into its parts.
func unjoin(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	return []error{err}
}
