package translate

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// gatewayInfo is a Gateway of one of Flax's GatewayClasses.
type gatewayInfo struct {
	gw  *gatewayv1.Gateway
	key types.NamespacedName
	// invalid, when set, is why the whole Gateway is not accepted.
	invalid *problem
	// statusAddresses are the addresses reported in the status.
	statusAddresses []string
	// bindAddresses are the addresses its dataplane listeners bind; "" binds all.
	bindAddresses []string
	// fromSpec is true when the addresses come from spec.addresses.
	fromSpec bool
	// pool, when set, is the address pool the Gateway's address comes from (see
	// allocateAddresses); its addresses stay empty until one is allocated.
	pool *addressPool
	// noAddress, when set, is why the pool gave the Gateway no address.
	noAddress *problem
	// clientTraffic holds the listener settings of the Gateway's class; nil when
	// it has none.
	clientTraffic *clientTraffic
	// tracing holds the tracing settings of the Gateway's class; nil when it
	// has none.
	tracing *classTracing
	// serviceType is the type of the Service the Gateway gets (its class's
	// parameters' spec.service); "" for none.
	serviceType corev1.ServiceType
	// clientCert is the client certificate of spec.tls.backend, presented to
	// the backends its routes speak TLS to; nil for none.
	clientCert *backendClientCert
	// clientCertProblem, when set, is why spec.tls.backend.clientCertificateRef
	// cannot be used (ResolvedRefs False).
	clientCertProblem *problem
	// listeners are the Gateway's own listeners, in spec order.
	listeners []*listenerInfo
	// sets are the ListenerSets whose parentRef names the Gateway, in precedence
	// order (oldest first, then namespace/name).
	sets []*listenerSetInfo
	// setListeners are the listeners of the attached sets, in precedence order.
	setListeners []*listenerInfo
}

// allListeners returns the Gateway's own listeners followed by those of its
// attached ListenerSets: the merged list, in precedence order.
func (g *gatewayInfo) allListeners() []*listenerInfo {
	if len(g.setListeners) == 0 {
		return g.listeners
	}
	return append(slices.Clip(g.listeners), g.setListeners...)
}

// listenerInfo is one listener of a Gateway and what was found about it.
type listenerInfo struct {
	gateway *gatewayInfo
	// set is the ListenerSet the listener belongs to; nil for a listener of the
	// Gateway's own spec.
	set  *listenerSetInfo
	spec *gatewayv1.Listener
	// hostname is the lowercase listener hostname; "" matches any.
	hostname string
	// protocol is the dataplane protocol; unspecified for unsupported protocols.
	protocol dataplanev1.Listener_Protocol
	// terminate is set on HTTPS listeners and on TLS listeners of mode
	// Terminate: the dataplane completes the TLS handshake with certs.
	terminate bool
	// routeKinds are the route kinds the protocol takes (HTTPRoute and
	// GRPCRoute, TCPRoute, or TLSRoute); supportedKinds holds those
	// allowedRoutes.kinds does not leave out.
	routeKinds     []string
	supportedKinds []gatewayv1.RouteGroupKind
	// unsupported, when set, is why the listener is not accepted.
	unsupported *problem
	// conflict, when set, is why the listener conflicts with others.
	conflict *problem
	// refProblems are the unresolved references (ResolvedRefs False).
	refProblems problems
	// certs are the valid certificates of a terminating listener, in reference
	// order.
	certs []*dataplanev1.TLSCertificate
	// clientValidation is how a terminating listener checks client
	// certificates (the Gateway's spec.tls.frontend for its port); nil when it
	// does not.
	clientValidation *dataplanev1.ClientValidation
	// allowNamespace reports whether routes of a namespace may attach.
	allowNamespace func(ns string) bool
	// namespacePolicy describes allowNamespace for messages.
	namespacePolicy string
	// attached are the routes attached to the listener.
	attached map[routeRef]struct{}
	// claims are the hostnames of the HTTPRoutes and GRPCRoutes attached, in
	// the order they attached (oldest first).
	claims []hostClaim
}

