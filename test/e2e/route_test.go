//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/config/samples/demo"
	"github.com/flaxlb/flax/test/poll"
)

// echoRouteEditedYAML adds a request header filter to HTTPRoute echo.
const echoRouteEditedYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: demo
spec:
  parentRefs:
  - name: demo
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: X-E2e-Edit
          value: header-added
    backendRefs:
    - name: echo
      port: 80
`

// echoRoutePathYAML narrows HTTPRoute echo to the path prefix /only.
const echoRoutePathYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: demo
spec:
  parentRefs:
  - name: demo
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /only
    backendRefs:
    - name: echo
      port: 80
`

// missingBackendRouteYAML sends /missing to a Service that does not exist.
const missingBackendRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e2e-missing-backend
  namespace: demo
spec:
  parentRefs:
  - name: demo
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /missing
    backendRefs:
    - name: does-not-exist
      port: 80
`

// TestHTTPRouteEdit edits HTTPRoute echo with kubectl apply (a header filter, then a
// path match) and checks that requests through the Gateway see each edit.
func TestHTTPRouteEdit(t *testing.T) {
	t.Cleanup(func() { restoreEchoRoute(t) })
	checkServing(t, "/")

	tEdit := time.Now()
	kubectl(t, echoRouteEditedYAML, "apply", "-f", "-")
	poll.Eventually(t, 30*time.Second, 50*time.Millisecond, "the added request header reaches the backend", func() error {
		code, e, err := getEcho(gatewayURL+"/edit", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("HTTP %d", code)
		}
		if v := e.Headers["X-E2e-Edit"]; len(v) != 1 || v[0] != "header-added" {
			return fmt.Errorf("X-E2e-Edit = %q; headers %v", v, e.Headers)
		}
		return nil
	})
	t.Logf("header filter: seen %.2fs after kubectl apply", time.Since(tEdit).Seconds())

	tEdit = time.Now()
	kubectl(t, echoRoutePathYAML, "apply", "-f", "-")
	poll.Eventually(t, 30*time.Second, 50*time.Millisecond, "the path match /only takes effect", func() error {
		code, _, err := getEcho(gatewayURL+"/", nil)
		if err != nil {
			return err
		}
		if code != http.StatusNotFound {
			return fmt.Errorf("GET / answered HTTP %d, want 404", code)
		}
		code, e, err := getEcho(gatewayURL+"/only/x", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK || e.Path != "/only/x" {
			return fmt.Errorf("GET /only/x answered HTTP %d path %q", code, e.Path)
		}
		if _, ok := e.Headers["X-E2e-Edit"]; ok {
			return fmt.Errorf("the removed header filter still applies")
		}
		return nil
	})
	t.Logf("path match: seen %.2fs after kubectl apply", time.Since(tEdit).Seconds())
}

// restoreEchoRoute puts the sample's HTTPRoute echo back and waits until / serves.
func restoreEchoRoute(t testing.TB) {
	kubectl(t, demo.EchoRoute, "apply", "-f", "-")
	checkServing(t, "/")
}

// TestInvalidHTTPRoute applies a route whose backendRef names a missing Service: it must
// get ResolvedRefs=False with reason BackendNotFound, its requests a 500, and the
// existing route must keep serving without a failed request.
func TestInvalidHTTPRoute(t *testing.T) {
	checkServing(t, "/")
	l := startLoad(t, gatewayURL+"/", 4, 2*time.Minute)
	t.Cleanup(func() {
		_, _ = kubectlErr("", "-n", demoNS, "delete", "httproute", "e2e-missing-backend", "--ignore-not-found")
	})
	kubectl(t, missingBackendRouteYAML, "apply", "-f", "-")

	poll.Eventually(t, 30*time.Second, 200*time.Millisecond, "ResolvedRefs=False/BackendNotFound on e2e-missing-backend", func() error {
		var r gatewayv1.HTTPRoute
		if err := env.client.Get(ctx(t), client.ObjectKey{Namespace: demoNS, Name: "e2e-missing-backend"}, &r); err != nil {
			return err
		}
		if len(r.Status.Parents) == 0 {
			return fmt.Errorf("no parent status yet")
		}
		for _, p := range r.Status.Parents {
			c := meta.FindStatusCondition(p.Conditions, string(gatewayv1.RouteConditionResolvedRefs))
			if c == nil {
				return fmt.Errorf("parent %s: no ResolvedRefs condition: %+v", p.ParentRef.Name, p.Conditions)
			}
			if c.Status != metav1.ConditionFalse || c.Reason != string(gatewayv1.RouteReasonBackendNotFound) {
				return fmt.Errorf("parent %s: ResolvedRefs=%s reason %s (%s)", p.ParentRef.Name, c.Status, c.Reason, c.Message)
			}
			if c.ObservedGeneration != r.Generation {
				return fmt.Errorf("condition of generation %d, route at %d", c.ObservedGeneration, r.Generation)
			}
			t.Logf("e2e-missing-backend on %s: ResolvedRefs=%s %s: %s", p.ParentRef.Name, c.Status, c.Reason, c.Message)
			if a := meta.FindStatusCondition(p.Conditions, string(gatewayv1.RouteConditionAccepted)); a != nil {
				t.Logf("e2e-missing-backend on %s: Accepted=%s %s", p.ParentRef.Name, a.Status, a.Reason)
			}
		}
		return nil
	})
	// Gateway API: requests matching a rule whose backends are all invalid get a 500.
	poll.Eventually(t, 20*time.Second, 100*time.Millisecond, "GET /missing answers 500", func() error {
		code, _, err := getEcho(gatewayURL+"/missing", nil)
		if err != nil {
			return err
		}
		if code != http.StatusInternalServerError {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	time.Sleep(time.Second)
	l.Stop()
	s := summarize(l.all())
	t.Logf("route echo under load while the invalid route was applied: %s", s)
	if s.failed != 0 {
		t.Errorf("the existing route failed %d requests while an invalid route was applied: %s", s.failed, s)
	}
}
