package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// BackendPolicy configures how the Flax dataplane talks to the endpoints of core
// Services: load balancing, active health checks, outlier detection, circuit
// breakers, the retry budget, connection timeouts and the keep-alive pool. It is a
// Gateway API direct policy (GEP-713): spec.targetRefs name Services of the
// policy's namespace, optionally one port each (sectionName = the port's name).
//
// A Service port used as a backend by a route of a Flax Gateway is configured by
// at most one BackendPolicy. A policy that names the port in sectionName is more
// specific and wins over one that targets the whole Service; between policies at
// the same level, the oldest wins (creation time, then namespace/name) and the
// others are not accepted there (reason Conflicted). Fields are never merged: the
// winning policy's unset fields take Flax's defaults, not another policy's values.
//
// status.ancestors holds one entry per Flax Gateway whose routes use a targeted
// Service port, with an Accepted condition (reasons Accepted, Invalid,
// TargetNotFound, Conflicted). A target that no route of a Flax Gateway uses (or
// that does not exist) gets an entry of its own, whose ancestorRef is the target.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=flaxbp,categories=flax
// +kubebuilder:metadata:labels="gateway.networking.k8s.io/policy=Direct"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackendPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy targets and the settings it applies.
	// +required
	Spec BackendPolicySpec `json:"spec"`

	// Status is written by Flax: how the policy applies, per Gateway.
	// +optional
	Status gatewayv1.PolicyStatus `json:"status,omitempty"`
}

