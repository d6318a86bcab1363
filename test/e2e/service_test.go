//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/test/poll"
)

// lbPort is the listener port of the Gateway of TestGatewayServiceLoadBalancer.
const lbPort = "18093"

// lbGatewayYAML is a GatewayClass whose parameters give each Gateway a Service of
// type LoadBalancer, a Gateway of it with spec.infrastructure metadata, and a route
// from it to echo.
const lbGatewayYAML = `apiVersion: flaxlb.io/v1alpha1
kind: GatewayClassParameters
metadata:
  name: e2e-lb
spec:
  service: {type: LoadBalancer}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: e2e-lb
spec:
  controllerName: flaxlb.io/gateway-controller
  parametersRef: {group: flaxlb.io, kind: GatewayClassParameters, name: e2e-lb}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: e2e-lb
  namespace: demo
spec:
  gatewayClassName: e2e-lb
  infrastructure:
    labels: {e2e-team: web}
    annotations: {example.com/e2e: "yes"}
  listeners:
  - {name: http, port: ` + lbPort + `, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e2e-lb
  namespace: demo
spec:
  parentRefs: [{name: e2e-lb}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
`

// TestGatewayServiceLoadBalancer checks a Gateway of a class with a LoadBalancer
// Service on a real cluster: Flax creates the Service (the Gateway's metadata on it)
// and its EndpointSlice naming the node; the Gateway waits for an address until a
// load balancer (here the test, as a cloud controller would) puts the node's address
// into the Service's status; then that is the Gateway's address and it serves
// there; deleting the Gateway deletes the Service (the garbage collector of
// kube-controller-manager, through the owner reference).
func TestGatewayServiceLoadBalancer(t *testing.T) {
	t.Cleanup(func() {
		_, _ = kubectlErr(lbGatewayYAML, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
	})
	kubectl(t, lbGatewayYAML, "apply", "-f", "-")

	get := func(args ...string) (string, error) {
		out, err := kubectlErr("", append([]string{"-n", demoNS, "get"}, args...)...)
		return strings.TrimSpace(out), err
	}
	nodeName := kubectl(t, "", "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	nodeIP := kubectl(t, "", "get", "nodes", "-o", `jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}`)
	if net.ParseIP(nodeIP) == nil {
		t.Fatalf("node %s has InternalIP %q", nodeName, nodeIP)
	}

	poll.Eventually(t, 30*time.Second, 200*time.Millisecond, "Service e2e-lb-flax with the Gateway's metadata, an EndpointSlice naming the node, the Gateway waiting for its address", func() error {
		svc, err := get("service", "e2e-lb-flax", "-o",
			`jsonpath={.spec.type}|{.spec.externalTrafficPolicy}|{.spec.ports[*].port}|{.metadata.labels.e2e-team}|{.metadata.annotations.example\.com/e2e}|{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}`)
		if err != nil {
			return err
		}
		if want := "LoadBalancer|Local|" + lbPort + "|web|yes|Gateway/e2e-lb"; svc != want {
			return fmt.Errorf("service: %s, want %s", svc, want)
		}
		es, err := get("endpointslice", "e2e-lb-flax-ipv4", "-o", `jsonpath={.endpoints[*].addresses[0]}|{.endpoints[*].nodeName}|{.ports[*].port}`)
		if err != nil {
			return err
		}
		if want := nodeIP + "|" + nodeName + "|" + lbPort; es != want {
			return fmt.Errorf("endpointslice: %s, want %s", es, want)
		}
		prog, err := get("gateway", "e2e-lb", "-o", `jsonpath={.status.conditions[?(@.type=="Programmed")].reason}`)
		if err != nil {
			return err
		}
		if prog != "AddressNotAssigned" {
			return fmt.Errorf("gateway Programmed reason %q, want AddressNotAssigned", prog)
		}
		return nil
	})

	kubectl(t, "", "-n", demoNS, "patch", "service", "e2e-lb-flax", "--subresource=status", "--type=merge",
		"-p", fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q}]}}}`, nodeIP))
	url := "http://" + net.JoinHostPort(nodeIP, lbPort) + "/lb"
	poll.Eventually(t, 30*time.Second, 200*time.Millisecond, "the load balancer's address is the Gateway's, and it serves there", func() error {
		addr, err := get("gateway", "e2e-lb", "-o", `jsonpath={.status.addresses[*].value}|{.status.conditions[?(@.type=="Programmed")].status}`)
		if err != nil {
			return err
		}
		if addr != nodeIP+"|True" {
			return fmt.Errorf("gateway addresses|Programmed %s, want %s|True", addr, nodeIP)
		}
		code, e, err := getEcho(url, nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK || e.Path != "/lb" {
			return fmt.Errorf("GET %s: HTTP %d, path %q", url, code, e.Path)
		}
		return nil
	})

	kubectl(t, "", "-n", demoNS, "delete", "gateway", "e2e-lb")
	poll.Eventually(t, 60*time.Second, 500*time.Millisecond, "the garbage collector deletes the Service and EndpointSlice with the Gateway", func() error {
		out, err := get("service,endpointslice", "-l", "gateway.networking.k8s.io/gateway-name=e2e-lb", "-o", "name")
		if err != nil {
			return err
		}
		if out != "" {
			return fmt.Errorf("still there: %s", strings.ReplaceAll(out, "\n", " "))
		}
		return nil
	})
}
