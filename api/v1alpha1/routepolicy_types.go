package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RoutePolicy configures the rules of HTTPRoutes served by Flax Gateways beyond
// what the HTTPRoute API expresses; today, a local rate limit. It is a Gateway API
// direct policy (GEP-713): spec.targetRefs name HTTPRoutes of the policy's
// namespace, optionally one rule each (sectionName = the rule's name).
//
// A rule is configured by at most one RoutePolicy. A policy that names the rule
// in sectionName is more specific and wins over one that targets the whole route;
// between policies at the same level, the oldest wins (creation time, then
// namespace/name) and the others are not accepted there (reason Conflicted).
// Fields are never merged: the winning policy's unset fields take Flax's defaults,
// not another policy's values.
//
// status.ancestors holds one entry per Flax Gateway that serves a targeted route,
// with an Accepted condition (reasons Accepted, Invalid, TargetNotFound,
// Conflicted). A target no Flax Gateway serves (or that does not exist) gets an
// entry of its own, whose ancestorRef is the target.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=flaxrp,categories=flax
// +kubebuilder:metadata:labels="gateway.networking.k8s.io/policy=Direct"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RoutePolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy targets and the settings it applies.
	// +required
	Spec RoutePolicySpec `json:"spec"`

	// Status is written by Flax: how the policy applies, per Gateway.
	// +optional
	Status gatewayv1.PolicyStatus `json:"status,omitempty"`
}

// RoutePolicySpec holds the targets and the settings of a RoutePolicy.
type RoutePolicySpec struct {
	// TargetRefs are the HTTPRoutes the policy applies to, in the policy's
	// namespace: group gateway.networking.k8s.io and kind HTTPRoute. A
	// sectionName restricts a target to the rule of that name.
	//
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind == 'HTTPRoute')",message="a RoutePolicy targets HTTPRoutes: group must be gateway.networking.k8s.io and kind HTTPRoute"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, a.name == b.name && (has(a.sectionName) ? has(b.sectionName) && a.sectionName == b.sectionName : !has(b.sectionName))))",message="targetRefs must be unique"
	TargetRefs []gatewayv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// RateLimit bounds the rate of the requests each targeted rule matches.
	// Unset: no limit.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// RateLimit is a token bucket per rule (and, with perClientIP, per client
// address) kept by each node's dataplane: it holds up to burst tokens and gains
// requests tokens every interval; a request takes one token or is answered 429
// Too Many Requests without reaching a backend. Every node limits on its own, so
// the cluster-wide limit is the per-node limit times the number of nodes that
// receive traffic. A rule served on several listeners or hostnames has one bucket.
type RateLimit struct {
	// Requests is the number of tokens added every interval.
	// +required
	// +kubebuilder:validation:Minimum=1
	Requests int32 `json:"requests"`

	// Interval over which requests tokens are added, 1ms to 24h; e.g. 1s for a
	// rate in requests per second.
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('24h')",message="interval must be between 1ms and 24h"
	Interval gatewayv1.Duration `json:"interval"`

	// Burst is the capacity of the bucket: the number of requests that may pass
	// at once after a quiet period. Unset: requests.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`

	// PerClientIP keeps one bucket per client address instead of one for all
	// clients. Unset: false.
	// +optional
	PerClientIP *bool `json:"perClientIP,omitempty"`
}

// RoutePolicyList is a list of RoutePolicies.
//
// +kubebuilder:object:root=true
type RoutePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the RoutePolicies.
	Items []RoutePolicy `json:"items"`
}

// Interface checks: both types are API objects.
var (
	_ runtime.Object = &RoutePolicy{}
	_ runtime.Object = &RoutePolicyList{}
)