// allowsRoutes reports whether a route kind of the listener's protocol may
// attach to it (allowedRoutes.kinds does not leave them all out).
func (l *listenerInfo) allowsRoutes() bool { return len(l.supportedKinds) > 0 }

// allows reports whether routes of kind (in the Gateway API group) may attach.
func (l *listenerInfo) allows(kind string) bool {
	return slices.ContainsFunc(l.supportedKinds, func(k gatewayv1.RouteGroupKind) bool { return string(k.Kind) == kind })
}

// takes reports whether the listener's protocol takes routes of kind.
func (l *listenerInfo) takes(kind string) bool { return slices.Contains(l.routeKinds, kind) }

// valid reports whether the listener itself is accepted.
func (l *listenerInfo) valid() bool { return l.unsupported == nil && l.conflict == nil }

// usable reports whether routes may attach to the listener: it and its Gateway
// are accepted, and so is its ListenerSet if it has one.
func (l *listenerInfo) usable() bool {
	return l.valid() && l.gateway.accepted() && (l.set == nil || l.set.attached)
}

// complete reports whether the listener itself has all it needs to be served: it
// is valid, takes the route kind of its protocol and, when it terminates TLS,
// has a certificate.
func (l *listenerInfo) complete() bool {
	return l.valid() && l.allowsRoutes() && (!l.terminate || len(l.certs) > 0)
}

// servable reports whether the listener is complete and usable.
func (l *listenerInfo) servable() bool { return l.complete() && l.usable() }

// programmed reports whether the listener is served by the dataplane.
func (l *listenerInfo) programmed() bool {
	return l.servable() && l.gateway.noAddress == nil
}

// namespace is the namespace of the object the listener is defined in: its
// ListenerSet's, else its Gateway's. allowedRoutes "Same" and certificate
// references are relative to it.
func (l *listenerInfo) namespace() string {
	if l.set != nil {
		return l.set.key.Namespace
	}
	return l.gateway.key.Namespace
}

// accepted reports whether the Gateway is accepted: it is valid as a whole and at
// least one of its listeners is.
func (g *gatewayInfo) accepted() bool {
	if g.invalid != nil {
		return false
	}
	for _, l := range g.listeners {
		if l.valid() {
			return true
		}
	}
	return false
}

// translateGateways checks the Gateways of Flax's classes and their listeners.
func (t *translator) translateGateways() {
	for i := range t.in.Gateways {
		gw := &t.in.Gateways[i]
		ci, ok := t.classes[string(gw.Spec.GatewayClassName)]
		if !ok {
			continue
		}
		g := &gatewayInfo{gw: gw, key: key(gw), clientTraffic: ci.clientTraffic, tracing: ci.tracing, serviceType: ci.serviceType}
		if ci.invalid != nil {
			g.invalid = &problem{
				reason:  string(gatewayv1.GatewayReasonInvalid),
				message: fmt.Sprintf("GatewayClass %s is not accepted: %s", ci.class.Name, ci.invalid.message),
			}
		}
		t.gatewayAddresses(g, ci)
		if g.invalid == nil {
			g.invalid = unsupportedGatewayFields(gw)
		}
		t.resolveBackendClientCert(g)
		for j := range gw.Spec.Listeners {
			g.listeners = append(g.listeners, t.translateListener(g, nil, &gw.Spec.Listeners[j]))
		}
		markConflicts(g.listeners)
		t.gateways = append(t.gateways, g)
		t.gatewayByKey[g.key] = g
	}
	slices.SortFunc(t.gateways, func(a, b *gatewayInfo) int { return compareAge(a.gw, b.gw) })
}

