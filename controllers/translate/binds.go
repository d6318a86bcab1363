package translate

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// bindKey is an address and port a dataplane listener binds; address "" binds all.
// UDP ports are apart from TCP ones: a UDP listener and a TCP-based one may
// share an address and port.
type bindKey struct {
	address string
	port    int32
	udp     bool
}

// bindKeyOf returns the bind key of listener l on address addr.
func bindKeyOf(addr string, l *listenerInfo) bindKey {
	return bindKey{address: addr, port: l.spec.Port, udp: l.protocol == dataplanev1.Listener_UDP}
}

// bind is one dataplane listener: the Gateway listeners of one or more Gateways
// served on one address and port.
type bind struct {
	key      bindKey
	name     string
	protocol dataplanev1.Listener_Protocol
	// members are the usable Gateway listeners on the bind, oldest Gateway first.
	members []*listenerInfo
	// vhosts are the virtual hosts by hostname ("" for the catch-all) of an HTTP
	// or HTTPS bind.
	vhosts map[string]*vhost
	// tcp is the TCPRoute a TCP bind serves, or the UDPRoute a UDP bind serves:
	// the oldest attached; nil until one is placed.
	tcp *l4Route
	// tls are the TLS routes of a TLS bind, one per TLSRoute and mode, with the
	// hostnames each serves; tlsHosts maps every hostname taken to its route.
	tls      map[tlsEntryKey]*dataplanev1.TLSRoute
	tlsHosts map[string]*l4Route
	// built is the dataplane listener of the bind in the snapshot; nil until the
	// snapshot is built, and when no member is programmed.
	built *dataplanev1.Listener
	// tracing is the tracing of the class whose settings the built listener
	// took, when they trace it.
	tracing *classTracing
}

// vhost is one virtual host being built.
type vhost struct {
	hostname string
	routes   []*dataplanev1.Route
	// seen are the HTTPRoutes already added.
	seen map[types.NamespacedName]bool
}

// resolveBinds assigns the usable listeners of every Gateway to binds, oldest
// Gateway first. A listener whose protocol differs from the one an older Gateway
// already serves on the same address and port conflicts.
func (t *translator) resolveBinds() {
	for _, g := range t.gateways {
		if !g.accepted() {
			continue
		}
		for _, l := range g.allListeners() {
			if !l.usable() {
				continue
			}
			for _, addr := range g.bindAddresses {
				k := bindKeyOf(addr, l)
				b, ok := t.binds[k]
				if !ok {
					continue
				}
				first := b.members[0]
				if b.protocol != l.protocol && first.gateway != g {
					l.conflict = &problem{
						reason: string(gatewayv1.ListenerReasonProtocolConflict),
						message: fmt.Sprintf("port %d%s already serves %s for the older Gateway %s (listener %s); Flax serves one protocol per port and address: use another port, or give this Gateway its own address in spec.addresses",
							l.spec.Port, describeBindAddress(addr), first.spec.Protocol, first.gateway.key, first.spec.Name),
					}
					break
				}
				if (b.protocol == dataplanev1.Listener_TCP || b.protocol == dataplanev1.Listener_UDP) && first.gateway != g {
					l.conflict = &problem{
						reason: string(gatewayv1.ListenerReasonProtocolConflict),
						message: fmt.Sprintf("port %d%s already serves %s for the older Gateway %s (listener %s), and a %s port forwards to one route only: use another port, or give this Gateway its own address in spec.addresses",
							l.spec.Port, describeBindAddress(addr), b.protocol, first.gateway.key, first.spec.Name, b.protocol),
					}
					break
				}
				if other := b.modeClash(l); other != nil {
					l.conflict = &problem{
						reason: string(gatewayv1.ListenerReasonHostnameConflict),
						message: fmt.Sprintf("the older Gateway %s (listener %s) already serves %s on port %d%s with tls.mode %s; use another hostname or port, or give this Gateway its own address in spec.addresses",
							other.gateway.key, other.spec.Name, describeHostname(l.hostname), l.spec.Port, describeBindAddress(addr), tlsModeName(other.terminate)),
					}
					break
				}
				if other := b.validationClash(l); other != nil {
					l.conflict = &problem{
						reason: string(gatewayv1.ListenerReasonProtocolConflict),
						message: fmt.Sprintf("the older Gateway %s (listener %s) already terminates TLS on port %d%s and checks client certificates differently (spec.tls.frontend); Flax checks one port's handshakes one way: use the same validation, another port, or give this Gateway its own address in spec.addresses",
							other.gateway.key, other.spec.Name, l.spec.Port, describeBindAddress(addr)),
					}
					break
				}
				if other := b.certificateClash(l); other != nil {
					l.conflict = &problem{
						reason: string(gatewayv1.ListenerReasonHostnameConflict),
						message: fmt.Sprintf("the older Gateway %s (listener %s) already serves %s on port %d%s with another certificate; use another hostname or port, or give this Gateway its own address in spec.addresses",
							other.gateway.key, other.spec.Name, describeHostname(l.hostname), l.spec.Port, describeBindAddress(addr)),
					}
					break
				}
			}
			if l.conflict != nil {
				continue
			}
			for _, addr := range g.bindAddresses {
				k := bindKeyOf(addr, l)
				b, ok := t.binds[k]
				if !ok {
					b = &bind{
						key: k, protocol: l.protocol, name: bindName(g, l, addr), vhosts: map[string]*vhost{},
						tls: map[tlsEntryKey]*dataplanev1.TLSRoute{}, tlsHosts: map[string]*l4Route{},
					}
					t.binds[k] = b
					t.bindOrder = append(t.bindOrder, b)
				}
				b.members = append(b.members, l)
			}
		}
	}
	// Every listener reserves the virtual host of its own hostname, so that requests
	// for it never reach the routes of a less specific listener.
	for _, b := range t.bindOrder {
		if b.protocol != dataplanev1.Listener_HTTP && b.protocol != dataplanev1.Listener_HTTPS {
			continue
		}
		for _, l := range b.members {
			if l.usable() {
				b.vhost(l.hostname)
			}
		}
	}
}

