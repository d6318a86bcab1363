package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
	"github.com/flaxlb/flax/controllers/translate"
)

// TestSupportedVersion runs the controller against a real API server with the
// Gateway API CRDs of the version Flax is built for: the GatewayClass is
// SupportedVersion True. Setting the bundle-version annotation of the HTTPRoute
// CRD to another minor version turns it False/UnsupportedVersion, naming the CRD
// and the version, while the class stays Accepted; restoring it turns it True.
// Annotating the CRD as of the experimental channel adds HTTPRouteRetry to the
// class's supported features.
func TestSupportedVersion(t *testing.T) {
	w := newWorld(t, "supported-version", "10.10.0.31")
	w.startDataplane(&fakedataplane.Dataplane{})
	class := gatewayClass(w.name, w.controllerName)
	w.create(class)
	w.startController()

	// supportedVersion returns an error unless the class has SupportedVersion
	// status/reason with a message holding every one of want, and is Accepted.
	supportedVersion := func(status metav1.ConditionStatus, reason string, want ...string) func() error {
		return func() error {
			var gc gatewayv1.GatewayClass
			if err := w.c.Get(w.ctx, types.NamespacedName{Name: class.Name}, &gc); err != nil {
				return err
			}
			if err := hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
				return err
			}
			if err := hasCondition(gc.Status.Conditions, "SupportedVersion", status, reason); err != nil {
				return err
			}
			for _, s := range gc.Status.Conditions {
				if s.Type != "SupportedVersion" {
					continue
				}
				for _, x := range want {
					if !strings.Contains(s.Message, x) {
						return fmt.Errorf("SupportedVersion message %q does not mention %q", s.Message, x)
					}
				}
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "SupportedVersion True for the installed CRDs",
		supportedVersion(metav1.ConditionTrue, "SupportedVersion", translate.GatewayAPIVersion))

	const crdName = "httproutes.gateway.networking.k8s.io"
	annotate := func(key, value string) {
		t.Helper()
		crd := &metav1.PartialObjectMetadata{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		crd.Name = crdName
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
		if err := w.c.Patch(w.ctx, crd, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatalf("annotating CRD %s: %v", crdName, err)
		}
	}
	setBundleVersion := func(v string) { t.Helper(); annotate(translate.BundleVersionAnnotation, v) }
	setBundleVersion("v1.99.0")
	// Other tests share the API server: give the CRD its annotations back whatever
	// happens.
	t.Cleanup(func() {
		setBundleVersion(translate.GatewayAPIVersion)
		annotate(translate.ChannelAnnotation, "standard")
	})
	eventually(t, 10*time.Second, "SupportedVersion False for a CRD of another minor version",
		supportedVersion(metav1.ConditionFalse, "UnsupportedVersion", crdName, "v1.99.0", translate.GatewayAPIVersion))

	setBundleVersion(translate.GatewayAPIVersion)
	eventually(t, 10*time.Second, "SupportedVersion True again once the CRD is back to the supported version",
		supportedVersion(metav1.ConditionTrue, "SupportedVersion", translate.GatewayAPIVersion))

	// HTTPRouteRetry is claimed only while the HTTPRoute CRD is of the experimental
	// channel, the only one with spec.rules[].retry.
	claims := func(want bool) func() error {
		return func() error {
			var gc gatewayv1.GatewayClass
			if err := w.c.Get(w.ctx, types.NamespacedName{Name: class.Name}, &gc); err != nil {
				return err
			}
			got := slices.ContainsFunc(gc.Status.SupportedFeatures, func(f gatewayv1.SupportedFeature) bool {
				return f.Name == gatewayv1.FeatureName(features.SupportHTTPRouteRetry)
			})
			if got != want || len(gc.Status.SupportedFeatures) == 0 {
				return fmt.Errorf("supportedFeatures %v: HTTPRouteRetry listed %v, want %v", gc.Status.SupportedFeatures, got, want)
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "no HTTPRouteRetry with the standard channel", claims(false))
	annotate(translate.ChannelAnnotation, "experimental")
	eventually(t, 10*time.Second, "HTTPRouteRetry with the experimental channel", claims(true))
}
