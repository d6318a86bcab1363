package translate

import (
	"fmt"
	"net/netip"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// addressPool is the address pool of a GatewayClassParameters.
type addressPool struct {
	// parameters is the name of the GatewayClassParameters.
	parameters string
	// prefixes are the entries of spec.addressPools, in order; a single address
	// is a prefix of full length.
	prefixes []netip.Prefix
}

// parseAddressPool parses spec.addressPools. It returns the problems of every
// invalid entry, if any.
func parseAddressPool(entries []flaxv1alpha1.AddressPool) (*addressPool, []string) {
	pool := &addressPool{}
	var errs []string
	for i, e := range entries {
		s := strings.TrimSpace(string(e))
		where := fmt.Sprintf("spec.addressPools[%d] %q", i, string(e))
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			switch {
			case err != nil:
				errs = append(errs, where+" is not a CIDR prefix such as 192.0.2.0/28 or 2001:db8::/120")
			case p.Addr().Is4In6():
				errs = append(errs, where+" is an IPv4-mapped IPv6 prefix; write it as an IPv4 prefix")
			case p != p.Masked():
				errs = append(errs, fmt.Sprintf("%s has bits set after the prefix length; write %s", where, p.Masked()))
			default:
				pool.prefixes = append(pool.prefixes, p)
			}
			continue
		}
		ip, err := netip.ParseAddr(s)
		switch {
		case err != nil || ip.Zone() != "":
			errs = append(errs, where+" is neither an IP address nor a CIDR prefix")
		case ip.Is4In6():
			errs = append(errs, where+" is an IPv4-mapped IPv6 address; write it as an IPv4 address")
		default:
			pool.prefixes = append(pool.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	return pool, errs
}

// contains reports whether ip is an address of the pool.
func (p *addressPool) contains(ip netip.Addr) bool {
	for _, pfx := range p.prefixes {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// describe lists the entries of the pool for messages.
func (p *addressPool) describe() string {
	s := make([]string, len(p.prefixes))
	for i, pfx := range p.prefixes {
		if pfx.IsSingleIP() {
			s[i] = pfx.Addr().String()
		} else {
			s[i] = pfx.String()
		}
	}
	return strings.Join(s, ", ")
}

// poolCursor is the lowest address of one prefix that may still be free. Addresses
// are only ever taken during an allocation, so the cursor only moves forward.
type poolCursor struct {
	next netip.Addr
	done bool
}

// free returns the first address of the pool that is not taken: entries in
// order, the addresses of an entry in ascending order. cursors remember, per
// prefix, where the previous search stopped.
func (p *addressPool) free(taken map[netip.Addr]bool, cursors map[netip.Prefix]*poolCursor) (netip.Addr, bool) {
	for _, pfx := range p.prefixes {
		c, ok := cursors[pfx]
		if !ok {
			c = &poolCursor{next: pfx.Addr()}
			cursors[pfx] = c
		}
		for !c.done && taken[c.next] {
			n := c.next.Next()
			if !n.IsValid() || !pfx.Contains(n) {
				c.done = true
			}
			c.next = n
		}
		if !c.done {
			return c.next, true
		}
	}
	return netip.Addr{}, false
}

// allocateAddresses gives every accepted Gateway that takes its address from an
// address pool one address of its own, oldest Gateway first:
//
//  1. Addresses named in the spec.addresses of any Gateway are never handed out.
//  2. A Gateway keeps an address of its status.addresses (the one it got last
//     time) while that address is still in the pool and no older Gateway kept it.
//  3. The others take the first free address of the pool; when none is left,
//     the Gateway is not programmed (AddressNotAssigned).
//
// One address is taken by at most one Gateway, whichever class's pool it comes
// from.
func (t *translator) allocateAddresses() {
	taken := map[netip.Addr]bool{}
	for _, g := range t.gateways {
		if !g.fromSpec {
			continue
		}
		for _, a := range g.statusAddresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				taken[ip] = true
			}
		}
	}
	var waiting []*gatewayInfo
	for _, g := range t.gateways {
		if g.pool == nil || !g.accepted() {
			continue
		}
		if ip, ok := previousAddress(g, taken); ok {
			taken[ip] = true
			g.assign(ip)
			continue
		}
		waiting = append(waiting, g)
	}
	cursors := map[netip.Prefix]*poolCursor{}
	for _, g := range waiting {
		ip, ok := g.pool.free(taken, cursors)
		if !ok {
			g.noAddress = &problem{
				reason: string(gatewayv1.GatewayReasonAddressNotAssigned),
				message: fmt.Sprintf("No address is free in the address pool of %s %s (%s): older Gateways and spec.addresses use them all; add addresses to its spec.addressPools, delete a Gateway that uses the pool, or set spec.addresses",
					flaxv1alpha1.KindGatewayClassParameters, g.pool.parameters, g.pool.describe()),
			}
			continue
		}
		taken[ip] = true
		g.assign(ip)
	}
}

// previousAddress returns the first address of g's status.addresses that is in
// its pool and not taken.
func previousAddress(g *gatewayInfo, taken map[netip.Addr]bool) (netip.Addr, bool) {
	for _, a := range g.gw.Status.Addresses {
		if a.Type != nil && *a.Type != gatewayv1.IPAddressType {
			continue
		}
		ip, err := netip.ParseAddr(a.Value)
		if err != nil || ip.Zone() != "" {
			continue
		}
		ip = ip.Unmap()
		if !taken[ip] && g.pool.contains(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// assign makes ip the address of g.
func (g *gatewayInfo) assign(ip netip.Addr) {
	g.statusAddresses = []string{ip.String()}
	g.bindAddresses = g.statusAddresses
}