// BackendPolicySpec holds the targets and the settings of a BackendPolicy. Every
// setting is optional; one left unset keeps the dataplane's default (noted on each
// field).
type BackendPolicySpec struct {
	// TargetRefs are the Services the policy applies to, in the policy's namespace:
	// group "" and kind Service. A sectionName restricts a target to the Service
	// port of that name.
	//
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == '' && r.kind == 'Service')",message="a BackendPolicy targets core Services: group must be \"\" and kind Service"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, a.name == b.name && (has(a.sectionName) ? has(b.sectionName) && a.sectionName == b.sectionName : !has(b.sectionName))))",message="targetRefs must be unique"
	TargetRefs []gatewayv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// LoadBalancing picks the endpoint of each request. Unset: RoundRobin.
	// +optional
	LoadBalancing *LoadBalancing `json:"loadBalancing,omitempty"`

	// HealthCheck probes every endpoint actively; endpoints that fail it get no
	// requests until they pass again. Unset: no active health checks.
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`

	// OutlierDetection ejects endpoints from load balancing after consecutive
	// failures of real requests. Unset: no ejection.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// CircuitBreakers bound the load the dataplane of one node puts on the
	// Service port. Unset: no limits.
	// +optional
	CircuitBreakers *CircuitBreakers `json:"circuitBreakers,omitempty"`

	// RetryBudget bounds the retries in flight to the Service port as a share of
	// its requests in flight, so that retries cannot multiply the load during an
	// outage. Unset: 20%, and at least 3 retries in flight.
	// +optional
	RetryBudget *RetryBudget `json:"retryBudget,omitempty"`

	// ConnectTimeout bounds opening a connection to an endpoint (at least 1ms).
	// Unset: 2s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="connectTimeout must be at least 1ms"
	ConnectTimeout *gatewayv1.Duration `json:"connectTimeout,omitempty"`

	// IdleTimeout closes upstream connections that stayed idle this long (at
	// least 1ms). Unset: 60s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="idleTimeout must be at least 1ms"
	IdleTimeout *gatewayv1.Duration `json:"idleTimeout,omitempty"`

	// ResponseHeaderTimeout bounds the wait for a response head once the request
	// is sent (and while the backend does not take the request): the client is
	// answered 504 and the endpoint's failure counts for outlier detection; the
	// request is not retried. Between 1ms and 24h. Unset: 60s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('24h')",message="responseHeaderTimeout must be between 1ms and 24h"
	ResponseHeaderTimeout *gatewayv1.Duration `json:"responseHeaderTimeout,omitempty"`

	// ResponseBodyIdleTimeout closes the connections of a response whose body
	// stops arriving: no byte for this long. A body that is slow but moving is
	// never cut. Between 1ms and 24h. Unset: 60s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('24h')",message="responseBodyIdleTimeout must be between 1ms and 24h"
	ResponseBodyIdleTimeout *gatewayv1.Duration `json:"responseBodyIdleTimeout,omitempty"`

	// MaxIdleConnectionsPerEndpoint is the number of idle keep-alive connections
	// the dataplane keeps to each endpoint. Unset: 64.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	MaxIdleConnectionsPerEndpoint *int32 `json:"maxIdleConnectionsPerEndpoint,omitempty"`
}

// LoadBalancingType is a load-balancing algorithm.
//
// +kubebuilder:validation:Enum=RoundRobin;WeightedRoundRobin;LeastRequest;Random;RingHash;Maglev
type LoadBalancingType string

// The load-balancing algorithms.
const (
	// LoadBalancingRoundRobin cycles through the endpoints.
	LoadBalancingRoundRobin LoadBalancingType = "RoundRobin"
	// LoadBalancingWeightedRoundRobin cycles through the endpoints in proportion
	// to their weights. Endpoints of a Service all weigh the same today, so it
	// behaves as RoundRobin.
	LoadBalancingWeightedRoundRobin LoadBalancingType = "WeightedRoundRobin"
	// LoadBalancingLeastRequest picks, of two endpoints drawn at random, the one
	// with fewer requests in flight.
	LoadBalancingLeastRequest LoadBalancingType = "LeastRequest"
	// LoadBalancingRandom picks an endpoint at random.
	LoadBalancingRandom LoadBalancingType = "Random"
	// LoadBalancingRingHash is consistent hashing on a ring, keyed by hashOn.
	LoadBalancingRingHash LoadBalancingType = "RingHash"
	// LoadBalancingMaglev is Maglev consistent hashing, keyed by hashOn.
	LoadBalancingMaglev LoadBalancingType = "Maglev"
)

// LoadBalancing is a load-balancing algorithm and, for the consistent-hashing
// algorithms, the request property it hashes.
//
// +kubebuilder:validation:XValidation:rule="has(self.hashOn) == (self.type == 'RingHash' || self.type == 'Maglev')",message="hashOn must be set for RingHash and Maglev, and only for them"
type LoadBalancing struct {
	// Type is the algorithm.
	// +required
	Type LoadBalancingType `json:"type"`

	// HashOn is the key of RingHash and Maglev: requests with the same key go to
	// the same endpoint while the set of endpoints stays the same. Required for
	// those two types, forbidden for the others.
	// +optional
	HashOn *HashOn `json:"hashOn,omitempty"`
}

// HashOn is the request property a consistent hash is computed from: exactly one
// of header, cookie and sourceIP. A request without the header or cookie gets a
// random endpoint.
//
// +kubebuilder:validation:XValidation:rule="(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.sourceIP) ? 1 : 0) == 1",message="set exactly one of header, cookie and sourceIP"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceIP) || self.sourceIP",message="sourceIP must be true when set"
type HashOn struct {
	// Header hashes the value of this request header.
	// +optional
	Header *gatewayv1.HTTPHeaderName `json:"header,omitempty"`

	// Cookie hashes the value of this request cookie.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Cookie *string `json:"cookie,omitempty"`

	// SourceIP hashes the client's address; it must be true when set.
	// +optional
	SourceIP *bool `json:"sourceIP,omitempty"`
}

// HealthCheck probes every endpoint with an HTTP GET request (HTTP/1.1, or h2c
// for ports that speak it), or with a gRPC health check when grpc is set. Each
// dataplane node checks the endpoints on its own.
//
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !has(self.interval) || duration(self.timeout) <= duration(self.interval)",message="timeout must not exceed interval"
// +kubebuilder:validation:XValidation:rule="!has(self.grpc) || (!has(self.path) && !has(self.expectedStatuses))",message="path and expectedStatuses must be unset when grpc is set"
type HealthCheck struct {
	// GRPC makes the probe a call of the standard gRPC health service
	// (grpc.health.v1.Health/Check) over h2c instead of an HTTP GET: only the
	// SERVING status is healthy. It applies to Service ports that speak h2c
	// (appProtocol kubernetes.io/h2c, h2c or grpc, or ports GRPCRoutes use
	// without appProtocol); other ports of the target keep no health check,
	// and the policy's status says so.
	// +optional
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`

	// Path of the probe request. Unset: "/".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path *string `json:"path,omitempty"`

	// Host is the Host header of the probe: a DNS name or an IP address. Unset:
	// the endpoint's address.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host *string `json:"host,omitempty"`

	// ExpectedStatuses are the response statuses that count as healthy. Unset:
	// 200-299.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ExpectedStatuses []StatusRange `json:"expectedStatuses,omitempty"`

	// Interval between two probes of one endpoint (at least 1ms). Unset: 5s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="interval must be at least 1ms"
	Interval *gatewayv1.Duration `json:"interval,omitempty"`

	// Timeout of one probe (at least 1ms); it must not exceed interval. Unset: 1s,
	// or interval when that is shorter.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="timeout must be at least 1ms"
	Timeout *gatewayv1.Duration `json:"timeout,omitempty"`

	// Jitter is a random delay, up to this long, added to every interval so that
	// probes of many endpoints spread out. Unset: none.
	// +optional
	Jitter *gatewayv1.Duration `json:"jitter,omitempty"`

	// HealthyThreshold is the number of consecutive successful probes that make
	// an unhealthy endpoint healthy. Unset: 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	HealthyThreshold *int32 `json:"healthyThreshold,omitempty"`

	// UnhealthyThreshold is the number of consecutive failed probes that make a
	// healthy endpoint unhealthy. Unset: 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	UnhealthyThreshold *int32 `json:"unhealthyThreshold,omitempty"`
}