// unsupportedGatewayFields returns why a Gateway using fields Flax cannot honour
// is not accepted, or nil. Ignoring them would serve traffic less securely or
// differently than asked.
func unsupportedGatewayFields(gw *gatewayv1.Gateway) *problem {
	if infra := gw.Spec.Infrastructure; infra != nil && infra.ParametersRef != nil {
		return &problem{
			reason: string(gatewayv1.GatewayReasonInvalidParameters),
			message: fmt.Sprintf("spec.infrastructure.parametersRef refers to %s %s, but Flax takes no Gateway parameters yet; remove it",
				describeKind(string(infra.ParametersRef.Group), string(infra.ParametersRef.Kind)), infra.ParametersRef.Name),
		}
	}
	return nil
}

// gatewayAddresses resolves the addresses of g of class ci: spec.addresses of type
// IPAddress; or else, when the class has an address pool, none yet (one is
// allocated later); or else, when the class gives Gateways a Service of type
// LoadBalancer, its ingress addresses; or else the node addresses. Listeners
// bind to all addresses of the nodes unless the addresses are the Gateway's own
// (spec.addresses, pool).
func (t *translator) gatewayAddresses(g *gatewayInfo, ci *classInfo) {
	seen := map[string]bool{}
	for i, a := range g.gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gatewayv1.IPAddressType {
			if g.invalid == nil {
				g.invalid = &problem{
					reason: string(gatewayv1.GatewayReasonUnsupportedAddress),
					message: fmt.Sprintf("spec.addresses[%d] has type %s; Flax supports only IPAddress addresses: use an IP address, or remove spec.addresses to serve on the node addresses",
						i, *a.Type),
				}
			}
			continue
		}
		if a.Value == "" {
			continue // a request for any address: the node addresses are used
		}
		ip, err := netip.ParseAddr(a.Value)
		if err != nil || ip.Zone() != "" {
			if g.invalid == nil {
				g.invalid = &problem{
					reason:  string(gatewayv1.GatewayReasonUnsupportedAddress),
					message: fmt.Sprintf("spec.addresses[%d] value %q is not an IP address; fix it, or remove spec.addresses to serve on the node addresses", i, a.Value),
				}
			}
			continue
		}
		s := ip.Unmap().String()
		if !seen[s] {
			seen[s] = true
			g.statusAddresses = append(g.statusAddresses, s)
		}
	}
	if len(g.statusAddresses) > 0 {
		g.fromSpec = true
		g.bindAddresses = g.statusAddresses
		return
	}
	if ci.pool != nil {
		g.pool = ci.pool
		return
	}
	if ci.serviceType == corev1.ServiceTypeLoadBalancer {
		t.loadBalancerAddresses(g)
		return
	}
	g.statusAddresses = t.nodeAddresses
	g.bindAddresses = []string{""}
}

