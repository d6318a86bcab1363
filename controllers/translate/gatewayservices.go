package translate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// GatewayServiceLabel marks the Services and EndpointSlices Flax creates for
// Gateways (value "true"); gatewayv1.GatewayNameLabelKey names their Gateway.
const GatewayServiceLabel = "flaxlb.io/gateway-service"

// GatewayService is the Service a Gateway should have (see
// GatewayClassParameters spec.service), with its EndpointSlices' endpoints.
type GatewayService struct {
	// Gateway is the Gateway's namespace and name; the Service lives in its
	// namespace.
	Gateway types.NamespacedName `json:"gateway"`
	// GatewayUID is the Gateway's UID, for the owner reference.
	GatewayUID types.UID `json:"gatewayUID,omitempty"`
	// Name of the Service (GatewayServiceName).
	Name string `json:"name"`
	// Type of the Service.
	Type corev1.ServiceType `json:"type"`
	// Labels are the labels of the Service and its EndpointSlices: the
	// Gateway's spec.infrastructure.labels, GatewayServiceLabel and the
	// gateway-name label.
	Labels map[string]string `json:"labels"`
	// Annotations are the Gateway's spec.infrastructure.annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Ports are the distinct ports and transport protocols of the Gateway's
	// valid listeners (its own and those of its attached ListenerSets), by
	// port, then protocol: UDP for UDP listeners, TCP for all others.
	Ports []GatewayServicePort `json:"ports"`
	// Endpoints are where the dataplanes serve the Gateway, sorted by address.
	Endpoints []ServiceEndpoint `json:"endpoints,omitempty"`
}

// GatewayServicePort is one port of a Gateway's Service and EndpointSlices.
type GatewayServicePort struct {
	Port int32 `json:"port"`
	// Protocol is TCP or UDP.
	Protocol corev1.Protocol `json:"protocol"`
}

// ServiceEndpoint is one endpoint of a Gateway's Service.
type ServiceEndpoint struct {
	// Address is an IPv4 or IPv6 address.
	Address string `json:"address"`
	// Node is the name of the node the address belongs to; empty for a
	// Gateway address that every node serves (spec.addresses, address pools).
	Node string `json:"node,omitempty"`
}

// GatewayServiceName returns the name of the Service of the Gateway named gw:
// "<gw>-flax" when that is a valid Service name (a DNS-1035 label), else
// "flax-" and 20 hex digits of the name's SHA-256.
func GatewayServiceName(gw string) string {
	if n := gw + "-flax"; len(validation.IsDNS1035Label(n)) == 0 {
		return n
	}
	sum := sha256.Sum256([]byte(gw))
	return "flax-" + hex.EncodeToString(sum[:10])
}

// serviceIngress returns the ingress addresses (IPs, then hostnames) in the
// status of the Service Flax created for g, or nil.
func (t *translator) serviceIngress(g *gatewayInfo) []string {
	name := GatewayServiceName(g.key.Name)
	for i := range t.in.GatewayServices {
		s := &t.in.GatewayServices[i]
		if s.Namespace != g.key.Namespace || s.Name != name || s.Labels[gatewayv1.GatewayNameLabelKey] != g.key.Name {
			continue
		}
		var ips, hosts []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil {
				ips = append(ips, ip.Unmap().String())
			} else if in.Hostname != "" {
				hosts = append(hosts, in.Hostname)
			}
		}
		slices.Sort(ips)
		slices.Sort(hosts)
		return append(slices.Compact(ips), slices.Compact(hosts)...)
	}
	return nil
}

// loadBalancerAddresses makes the ingress addresses of g's Service of type
// LoadBalancer g's addresses; the dataplane listeners bind every address of
// the nodes, where the load balancer sends the traffic. Until the Service has
// an ingress address, g is not programmed.
func (t *translator) loadBalancerAddresses(g *gatewayInfo) {
	g.bindAddresses = []string{""}
	g.statusAddresses = t.serviceIngress(g)
	if len(g.statusAddresses) == 0 {
		g.noAddress = &problem{
			reason: string(gatewayv1.GatewayReasonAddressNotAssigned),
			message: fmt.Sprintf("Waiting for a load balancer to give Service %s/%s (type LoadBalancer) an ingress address; check the cluster's load balancer controller, or set spec.addresses",
				g.key.Namespace, GatewayServiceName(g.key.Name)),
		}
	}
}

