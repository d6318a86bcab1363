package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// GatewayClassParameters configures the Gateways of every GatewayClass whose
// spec.parametersRef names it (group flaxlb.io, kind GatewayClassParameters, no
// namespace: the resource is cluster-scoped). A GatewayClass that names a missing
// or invalid GatewayClassParameters is not accepted (reason InvalidParameters).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=flaxgcp,categories=flax
// +kubebuilder:printcolumn:name="Address Pools",type=string,JSONPath=`.spec.addressPools`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GatewayClassParameters struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the parameters.
	// +optional
	Spec GatewayClassParametersSpec `json:"spec,omitempty"`
}

// GatewayClassParametersSpec holds the parameters of a GatewayClass.
type GatewayClassParametersSpec struct {
	// AddressPools are the addresses Flax hands out to the Gateways of the class
	// that do not set spec.addresses: each entry is an IPv4 or IPv6 prefix in CIDR
	// form (e.g. 192.0.2.0/28, 2001:db8::/120) or a single address (e.g.
	// 192.0.2.7). Every address of a prefix is used, the network and broadcast
	// addresses included; route the pool to the nodes (for one node:
	// `ip route add local 192.0.2.0/28 dev lo`).
	//
	// Each Gateway gets one address of its own, so Gateways on the same port
	// never share a listener. Addresses are taken in order: entries as listed,
	// addresses of an entry in ascending order, the oldest Gateway first. A
	// Gateway keeps the address in its status.addresses while it stays in the
	// pool, and addresses named in any Gateway's spec.addresses are never handed
	// out. When the pool runs out, the Gateways left without an address are not
	// programmed (reason AddressNotAssigned).
	//
	// Without address pools, Gateways of the class that do not set spec.addresses
	// are served on the addresses of the nodes, as Gateways of a class without
	// parameters are.
	//
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	AddressPools []AddressPool `json:"addressPools,omitempty"`
}

// AddressPool is an IPv4 or IPv6 prefix in CIDR form with no bits set after the
// prefix length (192.0.2.0/28, not 192.0.2.1/28), or a single IP address.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="isCIDR(self) ? cidr(self) == cidr(self).masked() : isIP(self)",message="must be an IP address or a CIDR prefix with no bits set after the prefix length, such as 192.0.2.7, 192.0.2.0/28 or 2001:db8::/120"
type AddressPool string

// GatewayClassParametersList is a list of GatewayClassParameters.
//
// +kubebuilder:object:root=true
type GatewayClassParametersList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the GatewayClassParameters.
	Items []GatewayClassParameters `json:"items"`
}

// Interface checks: both types are API objects.
var (
	_ runtime.Object = &GatewayClassParameters{}
	_ runtime.Object = &GatewayClassParametersList{}
)