// translateListener checks one listener of g, defined in g's own spec (set nil)
// or in ListenerSet set.
func (t *translator) translateListener(g *gatewayInfo, set *listenerSetInfo, spec *gatewayv1.Listener) *listenerInfo {
	l := &listenerInfo{
		gateway:        g,
		set:            set,
		spec:           spec,
		supportedKinds: []gatewayv1.RouteGroupKind{},
		attached:       map[routeRef]struct{}{},
	}
	httpKinds := []string{kindHTTPRoute.kind, kindGRPCRoute.kind}
	switch spec.Protocol {
	case gatewayv1.HTTPProtocolType:
		l.protocol, l.routeKinds = dataplanev1.Listener_HTTP, httpKinds
	case gatewayv1.HTTPSProtocolType:
		l.protocol, l.routeKinds, l.terminate = dataplanev1.Listener_HTTPS, httpKinds, true
	case gatewayv1.TCPProtocolType:
		l.protocol, l.routeKinds = dataplanev1.Listener_TCP, []string{kindTCPRoute.kind}
	case gatewayv1.TLSProtocolType:
		l.protocol, l.routeKinds = dataplanev1.Listener_TLS, []string{kindTLSRoute.kind}
	case gatewayv1.UDPProtocolType:
		l.protocol, l.routeKinds = dataplanev1.Listener_UDP, []string{kindUDPRoute.kind}
	default:
		l.unsupported = &problem{
			reason: string(gatewayv1.ListenerReasonUnsupportedProtocol),
			message: fmt.Sprintf("protocol %s is not supported: Flax serves HTTP, HTTPS, TLS, TCP and UDP listeners; remove the listener or change its protocol",
				spec.Protocol),
		}
		l.allowNamespace = func(string) bool { return false }
		return l
	}
	if spec.Port < 1 || spec.Port > 65535 {
		l.unsupported = &problem{
			reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
			message: fmt.Sprintf("port %d is not between 1 and 65535; fix it", spec.Port),
		}
	}
	if spec.Hostname != nil && *spec.Hostname != "" && l.protocol != dataplanev1.Listener_TCP && l.protocol != dataplanev1.Listener_UDP {
		l.hostname = strings.ToLower(string(*spec.Hostname))
		if !validHostname(l.hostname) {
			l.unsupported = &problem{
				reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
				message: fmt.Sprintf("hostname %q is not a valid DNS name or wildcard such as \"*.example.com\"; fix it", *spec.Hostname),
			}
		}
	}
	t.routeKinds(l)
	t.routeNamespaces(l)
	switch l.protocol {
	case dataplanev1.Listener_HTTPS:
		if cfg := spec.TLS; cfg != nil && cfg.Mode != nil && *cfg.Mode != gatewayv1.TLSModeTerminate {
			l.unsupported = &problem{
				reason: string(gatewayv1.ListenerReasonUnsupportedValue),
				message: fmt.Sprintf("tls.mode %s is not supported on HTTPS listeners; HTTPS listeners terminate TLS: set tls.mode to Terminate, or use protocol TLS for passthrough",
					*cfg.Mode),
			}
			return l
		}
		t.listenerCertificates(l)
		t.listenerClientValidation(l)
	case dataplanev1.Listener_TLS:
		mode := gatewayv1.TLSModeTerminate // the API's default
		if spec.TLS != nil && spec.TLS.Mode != nil && *spec.TLS.Mode != "" {
			mode = *spec.TLS.Mode
		}
		switch mode {
		case gatewayv1.TLSModeTerminate:
			l.terminate = true
			t.listenerCertificates(l)
			t.listenerClientValidation(l)
		case gatewayv1.TLSModePassthrough:
			// The backend terminates TLS; certificateRefs are not used.
		default:
			l.unsupported = &problem{
				reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
				message: fmt.Sprintf("tls.mode %q is not Terminate or Passthrough; fix it", mode),
			}
		}
	}
	return l
}

// routeKinds computes the route kinds the listener supports from
// allowedRoutes.kinds: those its protocol takes (HTTPRoute and GRPCRoute on HTTP
// and HTTPS, TCPRoute on TCP, TLSRoute on TLS, UDPRoute on UDP), all of them
// unless the list names some. Other kinds listed make ResolvedRefs False
// (InvalidRouteKinds).
func (t *translator) routeKinds(l *listenerInfo) {
	kind := func(k string) gatewayv1.RouteGroupKind {
		return gatewayv1.RouteGroupKind{Group: ptr(gatewayv1.Group(gatewayv1.GroupName)), Kind: gatewayv1.Kind(k)}
	}
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		for _, k := range l.routeKinds {
			l.supportedKinds = append(l.supportedKinds, kind(k))
		}
		return
	}
	listed := map[string]bool{}
	var invalid []string
	for _, k := range l.spec.AllowedRoutes.Kinds {
		group := gatewayv1.GroupName
		if k.Group != nil {
			group = string(*k.Group)
		}
		if group == gatewayv1.GroupName && l.takes(string(k.Kind)) {
			listed[string(k.Kind)] = true
			continue
		}
		invalid = append(invalid, describeKind(group, string(k.Kind)))
	}
	for _, k := range l.routeKinds {
		if listed[k] {
			l.supportedKinds = append(l.supportedKinds, kind(k))
		}
	}
	if len(invalid) > 0 {
		own := make([]string, len(l.routeKinds))
		for i, k := range l.routeKinds {
			own[i] = gatewayv1.GroupName + "/" + k
		}
		l.refProblems.add(string(gatewayv1.ListenerReasonInvalidRouteKinds), fmt.Sprintf(
			"allowedRoutes.kinds lists %s, which Flax does not support on %s listeners; Flax supports %s there: remove the other kinds",
			strings.Join(invalid, ", "), l.spec.Protocol, strings.Join(own, " and ")))
	}
}

