package translate

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// Input is everything the translator looks at: the cluster's Gateway API objects
// and the core objects they refer to. Objects of other controllers may be included;
// they are ignored. Translate does not modify Input.
type Input struct {
	// ControllerName is the spec.controllerName of the GatewayClasses Flax serves,
	// e.g. "flaxlb.io/gateway-controller".
	ControllerName string
	// GatewayClasses are all GatewayClasses of the cluster.
	GatewayClasses []gatewayv1.GatewayClass
	// Parameters are the GatewayClassParameters the classes' parametersRefs may
	// name.
	Parameters []flaxv1alpha1.GatewayClassParameters
	// Gateways are all Gateways of the cluster, with their status: the addresses
	// in status.addresses are those a Gateway got last time, which an address
	// pool keeps giving it while they stay free and in the pool.
	Gateways []gatewayv1.Gateway
	// ListenerSets are all ListenerSets of the cluster; those whose parentRef
	// names a Gateway of Flax's classes add listeners to it.
	ListenerSets []gatewayv1.ListenerSet
	// HTTPRoutes are all HTTPRoutes of the cluster.
	HTTPRoutes []gatewayv1.HTTPRoute
	// GRPCRoutes are all GRPCRoutes of the cluster.
	GRPCRoutes []gatewayv1.GRPCRoute
	// TCPRoutes are all TCPRoutes of the cluster.
	TCPRoutes []gatewayv1.TCPRoute
	// TLSRoutes are all TLSRoutes of the cluster.
	TLSRoutes []gatewayv1.TLSRoute
	// UDPRoutes are all UDPRoutes of the cluster.
	UDPRoutes []gatewayv1.UDPRoute
	// ReferenceGrants are all ReferenceGrants of the cluster.
	ReferenceGrants []gatewayv1beta1.ReferenceGrant
	// Services are the Services routes may refer to and BackendPolicies may
	// target.
	Services []corev1.Service
	// EndpointSlices are the EndpointSlices of those Services (labelled
	// kubernetes.io/service-name).
	EndpointSlices []discoveryv1.EndpointSlice
	// Secrets are the Secrets Gateway listeners and Gateways'
	// spec.tls.backend.clientCertificateRef may refer to.
	Secrets []corev1.Secret
	// ConfigMaps are the ConfigMaps the CA certificate references of Gateways'
	// spec.tls.frontend and of BackendTLSPolicies may refer to.
	ConfigMaps []corev1.ConfigMap
	// Namespaces are all Namespaces, for allowedRoutes namespace selectors. A
	// namespace missing here is taken to carry only the kubernetes.io/metadata.name
	// label.
	Namespaces []corev1.Namespace
	// BackendPolicies are all BackendPolicies of the cluster.
	BackendPolicies []flaxv1alpha1.BackendPolicy
	// RoutePolicies are all RoutePolicies of the cluster.
	RoutePolicies []flaxv1alpha1.RoutePolicy
	// BackendTLSPolicies are all BackendTLSPolicies of the cluster.
	BackendTLSPolicies []gatewayv1.BackendTLSPolicy
	// GatewayAPICRDs are the installed CustomResourceDefinitions of the Gateway API
	// groups (GatewayAPIGroups), for the GatewayClass SupportedVersion condition.
	GatewayAPICRDs []CRD
	// NodeAddresses are the addresses of the Ready nodes running a Ready dataplane;
	// they are the addresses of every Gateway without spec.addresses whose class
	// has no address pool.
	NodeAddresses []string
	// DataplaneNodes are those nodes by name, with their addresses: the
	// endpoints of the Services of Gateways served on the node addresses.
	DataplaneNodes []DataplaneNode
	// GatewayServices are the Services Flax created for Gateways (labelled
	// GatewayServiceLabel): a load balancer's ingress addresses in their status
	// become their Gateway's addresses.
	GatewayServices []corev1.Service
}

// DataplaneNode is a Ready node running a Ready dataplane.
type DataplaneNode struct {
	// Name of the Node.
	Name string `json:"name"`
	// Addresses are its addresses, as in NodeAddresses.
	Addresses []string `json:"addresses"`
}

// CRD is an installed Gateway API CustomResourceDefinition.
type CRD struct {
	// Name of the CRD, e.g. "httproutes.gateway.networking.k8s.io".
	Name string `json:"name"`
	// BundleVersion is its gateway.networking.k8s.io/bundle-version annotation,
	// e.g. "v1.6.3"; empty when the CRD has none.
	BundleVersion string `json:"bundleVersion,omitempty"`
	// Channel is its gateway.networking.k8s.io/channel annotation, "standard" or
	// "experimental"; empty when the CRD has none.
	Channel string `json:"channel,omitempty"`
}

