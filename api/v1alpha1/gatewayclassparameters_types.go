package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
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
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service.type`
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
//
// +kubebuilder:validation:XValidation:rule="!has(self.addressPools) || !has(self.service) || self.service.type == 'ClusterIP'",message="addressPools and a service of type LoadBalancer or NodePort exclude each other: the Gateways' addresses come from one or the other"
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

	// Service gives every accepted Gateway of the class a Service of its own, in
	// the Gateway's namespace, named after it (<gateway>-flax, or flax-<hash>
	// when that is not a valid Service name), owned by the Gateway (deleted with
	// it) and labelled gateway.networking.k8s.io/gateway-name. Its ports are the
	// Gateway's listener ports; it has no selector: Flax writes its
	// EndpointSlices, which name where the dataplanes serve the Gateway (the
	// Gateway's own addresses, or else the addresses of the nodes running a
	// Ready dataplane, with their node names). Types LoadBalancer and NodePort
	// set externalTrafficPolicy Local, so that the client address is kept and
	// only nodes with a dataplane take traffic. The labels and annotations of
	// the Gateway's spec.infrastructure are set on the Service and its
	// EndpointSlices.
	//
	// The type decides the addresses of the Gateways without spec.addresses:
	//   - LoadBalancer: the ingress addresses (IPs or hostnames) a load balancer
	//     controller writes in the Service's status.loadBalancer; until it does,
	//     the Gateway is not programmed (reason AddressNotAssigned).
	//   - NodePort: the node addresses, as without a Service; clients may also
	//     use the Service's node ports.
	//   - ClusterIP: the address pool if the class has one, else the node
	//     addresses; the Service gives the Gateway a name inside the cluster.
	//
	// Without it, Flax creates nothing for a Gateway.
	//
	// +optional
	Service *GatewayService `json:"service,omitempty"`

	// ClientTraffic sets how the dataplane listeners of the class's Gateways
	// treat their clients: timeouts, trusted proxy hops and head limits. It
	// applies to every dataplane listener serving a Gateway of the class; where
	// Gateways of several classes share an address and port, the settings of the
	// oldest programmed Gateway's class apply. Unset fields take the dataplane's
	// own (flax-dataplane flags and defaults).
	//
	// +optional
	ClientTraffic *ClientTraffic `json:"clientTraffic,omitempty"`

	// Tracing traces the requests of the class's Gateways (W3C Trace Context:
	// an incoming traceparent is continued, the backend gets one naming the
	// gateway's span as parent) and sends the spans of sampled requests to an
	// OTLP/HTTP receiver. A dataplane sends to one receiver: where the Gateways
	// of several classes with tracing share a node, the receiver of the class
	// whose name sorts first is used, and each class's sampling still applies
	// to its own listeners.
	//
	// +optional
	Tracing *Tracing `json:"tracing,omitempty"`
}

// GatewayService is the Service Flax creates for each Gateway of a class.
type GatewayService struct {
	// Type is the Service type: LoadBalancer (default), NodePort or ClusterIP.
	//
	// +optional
	// +kubebuilder:default=LoadBalancer
	// +kubebuilder:validation:Enum=LoadBalancer;NodePort;ClusterIP
	Type corev1.ServiceType `json:"type,omitempty"`
}

// Tracing holds a class's tracing settings.
type Tracing struct {
	// OTLPEndpoint is the URL of the OTLP/HTTP traces receiver, e.g.
	// http://otel-collector.observability:4318/v1/traces. The dataplanes run
	// on the nodes' host network: name an address the nodes reach.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/@]+(/.*)?$`
	OTLPEndpoint string `json:"otlpEndpoint"`

	// ServiceName is the service.name of the spans. Default "flax".
	//
	// +optional
	// +kubebuilder:validation:MaxLength=255
	ServiceName string `json:"serviceName,omitempty"`

	// SamplePerMillion is the share of the traces that start at these Gateways
	// (requests without a valid traceparent) that are sampled, in millionths:
	// 0 none, 1000000 all. Default 10000 (1%).
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	SamplePerMillion *int32 `json:"samplePerMillion,omitempty"`

	// IgnoreParent samples by SamplePerMillion alone. By default a request
	// whose traceparent is valid follows its sampled flag (parent-based
	// sampling), so a trace is recorded whole or not at all.
	//
	// +optional
	IgnoreParent bool `json:"ignoreParent,omitempty"`
}