// routeNamespaces computes which namespaces may attach routes, from
// allowedRoutes.namespaces.
func (t *translator) routeNamespaces(l *listenerInfo) {
	from := gatewayv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		selector = ar.Namespaces.Selector
	}
	gwNS := l.namespace()
	switch from {
	case gatewayv1.NamespacesFromAll:
		l.allowNamespace = func(string) bool { return true }
		l.namespacePolicy = "routes from all namespaces"
	case gatewayv1.NamespacesFromSame:
		l.allowNamespace = func(ns string) bool { return ns == gwNS }
		l.namespacePolicy = fmt.Sprintf("only routes from its own namespace %s (allowedRoutes.namespaces.from: Same)", gwNS)
	case gatewayv1.NamespacesFromNone:
		l.allowNamespace = func(string) bool { return false }
		l.namespacePolicy = "no routes (allowedRoutes.namespaces.from: None)"
	case gatewayv1.NamespacesFromSelector:
		l.allowNamespace = func(string) bool { return false }
		if selector == nil {
			l.unsupported = &problem{
				reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
				message: "allowedRoutes.namespaces.from is Selector but no selector is set; add allowedRoutes.namespaces.selector",
			}
			return
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			l.unsupported = &problem{
				reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
				message: fmt.Sprintf("allowedRoutes.namespaces.selector is invalid: %v; fix it", err),
			}
			return
		}
		l.allowNamespace = func(ns string) bool { return sel.Matches(labels.Set(t.namespaceLabels(ns))) }
		l.namespacePolicy = fmt.Sprintf("only routes from namespaces whose labels match %q", sel.String())
	default:
		l.allowNamespace = func(string) bool { return false }
		l.unsupported = &problem{
			reason:  string(gatewayv1.ListenerReasonUnsupportedValue),
			message: fmt.Sprintf("allowedRoutes.namespaces.from %q is not one of All, Same, Selector or None; fix it", from),
		}
	}
}

