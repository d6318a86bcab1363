package translate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// kindBackendTLSPolicy is the kind of Gateway API BackendTLSPolicies.
const kindBackendTLSPolicy = "BackendTLSPolicy"

// reasonInvalidBackendTLSPolicy is the route ResolvedRefs reason of a backend
// reference to a Service port whose BackendTLSPolicy cannot be applied (the
// Gateway API lets implementations add reasons; it has none for this case).
const reasonInvalidBackendTLSPolicy = "InvalidBackendTLSPolicy"

// tlsPort is a Service port by name, as BackendTLSPolicies target it.
type tlsPort struct {
	service types.NamespacedName
	port    string
}

// translateBackendTLSPolicies translates every BackendTLSPolicy, resolves its
// targets and CA certificate references and gives every Service port to the
// policy that holds it: the oldest one that names it in sectionName, else the
// oldest one that targets the whole Service. Unlike Flax's own policies, an
// invalid BackendTLSPolicy holds its targets too: the backend references to
// them fail (500) rather than reach a backend that expects TLS in cleartext.
// It runs before the routes are translated, which look the holders up.
func (t *translator) translateBackendTLSPolicies() {
	for i := range t.in.BackendTLSPolicies {
		bp := &t.in.BackendTLSPolicies[i]
		p := newPolicy(kindBackendTLSPolicy, bp, bp.Spec.TargetRefs, kindService, describeServiceTarget)
		t.backendTLSSettings(p, &bp.Spec)
		for _, tg := range p.targets {
			t.resolveServiceTarget(tg)
		}
		t.tlsPolicies = append(t.tlsPolicies, p)
	}
	sortPolicies(t.tlsPolicies)
	t.tlsHolders = claimSlots(t.tlsPolicies, true)
}

