package translate

import (
	"crypto/tls"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// backendClientCert is the client certificate a Gateway's spec.tls.backend
// names: the dataplane presents it to the backends it speaks TLS to for the
// Gateway's routes.
type backendClientCert struct {
	// secret is the Secret it comes from; groups are told apart by it.
	secret    types.NamespacedName
	cert, key []byte
}

// clientCertRefField is the field of a Gateway that names its client
// certificate for backends.
const clientCertRefField = "spec.tls.backend.clientCertificateRef"

// resolveBackendClientCert resolves the client certificate of g's
// spec.tls.backend: a core Secret of type kubernetes.io/tls, in another
// namespace only with a ReferenceGrant. What is wrong with it is recorded in
// g.clientCertProblem (the Gateway's ResolvedRefs condition); the Gateway stays
// accepted, and its routes' TLS backends are spoken to without a client
// certificate.
func (t *translator) resolveBackendClientCert(g *gatewayInfo) {
	gw := g.gw
	if gw.Spec.TLS == nil || gw.Spec.TLS.Backend == nil || gw.Spec.TLS.Backend.ClientCertificateRef == nil {
		return
	}
	ref := gw.Spec.TLS.Backend.ClientCertificateRef
	fail := func(reason gatewayv1.GatewayConditionReason, format string, args ...any) {
		g.clientCertProblem = &problem{reason: string(reason), message: fmt.Sprintf(format, args...) +
			"; until then backends that ask for a client certificate get none from this Gateway's routes"}
	}
	group, kind := "", "Secret"
	if ref.Group != nil {
		group = normalGroup(string(*ref.Group))
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	gwNS := g.key.Namespace
	ns, name := gwNS, string(ref.Name)
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	if (groupKind{group, kind}) != kindSecret {
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef,
			"%s refers to a %s; Flax reads client certificates only from core Secrets of type kubernetes.io/tls: change the reference", clientCertRefField, describeKind(group, kind))
		return
	}
	if !t.grants.allows(kindGateway, gwNS, kindSecret, ns, name) {
		fail(gatewayv1.GatewayReasonRefNotPermitted,
			"%s refers to Secret %s/%s in another namespace, and no ReferenceGrant in namespace %s allows Gateways of namespace %s to use it: create one there, or copy the Secret to namespace %s",
			clientCertRefField, ns, name, ns, gwNS, gwNS)
		return
	}
	secret, ok := t.secrets[types.NamespacedName{Namespace: ns, Name: name}]
	switch {
	case !ok:
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef,
			"%s refers to Secret %s/%s, which does not exist: create it or fix the reference", clientCertRefField, ns, name)
		return
	case secret.Type != corev1.SecretTypeTLS:
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef,
			"%s refers to Secret %s/%s of type %q; it must be of type kubernetes.io/tls with tls.crt and tls.key", clientCertRefField, ns, name, secret.Type)
		return
	}
	cert, key := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
	if len(cert) == 0 || len(key) == 0 {
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef,
			"%s refers to Secret %s/%s, which lacks tls.crt or tls.key; put a PEM certificate chain and its key there", clientCertRefField, ns, name)
		return
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef,
			"%s refers to Secret %s/%s, whose tls.crt and tls.key are not a valid PEM key pair (%v); replace them", clientCertRefField, ns, name, err)
		return
	}
	g.clientCert = &backendClientCert{secret: types.NamespacedName{Namespace: ns, Name: name}, cert: cert, key: key}
}

// resolvedRefs is the Gateway's ResolvedRefs condition, given only to Gateways
// with a spec.tls.backend.clientCertificateRef (the only reference of the
// Gateway itself, rather than of its listeners, that Flax resolves); nil for
// the others.
func (g *gatewayInfo) resolvedRefs(gen int64) *metav1.Condition {
	gw := g.gw
	if gw.Spec.TLS == nil || gw.Spec.TLS.Backend == nil || gw.Spec.TLS.Backend.ClientCertificateRef == nil {
		return nil
	}
	c := condition(gatewayv1.GatewayConditionResolvedRefs, true, gatewayv1.GatewayReasonResolvedRefs,
		fmt.Sprintf("%s is resolved: backends that ask for a client certificate get the one of Secret %s", clientCertRefField, g.clientCertSecret()), gen)
	if p := g.clientCertProblem; p != nil {
		c = condition(gatewayv1.GatewayConditionResolvedRefs, false, p.reason, p.message, gen)
	}
	return &c
}

// clientCertSecret names the Secret of the Gateway's client certificate.
func (g *gatewayInfo) clientCertSecret() string {
	if g.clientCert == nil {
		return ""
	}
	return g.clientCert.secret.String()
}

// clientGroupName is the name of the variant of group name that presents the
// client certificate c: "<group>/client/<secret namespace>/<secret name>".
func clientGroupName(name string, c *backendClientCert) string {
	return name + "/client/" + c.secret.Namespace + "/" + c.secret.Name
}

// clientGroup returns the variant of g, a group with TLS, that presents the
// client certificate c, creating it on first use. Gateways with different
// client certificates thus never share a group, and those with the same
// Secret do.
func (t *translator) clientGroup(g *groupInfo, c *backendClientCert) *groupInfo {
	name := clientGroupName(g.name, c)
	if v, ok := t.groups[name]; ok {
		return v
	}
	v := *g
	v.name, v.clientCert, v.used, v.gateways = name, c, false, map[types.NamespacedName]bool{}
	t.groups[name] = &v
	return &v
}

// rulesFor returns the rules of ri to serve on a Gateway with client
// certificate c (nil for none): its rules, or, when some of their groups have
// TLS, copies that refer to the variants of those groups that present c.
func (t *translator) rulesFor(ri *routeInfo, c *backendClientCert) []*dataplanev1.Route {
	if c == nil || !slices.ContainsFunc(ri.groups, func(name string) bool { return t.groups[name].tls != nil }) {
		return ri.rules
	}
	if rules, ok := ri.clientRules[c.secret]; ok {
		return rules
	}
	rename := func(name string) string {
		if g := t.groups[name]; g != nil && g.tls != nil {
			return clientGroupName(name, c)
		}
		return name
	}
	renameMirrors := func(fs []*dataplanev1.RouteFilter) {
		for _, f := range fs {
			if m := f.GetRequestMirror(); m != nil {
				m.BackendGroup = rename(m.BackendGroup)
			}
		}
	}
	rules := make([]*dataplanev1.Route, len(ri.rules))
	for i, rt := range ri.rules {
		if rt == nil {
			continue
		}
		rt = proto.CloneOf(rt)
		renameMirrors(rt.Filters)
		for _, b := range rt.Backends {
			if bg, ok := b.Target.(*dataplanev1.WeightedBackend_BackendGroup); ok {
				bg.BackendGroup = rename(bg.BackendGroup)
			}
			renameMirrors(b.Filters)
		}
		rules[i] = rt
	}
	if ri.clientRules == nil {
		ri.clientRules = map[types.NamespacedName][]*dataplanev1.Route{}
	}
	ri.clientRules[c.secret] = rules
	return rules
}

// ruleSets returns the rules of ri and their copies for client certificates,
// in a fixed order.
func (ri *routeInfo) ruleSets() [][]*dataplanev1.Route {
	sets := [][]*dataplanev1.Route{ri.rules}
	for _, k := range slices.SortedFunc(maps.Keys(ri.clientRules), compareKeys) {
		sets = append(sets, ri.clientRules[k])
	}
	return sets
}
