package translate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// groupInfo is a backend group: one port of one Service, spoken to in one
// protocol.
type groupInfo struct {
	name     string
	service  *corev1.Service
	port     corev1.ServicePort
	protocol dataplanev1.BackendGroup_Protocol
	// used is set once a route served on some listener refers to the group.
	used bool
	// gateways are the Gateways whose listeners serve routes that use the group.
	gateways map[types.NamespacedName]bool
	// tls is the TLS of the group, from the BackendTLSPolicy of its port; nil
	// for cleartext.
	tls *dataplanev1.BackendTLS
	// clientCert is the client certificate the group presents to its
	// endpoints (a Gateway's spec.tls.backend); set only on a group with tls.
	clientCert *backendClientCert
}

// h2cAppProtocols are the Service port appProtocols that ask for cleartext
// HTTP/2 with prior knowledge: the standard one of KEP-3726 and the spellings in
// common use. Every other appProtocol (none, http, kubernetes.io/ws and
// kubernetes.io/wss for WebSocket, which HTTP/1.1's upgrade carries, or one
// Flax does not know) is spoken to in HTTP/1.1 by HTTPRoutes.
var h2cAppProtocols = []string{"kubernetes.io/h2c", "h2c", "grpc"}

// h2cSuffix ends the name of a backend group that speaks h2c to a port that
// does not declare it (a GRPCRoute's backend without appProtocol), so that the
// port's HTTP/1.1 group, used by HTTPRoutes, keeps its name.
const h2cSuffix = "/h2c"

// backendProtocol returns the protocol routes of kind from speak to port, and
// whether it is inferred from the route kind rather than declared by the port's
// appProtocol. A GRPCRoute needs HTTP/2: it speaks h2c to a port without
// appProtocol (as the Gateway API allows: the protocol may be inferred from the
// route kind) and cannot use a port that declares another protocol (ok false).
func backendProtocol(from groupKind, port corev1.ServicePort) (proto dataplanev1.BackendGroup_Protocol, inferred, ok bool) {
	app := ""
	if port.AppProtocol != nil {
		app = strings.ToLower(*port.AppProtocol)
	}
	switch {
	case slices.Contains(h2cAppProtocols, app):
		return dataplanev1.BackendGroup_H2C, false, true
	case from == kindGRPCRoute && app == "":
		return dataplanev1.BackendGroup_H2C, true, true
	case from == kindGRPCRoute:
		return 0, false, false
	}
	// HTTP/1.1, which the contract reads an unset protocol as.
	return dataplanev1.BackendGroup_PROTOCOL_UNSPECIFIED, false, true
}

// backendRef resolves a reference of the rule to a Service port and returns its
// backend group. When it cannot, it records why in the route's ResolvedRefs
// problems, followed by consequence, and returns false.
func (rb *ruleBuilder) backendRef(ref gatewayv1.BackendObjectReference, where, consequence string) (string, bool) {
	group, tp, p := rb.t.serviceBackend(rb.ri.kind, rb.ri.route.Namespace, ref, where, consequence)
	if tp != nil && !slices.Contains(rb.ri.tlsPorts, *tp) {
		rb.ri.tlsPorts = append(rb.ri.tlsPorts, *tp)
	}
	if p != nil {
		rb.ri.refProblems.add(p.reason, p.message)
		return "", false
	}
	return group, true
}

