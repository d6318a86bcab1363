// Package v1alpha1 holds Flax's own Kubernetes API, group flaxlb.io, version v1alpha1:
// GatewayClassParameters, the object a GatewayClass's spec.parametersRef names to
// configure the Gateways of that class (today: the pools their addresses come from).
//
// The types carry kubebuilder markers; `make generate` runs controller-gen to write
// zz_generated.deepcopy.go here and the CRD manifests to config/crd/bases. Both are
// committed.
//
// +kubebuilder:object:generate=true
// +groupName=flaxlb.io
package v1alpha1
