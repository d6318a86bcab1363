package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flaxlb/flax/controllers/nodes"
	"github.com/flaxlb/flax/controllers/translate"
	"github.com/flaxlb/flax/test/envtest"
)

// writeKubeconfig writes a kubeconfig whose context "test" reaches cfg and whose
// current context "broken" reaches nothing, and returns its path.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.Clusters["broken"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.Contexts["broken"] = &clientcmdapi.Context{Cluster: "broken", AuthInfo: "test"}
	kc.CurrentContext = "broken"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeLease returns the Lease a node's controller writes: its dataplane's result
// in the flaxlb.io/dataplane-result annotation, renewed at renew.
func nodeLease(ns, node string, renew time.Time, report string) *coordinationv1.Lease {
	t := metav1.NewMicroTime(renew)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: nodes.LeasePrefix + node, Annotations: map[string]string{nodes.ResultAnnotation: report}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &t, AcquireTime: &t},
	}
}

// TestStatus runs flaxctl status against a real API server holding the samples
// with the statuses the translator computes for them, a leader Lease and the node
// Leases of four nodes: one in sync with the leader, one running another config
// of the sample Gateway, one whose Lease expired and one that rejected a snapshot.
func TestStatus(t *testing.T) {
	env := envtest.Start(t, envtest.Options{})
	ctx := context.Background()
	c := env.Client
	const ns, system = "samples", "flax-system"
	for _, n := range []string{ns, system} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}

	// The samples, created in the cluster, with the statuses the translator gives.
	in := &translate.Input{ControllerName: "flaxlb.io/gateway-controller", NodeAddresses: []string{"192.0.2.10"}, GatewayAPICRDs: standardCRDs}
	l := &loader{in: in, namespace: ns}
	for _, dir := range []string{"../../config/samples", "../../config/samples/policies", "../../config/samples/grpc"} {
		if err := l.loadPath(dir, false); err != nil {
			t.Fatal(err)
		}
	}
	out := translate.Translate(in)
	create := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	now := metav1.Now()
	stamp := func(conds []metav1.Condition) {
		for i := range conds {
			conds[i].LastTransitionTime = now
		}
	}
	for i := range in.GatewayClasses {
		o := &in.GatewayClasses[i]
		create(o)
		o.Status = out.GatewayClasses[0].Status
		stamp(o.Status.Conditions)
		if err := c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in.Services {
		create(&in.Services[i])
	}
	for i := range in.Gateways {
		o := &in.Gateways[i]
		create(o)
		o.Status = out.Gateways[0].Status
		stamp(o.Status.Conditions)
		for j := range o.Status.Listeners {
			stamp(o.Status.Listeners[j].Conditions)
		}
		if err := c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in.HTTPRoutes {
		o := &in.HTTPRoutes[i]
		create(o)
		o.Status = out.HTTPRoutes[0].Status
		for j := range o.Status.Parents {
			stamp(o.Status.Parents[j].Conditions)
		}
		if err := c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in.GRPCRoutes {
		o := &in.GRPCRoutes[i]
		create(o)
		o.Status.RouteStatus = out.GRPCRoutes[0].Status.RouteStatus
		for j := range o.Status.Parents {
			stamp(o.Status.Parents[j].Conditions)
		}
		if err := c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in.BackendPolicies {
		o := &in.BackendPolicies[i]
		create(o)
		o.Status = out.BackendPolicies[0].Status
		for j := range o.Status.Ancestors {
			stamp(o.Status.Ancestors[j].Conditions)
		}
		if err := c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in.RoutePolicies {
		create(&in.RoutePolicies[i]) // no status yet: Flax has not written one
	}

	// The Leases.
	hash := out.Gateways[0].ConfigHash
	if hash == "" {
		t.Fatal("the sample Gateway has no config hash")
	}
	report := func(version int, connected, synced bool, configHash, rejection string) string {
		r := map[string]any{"version": version, "hash": fmt.Sprintf("snap%d", version), "connected": connected, "synced": synced, "configs": map[string]string{}}
		if configHash != "" {
			r["configs"] = map[string]string{ns + "/flax-sample": configHash}
		}
		if rejection != "" {
			r["rejection"] = map[string]any{"version": version + 1, "code": "INVALID", "reason": rejection}
		}
		b, _ := json.Marshal(r)
		return string(b)
	}
	fresh := time.Now()
	create(nodeLease(system, "node-a", fresh, report(7, true, true, hash, "")))
	create(nodeLease(system, "node-b", fresh, report(6, true, true, "00000000000000ff", "")))
	create(nodeLease(system, "node-c", fresh.Add(-5*time.Minute), report(5, true, true, hash, "")))
	create(nodeLease(system, "node-d", fresh, report(7, true, true, hash, "listeners[0].port: must be between 1 and 65535")))
	lt := metav1.NewMicroTime(fresh)
	create(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: system, Name: leaderLeaseName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-a_5f0e3c1e-0000-4000-8000-000000000001"), LeaseDurationSeconds: ptr.To(int32(15)), RenewTime: &lt},
	})

	kubeconfig := writeKubeconfig(t, env.Config)
	if _, _, err := flaxctl(t, "", "status", "--kubeconfig", kubeconfig); err == nil {
		t.Fatal("status through the kubeconfig's broken current context succeeded")
	}
	table, stderr, err := flaxctl(t, "", "status", "--kubeconfig", kubeconfig, "--context", "test")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	t.Logf("flaxctl status:\n%s", table)
	lines := strings.Split(table, "\n")
	rowWith := func(fields ...string) string {
		t.Helper()
		for _, line := range lines {
			f := strings.Fields(line)
			ok := len(f) >= len(fields)
			for i := 0; ok && i < len(fields); i++ {
				ok = f[i] == fields[i]
			}
			if ok {
				return line
			}
		}
		t.Errorf("no row starting with %q in\n%s", fields, table)
		return ""
	}
	mustContain := func(s string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(s, w) {
				t.Errorf("%q lacks %q", s, w)
			}
		}
	}
	mustContain(rowWith("flax", "flaxlb.io/gateway-controller"), "Accepted=True", "SupportedVersion=True")
	mustContain(rowWith("samples/flax-sample", "flax", "192.0.2.10", "http(2"), "Accepted=True Programmed=True")
	mustContain(rowWith("HTTPRoute", "samples/echo", "echo.example.com", "Gateway", "samples/flax-sample/http"), "Accepted=True ResolvedRefs=True")
	mustContain(rowWith("GRPCRoute", "samples/grpc-echo", "grpc.example.com", "Gateway", "samples/flax-sample/http"), "Accepted=True ResolvedRefs=True")
	mustContain(rowWith("BackendPolicy", "samples/echo", "Service", "echo/http", "Gateway", "samples/flax-sample"), "Accepted=True")
	mustContain(rowWith("RoutePolicy", "samples/echo"), "<no status from Flax>")
	mustContain(rowWith("LEADER"), "node-a_5f0e3c1e", "on node node-a")
	mustContain(rowWith("node-a", "*", "true", "true", "7", "snap7"), "in sync")
	mustContain(rowWith("node-b", "true", "true", "6", "snap6"), "differs from leader")
	mustContain(rowWith("node-c"), "lease expired")
	mustContain(rowWith("node-d"), "rejected a snapshot")
	rowWith("samples/flax-sample", "node-a", hash, hash, "true")
	rowWith("samples/flax-sample", "node-b", "00000000000000ff", hash, "false")
	mustContain(table, "node node-d: rejected version 8: INVALID: listeners[0].port: must be between 1 and 65535")

	// -o json carries the same, structured; -n of another namespace shows none
	// of the samples but still the nodes.
	js, _, err := flaxctl(t, "", "status", "--kubeconfig", kubeconfig, "--context", "test", "-o", "json", "-n", "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	var st clusterStatus
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(st.Gateways) != 0 || len(st.Routes) != 0 || len(st.Policies) != 0 || len(st.GatewayClasses) != 1 {
		t.Errorf("-n elsewhere: %d classes, %d gateways, %d routes, %d policies; want the class alone", len(st.GatewayClasses), len(st.Gateways), len(st.Routes), len(st.Policies))
	}
	if st.LeaseNamespace != system || st.LeaderNode != "node-a" || len(st.Nodes) != 4 {
		t.Fatalf("lease namespace %q, leader node %q, %d nodes", st.LeaseNamespace, st.LeaderNode, len(st.Nodes))
	}
	if b := st.Nodes[1]; b.Node != "node-b" || len(b.Differs) != 1 || b.Differs[0] != ns+"/flax-sample" || b.Configs[ns+"/flax-sample"] != "00000000000000ff" {
		t.Errorf("node-b: %+v", b)
	}

	// A leader whose hostname is not its node's name is found by the node's
	// kubernetes.io/hostname label.
	var leaderLease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: system, Name: leaderLeaseName}, &leaderLease); err != nil {
		t.Fatal(err)
	}
	leaderLease.Spec.HolderIdentity = ptr.To("ip-10-0-0-2_5f0e3c1e-0000-4000-8000-000000000002")
	if err := c.Update(ctx, &leaderLease); err != nil {
		t.Fatal(err)
	}
	create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b", Labels: map[string]string{corev1.LabelHostname: "ip-10-0-0-2"}}})
	js, _, err = flaxctl(t, "", "status", "--kubeconfig", kubeconfig, "--context", "test", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	st = clusterStatus{}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	if st.LeaderNode != "node-b" || !st.Nodes[1].Leader || st.Nodes[1].State != "in sync" || st.Nodes[0].State != "differs from leader" {
		t.Errorf("leader on node-b by its hostname label: leader node %q, nodes %+v", st.LeaderNode, st.Nodes)
	}

	// A second set of Flax Leases elsewhere makes the namespace ambiguous.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flax-two"}}); err != nil {
		t.Fatal(err)
	}
	create(nodeLease("flax-two", "node-z", fresh, report(1, true, true, hash, "")))
	if _, _, err := flaxctl(t, "", "status", "--kubeconfig", kubeconfig, "--context", "test"); err == nil || !strings.Contains(err.Error(), "--controller-namespace") {
		t.Errorf("Leases in two namespaces: %v, want a hint to --controller-namespace", err)
	}
	js, _, err = flaxctl(t, "", "status", "--kubeconfig", kubeconfig, "--context", "test", "--controller-namespace", "flax-two", "-o", "yaml")
	if err != nil || !strings.Contains(js, "node: node-z") || strings.Contains(js, "node-a") {
		t.Errorf("--controller-namespace flax-two: %v\n%s", err, js)
	}
	_ = os.Remove(kubeconfig)
}