// serviceBackend resolves ref, a backend reference of a route of kind from in
// namespace fromNS, to a Service port and returns its backend group. When it
// cannot, it returns why (a route condition reason), followed by consequence.
// Every route kind but UDPRoute needs a TCP port, GRPCRoutes one they can speak
// HTTP/2 to (see backendProtocol); UDPRoutes need a UDP port (a Service may have
// both on one number). For HTTPRoutes and GRPCRoutes, a port a
// BackendTLSPolicy holds gives a group with TLS, and is returned as a tlsPort
// (also when the policy cannot be applied, which refuses the reference, as
// does an h2c port: the dataplane speaks only HTTP/1.1 over TLS to backends).
// TCPRoutes and TLSRoutes forward bytes as they are: their group of such a
// port has no TLS and a name ending in "/tcp".
func (t *translator) serviceBackend(from groupKind, fromNS string, ref gatewayv1.BackendObjectReference, where, consequence string) (string, *tlsPort, *problem) {
	var tp *tlsPort
	fail := func(reason gatewayv1.RouteConditionReason, format string, args ...any) (string, *tlsPort, *problem) {
		return "", tp, &problem{reason: string(reason), message: fmt.Sprintf(format, args...)}
	}
	group, kind := "", "Service"
	if ref.Group != nil {
		group = normalGroup(string(*ref.Group))
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := fromNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	name := string(ref.Name)
	if (groupKind{group, kind}) != kindService {
		return fail(gatewayv1.RouteReasonInvalidKind,
			"%s refers to %s %s, but Flax supports only core Services as backends: refer to a Service; until then %s",
			where, describeKind(group, kind), name, consequence)
	}
	if !t.grants.allows(from, fromNS, kindService, ns, name) {
		return fail(gatewayv1.RouteReasonRefNotPermitted,
			"%s refers to Service %s/%s in another namespace, and no ReferenceGrant in namespace %s allows %ss of namespace %s to use it: create one there; until then %s",
			where, ns, name, ns, from.kind, fromNS, consequence)
	}
	svc, ok := t.services[types.NamespacedName{Namespace: ns, Name: name}]
	if !ok {
		return fail(gatewayv1.RouteReasonBackendNotFound,
			"%s refers to Service %s/%s, which does not exist: create it or fix the name; until then %s", where, ns, name, consequence)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return fail(gatewayv1.RouteReasonBackendNotFound,
			"%s refers to Service %s/%s of type ExternalName, which has no endpoints Flax can use: refer to a Service with a selector or EndpointSlices; until then %s",
			where, ns, name, consequence)
	}
	if ref.Port == nil {
		return fail(gatewayv1.RouteReasonBackendNotFound,
			"%s refers to Service %s/%s without a port: set port to one of its ports (%s); until then %s", where, ns, name, servicePorts(svc), consequence)
	}
	transport := corev1.ProtocolTCP
	if from == kindUDPRoute {
		transport = corev1.ProtocolUDP
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Port == *ref.Port && portProtocol(p) == transport
	})
	if i < 0 {
		i = slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == *ref.Port })
	}
	if i < 0 {
		return fail(gatewayv1.RouteReasonBackendNotFound,
			"%s refers to port %d of Service %s/%s, which has no such port: use one of its ports (%s); until then %s",
			where, *ref.Port, ns, name, servicePorts(svc), consequence)
	}
	port := svc.Spec.Ports[i]
	needs := "HTTP"
	if from != kindHTTPRoute {
		needs = "a " + from.kind
	}
	if portProtocol(port) != transport {
		return fail(gatewayv1.RouteReasonUnsupportedProtocol,
			"%s refers to port %d of Service %s/%s, whose protocol is %s, but %s needs a %s port: use another port; until then %s", where, port.Port, ns, name, portProtocol(port), needs, transport, consequence)
	}
	proto, inferred, ok := backendProtocol(from, port)
	if !ok {
		return fail(gatewayv1.RouteReasonUnsupportedProtocol,
			"%s refers to port %d of Service %s/%s, whose appProtocol is %s, but gRPC needs HTTP/2: use a port with appProtocol kubernetes.io/h2c or none; until then %s",
			where, port.Port, ns, name, *port.AppProtocol, consequence)
	}
	gname := ns + "/" + name + ":" + strconv.Itoa(int(port.Port))
	if inferred {
		gname += h2cSuffix
	}
	var tls *dataplanev1.BackendTLS
	if h := t.tlsHolder(key(svc), port.Name); h != nil && transport == corev1.ProtocolTCP {
		if from != kindHTTPRoute && from != kindGRPCRoute {
			gname += "/tcp"
		} else {
			tp = &tlsPort{service: key(svc), port: port.Name}
			if why := h.unusable(); why != "" {
				return fail(reasonInvalidBackendTLSPolicy,
					"%s refers to port %d of Service %s/%s, whose %s %s cannot be applied (%s): fix the policy (see its status); until then %s",
					where, port.Port, ns, name, h.kind, h.key, why, consequence)
			}
			if proto == dataplanev1.BackendGroup_H2C {
				who := "the routes that refer to port %s of Service %s/%s speak cleartext HTTP/2 to it (appProtocol h2c)"
				if inferred {
					who = "GRPCRoutes that refer to port %s of Service %s/%s speak cleartext HTTP/2 to it"
				}
				h.noteTargets(key(svc), port.Name, fmt.Sprintf(who+
					", which Flax cannot do over TLS: those references get errors (see the routes' ResolvedRefs condition)", port.Name, ns, name))
				speaks := "gRPC, which needs HTTP/2"
				if !inferred {
					speaks = fmt.Sprintf("appProtocol %s (cleartext HTTP/2)", *port.AppProtocol)
				}
				return fail(gatewayv1.RouteReasonUnsupportedProtocol,
					"%s refers to port %d of Service %s/%s, which speaks %s, and %s %s asks for TLS to it, but Flax speaks only HTTP/1.1 over TLS to backends: remove the policy or use an HTTP/1.1 port; until then %s",
					where, port.Port, ns, name, speaks, h.kind, h.key, consequence)
			}
			tls = h.tls
		}
	}
	if transport == corev1.ProtocolUDP {
		gname += "/udp"
		proto = dataplanev1.BackendGroup_PROTOCOL_UNSPECIFIED // datagrams, not HTTP
	}
	if _, ok := t.groups[gname]; !ok {
		t.groups[gname] = &groupInfo{name: gname, service: svc, port: port, protocol: proto, tls: tls, gateways: map[types.NamespacedName]bool{}}
	}
	return gname, tp, nil
}

