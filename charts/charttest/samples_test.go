package charttest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/flaxlb/flax/config/samples/demo"
)

// TestSamples decodes every manifest in config/samples strictly into its Go type and
// checks that the names line up: the GatewayClass is the chart's default, the HTTPRoute
// attaches to the Gateway's listener, its backend is the echo Service, and the Service
// selects the echo pods on their named port.
func TestSamples(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "config", "samples")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", dir, err)
	}
	var (
		classes     []gatewayv1.GatewayClass
		gateways    []gatewayv1.Gateway
		routes      []gatewayv1.HTTPRoute
		deployments []appsv1.Deployment
		services    []corev1.Service
		kustomized  []string
	)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			var k struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Resources  []string `json:"resources"`
			}
			decodeStrict(t, raw, &k)
			kustomized = k.Resources
			continue
		}
		for _, d := range splitDocuments(t, string(raw)) {
			switch d.kind {
			case "GatewayClass":
				classes = append(classes, decode[gatewayv1.GatewayClass](t, d))
			case "Gateway":
				gateways = append(gateways, decode[gatewayv1.Gateway](t, d))
			case "HTTPRoute":
				routes = append(routes, decode[gatewayv1.HTTPRoute](t, d))
			case "Deployment":
				deployments = append(deployments, decode[appsv1.Deployment](t, d))
			case "Service":
				services = append(services, decode[corev1.Service](t, d))
			default:
				t.Errorf("%s: unexpected kind %s", f, d.kind)
			}
		}
	}
	for _, k := range kustomized {
		if _, err := os.Stat(filepath.Join(dir, k)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", k, err)
		}
	}
	if len(classes) != 1 || len(gateways) != 1 || len(routes) != 1 || len(deployments) != 1 || len(services) != 1 {
		t.Fatalf("want one GatewayClass, Gateway, HTTPRoute, Deployment and Service; got %d %d %d %d %d",
			len(classes), len(gateways), len(routes), len(deployments), len(services))
	}
	values := loadValues(t)
	class, gw, route, dep, svc := classes[0], gateways[0], routes[0], deployments[0], services[0]
	if class.Name != values.GatewayClass.Name || string(class.Spec.ControllerName) != values.GatewayClass.ControllerName {
		t.Errorf("sample GatewayClass %s (%s) differs from the chart's %s (%s)", class.Name, class.Spec.ControllerName, values.GatewayClass.Name, values.GatewayClass.ControllerName)
	}
	if string(gw.Spec.GatewayClassName) != class.Name {
		t.Errorf("Gateway uses class %s, want %s", gw.Spec.GatewayClassName, class.Name)
	}
	for _, o := range []interface{ GetNamespace() string }{&class, &gw, &route, &dep, &svc} {
		if o.GetNamespace() != "" {
			t.Errorf("samples must not set a namespace (the tests apply them into their own)")
		}
	}
	if len(route.Spec.ParentRefs) != 1 || string(route.Spec.ParentRefs[0].Name) != gw.Name ||
		route.Spec.ParentRefs[0].SectionName == nil || string(*route.Spec.ParentRefs[0].SectionName) != string(gw.Spec.Listeners[0].Name) {
		t.Errorf("HTTPRoute must attach to Gateway %s listener %s", gw.Name, gw.Spec.Listeners[0].Name)
	}
	backend := route.Spec.Rules[0].BackendRefs[0]
	if string(backend.Name) != svc.Name || backend.Port == nil || int32(*backend.Port) != svc.Spec.Ports[0].Port {
		t.Errorf("HTTPRoute backend %s:%v, want Service %s:%d", backend.Name, backend.Port, svc.Name, svc.Spec.Ports[0].Port)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	var portNames []string
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		portNames = append(portNames, p.Name)
	}
	if !slices.Contains(portNames, svc.Spec.Ports[0].TargetPort.String()) {
		t.Errorf("Service targetPort %s is not a container port %v", svc.Spec.Ports[0].TargetPort.String(), portNames)
	}
	if !strings.Contains(dep.Spec.Template.Spec.Containers[0].Image, "echo-basic") {
		t.Errorf("the echo Deployment should run the conformance echo-basic image")
	}
}

func decode[T any](t *testing.T, d document) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(d.raw, &v); err != nil {
		t.Fatalf("%s %s: %v", d.kind, d.name, err)
	}
	return v
}

// TestDemoSample decodes the local cluster's sample (config/samples/demo) strictly and
// checks that its names line up: every object is in namespace demo, both routes attach
// to Gateway demo and send to Service echo's port, and the Service selects the pods.
func TestDemoSample(t *testing.T) {
	var (
		gw     gatewayv1.Gateway
		routes []gatewayv1.HTTPRoute
		dep    appsv1.Deployment
		svc    corev1.Service
		ns     []string
	)
	for _, d := range splitDocuments(t, demo.App+"---\n"+demo.EchoRoute+"---\n"+demo.V2Route) {
		switch d.kind {
		case "Namespace":
			ns = append(ns, decode[corev1.Namespace](t, d).Name)
		case "Gateway":
			gw = decode[gatewayv1.Gateway](t, d)
		case "HTTPRoute":
			routes = append(routes, decode[gatewayv1.HTTPRoute](t, d))
		case "Deployment":
			dep = decode[appsv1.Deployment](t, d)
		case "Service":
			svc = decode[corev1.Service](t, d)
		default:
			t.Errorf("unexpected kind %s", d.kind)
		}
	}
	if !slices.Equal(ns, []string{"demo"}) || gw.Namespace != "demo" || dep.Namespace != "demo" || svc.Namespace != "demo" {
		t.Errorf("want everything in namespace demo: namespaces %v, Gateway in %q, Deployment in %q, Service in %q", ns, gw.Namespace, dep.Namespace, svc.Namespace)
	}
	if len(routes) != 2 {
		t.Fatalf("want HTTPRoutes echo and echo-v2, got %d", len(routes))
	}
	for _, r := range routes {
		if r.Namespace != "demo" || len(r.Spec.ParentRefs) != 1 || string(r.Spec.ParentRefs[0].Name) != gw.Name {
			t.Errorf("HTTPRoute %s/%s must attach to Gateway demo/%s", r.Namespace, r.Name, gw.Name)
		}
		b := r.Spec.Rules[0].BackendRefs[0]
		if string(b.Name) != svc.Name || b.Port == nil || int32(*b.Port) != svc.Spec.Ports[0].Port {
			t.Errorf("HTTPRoute %s backend %s:%v, want Service %s:%d", r.Name, b.Name, b.Port, svc.Name, svc.Spec.Ports[0].Port)
		}
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
}
