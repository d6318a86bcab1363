// Package v1alpha1 holds Flax's own Kubernetes API, group flaxlb.io, version v1alpha1:
//
//   - GatewayClassParameters (cluster-scoped), the object a GatewayClass's
//     spec.parametersRef names to configure the Gateways of that class: the pools
//     their addresses come from, and the client-side timeouts, trusted proxy hops
//     and head limits of their listeners (spec.clientTraffic);
//   - BackendPolicy (namespaced), a Gateway API direct policy attached to Services
//     (optionally one port): load balancing, health checks, outlier detection,
//     circuit breakers, retry budget, connection timeouts and pooling;
//   - RoutePolicy (namespaced), a Gateway API direct policy attached to HTTPRoutes
//     (optionally one rule): a local rate limit.
//
// Both policies follow Gateway API policy attachment (GEP-713): spec.targetRefs are
// local references with an optional sectionName, and status is a PolicyStatus whose
// ancestors are the Flax Gateways the policy affects. Per target, the policy that
// names a section wins over one that does not, and among equals the oldest wins;
// their fields are never merged.
//
// The types carry kubebuilder markers (validation, CEL rules); `make generate` runs
// controller-gen to write zz_generated.deepcopy.go here and the CRD manifests to
// config/crd/bases (copied to charts/flax/crds). All are committed.
//
// +kubebuilder:object:generate=true
// +groupName=flaxlb.io
package v1alpha1