// backendTLSSettings translates the validation of a BackendTLSPolicy into p.tls,
// recording what is wrong: spec problems in p.invalid, unusable CA certificate
// references in p.refProblems, and in p.noValidCA why none is usable.
func (t *translator) backendTLSSettings(p *policyInfo, spec *gatewayv1.BackendTLSPolicySpec) {
	var fp fieldProblems
	v := spec.Validation
	out := &dataplanev1.BackendTLS{ServerName: string(v.Hostname)}
	refs := len(v.CACertificateRefs) > 0
	wellKnown := ""
	if v.WellKnownCACertificates != nil {
		wellKnown = string(*v.WellKnownCACertificates)
	}
	switch {
	case refs && wellKnown != "":
		fp.add("validation", "set caCertificateRefs or wellKnownCACertificates, not both")
	case !refs && wellKnown == "":
		fp.add("validation", "set caCertificateRefs (ConfigMaps with the CA certificates in key %s) or wellKnownCACertificates: System", caCertKey)
	case wellKnown == string(gatewayv1.WellKnownCACertificatesSystem):
		out.SystemRoots = true
	case wellKnown != "":
		fp.add("validation.wellKnownCACertificates", "%q is not a set of CA certificates Flax knows; use System (the dataplane host's trust store) or caCertificateRefs", wellKnown)
	}
	for i, san := range v.SubjectAltNames {
		where := fmt.Sprintf("validation.subjectAltNames[%d]", i)
		switch san.Type {
		case gatewayv1.HostnameSubjectAltNameType:
			out.SubjectAltNames = append(out.SubjectAltNames, &dataplanev1.SubjectAltName{Name: &dataplanev1.SubjectAltName_Hostname{Hostname: string(san.Hostname)}})
		case gatewayv1.URISubjectAltNameType:
			out.SubjectAltNames = append(out.SubjectAltNames, &dataplanev1.SubjectAltName{Name: &dataplanev1.SubjectAltName_Uri{Uri: string(san.URI)}})
		default:
			fp.add(where+".type", "%q is not a type of subject alternative name; use Hostname or URI", san.Type)
		}
	}
	if len(spec.Options) > 0 {
		keys := make([]string, 0, len(spec.Options))
		for k := range spec.Options {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		fp.add("options", "Flax supports no options (%s): remove them, so that no setting is silently ignored", strings.Join(keys, ", "))
	}
	if refs && wellKnown == "" {
		if bundle := t.policyCABundle(p, v.CACertificateRefs); len(bundle) > 0 {
			out.CaCertPem = bundle
		} else {
			p.noValidCA = "None of validation.caCertificateRefs is usable (see the ResolvedRefs condition), so backend certificates cannot be checked: connections to the targets fail until one is"
		}
	}
	// The dataplane's validation of the result, for what the API does not say
	// (server name and subject alternative names); trust anchors that could
	// not be resolved are stood in for.
	check := proto.CloneOf(out)
	if len(check.CaCertPem) == 0 {
		check.SystemRoots = true
	}
	if err := dataplanev1.Validate(&dataplanev1.Snapshot{BackendGroups: []*dataplanev1.BackendGroup{{Name: "check", Tls: check}}}); err != nil {
		for _, e := range unjoin(err) {
			var fe *dataplanev1.FieldError
			if !errors.As(e, &fe) {
				fp.add("validation", "%v", e)
				continue
			}
			field := strings.TrimPrefix(fe.Field, "backendGroups[0].tls.")
			field = strings.Replace(field, "serverName", "hostname", 1)
			fp.add("validation."+field, "%s", fe.Detail)
		}
	}
	p.invalid = append(p.invalid, fp.msgs...)
	if len(p.invalid) == 0 && p.noValidCA == "" {
		p.tls = out
	}
}

// policyCABundle resolves the caCertificateRefs of a BackendTLSPolicy
// (ConfigMaps of its namespace, key ca.crt) and returns the CA certificates of
// those that can be used; each one that cannot is recorded in p.refProblems.
func (t *translator) policyCABundle(p *policyInfo, refs []gatewayv1.LocalObjectReference) []byte {
	var bundle []byte
	ns := p.key.Namespace
	for i, ref := range refs {
		at := fmt.Sprintf("validation.caCertificateRefs[%d]", i)
		group, kind := normalGroup(string(ref.Group)), string(ref.Kind)
		if (groupKind{group, kind}) != kindConfigMap {
			p.refProblems.add(string(gatewayv1.BackendTLSPolicyReasonInvalidKind), fmt.Sprintf(
				"%s refers to a %s; Flax reads CA certificates only from core ConfigMaps (key %s): change the reference", at, describeKind(group, kind), caCertKey))
			continue
		}
		name := string(ref.Name)
		cm, ok := t.configMaps[types.NamespacedName{Namespace: ns, Name: name}]
		if !ok {
			p.refProblems.add(string(gatewayv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, which does not exist: create it or fix the reference", at, ns, name))
			continue
		}
		ca := caData(cm)
		if len(bytes.TrimSpace(ca)) == 0 {
			p.refProblems.add(string(gatewayv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, which has no key %s or an empty one: put the PEM CA certificates there", at, ns, name, caCertKey))
			continue
		}
		if err := dataplanev1.CheckCABundle(ca); err != nil {
			p.refProblems.add(string(gatewayv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, whose %s %v; replace it with PEM CA certificates", at, ns, name, caCertKey, err))
			continue
		}
		bundle = append(bundle, bytes.TrimSpace(ca)...)
		bundle = append(bundle, '\n')
	}
	return bundle
}

// tlsHolder returns the BackendTLSPolicy in effect for a Service port, or nil.
func (t *translator) tlsHolder(svc types.NamespacedName, port string) *policyInfo {
	return holder(t.tlsHolders, svc, port)
}

// unusable says why a BackendTLSPolicy in effect cannot be applied, or "".
func (p *policyInfo) unusable() string {
	switch {
	case len(p.invalid) > 0:
		return "it is invalid: " + strings.Join(p.invalid, "; ")
	case p.noValidCA != "":
		return "none of its CA certificate references is usable"
	}
	return ""
}

// noteTLSPortUse records that a route served on the Gateway gw refers to a
// Service port that a BackendTLSPolicy holds, for the policy's ancestors.
func (t *translator) noteTLSPortUse(port tlsPort, gw types.NamespacedName) {
	if t.tlsPortGateways == nil {
		t.tlsPortGateways = map[tlsPort]map[types.NamespacedName]bool{}
	}
	if t.tlsPortGateways[port] == nil {
		t.tlsPortGateways[port] = map[types.NamespacedName]bool{}
	}
	t.tlsPortGateways[port][gw] = true
}

// backendTLSTargetGateways finds, for every BackendTLSPolicy target, the
// Gateways whose served routes refer to the Service ports it targets (the
// references refused because the policy cannot be applied included). A
// whole-Service target of the policy in effect leaves out the ports that more
// specific policies hold, and notes them.
func (t *translator) backendTLSTargetGateways() {
	ports := slices.SortedFunc(maps.Keys(t.tlsPortGateways), func(a, b tlsPort) int {
		if c := compareKeys(a.service, b.service); c != 0 {
			return c
		}
		return compareStrings(a.port, b.port)
	})
	for _, p := range t.tlsPolicies {
		for _, tg := range p.targets {
			if !tg.resolved() {
				continue
			}
			holds := p.applies(tg) && tg.slot.section == ""
			for _, port := range ports {
				if port.service != tg.slot.object || (tg.slot.section != "" && port.port != tg.slot.section) {
					continue
				}
				if holds {
					if h := t.tlsHolder(port.service, port.port); h != p {
						tg.notes = append(tg.notes, fmt.Sprintf("port %s of Service %s is configured by the more specific %s %s",
							port.port, port.service, h.kind, h.key))
						continue
					}
				}
				for gw := range t.tlsPortGateways[port] {
					tg.gateways[gw] = true
				}
			}
		}
	}
}

// backendTLSConditions are the Accepted and ResolvedRefs conditions of a
// BackendTLSPolicy for one ancestor. A policy none of whose CA certificate
// references is usable is not accepted (NoValidCACertificate).
func (p *policyInfo) backendTLSConditions(e *ancestorEntry, unused string) []metav1.Condition {
	gen := p.obj.GetGeneration()
	accepted := p.accepted(e, unused)
	if len(p.invalid) == 0 && p.noValidCA != "" {
		accepted = condition(gatewayv1.PolicyConditionAccepted, false, gatewayv1.BackendTLSPolicyReasonNoValidCACertificate, p.noValidCA, gen)
	}
	resolved := condition(gatewayv1.BackendTLSPolicyConditionResolvedRefs, true, gatewayv1.BackendTLSPolicyReasonResolvedRefs,
		"All CA certificate references are resolved", gen)
	if len(p.refProblems) > 0 {
		resolved = condition(gatewayv1.BackendTLSPolicyConditionResolvedRefs, false, p.refProblems.reason(), p.refProblems.message(), gen)
	}
	return []metav1.Condition{accepted, resolved}
}

// noteTargets adds note to the targets of p that cover port of Service svc.
func (p *policyInfo) noteTargets(svc types.NamespacedName, port, note string) {
	for _, tg := range p.targets {
		if tg.slot.object == svc && (tg.slot.section == "" || tg.slot.section == port) && !slices.Contains(tg.notes, note) {
			tg.notes = append(tg.notes, note)
		}
	}
}
