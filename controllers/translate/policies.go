package translate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// maxPolicyAncestors is the most ancestor entries a policy status may hold.
const maxPolicyAncestors = 16

// policyInfo is one BackendPolicy, RoutePolicy or BackendTLSPolicy and what
// was found about it.
type policyInfo struct {
	// kind is BackendPolicy, RoutePolicy or BackendTLSPolicy.
	kind string
	obj  metav1.Object
	key  types.NamespacedName
	// invalid are the problems that make the policy invalid: it applies nowhere.
	invalid []string
	// targets are the policy's targetRefs, without repetitions.
	targets []*policyTarget
	// backend holds the settings of a BackendPolicy (a group without name and
	// endpoints).
	backend *dataplanev1.BackendGroup
	// rateLimit is the rate limit of a RoutePolicy, without bucket; nil for none.
	rateLimit *dataplanev1.LocalRateLimit
	// tls is the TLS of a BackendTLSPolicy that can be applied (without client
	// certificate); nil when it cannot.
	tls *dataplanev1.BackendTLS
	// refProblems are the CA certificate references of a BackendTLSPolicy that
	// cannot be used (ResolvedRefs False).
	refProblems problems
	// noValidCA, when set, says that none of the CA certificate references of a
	// BackendTLSPolicy can be used (Accepted False, NoValidCACertificate).
	noValidCA string
}

// policyTarget is one targetRef of a policy and what became of it.
type policyTarget struct {
	// index is the position of the reference in spec.targetRefs.
	index int
	ref   gatewayv1.LocalPolicyTargetReferenceWithSectionName
	// slot is the object and section the reference claims.
	slot policySlot
	// desc names the target in messages, e.g. "port http of Service ns/web".
	desc string
	// foreign is set for a reference to a kind the policy cannot target.
	foreign bool
	// notFound, when set, says why the target does not resolve.
	notFound string
	// conflict is the older policy that holds the target, if any.
	conflict *policyInfo
	// notes are remarks on where the policy gives way to more specific ones.
	notes []string
	// gateways are the Flax Gateways whose traffic the target concerns.
	gateways map[types.NamespacedName]bool
}

// policySlot is what a policy may hold: an object, or one section of it.
type policySlot struct {
	object  types.NamespacedName
	section string
}

// newPolicy indexes the targetRefs of a policy of kind, which may target objects of
// want. References to other kinds and repetitions make the policy invalid.
func newPolicy(kind string, obj metav1.Object, refs []gatewayv1.LocalPolicyTargetReferenceWithSectionName, want groupKind, describe func(name, section string) string) *policyInfo {
	p := &policyInfo{kind: kind, obj: obj, key: key(obj)}
	if len(refs) == 0 {
		p.invalid = append(p.invalid, "targetRefs is empty: name at least one target")
	}
	seen := map[policySlot]int{}
	for i, ref := range refs {
		gk := groupKind{normalGroup(string(ref.Group)), string(ref.Kind)}
		section := ""
		if ref.SectionName != nil {
			section = string(*ref.SectionName)
		}
		slot := policySlot{object: types.NamespacedName{Namespace: p.key.Namespace, Name: string(ref.Name)}, section: section}
		tg := &policyTarget{
			index: i, ref: ref, slot: slot, desc: describe(slot.object.String(), section),
			gateways: map[types.NamespacedName]bool{},
		}
		if gk != want {
			p.invalid = append(p.invalid, fmt.Sprintf("targetRefs[%d] refers to %s %s, but a %s targets %s (group %q, kind %s)",
				i, describeKind(gk.group, gk.kind), ref.Name, kind, describeKind(want.group, want.kind), want.group, want.kind))
			tg.foreign = true
			p.targets = append(p.targets, tg)
			continue
		}
		if j, dup := seen[slot]; dup {
			p.invalid = append(p.invalid, fmt.Sprintf("targetRefs[%d] repeats targetRefs[%d]; remove it", i, j))
			continue
		}
		seen[slot] = i
		p.targets = append(p.targets, tg)
	}
	return p
}

// applies reports whether the policy is valid and holds target tg.
func (p *policyInfo) applies(tg *policyTarget) bool {
	return len(p.invalid) == 0 && !tg.foreign && tg.notFound == "" && tg.conflict == nil
}

// resolved reports whether tg is of the right kind and names an existing object
// and section.
func (tg *policyTarget) resolved() bool { return !tg.foreign && tg.notFound == "" }

// claimSlots gives every slot to the first valid policy (policies are sorted oldest
// first) that targets it, or to the first policy, valid or not, when evenInvalid is
// set; records the conflict on the targets of the others, and returns the holders.
func claimSlots(policies []*policyInfo, evenInvalid bool) map[policySlot]*policyInfo {
	holders := map[policySlot]*policyInfo{}
	for _, p := range policies {
		if len(p.invalid) > 0 && !evenInvalid {
			continue
		}
		for _, tg := range p.targets {
			if !tg.resolved() {
				continue
			}
			if h, ok := holders[tg.slot]; ok {
				tg.conflict = h
				continue
			}
			holders[tg.slot] = p
		}
	}
	return holders
}

// holder returns the policy in effect for section of object: the holder of the
// section if there is one, else the holder of the whole object, else nil.
func holder(holders map[policySlot]*policyInfo, object types.NamespacedName, section string) *policyInfo {
	if section != "" {
		if h, ok := holders[policySlot{object, section}]; ok {
			return h
		}
	}
	return holders[policySlot{object, ""}]
}

// sortPolicies orders policies oldest first, the order in which they claim slots.
func sortPolicies(policies []*policyInfo) {
	slices.SortFunc(policies, func(a, b *policyInfo) int { return compareAge(a.obj, b.obj) })
}

