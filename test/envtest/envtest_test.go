package envtest_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/test/envtest"
)

// TestGatewayRoundTrip proves the control plane is real: the API server validates and
// stores Gateway API objects, fills defaults and rejects invalid ones.
func TestGatewayRoundTrip(t *testing.T) {
	for _, ch := range []envtest.Channel{envtest.Standard, envtest.Experimental} {
		t.Run(string(ch), func(t *testing.T) {
			env := envtest.Start(t, envtest.Options{Channel: ch})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := env.Client

			gc := &gatewayv1.GatewayClass{
				ObjectMeta: metav1.ObjectMeta{Name: "flax"},
				Spec:       gatewayv1.GatewayClassSpec{ControllerName: "flaxlb.io/gateway-controller"},
			}
			if err := c.Create(ctx, gc); err != nil {
				t.Fatalf("create gatewayclass: %v", err)
			}
			gw := &gatewayv1.Gateway{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
				Spec: gatewayv1.GatewaySpec{
					GatewayClassName: "flax",
					Listeners: []gatewayv1.Listener{{
						Name: "http", Port: 8080, Protocol: gatewayv1.HTTPProtocolType,
					}},
				},
			}
			if err := c.Create(ctx, gw); err != nil {
				t.Fatalf("create gateway: %v", err)
			}

			var gotGC gatewayv1.GatewayClass
			if err := c.Get(ctx, client.ObjectKey{Name: "flax"}, &gotGC); err != nil {
				t.Fatalf("get gatewayclass: %v", err)
			}
			if gotGC.Spec.ControllerName != "flaxlb.io/gateway-controller" {
				t.Errorf("controllerName = %q", gotGC.Spec.ControllerName)
			}
			var got gatewayv1.Gateway
			if err := c.Get(ctx, client.ObjectKey{Name: "web", Namespace: "default"}, &got); err != nil {
				t.Fatalf("get gateway: %v", err)
			}
			if len(got.Spec.Listeners) != 1 || got.Spec.Listeners[0].Port != 8080 {
				t.Fatalf("listeners = %+v", got.Spec.Listeners)
			}
			// The CRD's defaulting ran on the server: allowedRoutes defaults to Same namespace.
			ar := got.Spec.Listeners[0].AllowedRoutes
			if ar == nil || ar.Namespaces == nil || ar.Namespaces.From == nil || *ar.Namespaces.From != gatewayv1.NamespacesFromSame {
				t.Errorf("allowedRoutes not defaulted by the API server: %+v", ar)
			}
			// The CRD's validation ran on the server: a listener hostname must be a DNS name.
			badHost := gatewayv1.Hostname("not a hostname")
			bad := &gatewayv1.Gateway{
				ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"},
				Spec: gatewayv1.GatewaySpec{
					GatewayClassName: "flax",
					Listeners: []gatewayv1.Listener{{
						Name: "http", Port: 8080, Protocol: gatewayv1.HTTPProtocolType, Hostname: &badHost,
					}},
				},
			}
			if err := c.Create(ctx, bad); !apierrors.IsInvalid(err) {
				t.Errorf("a listener with hostname %q: got %v, want an Invalid error from the API server", badHost, err)
			}
		})
	}
}
