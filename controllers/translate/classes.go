package translate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// classInfo is a GatewayClass of Flax's controller.
type classInfo struct {
	class *gatewayv1.GatewayClass
	// invalid, when set, is why the class is not accepted.
	invalid *problem
	// pool holds the addresses of the class's parameters; nil when the class has
	// no parameters or they set no address pool.
	pool *addressPool
	// clientTraffic holds the listener settings of the class's parameters; nil
	// when it has none.
	clientTraffic *clientTraffic
	// tracing holds the tracing settings of the class's parameters; nil when
	// it has none.
	tracing *classTracing
	// serviceType is the type of the Service each Gateway of the class gets;
	// "" when the class's parameters ask for none.
	serviceType corev1.ServiceType
}

// translateClasses picks the GatewayClasses of Flax's controller and checks them
// and their parameters.
func (t *translator) translateClasses() {
	params := make(map[string]*flaxv1alpha1.GatewayClassParameters, len(t.in.Parameters))
	for i := range t.in.Parameters {
		p := &t.in.Parameters[i]
		params[p.Name] = p
	}
	for i := range t.in.GatewayClasses {
		gc := &t.in.GatewayClasses[i]
		if string(gc.Spec.ControllerName) != t.in.ControllerName {
			continue
		}
		ci := &classInfo{class: gc}
		if ref := gc.Spec.ParametersRef; ref != nil {
			ci.pool, ci.clientTraffic, ci.tracing, ci.invalid = classParameters(gc.Name, ref, params)
			if ci.invalid == nil {
				ci.serviceType = classServiceType(params[ref.Name])
			}
		}
		t.classes[gc.Name] = ci
		t.classOrder = append(t.classOrder, ci)
	}
	slices.SortFunc(t.classOrder, func(a, b *classInfo) int { return compareStrings(a.class.Name, b.class.Name) })
}

// classParameters resolves class's parametersRef: the address pool, the client
// traffic and the tracing settings of the GatewayClassParameters it names (each
// nil if it sets none), or why the reference or the parameters are invalid.
func classParameters(class string, ref *gatewayv1.ParametersReference, params map[string]*flaxv1alpha1.GatewayClassParameters) (*addressPool, *clientTraffic, *classTracing, *problem) {
	invalid := func(format string, args ...any) *problem {
		return &problem{reason: string(gatewayv1.GatewayClassReasonInvalidParameters), message: fmt.Sprintf(format, args...)}
	}
	if string(ref.Group) != flaxv1alpha1.GroupName || string(ref.Kind) != flaxv1alpha1.KindGatewayClassParameters {
		return nil, nil, nil, invalid("parametersRef refers to %s %s, but Flax takes only %s/%s parameters: refer to one of those, or remove spec.parametersRef",
			describeKind(string(ref.Group), string(ref.Kind)), ref.Name, flaxv1alpha1.GroupName, flaxv1alpha1.KindGatewayClassParameters)
	}
	if ref.Namespace != nil && *ref.Namespace != "" {
		return nil, nil, nil, invalid("parametersRef sets namespace %s, but %s/%s is cluster-scoped: remove parametersRef.namespace",
			*ref.Namespace, flaxv1alpha1.GroupName, flaxv1alpha1.KindGatewayClassParameters)
	}
	p, ok := params[ref.Name]
	if !ok {
		return nil, nil, nil, invalid("parametersRef refers to %s %s, which does not exist: create it (its CRD is in Flax's config/crd/bases) or fix the reference",
			flaxv1alpha1.KindGatewayClassParameters, ref.Name)
	}
	var pool *addressPool
	var errs []string
	if len(p.Spec.AddressPools) > 0 {
		pool, errs = parseAddressPool(p.Spec.AddressPools)
	}
	ct, ctErrs := parseClientTraffic(p.Spec.ClientTraffic)
	errs = append(errs, ctErrs...)
	tr, trErrs := parseTracing(class, p.Spec.Tracing)
	errs = append(errs, trErrs...)
	switch st := classServiceType(p); st {
	case "", corev1.ServiceTypeClusterIP:
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if len(p.Spec.AddressPools) > 0 {
			errs = append(errs, fmt.Sprintf("spec.addressPools and spec.service of type %s exclude each other: the Gateways' addresses come from one or the other", st))
		}
	default:
		errs = append(errs, fmt.Sprintf("spec.service.type %q is not LoadBalancer, NodePort or ClusterIP", st))
	}
	if len(errs) > 0 {
		return nil, nil, nil, invalid("%s %s is invalid: %s", flaxv1alpha1.KindGatewayClassParameters, ref.Name, strings.Join(errs, "; "))
	}
	if pool != nil {
		pool.parameters = ref.Name
	}
	return pool, ct, tr, nil
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
					supportedVersion(t.in.GatewayAPICRDs, gen),
				},
				SupportedFeatures: supportedFeatures(t.in.GatewayAPICRDs, ci.serviceType != ""),
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
