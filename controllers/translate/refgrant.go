package translate

import (
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// groupKind is an API group and kind; the core group is "".
type groupKind struct {
	group string
	kind  string
}

// Kinds the translator refers to.
var (
	kindGateway     = groupKind{gatewayv1.GroupName, "Gateway"}
	kindListenerSet = groupKind{gatewayv1.GroupName, "ListenerSet"}
	kindHTTPRoute   = groupKind{gatewayv1.GroupName, "HTTPRoute"}
	kindGRPCRoute   = groupKind{gatewayv1.GroupName, "GRPCRoute"}
	kindTCPRoute    = groupKind{gatewayv1.GroupName, "TCPRoute"}
	kindTLSRoute    = groupKind{gatewayv1.GroupName, "TLSRoute"}
	kindUDPRoute    = groupKind{gatewayv1.GroupName, "UDPRoute"}
	kindService     = groupKind{"", "Service"}
	kindSecret      = groupKind{"", "Secret"}
	kindConfigMap   = groupKind{"", "ConfigMap"}
)

// normalGroup maps the spellings of the core group to "".
func normalGroup(g string) string {
	if g == "core" {
		return ""
	}
	return g
}

// grantKey is what a ReferenceGrant allows, indexed by the namespace it lives in.
type grantKey struct {
	toNamespace   string
	to            groupKind
	from          groupKind
	fromNamespace string
}

// grants indexes ReferenceGrants: for each key, the names it allows ("" for all).
type grants map[grantKey][]string

// indexGrants builds the index of all ReferenceGrants.
func indexGrants(list []gatewayv1beta1.ReferenceGrant) grants {
	g := grants{}
	for i := range list {
		rg := &list[i]
		for _, from := range rg.Spec.From {
			for _, to := range rg.Spec.To {
				k := grantKey{
					toNamespace:   rg.Namespace,
					to:            groupKind{normalGroup(string(to.Group)), string(to.Kind)},
					from:          groupKind{normalGroup(string(from.Group)), string(from.Kind)},
					fromNamespace: string(from.Namespace),
				}
				name := ""
				if to.Name != nil {
					name = string(*to.Name)
				}
				g[k] = append(g[k], name)
			}
		}
	}
	return g
}

// allows reports whether an object of kind from in namespace fromNS may refer to
// the object toName of kind to in namespace toNS. References within a namespace
// need no grant.
func (g grants) allows(from groupKind, fromNS string, to groupKind, toNS, toName string) bool {
	if fromNS == toNS {
		return true
	}
	for _, name := range g[grantKey{toNamespace: toNS, to: to, from: from, fromNamespace: fromNS}] {
		if name == "" || name == toName {
			return true
		}
	}
	return false
}