// listenerCertificates resolves the certificateRefs of a listener that
// terminates TLS (HTTPS, or TLS of mode Terminate).
func (t *translator) listenerCertificates(l *listenerInfo) {
	cfg := l.spec.TLS
	if cfg == nil || len(cfg.CertificateRefs) == 0 {
		what := "an HTTPS listener"
		if l.protocol == dataplanev1.Listener_TLS {
			what = "a TLS listener of tls.mode Terminate"
		}
		l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef),
			what+" needs a certificate: add a kubernetes.io/tls Secret to tls.certificateRefs")
		return
	}
	gwNS := l.namespace()
	fromKind, fromKinds := kindGateway, "Gateways"
	if l.set != nil {
		fromKind, fromKinds = kindListenerSet, "ListenerSets"
	}
	for i, ref := range cfg.CertificateRefs {
		group, kind := "", "Secret"
		if ref.Group != nil {
			group = normalGroup(string(*ref.Group))
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		ns := gwNS
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		where := fmt.Sprintf("tls.certificateRefs[%d]", i)
		if (groupKind{group, kind}) != kindSecret {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf(
				"%s refers to a %s; Flax reads certificates only from core Secrets of type kubernetes.io/tls: change the reference", where, describeKind(group, kind)))
			continue
		}
		name := string(ref.Name)
		if !t.grants.allows(fromKind, gwNS, kindSecret, ns, name) {
			l.refProblems.add(string(gatewayv1.ListenerReasonRefNotPermitted), fmt.Sprintf(
				"%s refers to Secret %s/%s in another namespace, and no ReferenceGrant in namespace %s allows %s of namespace %s to use it: create one there, or copy the Secret to namespace %s",
				where, ns, name, ns, fromKinds, gwNS, gwNS))
			continue
		}
		secret, ok := t.secrets[types.NamespacedName{Namespace: ns, Name: name}]
		if !ok {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf(
				"%s refers to Secret %s/%s, which does not exist: create it or fix the reference", where, ns, name))
			continue
		}
		if secret.Type != corev1.SecretTypeTLS {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf(
				"%s refers to Secret %s/%s of type %q; it must be of type kubernetes.io/tls with tls.crt and tls.key", where, ns, name, secret.Type))
			continue
		}
		cert, key := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
		if len(cert) == 0 || len(key) == 0 {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf(
				"%s refers to Secret %s/%s, which lacks tls.crt or tls.key; put a PEM certificate chain and its key there", where, ns, name))
			continue
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf(
				"%s refers to Secret %s/%s, whose tls.crt and tls.key are not a valid PEM key pair (%v); replace them", where, ns, name, err))
			continue
		}
		l.certs = append(l.certs, &dataplanev1.TLSCertificate{CertPem: cert, KeyPem: key})
	}
}

// markConflicts marks the listeners of one Gateway that cannot be served together:
// listeners on one port with different protocols, and listeners on one port with
// the same hostname. UDP ports are apart from TCP ones: a UDP listener shares
// its port number with TCP-based ones without conflict.
func markConflicts(ls []*listenerInfo) {
	type portKey struct {
		port gatewayv1.PortNumber
		udp  bool
	}
	byPort := map[portKey][]*listenerInfo{}
	var ports []portKey
	for _, l := range ls {
		if l.unsupported != nil {
			continue
		}
		k := portKey{l.spec.Port, l.protocol == dataplanev1.Listener_UDP}
		if _, ok := byPort[k]; !ok {
			ports = append(ports, k)
		}
		byPort[k] = append(byPort[k], l)
	}
	for _, k := range ports {
		port := k.port
		group := byPort[k]
		protocols := map[gatewayv1.ProtocolType]bool{}
		for _, l := range group {
			protocols[l.spec.Protocol] = true
		}
		if len(protocols) > 1 {
			names := listenerNames(group)
			for _, l := range group {
				l.conflict = &problem{
					reason: string(gatewayv1.ListenerReasonProtocolConflict),
					message: fmt.Sprintf("listeners %s share port %d with different protocols; Flax serves one protocol per port: give each protocol a port of its own",
						names, port),
				}
			}
			continue
		}
		byHost := map[string][]*listenerInfo{}
		for _, l := range group {
			byHost[l.hostname] = append(byHost[l.hostname], l)
		}
		for h, same := range byHost {
			if len(same) < 2 {
				continue
			}
			for _, l := range same {
				l.conflict = &problem{
					reason: string(gatewayv1.ListenerReasonHostnameConflict),
					message: fmt.Sprintf("listeners %s all serve %s on port %d; give each a different hostname or port",
						listenerNames(same), describeHostname(h), port),
				}
			}
		}
	}
}

// describeHostname formats a listener hostname for messages.
func describeHostname(h string) string {
	if h == "" {
		return "every hostname"
	}
	return "hostname " + h
}

// listenerNames lists the names of ls for messages.
func listenerNames(ls []*listenerInfo) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = string(l.spec.Name)
	}
	return strings.Join(names, ", ")
}