// modeClash returns the member of b of another Gateway that serves the
// hostname of TLS listener l in the other tls.mode, if any: one server name is
// either passed through or terminated.
func (b *bind) modeClash(l *listenerInfo) *listenerInfo {
	if l.protocol != dataplanev1.Listener_TLS {
		return nil
	}
	for _, m := range b.members {
		if m.gateway != l.gateway && m.hostname == l.hostname && m.terminate != l.terminate {
			return m
		}
	}
	return nil
}

// tlsModeName names the tls.mode of a TLS listener that terminates or not.
func tlsModeName(terminate bool) gatewayv1.TLSModeType {
	if terminate {
		return gatewayv1.TLSModeTerminate
	}
	return gatewayv1.TLSModePassthrough
}

// certificateClash returns the member of b of another Gateway that serves the
// hostname of terminating listener l with a different certificate, if any:
// merged Gateways cannot both choose the certificate of one server name.
func (b *bind) certificateClash(l *listenerInfo) *listenerInfo {
	if len(l.certs) == 0 {
		return nil
	}
	for _, m := range b.members {
		if m.gateway == l.gateway || m.hostname != l.hostname || len(m.certs) == 0 {
			continue
		}
		if !bytes.Equal(m.certs[0].CertPem, l.certs[0].CertPem) || !bytes.Equal(m.certs[0].KeyPem, l.certs[0].KeyPem) {
			return m
		}
	}
	return nil
}

// describeBindAddress formats a bind address for messages.
func describeBindAddress(addr string) string {
	if addr == "" {
		return " on the node addresses"
	}
	return " on address " + addr
}

// bindName names the dataplane listener that Gateway g's listeners on l's port bind
// on addr: "<namespace>/<gateway>/<port>", then "/udp" for a UDP listener and
// "/<address>" when the Gateway has several addresses.
func bindName(g *gatewayInfo, l *listenerInfo, addr string) string {
	name := g.key.Namespace + "/" + g.key.Name + "/" + strconv.Itoa(int(l.spec.Port))
	if l.protocol == dataplanev1.Listener_UDP {
		name += "/udp"
	}
	if len(g.bindAddresses) > 1 {
		name += "/" + addr
	}
	return name
}