// ancestorEntry collects the targets of a policy whose status goes to one ancestor.
type ancestorEntry struct {
	ref     gatewayv1.ParentReference
	gateway bool
	targets []*policyTarget
}

// policyStatuses returns the status of every policy, sorted by namespace and name.
func (t *translator) policyStatuses(policies []*policyInfo, unused string) []PolicyStatus {
	out := make([]PolicyStatus, 0, len(policies))
	for _, p := range policies {
		out = append(out, PolicyStatus{
			NamespacedName: p.key,
			Status:         gatewayv1.PolicyStatus{Ancestors: t.policyAncestors(p, unused)},
		})
	}
	slices.SortFunc(out, func(a, b PolicyStatus) int { return compareKeys(a.NamespacedName, b.NamespacedName) })
	return out
}

// policyAncestors returns the ancestor entries of a policy: one per Flax Gateway
// its targets concern (sorted), then one per target that concerns none, whose
// ancestorRef is the target itself; at most maxPolicyAncestors. unused is the
// format, for messages, of what it means for a target (%s) to concern no Gateway.
func (t *translator) policyAncestors(p *policyInfo, unused string) []gatewayv1.PolicyAncestorStatus {
	gateways := map[types.NamespacedName]*ancestorEntry{}
	var own []*ancestorEntry
	for _, tg := range p.targets {
		if len(tg.gateways) == 0 {
			own = append(own, &ancestorEntry{ref: gatewayv1.ParentReference{
				Group:       ptr(gatewayv1.Group(normalGroup(string(tg.ref.Group)))),
				Kind:        ptr(tg.ref.Kind),
				Namespace:   ptr(gatewayv1.Namespace(p.key.Namespace)),
				Name:        tg.ref.Name,
				SectionName: tg.ref.SectionName,
			}, targets: []*policyTarget{tg}})
			continue
		}
		for gw := range tg.gateways {
			e, ok := gateways[gw]
			if !ok {
				e = &ancestorEntry{gateway: true, ref: gatewayv1.ParentReference{
					Group:     ptr(gatewayv1.Group(gatewayv1.GroupName)),
					Kind:      ptr(gatewayv1.Kind(kindGateway.kind)),
					Namespace: ptr(gatewayv1.Namespace(gw.Namespace)),
					Name:      gatewayv1.ObjectName(gw.Name),
				}}
				gateways[gw] = e
			}
			e.targets = append(e.targets, tg)
		}
	}
	var entries []*ancestorEntry
	for _, gw := range slices.SortedFunc(maps.Keys(gateways), compareKeys) {
		entries = append(entries, gateways[gw])
	}
	entries = append(entries, own...)
	if len(entries) > maxPolicyAncestors {
		entries = entries[:maxPolicyAncestors]
	}
	out := make([]gatewayv1.PolicyAncestorStatus, 0, len(entries))
	for _, e := range entries {
		conds := []metav1.Condition{p.accepted(e, unused)}
		if p.kind == kindBackendTLSPolicy {
			conds = p.backendTLSConditions(e, unused)
		}
		out = append(out, gatewayv1.PolicyAncestorStatus{
			AncestorRef:    e.ref,
			ControllerName: gatewayv1.GatewayController(t.in.ControllerName),
			Conditions:     conds,
		})
	}
	return out
}

// accepted is the Accepted condition of the policy for one ancestor.
func (p *policyInfo) accepted(e *ancestorEntry, unused string) metav1.Condition {
	gen := p.obj.GetGeneration()
	if len(p.invalid) > 0 {
		return condition(gatewayv1.PolicyConditionAccepted, false, gatewayv1.PolicyReasonInvalid,
			fmt.Sprintf("The %s is invalid, so it applies nowhere: %s", p.kind, strings.Join(p.invalid, "; ")), gen)
	}
	var reason gatewayv1.PolicyConditionReason
	var problems, applied, notes []string
	for _, tg := range e.targets {
		switch {
		case tg.notFound != "":
			reason = cmp.Or(reason, gatewayv1.PolicyReasonTargetNotFound)
			problems = append(problems, tg.notFound)
		case tg.conflict != nil:
			reason = cmp.Or(reason, gatewayv1.PolicyReasonConflicted)
			problems = append(problems, fmt.Sprintf(
				"%s %s, which is older, targets %s too, and policies are not merged, so this one does not apply there: delete one of them, or target distinct sections with sectionName",
				tg.conflict.kind, tg.conflict.key, tg.desc))
		default:
			applied = append(applied, tg.desc)
			notes = append(notes, tg.notes...)
		}
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		if len(applied) > 0 {
			msg += "; it applies to " + strings.Join(applied, ", ")
		}
		return condition(gatewayv1.PolicyConditionAccepted, false, reason, msg, gen)
	}
	msg := fmt.Sprintf("The %s applies to %s on this Gateway", p.kind, strings.Join(applied, ", "))
	if !e.gateway {
		msg = fmt.Sprintf("The %s is valid, but "+unused+"; it applies once one does", p.kind, strings.Join(applied, ", "))
	}
	for _, n := range notes {
		msg += "; " + n
	}
	return condition(gatewayv1.PolicyConditionAccepted, true, gatewayv1.PolicyReasonAccepted, msg, gen)
}

// fieldProblems collects problems with the fields of a policy's spec, at most one
// per field, in the order found.
type fieldProblems struct {
	fields []string
	msgs   []string
}

// add records a problem with field, unless one is recorded for it or for a field
// that contains it already.
func (fp *fieldProblems) add(field, format string, args ...any) {
	for _, f := range fp.fields {
		if f == field || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return
		}
	}
	fp.fields = append(fp.fields, field)
	fp.msgs = append(fp.msgs, field+": "+fmt.Sprintf(format, args...))
}