// gatewayStatuses returns the status of every Gateway of Flax's classes, with the
// config hashes of configHashes.
func (t *translator) gatewayStatuses(configHashes map[*gatewayInfo]string) []GatewayStatus {
	out := make([]GatewayStatus, 0, len(t.gateways))
	for _, g := range t.gateways {
		gs := GatewayStatus{NamespacedName: g.key, Status: g.status(), ConfigHash: configHashes[g]}
		if g.accepted() {
			gs.BindAddresses = slices.Clone(g.bindAddresses)
		}
		out = append(out, gs)
	}
	slices.SortFunc(out, func(a, b GatewayStatus) int { return compareKeys(a.NamespacedName, b.NamespacedName) })
	return out
}

// status computes the status of g.
func (g *gatewayInfo) status() gatewayv1.GatewayStatus {
	gen := g.gw.Generation
	st := gatewayv1.GatewayStatus{Listeners: make([]gatewayv1.ListenerStatus, 0, len(g.listeners))}
	for _, a := range g.statusAddresses {
		if !g.accepted() {
			break // a Gateway that is not accepted is served nowhere
		}
		typ := gatewayv1.IPAddressType
		if _, err := netip.ParseAddr(a); err != nil {
			typ = gatewayv1.HostnameAddressType // a load balancer's hostname
		}
		st.Addresses = append(st.Addresses, gatewayv1.GatewayStatusAddress{Type: ptr(typ), Value: a})
	}

	var invalid []string
	for _, l := range g.listeners {
		st.Listeners = append(st.Listeners, l.status(gen))
		if !l.valid() {
			invalid = append(invalid, string(l.spec.Name))
		}
	}
	var accepted metav1.Condition
	switch {
	case g.invalid != nil:
		accepted = condition(gatewayv1.GatewayConditionAccepted, false, g.invalid.reason, g.invalid.message, gen)
	case !g.accepted():
		accepted = condition(gatewayv1.GatewayConditionAccepted, false, gatewayv1.GatewayReasonListenersNotValid,
			"No listener is valid; see the conditions of each listener in status.listeners and fix them", gen)
	case len(invalid) > 0:
		what := "listener " + invalid[0] + " is"
		if len(invalid) > 1 {
			what = "listeners " + strings.Join(invalid, ", ") + " are"
		}
		accepted = condition(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonListenersNotValid, fmt.Sprintf(
			"The Gateway is accepted, but %s not valid and not served; see status.listeners", what), gen)
	default:
		accepted = condition(gatewayv1.GatewayConditionAccepted, true, gatewayv1.GatewayReasonAccepted, "The Gateway is accepted", gen)
	}

	anyProgrammed := slices.ContainsFunc(g.listeners, (*listenerInfo).programmed)
	var programmed metav1.Condition
	switch {
	case !g.accepted():
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonInvalid,
			"The Gateway is not accepted; see the Accepted condition", gen)
	case g.noAddress != nil:
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, g.noAddress.reason, g.noAddress.message, gen)
	case !anyProgrammed:
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonInvalid,
			"No listener can be programmed; see the conditions of each listener in status.listeners", gen)
	case len(g.statusAddresses) == 0:
		programmed = condition(gatewayv1.GatewayConditionProgrammed, false, gatewayv1.GatewayReasonAddressNotAssigned,
			"No node runs a Ready Flax dataplane, so the Gateway has no address yet; check the flax-dataplane DaemonSet pods, or set spec.addresses", gen)
	default:
		where := "the node addresses"
		switch {
		case g.fromSpec:
			where = "spec.addresses"
		case g.serviceType == corev1.ServiceTypeLoadBalancer:
			where = fmt.Sprintf("%s, the load balancer addresses of Service %s/%s",
				strings.Join(g.statusAddresses, ", "), g.key.Namespace, GatewayServiceName(g.key.Name))
		case g.pool != nil:
			where = fmt.Sprintf("address %s from the address pool of %s %s",
				strings.Join(g.statusAddresses, ", "), flaxv1alpha1.KindGatewayClassParameters, g.pool.parameters)
		}
		programmed = condition(gatewayv1.GatewayConditionProgrammed, true, gatewayv1.GatewayReasonProgrammed,
			fmt.Sprintf("The Gateway is programmed on %s", where), gen)
	}
	st.Conditions = []metav1.Condition{accepted, programmed}
	if c := g.resolvedRefs(gen); c != nil {
		st.Conditions = append(st.Conditions, *c)
	}
	if insecureFallback(g.gw) {
		st.Conditions = append(st.Conditions, condition(gatewayv1.GatewayConditionInsecureFrontendValidationMode, true,
			gatewayv1.GatewayReasonConfigurationChanged,
			"spec.tls.frontend has a validation of mode AllowInsecureFallback: HTTPS clients without a valid certificate are served too, and authorizing them is left to the backends", gen))
	}
	if g.allowsListenerSets() || len(g.sets) > 0 {
		st.AttachedListenerSets = ptr(g.attachedListenerSets())
	}
	return st
}

