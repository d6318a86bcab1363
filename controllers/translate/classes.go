package translate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// classInfo is a GatewayClass of Flax's controller.
type classInfo struct {
	class *gatewayv1.GatewayClass
	// invalid, when set, is why the class is not accepted.
	invalid *problem
}

// translateClasses picks the GatewayClasses of Flax's controller and checks them.
func (t *translator) translateClasses() {
	for i := range t.in.GatewayClasses {
		gc := &t.in.GatewayClasses[i]
		if string(gc.Spec.ControllerName) != t.in.ControllerName {
			continue
		}
		ci := &classInfo{class: gc}
		if ref := gc.Spec.ParametersRef; ref != nil {
			ci.invalid = &problem{
				reason: string(gatewayv1.GatewayClassReasonInvalidParameters),
				message: fmt.Sprintf("parametersRef refers to %s %s, but Flax takes no GatewayClass parameters yet; remove spec.parametersRef",
					describeKind(string(ref.Group), string(ref.Kind)), ref.Name),
			}
		}
		t.classes[gc.Name] = ci
		t.classOrder = append(t.classOrder, ci)
	}
	slices.SortFunc(t.classOrder, func(a, b *classInfo) int { return compareStrings(a.class.Name, b.class.Name) })
}

// classStatuses returns the status of every class of Flax's controller.
func (t *translator) classStatuses() []ClassStatus {
	out := make([]ClassStatus, 0, len(t.classOrder))
	for _, ci := range t.classOrder {
		gen := ci.class.Generation
		accepted := condition(gatewayv1.GatewayClassConditionStatusAccepted, true, gatewayv1.GatewayClassReasonAccepted,
			"The GatewayClass is accepted by Flax", gen)
		if ci.invalid != nil {
			accepted = condition(gatewayv1.GatewayClassConditionStatusAccepted, false, ci.invalid.reason, ci.invalid.message, gen)
		}
		out = append(out, ClassStatus{
			Name: ci.class.Name,
			Status: gatewayv1.GatewayClassStatus{
				Conditions: []metav1.Condition{
					accepted,
					condition(gatewayv1.GatewayClassConditionStatusSupportedVersion, true, gatewayv1.GatewayClassReasonSupportedVersion,
						"Flax supports the installed Gateway API version", gen),
				},
				SupportedFeatures: slices.Clone(SupportedFeatures),
			},
		})
	}
	return out
}

// describeKind formats a group and kind for messages, e.g. "core/Secret" or
// "example.com/Foo".
func describeKind(group, kind string) string {
	if group == "" {
		group = "core"
	}
	return group + "/" + kind
}
