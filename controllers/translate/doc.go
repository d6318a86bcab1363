// Package translate is the pure translation stage of the Flax controller: it turns
// the Gateway API objects and the Kubernetes objects they refer to (Input) into one
// dataplane snapshot and the status of every object involved (Output).
//
// Translate does no I/O, reads no clock and draws no random numbers: the same Input
// always gives the same Output, byte for byte once marshalled. The controller
// gathers the Input from its informers, calls Translate on every change, stamps a
// version on the snapshot, sends it to the dataplanes and hands the statuses to the
// leader's status writer, which fills in LastTransitionTime.
//
// # What is translated
//
// GatewayClasses whose spec.controllerName is Input.ControllerName are accepted and
// advertise SupportedFeatures; their SupportedVersion condition is True when every
// Gateway API CRD in Input.GatewayAPICRDs has a bundle version of GatewayAPIVersion's
// minor version, else False/UnsupportedVersion (the class stays accepted). Their Gateways become dataplane listeners: one per
// bound address and port. A Gateway without spec.addresses binds every address of
// the node (an empty listener address) and reports Input.NodeAddresses in its
// status. Gateway listeners that share a port are served by one dataplane listener
// whose virtual hosts are their hostnames; Gateways that resolve to the same
// address and port are merged onto one dataplane listener in the same way, the
// oldest Gateway deciding the protocol of the port.
//
// A GatewayClass may name a flaxlb.io/GatewayClassParameters in spec.parametersRef
// (Input.Parameters); a missing or invalid one makes the class not accepted
// (InvalidParameters). When it sets spec.addressPools, every Gateway of the class
// without spec.addresses gets one address of its own from the pool and binds only
// that address (see allocateAddresses for the order); a Gateway the pool cannot
// serve is accepted but not programmed (AddressNotAssigned). When it sets
// spec.clientTraffic, its timeouts, trusted hops and head limits go on every
// dataplane listener serving the class's Gateways (see clientTraffic.apply); a
// listener shared by Gateways of several classes takes those of the oldest
// programmed Gateway's class. Values the CRD's schema should have refused are
// checked with the dataplane's validation and make the class InvalidParameters.
//
// ListenerSets (Input.ListenerSets) whose parentRef names one of those Gateways add
// their listeners to it when its spec.allowedListeners admits their namespace (by
// default none) and at least one of their listeners can be served (see
// translateListenerSets). The merged listeners follow the Gateway API precedence:
// the Gateway's own, then the sets by creation time and namespace/name; a set's
// listener that conflicts with an earlier one (another protocol on its port, or
// the same hostname on its port) is not served. Routes reach a set's listeners
// through parentRefs of kind ListenerSet, never through the Gateway.
//
// A request is served only by the routes of the Gateway listener whose hostname
// matches its Host most specifically (listener isolation): every accepted listener
// reserves a virtual host for its own hostname, and a route hostname is served on a
// virtual host only when no more specific listener on the same port covers it.
// Virtual hosts are named by their hostname; "*" is the virtual host of a listener
// without a hostname.
//
// Each rule of an attached HTTPRoute becomes one dataplane Route named
// "<namespace>/<route>/rule-<index>" in every virtual host the route is served on,
// ordered by the Gateway API tie-break (creation time, namespace/name, rule index).
// Backend references to Services become backend groups named
// "<namespace>/<service>:<port>" whose endpoints come from the Service's
// EndpointSlices (pod addresses, never the cluster IP). A group speaks h2c
// (cleartext HTTP/2 with prior knowledge) when the port's appProtocol is
// kubernetes.io/h2c, h2c or grpc, else HTTP/1.1 (none, http, and the WebSocket
// kubernetes.io/ws and kubernetes.io/wss, which HTTP/1.1's upgrade carries).
//
// GRPCRoutes attach to HTTP and HTTPS listeners as HTTPRoutes do and are
// translated as the HTTPRoute they convert to (grpcAsHTTPRoute), with rules
// named "<namespace>/<route>/grpc-rule-<index>": a method match becomes a path
// match on "/<service>/<method>" (Exact service and method: an Exact path;
// service alone: the PathPrefix "/<service>/"; method alone and
// RegularExpression matches: a RegularExpression path), every match asks for
// POST, and header matches and the RequestHeaderModifier,
// ResponseHeaderModifier, RequestMirror and ExtensionRef filters carry over.
// Requests that cannot be served get 503, which gRPC clients read as
// UNAVAILABLE. gRPC needs HTTP/2 to the backend: a GRPCRoute's backend group
// speaks h2c, to a port without appProtocol too (the protocol is inferred from
// the route kind; that group's name ends in "/h2c", so that HTTPRoutes of the
// same port keep their HTTP/1.1 group), and a port declaring another protocol is
// unresolved (ResolvedRefs False, UnsupportedProtocol). Precedence follows the
// dataplane's path ranking (Exact, then RegularExpression, then the longest
// PathPrefix; then headers): the Gateway API's order (service, then method, then
// headers) for the core Exact service-and-method matches; a method-only or
// RegularExpression match (implementation-specific in the Gateway API) ranks
// above a service-only one. An HTTPRoute and a GRPCRoute whose hostnames meet on
// a listener are never both served there: the older one is, and the other is
// not accepted on that listener (NotAllowedByListeners).
//
// TCP and TLS listeners take TCPRoutes and TLSRoutes (and HTTP and HTTPS
// listeners HTTPRoutes and GRPCRoutes; allowedRoutes.kinds listing another kind
// makes ResolvedRefs False with reason InvalidRouteKinds). Both route kinds have one
// rule, whose weighted backendRefs become the TCP backends of one dataplane route
// named like an HTTPRoute rule; a reference that cannot be resolved keeps its
// weight as a reject backend, which closes the connections it gets. A TCP
// listener forwards every connection to its oldest attached TCPRoute: younger
// ones are attached and Accepted (and counted in attachedRoutes) but get no
// connections, which their Accepted message says. A TCP port is never shared by
// Gateways. TLS listeners on one port, of one or several Gateways, make one
// dataplane TLS listener whose routes are chosen by the ClientHello's server
// name: a TLSRoute's hostnames are intersected with the listener's as for
// HTTPRoutes, each server name goes to the oldest TLSRoute that claims it, and
// the routes attached through a listener of tls.mode Terminate terminate TLS
// with that listener's certificate (Passthrough and Terminate listeners may
// share a port, but not a hostname). Listener isolation holds as on HTTP ports:
// every programmed TLS listener reserves its hostname with a route that closes
// the connections no route of it serves.
//
// # Policies
//
// Flax's BackendPolicies (Input.BackendPolicies) target Services, or one port of
// a Service by its name (sectionName), and set the load balancing, health check,
// outlier detection, circuit breakers, retry budget, timeouts and pool size of the
// backend groups of those ports; a group without a policy is ROUND_ROBIN with the
// dataplane's defaults. RoutePolicies (Input.RoutePolicies) target HTTPRoutes, or
// one rule by its name, and set the rate limit of the rules' dataplane routes, with
// one bucket per rule named after the route ("<namespace>/<route>/rule-<index>"),
// shared by every virtual host that serves the rule. Targets are local: a policy
// targets objects of its own namespace.
//
// Each Service port and each rule is configured by at most one policy of a kind:
// the oldest valid policy (creation time, then namespace/name) that names it in
// sectionName, else the oldest valid policy that targets the whole object. Fields
// are not merged. An invalid policy (a spec the API server would reject, or one the
// dataplane cannot run, such as a health-check timeout above the default
// interval) applies nowhere and takes nothing from other policies.
//
// A policy's status has one ancestor entry per Gateway of Flax whose traffic a
// target concerns (the Gateways whose served routes use the Service port, or that
// serve the HTTPRoute), and one entry per target that concerns none, whose
// ancestorRef is the target itself; at most 16. Each holds an Accepted condition:
// True, or False with reason Invalid, TargetNotFound or Conflicted (naming the
// older policy that holds the target).
//
// BackendTLSPolicies (Input.BackendTLSPolicies) target Services, or one port by
// name, and give the backend groups of HTTPRoutes and GRPCRoutes for those ports
// a tls: validation.hostname as server name, subjectAltNames, and the CA
// certificates of caCertificateRefs (ConfigMaps of the policy's namespace, key
// ca.crt) or the system roots (wellKnownCACertificates System). Precedence is as
// above, but an invalid policy (Accepted False: Invalid, or NoValidCACertificate
// when no CA reference is usable) still holds its targets, and references to them
// fail (500, the route's ResolvedRefs False, reason InvalidBackendTLSPolicy):
// never cleartext where TLS was asked for. A reference that would speak h2c to
// such a port is refused (UnsupportedProtocol): the dataplane speaks HTTP/1.1 over
// TLS. TCPRoutes and TLSRoutes to such a port forward bytes, through a group named
// "<namespace>/<service>:<port>/tcp". Their status is per Gateway whose served
// routes refer to a targeted port, with Accepted and ResolvedRefs conditions
// (InvalidCACertificateRef, InvalidKind).
//
// A Gateway's spec.tls.backend.clientCertificateRef (a kubernetes.io/tls Secret,
// across namespaces with a ReferenceGrant) is presented to the backends of its
// routes' groups with tls: those routes refer to copies of the groups named
// "<group>/client/<secret namespace>/<secret name>", so that Gateways with
// different client certificates never share a group. The Gateway then has a
// ResolvedRefs condition (False with InvalidClientCertificateRef or
// RefNotPermitted when the reference cannot be used; the Gateway stays accepted
// and presents no certificate).
//
// # Statuses
//
// Conditions carry the object's generation as observedGeneration and leave
// LastTransitionTime zero. Programmed means "expressed in the snapshot": the
// controller is expected to turn it False when the dataplanes reject the snapshot,
// fail to bind a listener (Ack.listeners) or do not run the Gateway's
// configuration yet, which GatewayStatus.ConfigHash identifies (a digest of the
// dataplane listeners serving the Gateway and of the settings, not the endpoints,
// of the backend groups they use; the same on every node). Route statuses hold only the
// parent entries of Flax's Gateways, for the status writer to merge with those of
// other controllers.
//
// # Invalid input
//
// Nothing invalid is dropped silently. A backend reference that cannot be resolved
// keeps its weight as a direct 500 response, so only its share of requests fails; a
// rule that cannot be translated answers 500 for the requests it matches (or is
// dropped when its matches themselves cannot be expressed); every such problem is
// reported in the route's conditions with a message saying how to fix it. The
// snapshot the translator builds always passes dataplanev1.Validate: rules are checked
// against the dataplane's own validation before they are admitted.
package translate
