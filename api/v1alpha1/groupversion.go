package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of Flax's own resources.
const GroupName = "flaxlb.io"

// GroupVersion is the group and version of this package's types.
var GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// KindGatewayClassParameters is the kind a GatewayClass's spec.parametersRef names
// to give the class Flax parameters.
const KindGatewayClassParameters = "GatewayClassParameters"

// KindBackendPolicy is the kind of BackendPolicy, the policy attached to Services.
const KindBackendPolicy = "BackendPolicy"

// KindRoutePolicy is the kind of RoutePolicy, the policy attached to HTTPRoutes.
const KindRoutePolicy = "RoutePolicy"

var (
	// SchemeBuilder registers this package's types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the types of this package and the meta types of the group
// version (ListOptions and friends) with scheme.
func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&GatewayClassParameters{}, &GatewayClassParametersList{},
		&BackendPolicy{}, &BackendPolicyList{},
		&RoutePolicy{}, &RoutePolicyList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