// Output is the result of Translate. Every list is sorted: classes by name,
// Gateways, HTTPRoutes and policies by namespace and name.
type Output struct {
	// Snapshot is the dataplane configuration. Its Version is 0 (the caller sets it);
	// its Hash is filled in. Certificate and key bytes are shared with the Secrets
	// of the Input; treat both as immutable.
	Snapshot *dataplanev1.Snapshot
	// GatewayClasses holds the status of every GatewayClass of ControllerName.
	GatewayClasses []ClassStatus
	// Gateways holds the status of every Gateway of those classes.
	Gateways []GatewayStatus
	// ListenerSets holds the status of every ListenerSet whose parentRef names
	// one of those Gateways.
	ListenerSets []ListenerSetStatus
	// HTTPRoutes holds, for every HTTPRoute of the Input, the parent entries of its
	// parentRefs to Gateways of those classes, possibly none. The status writer
	// replaces the entries whose controllerName is ControllerName with these and
	// keeps those of other controllers.
	HTTPRoutes []RouteStatus
	// GRPCRoutes, TCPRoutes, TLSRoutes and UDPRoutes hold the parent entries of
	// every GRPCRoute, TCPRoute, TLSRoute and UDPRoute of the Input, as
	// HTTPRoutes does for HTTPRoutes.
	GRPCRoutes []RouteStatus
	TCPRoutes  []RouteStatus
	TLSRoutes  []RouteStatus
	UDPRoutes  []RouteStatus
	// BackendPolicies holds the status of every BackendPolicy of the Input.
	BackendPolicies []PolicyStatus
	// RoutePolicies holds the status of every RoutePolicy of the Input.
	RoutePolicies []PolicyStatus
	// BackendTLSPolicies holds the status of every BackendTLSPolicy of the
	// Input.
	BackendTLSPolicies []PolicyStatus
	// GatewayServices are the Services the Gateways of classes with a service
	// in their parameters should have, by Gateway namespace and name; the
	// Services (and EndpointSlices) Flax created that are not listed here are
	// to be deleted.
	GatewayServices []GatewayService
}

// ClassStatus is the status Flax computed for one GatewayClass.
type ClassStatus struct {
	// Name of the GatewayClass.
	Name string
	// Status to write. Conditions have LastTransitionTime unset.
	Status gatewayv1.GatewayClassStatus
}

// GatewayStatus is the status Flax computed for one Gateway.
type GatewayStatus struct {
	// NamespacedName of the Gateway.
	NamespacedName types.NamespacedName
	// Status to write. Conditions have LastTransitionTime unset.
	Status gatewayv1.GatewayStatus
	// BindAddresses are the addresses the dataplane listeners of the Gateway bind
	// ("" binds every address of the node), for matching the dataplane's listener
	// results to the Gateway; empty when nothing of it is served.
	BindAddresses []string
	// ConfigHash identifies the part of the snapshot that serves the Gateway: the
	// dataplane listeners its programmed listeners are served by (with every
	// virtual host, route and certificate on them, so also those of Gateways
	// merged onto the same address and port) and the settings of the backend
	// groups their routes and mirrors use, without the groups' endpoints. It
	// depends on nothing node-specific, so every node's translation of the same
	// objects gives the same hash, and it changes when anything the Gateway's
	// traffic meets changes, but not when endpoints alone do. 16 hex digits;
	// empty when nothing of the Gateway is in the snapshot.
	ConfigHash string
}

// ListenerSetStatus is the status Flax computed for one ListenerSet.
type ListenerSetStatus struct {
	// NamespacedName of the ListenerSet.
	NamespacedName types.NamespacedName
	// Gateway is its parent Gateway.
	Gateway types.NamespacedName
	// Status to write. Conditions have LastTransitionTime unset.
	Status gatewayv1.ListenerSetStatus
	// ListenerPorts are the ports of the listeners in Status, by name, for
	// matching the dataplane's bind results to them.
	ListenerPorts map[gatewayv1.SectionName]gatewayv1.PortNumber
}

// RouteStatus is the status Flax computed for one HTTPRoute, GRPCRoute,
// TCPRoute or TLSRoute.
type RouteStatus struct {
	// NamespacedName of the route.
	NamespacedName types.NamespacedName
	// Status holds only the parent entries of Flax's Gateways. Conditions have
	// LastTransitionTime unset. (The status of every route kind is a
	// gatewayv1.RouteStatus; HTTPRouteStatus adds nothing to it.)
	Status gatewayv1.HTTPRouteStatus
}

// PolicyStatus is the status Flax computed for one BackendPolicy, RoutePolicy or
// BackendTLSPolicy.
type PolicyStatus struct {
	// NamespacedName of the policy.
	NamespacedName types.NamespacedName
	// Status holds only the ancestor entries of ControllerName, never more than
	// 16. The status writer replaces the entries whose controllerName is
	// ControllerName with these and keeps those of other controllers. Conditions
	// have LastTransitionTime unset.
	Status gatewayv1.PolicyStatus
}
