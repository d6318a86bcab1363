package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestServesL4Routes checks that TCPRoutes and TLSRoutes are used only when the
// API server serves both kinds at v1 (older standard channels have neither).
func TestServesL4Routes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kinds []string
		want  bool
	}{
		{"none", nil, false},
		{"HTTPRoute only", []string{"HTTPRoute"}, false},
		{"TCPRoute without TLSRoute", []string{"HTTPRoute", "TCPRoute"}, false},
		{"both", []string{"HTTPRoute", "TCPRoute", "TLSRoute"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := meta.NewDefaultRESTMapper(nil)
			for _, k := range tc.kinds {
				m.Add(schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: k}, meta.RESTScopeNamespace)
			}
			if got := servesL4Routes(m); got != tc.want {
				t.Errorf("servesL4Routes with %v = %v, want %v", tc.kinds, got, tc.want)
			}
		})
	}
}

// TestServesUDPRoutes checks that UDPRoutes are used only when the API server
// serves them at v1 (the standard channel has them since v1.6), whatever the
// other kinds.
func TestServesUDPRoutes(t *testing.T) {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "TCPRoute"}, meta.RESTScopeNamespace)
	if serves(m, "UDPRoute") {
		t.Fatal("serves(UDPRoute) without the kind = true")
	}
	m.Add(schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1alpha2", Kind: "UDPRoute"}, meta.RESTScopeNamespace)
	if serves(m, "UDPRoute") {
		t.Fatal("serves(UDPRoute) with only v1alpha2 = true")
	}
	m.Add(schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: "UDPRoute"}, meta.RESTScopeNamespace)
	if !serves(m, "UDPRoute") {
		t.Fatal("serves(UDPRoute) with v1 = false")
	}
}