// gatewayServices returns the Services of the accepted Gateways whose class
// asks for one, sorted by Gateway.
func (t *translator) gatewayServices() []GatewayService {
	var out []GatewayService
	for _, g := range t.gateways {
		if g.serviceType == "" || !g.accepted() {
			continue
		}
		ports := g.servicePorts()
		if len(ports) == 0 {
			continue
		}
		s := GatewayService{
			Gateway:    g.key,
			GatewayUID: g.gw.UID,
			Name:       GatewayServiceName(g.key.Name),
			Type:       g.serviceType,
			Labels:     map[string]string{},
			Ports:      ports,
			Endpoints:  t.serviceEndpoints(g),
		}
		if infra := g.gw.Spec.Infrastructure; infra != nil {
			for k, v := range infra.Labels {
				s.Labels[string(k)] = string(v)
			}
			if len(infra.Annotations) > 0 {
				s.Annotations = make(map[string]string, len(infra.Annotations))
				for k, v := range infra.Annotations {
					s.Annotations[string(k)] = string(v)
				}
			}
		}
		maps.Copy(s.Labels, map[string]string{GatewayServiceLabel: "true", gatewayv1.GatewayNameLabelKey: g.key.Name})
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b GatewayService) int { return compareKeys(a.Gateway, b.Gateway) })
	return out
}

// servicePorts returns the distinct ports of g's valid listeners, its own and
// those of its attached ListenerSets, each with its transport protocol (UDP
// for UDP listeners, TCP for the others), by port, then protocol.
func (g *gatewayInfo) servicePorts() []GatewayServicePort {
	var ports []GatewayServicePort
	for _, l := range g.allListeners() {
		if l.valid() && (l.set == nil || l.set.attached) {
			proto := corev1.ProtocolTCP
			if l.protocol == dataplanev1.Listener_UDP {
				proto = corev1.ProtocolUDP
			}
			ports = append(ports, GatewayServicePort{Port: int32(l.spec.Port), Protocol: proto})
		}
	}
	slices.SortFunc(ports, func(a, b GatewayServicePort) int {
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return compareStrings(string(a.Protocol), string(b.Protocol))
	})
	return slices.Compact(ports)
}

// serviceEndpoints returns where the dataplanes serve g: its own addresses when
// its listeners bind them, else the addresses of the dataplane nodes.
func (t *translator) serviceEndpoints(g *gatewayInfo) []ServiceEndpoint {
	var eps []ServiceEndpoint
	if slices.Contains(g.bindAddresses, "") {
		for _, n := range t.in.DataplaneNodes {
			for _, a := range n.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					eps = append(eps, ServiceEndpoint{Address: ip.Unmap().String(), Node: n.Name})
				}
			}
		}
	} else {
		for _, a := range g.bindAddresses {
			eps = append(eps, ServiceEndpoint{Address: a})
		}
	}
	slices.SortFunc(eps, func(a, b ServiceEndpoint) int {
		if c := compareStrings(a.Address, b.Address); c != 0 {
			return c
		}
		return compareStrings(a.Node, b.Node)
	})
	return slices.Compact(eps)
}

// classServiceType returns the type of the Service the GatewayClassParameters p
// give each Gateway, or "" when it gives none.
func classServiceType(p *flaxv1alpha1.GatewayClassParameters) corev1.ServiceType {
	if p == nil || p.Spec.Service == nil {
		return ""
	}
	if p.Spec.Service.Type == "" {
		return corev1.ServiceTypeLoadBalancer
	}
	return p.Spec.Service.Type
}