// ClientTraffic holds the client-side settings of a class's listeners.
type ClientTraffic struct {
	// Timeouts bound how long the listeners' connections wait on their clients.
	//
	// +optional
	Timeouts *ClientTimeouts `json:"timeouts,omitempty"`

	// TrustedHops is the number of proxies in front of the listeners whose
	// forwarding headers (X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,
	// Forwarded) are trusted, 0-16. With 0 the fields a client sends are replaced
	// by the dataplane's own; with N > 0 they are kept, the dataplane appends its
	// entry, and the client address used by per-client rate limits, source-IP
	// hashing and the access log is the N-th address from the end of
	// X-Forwarded-For. HTTP and HTTPS listeners only; unset uses flax-dataplane
	// --trusted-hops (default 0).
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	TrustedHops *int32 `json:"trustedHops,omitempty"`

	// HeadLimits bound the request and response heads of HTTP and HTTPS
	// listeners.
	//
	// +optional
	HeadLimits *HeadLimits `json:"headLimits,omitempty"`
}

// ClientTimeouts bound how long a listener's connections wait on their clients.
// Each is a duration such as "10s" or "1m30s", between 1ms and 24h; unset uses
// the dataplane's default.
//
// +kubebuilder:validation:XValidation:rule="!has(self.requestHead) || (duration(self.requestHead) >= duration('1ms') && duration(self.requestHead) <= duration('24h'))",message="requestHead must be between 1ms and 24h"
// +kubebuilder:validation:XValidation:rule="!has(self.requestBodyIdle) || (duration(self.requestBodyIdle) >= duration('1ms') && duration(self.requestBodyIdle) <= duration('24h'))",message="requestBodyIdle must be between 1ms and 24h"
// +kubebuilder:validation:XValidation:rule="!has(self.sendStall) || (duration(self.sendStall) >= duration('1ms') && duration(self.sendStall) <= duration('24h'))",message="sendStall must be between 1ms and 24h"
// +kubebuilder:validation:XValidation:rule="!has(self.keepAliveIdle) || (duration(self.keepAliveIdle) >= duration('1ms') && duration(self.keepAliveIdle) <= duration('24h'))",message="keepAliveIdle must be between 1ms and 24h"
// +kubebuilder:validation:XValidation:rule="!has(self.tunnelIdle) || (duration(self.tunnelIdle) >= duration('1ms') && duration(self.tunnelIdle) <= duration('24h'))",message="tunnelIdle must be between 1ms and 24h"
type ClientTimeouts struct {
	// RequestHead bounds receiving a request head, from the connection's
	// acceptance (or the first byte of a later request) to the end of the head;
	// for HTTPS it includes the TLS handshake. Default 10s.
	//
	// +optional
	RequestHead *metav1.Duration `json:"requestHead,omitempty"`

	// RequestBodyIdle bounds the wait for the next byte of a request body.
	// Default 60s.
	//
	// +optional
	RequestBodyIdle *metav1.Duration `json:"requestBodyIdle,omitempty"`

	// SendStall closes a connection when a send to the client makes no progress
	// for this long (the client stopped reading); in tunnels and on TCP
	// listeners it applies to sends to the upstream too. Default 60s.
	//
	// +optional
	SendStall *metav1.Duration `json:"sendStall,omitempty"`

	// KeepAliveIdle closes a keep-alive connection idle this long between
	// requests. Default 60s.
	//
	// +optional
	KeepAliveIdle *metav1.Duration `json:"keepAliveIdle,omitempty"`

	// TunnelIdle closes a tunnel (a WebSocket or other upgraded connection, a
	// TCP listener's connection) when no byte moves either way for this long.
	// Default 1h.
	//
	// +optional
	TunnelIdle *metav1.Duration `json:"tunnelIdle,omitempty"`
}

// HeadLimits bound the heads a listener's connections carry. Unset fields take
// the dataplane's limits: by default 16 KiB and 100 fields for a request head,
// 64 KiB and 500 fields for a response head. A request head over its limit is
// answered 431, a response head over its limit 502.
type HeadLimits struct {
	// MaxRequestHeaderBytes bounds the request line and fields, 1024-65535. The
	// dataplane's --max-request-header-bytes caps it: a class may lower the
	// limit, not raise it.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	MaxRequestHeaderBytes *int32 `json:"maxRequestHeaderBytes,omitempty"`

	// MaxRequestHeaders bounds the number of request fields, 1-10000.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxRequestHeaders *int32 `json:"maxRequestHeaders,omitempty"`

	// MaxResponseHeaderBytes bounds the status line and fields of a response,
	// 1024-65535, capped by the dataplane's --max-response-header-bytes.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	MaxResponseHeaderBytes *int32 `json:"maxResponseHeaderBytes,omitempty"`

	// MaxResponseHeaders bounds the number of response fields, 1-10000.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxResponseHeaders *int32 `json:"maxResponseHeaders,omitempty"`
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