// portProtocol returns the protocol of a Service port, TCP when unset.
func portProtocol(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// servicePorts lists the ports of a Service for messages.
func servicePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "it has none"
	}
	ports := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		ports[i] = strconv.Itoa(int(p.Port))
	}
	return strings.Join(ports, ", ")
}

// backendGroup builds the dataplane backend group of g with the endpoints of its
// Service's EndpointSlices for the group's port.
func (t *translator) backendGroup(g *groupInfo) *dataplanev1.BackendGroup {
	type endpointKey struct {
		addr netip.Addr
		port uint32
	}
	found := map[endpointKey]*dataplanev1.Endpoint{}
	var keys []endpointKey
	for _, es := range t.slices[key(g.service)] {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var port uint32
		for _, p := range es.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if name == g.port.Name && proto == portProtocol(g.port) && p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
				port = uint32(*p.Port)
				break
			}
		}
		if port == 0 {
			continue
		}
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			if len(ep.Addresses) == 0 {
				continue
			}
			addr, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || addr.Zone() != "" {
				continue
			}
			addr = addr.Unmap()
			e := &dataplanev1.Endpoint{Address: addr.String(), Port: port, Conditions: endpointConditions(ep.Conditions)}
			if ep.Zone != nil {
				e.Zone = *ep.Zone
			}
			k := endpointKey{addr, port}
			if prev, ok := found[k]; ok {
				// The same endpoint in several slices: keep the most ready view.
				if readiness(e) > readiness(prev) {
					found[k] = e
				}
				continue
			}
			found[k] = e
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b endpointKey) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return compareInt64(int64(a.port), int64(b.port))
	})
	bg := &dataplanev1.BackendGroup{
		Name:          g.name,
		Protocol:      g.protocol,
		LoadBalancing: &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_ROUND_ROBIN},
		Endpoints:     make([]*dataplanev1.Endpoint, 0, len(keys)),
	}
	for _, k := range keys {
		bg.Endpoints = append(bg.Endpoints, found[k])
	}
	if g.tls != nil {
		bg.Tls = proto.CloneOf(g.tls)
		if c := g.clientCert; c != nil {
			bg.Tls.ClientCertPem, bg.Tls.ClientKeyPem = c.cert, c.key
		}
	}
	t.applyBackendPolicy(g, bg)
	return bg
}

// endpointConditions copies EndpointSlice conditions, returning nil for the common
// case of a ready, serving endpoint that is not terminating (which is what unset
// conditions mean to the dataplane). As the EndpointSlice API says, an unknown
// ready condition counts as ready and an unknown serving condition as ready's value.
func endpointConditions(c discoveryv1.EndpointConditions) *dataplanev1.EndpointConditions {
	ready := c.Ready == nil || *c.Ready
	serving := ready
	if c.Serving != nil {
		serving = *c.Serving
	}
	terminating := c.Terminating != nil && *c.Terminating
	if ready && serving && !terminating {
		return nil
	}
	return &dataplanev1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}
}

// readiness ranks endpoint states: ready, then serving, then neither.
func readiness(e *dataplanev1.Endpoint) int {
	c := e.GetConditions()
	switch {
	case c == nil || c.GetReady():
		return 2
	case c.GetServing():
		return 1
	}
	return 0
}