// GRPCHealthCheck is the gRPC form of a health check.
type GRPCHealthCheck struct {
	// Service is the service name the health check asks about. Unset: the
	// server as a whole (the empty name).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[!-~]+$`
	Service *string `json:"service,omitempty"`
}

// StatusRange is an inclusive range of HTTP response statuses.
//
// +kubebuilder:validation:XValidation:rule="!has(self.max) || self.max >= self.min",message="max must not be below min"
type StatusRange struct {
	// Min is the lowest status of the range.
	// +required
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	Min int32 `json:"min"`

	// Max is the highest status of the range. Unset: min (a single status).
	// +optional
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	Max *int32 `json:"max,omitempty"`
}

// OutlierDetection ejects an endpoint from load balancing after consecutive
// failures, for baseEjectionTime multiplied by the number of times it was ejected
// (at most 300s, or baseEjectionTime when that is longer). Failures are counted
// per node, over all its cores.
//
// +kubebuilder:validation:XValidation:rule="has(self.consecutiveServerErrors) || has(self.consecutiveConnectFailures)",message="set consecutiveServerErrors, consecutiveConnectFailures or both"
type OutlierDetection struct {
	// ConsecutiveServerErrors ejects an endpoint after this many consecutive
	// server errors: 5xx responses, resets, timeouts and malformed responses.
	// Unset: server errors do not eject.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ConsecutiveServerErrors *int32 `json:"consecutiveServerErrors,omitempty"`

	// ConsecutiveConnectFailures ejects an endpoint after this many consecutive
	// failures to connect. Unset: connect failures do not eject.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ConsecutiveConnectFailures *int32 `json:"consecutiveConnectFailures,omitempty"`

	// BaseEjectionTime is the length of an endpoint's first ejection (at least
	// 1ms). Unset: 30s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="baseEjectionTime must be at least 1ms"
	BaseEjectionTime *gatewayv1.Duration `json:"baseEjectionTime,omitempty"`

	// MaxEjectionPercent caps the share of the endpoints ejected at once; one
	// endpoint may always be ejected. Unset: 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// CircuitBreakers are limits on the load one node's dataplane puts on a Service
// port, summed over its cores. A request over the connection, pending-request or
// request limit is answered 503 without reaching an endpoint; a retry over the
// retry limit is not made. An unset limit does not apply.
type CircuitBreakers struct {
	// MaxConnections bounds the connections to all endpoints; a request that
	// finds them all busy waits as pending.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// MaxPendingRequests bounds the requests waiting for a connection.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`

	// MaxRequests bounds the requests in flight.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`

	// MaxRetries bounds the retries in flight.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// RetryBudget allows a retry only while the retries in flight to the Service port
// stay below max(minRetryConcurrency, percent% of its requests in flight), counted
// per node. A retry over budget is not made: the client gets the failed attempt's
// response. percent 0 with minRetryConcurrency 0 turns retries off.
type RetryBudget struct {
	// Percent of the requests in flight that may be retries. Unset: 20.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int32 `json:"percent,omitempty"`

	// MinRetryConcurrency is the number of retries always allowed in flight,
	// whatever the share. Unset: 3.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MinRetryConcurrency *int32 `json:"minRetryConcurrency,omitempty"`
}

// BackendPolicyList is a list of BackendPolicies.
//
// +kubebuilder:object:root=true
type BackendPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the BackendPolicies.
	Items []BackendPolicy `json:"items"`
}

// Interface checks: both types are API objects.
var (
	_ runtime.Object = &BackendPolicy{}
	_ runtime.Object = &BackendPolicyList{}
)