// hostnames returns the hostnames of the usable members of b.
func (b *bind) hostnames() []string {
	hs := make([]string, 0, len(b.members))
	for _, l := range b.members {
		if l.usable() {
			hs = append(hs, l.hostname)
		}
	}
	return hs
}

// vhost returns the virtual host of hostname h, creating it if needed.
func (b *bind) vhost(h string) *vhost {
	vh, ok := b.vhosts[h]
	if !ok {
		vh = &vhost{hostname: h, seen: map[types.NamespacedName]bool{}}
		b.vhosts[h] = vh
	}
	return vh
}

// listener builds the dataplane listener of b, or returns nil when none of its
// members is programmed.
func (b *bind) listener() *dataplanev1.Listener {
	var programmed []*listenerInfo
	for _, l := range b.members {
		if l.programmed() {
			programmed = append(programmed, l)
		}
	}
	if len(programmed) == 0 {
		return nil
	}
	dl := &dataplanev1.Listener{
		Name:     b.name,
		Address:  b.key.address,
		Port:     uint32(b.key.port),
		Protocol: b.protocol,
	}
	// The class of the oldest programmed Gateway sets how the listener treats
	// its clients.
	programmed[0].gateway.clientTraffic.apply(dl)
	programmed[0].gateway.tracing.apply(dl)
	if tr := programmed[0].gateway.tracing; dl.Tracing != nil {
		b.tracing = tr
	}
	switch b.protocol {
	case dataplanev1.Listener_TCP:
		dl.TcpRoute = b.tcpRoute()
		return dl
	case dataplanev1.Listener_UDP:
		dl.UdpRoute = b.udpRoute()
		return dl
	case dataplanev1.Listener_TLS:
		dl.TlsRoutes = b.tlsRoutes()
		if slices.ContainsFunc(dl.TlsRoutes, (*dataplanev1.TLSRoute).GetTerminate) {
			dl.Certificates = certificates(programmed)
			dl.ClientValidation = clientValidation(programmed)
		}
		return dl
	case dataplanev1.Listener_HTTPS:
		dl.Certificates = certificates(programmed)
		dl.ClientValidation = clientValidation(programmed)
	}
	hosts := make([]string, 0, len(b.vhosts))
	for h := range b.vhosts {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b string) int { return compareStrings(vhostName(a), vhostName(b)) })
	for _, h := range hosts {
		vh := b.vhosts[h]
		dv := &dataplanev1.VirtualHost{Name: vhostName(h), Routes: vh.routes}
		if h != "" {
			dv.Hostnames = []string{h}
		}
		slices.SortStableFunc(dv.Routes, compareRouteOrder)
		dl.VirtualHosts = append(dl.VirtualHosts, dv)
	}
	return dl
}

// certificates returns the certificates of the terminating listeners among
// programmed, one per hostname; the oldest Gateway's wins when merged Gateways
// serve the same hostname.
func certificates(programmed []*listenerInfo) []*dataplanev1.TLSCertificate {
	var out []*dataplanev1.TLSCertificate
	taken := map[string]bool{}
	for _, l := range programmed {
		if !l.terminate || taken[l.hostname] {
			continue
		}
		taken[l.hostname] = true
		c := l.certs[0]
		cert := &dataplanev1.TLSCertificate{CertPem: c.CertPem, KeyPem: c.KeyPem}
		if l.hostname != "" {
			cert.ServerNames = []string{l.hostname}
		}
		out = append(out, cert)
	}
	slices.SortFunc(out, func(a, b *dataplanev1.TLSCertificate) int {
		return slices.Compare(a.ServerNames, b.ServerNames)
	})
	return out
}

// compareRouteOrder orders routes by the Gateway API tie-break.
func compareRouteOrder(a, b *dataplanev1.Route) int {
	oa, ob := a.GetOrder(), b.GetOrder()
	if c := compareInt64(oa.GetCreationTimestampUnixNanos(), ob.GetCreationTimestampUnixNanos()); c != 0 {
		return c
	}
	if c := compareStrings(oa.GetNamespace(), ob.GetNamespace()); c != 0 {
		return c
	}
	if c := compareStrings(oa.GetName(), ob.GetName()); c != 0 {
		return c
	}
	return compareInt64(int64(oa.GetRuleIndex()), int64(ob.GetRuleIndex()))
}

// compareInt64 orders integers.
func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