// status computes the status of listener l of a Gateway of generation gen.
func (l *listenerInfo) status(gen int64) gatewayv1.ListenerStatus {
	st := gatewayv1.ListenerStatus{
		Name:           l.spec.Name,
		SupportedKinds: l.supportedKinds,
		AttachedRoutes: int32(len(l.attached)),
	}
	var accepted metav1.Condition
	switch {
	case l.conflict != nil:
		// A ListenerSet listener may conflict with a listener that takes
		// precedence whatever its own protocol; a Gateway's own listener never has
		// both problems.
		accepted = condition(gatewayv1.ListenerConditionAccepted, false, l.conflict.reason, l.conflict.message, gen)
	case l.unsupported != nil:
		accepted = condition(gatewayv1.ListenerConditionAccepted, false, l.unsupported.reason, l.unsupported.message, gen)
	default:
		accepted = condition(gatewayv1.ListenerConditionAccepted, true, gatewayv1.ListenerReasonAccepted, "The listener is accepted", gen)
	}

	var programmed metav1.Condition
	switch {
	case l.programmed():
		programmed = condition(gatewayv1.ListenerConditionProgrammed, true, gatewayv1.ListenerReasonProgrammed,
			fmt.Sprintf("The listener is programmed on port %s", strconv.Itoa(int(l.spec.Port))), gen)
	case !l.valid():
		programmed = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid,
			"The listener is not accepted; see the Accepted condition", gen)
	case !l.gateway.accepted():
		programmed = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid,
			"The Gateway is not accepted; see its Accepted condition", gen)
	case l.gateway.noAddress != nil:
		programmed = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonPending,
			"The Gateway has no address yet; see its Programmed condition", gen)
	case !l.allowsRoutes():
		programmed = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid,
			"No route kind the listener allows is supported; see the ResolvedRefs condition", gen)
	default:
		programmed = condition(gatewayv1.ListenerConditionProgrammed, false, gatewayv1.ListenerReasonInvalid,
			"The listener has no valid certificate; see the ResolvedRefs condition", gen)
	}

	resolved := condition(gatewayv1.ListenerConditionResolvedRefs, true, gatewayv1.ListenerReasonResolvedRefs,
		"All references are resolved", gen)
	if len(l.refProblems) > 0 {
		resolved = condition(gatewayv1.ListenerConditionResolvedRefs, false, l.refProblems.reason(), l.refProblems.message(), gen)
	} else if len(l.certs) > 1 {
		resolved.Message = "All references are resolved; Flax serves the first certificate of tls.certificateRefs and ignores the others"
	}

	conflicted := condition(gatewayv1.ListenerConditionConflicted, false, gatewayv1.ListenerReasonNoConflicts, "The listener has no conflicts", gen)
	if l.conflict != nil {
		conflicted = condition(gatewayv1.ListenerConditionConflicted, true, l.conflict.reason, l.conflict.message, gen)
	}
	st.Conditions = []metav1.Condition{accepted, programmed, resolved, conflicted}
	return st
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
