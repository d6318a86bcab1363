package controllers

// The cluster-wide permissions flax-controller needs. `make generate` turns these markers
// into config/rbac/role.yaml (ClusterRole flax-controller); the Helm chart's ClusterRole
// must grant the same (charts/charttest checks it). The Lease permissions (leader
// election and the per-node flax-node-<node> Leases) are namespaced and live in
// config/rbac/leader_election_role.yaml.
//
// Gateway API objects: the controller watches them all and handles those of its classes
// (ListenerSets: those whose parent is a Gateway of its classes).
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses;gateways;listenersets;httproutes;grpcroutes;tcproutes;tlsroutes;udproutes;referencegrants;backendtlspolicies,verbs=get;list;watch
//
// The Gateway API CRDs' bundle versions, for the GatewayClass SupportedVersion condition
// (the controller caches CRD metadata only).
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
//
// Flax's own API: GatewayClass parameters (address pools), BackendPolicies, RoutePolicies.
// +kubebuilder:rbac:groups=flaxlb.io,resources=gatewayclassparameters;backendpolicies;routepolicies,verbs=get;list;watch
//
// Status, written by the leader only.
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gatewayclasses/status;gateways/status;listenersets/status;httproutes/status;grpcroutes/status;tcproutes/status;tlsroutes/status;udproutes/status;backendtlspolicies/status,verbs=update;patch
// +kubebuilder:rbac:groups=flaxlb.io,resources=backendpolicies/status;routepolicies/status,verbs=update;patch
//
// Backends, listener certificates (TLS Secrets in any namespace: a Gateway may reference
// one across namespaces with a ReferenceGrant, and RBAC cannot restrict by Secret type),
// CA certificates for client certificate validation and BackendTLSPolicies (ConfigMaps:
// metadata is watched, the referenced ones are read), namespace labels for allowedRoutes, and node addresses
// for Gateway addresses.
// +kubebuilder:rbac:groups="",resources=services;secrets;configmaps;namespaces;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
//
// The Services of Gateways whose class asks for one (GatewayClassParameters spec.service),
// with their EndpointSlices: written by the leader only.
// +kubebuilder:rbac:groups="",resources=services,verbs=create;update;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=create;update;delete
//
// Events about dataplane rejections and bind failures.
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch
