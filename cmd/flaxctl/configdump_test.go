package main

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/controllers/translate"
	"github.com/flaxlb/flax/dataplane/admin"
	"github.com/flaxlb/flax/test/envtest"
)

// samplesSnapshot returns the snapshot of the samples (namespace "samples") with
// two endpoints in the echo group, as a dataplane serves it after an endpoint
// update.
func samplesSnapshot(t *testing.T) *dataplanev1.Snapshot {
	t.Helper()
	in := &translate.Input{ControllerName: "flaxlb.io/gateway-controller", GatewayAPICRDs: standardCRDs}
	l := &loader{in: in, namespace: "samples"}
	for _, dir := range []string{"../../config/samples", "../../config/samples/policies"} {
		if err := l.loadPath(dir, false); err != nil {
			t.Fatal(err)
		}
	}
	snap := translate.Translate(in).Snapshot
	snap.Version = 42
	for _, g := range snap.GetBackendGroups() {
		g.Endpoints = []*dataplanev1.Endpoint{{Address: "10.244.0.7", Port: 3000}, {Address: "10.244.0.8", Port: 3000}}
	}
	snap.Hash = dataplanev1.Hash(snap)
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// startAdmin starts a real dataplane admin server on loopback whose /config_dump
// serves what *current holds as the daemon does (multiline protojson, or an error
// document before any config is applied), and returns its address.
func startAdmin(t *testing.T, current **dataplanev1.Snapshot) string {
	t.Helper()
	srv, err := admin.New(admin.Options{
		Addr: "127.0.0.1:0",
		ConfigDump: func() ([]byte, error) {
			if *current == nil {
				return json.Marshal(map[string]string{"error": "no config applied yet"})
			}
			return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(*current)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.Addr()
}

// TestConfigDumpAdminAddress dumps the config of a dataplane admin server
// directly, whole and filtered by Gateway and by route.
func TestConfigDumpAdminAddress(t *testing.T) {
	var current *dataplanev1.Snapshot
	addr := startAdmin(t, &current)

	if _, _, err := flaxctl(t, "", "config", "dump", "--admin-address", addr); err == nil || !strings.Contains(err.Error(), "no config applied yet") {
		t.Errorf("dump before any config: %v, want the dataplane's reason", err)
	}

	snap := samplesSnapshot(t)
	current = snap
	out, stderr, err := flaxctl(t, "", "config", "dump", "--admin-address", addr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	got, err := dataplanev1.Parse([]byte(out))
	if err != nil {
		t.Fatalf("dump output does not parse as a config: %v\n%s", err, out)
	}
	if !proto.Equal(got, snap) {
		t.Errorf("dump printed\n%s\nwant the served snapshot", out)
	}

	table, _, err := flaxctl(t, "", "config", "dump", "--admin-address", addr, "--gateway", "samples/flax-sample", "-o", "table")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"samples/flax-sample/8080", "*,echo.example.com", "samples/echo:8080", "LEAST_REQUEST", "10.244.0.7:3000,10.244.0.8:3000", "VERSION 42"} {
		if !strings.Contains(table, want) {
			t.Errorf("--gateway table lacks %q:\n%s", want, table)
		}
	}
	out, _, err = flaxctl(t, "", "config", "dump", "--admin-address", addr, "--gateway", "samples/other", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	other := &dataplanev1.Snapshot{}
	if err := protojson.Unmarshal([]byte(out), other); err != nil {
		t.Fatal(err)
	}
	if len(other.GetListeners())+len(other.GetBackendGroups()) != 0 {
		t.Errorf("--gateway of another Gateway kept %v", other)
	}

	out, _, err = flaxctl(t, "", "config", "dump", "--admin-address", addr, "--route", "samples/echo", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	route := &dataplanev1.Snapshot{}
	if err := protojson.Unmarshal([]byte(out), route); err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, l := range route.GetListeners() {
		for _, vh := range l.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				routes = append(routes, vh.GetName()+" "+r.GetName())
			}
		}
	}
	if want := []string{"echo.example.com samples/echo/rule-0"}; !reflect.DeepEqual(routes, want) {
		t.Errorf("--route samples/echo kept routes %v, want %v", routes, want)
	}
	if len(route.GetBackendGroups()) != 1 || len(route.GetBackendGroups()[0].GetEndpoints()) != 2 {
		t.Errorf("--route samples/echo kept backend groups %v", route.GetBackendGroups())
	}

	if _, _, err := flaxctl(t, "", "config", "dump", "--admin-address", addr, "--gateway", "flax-sample"); err == nil {
		t.Error("--gateway without a namespace gave no error")
	}
}

// TestFilterGatewayMerged checks that a Gateway merged onto an older Gateway's
// listener (same port, every address) is found by its port.
func TestFilterGatewayMerged(t *testing.T) {
	snap := &dataplanev1.Snapshot{
		Listeners: []*dataplanev1.Listener{
			{Name: "a/first/80", Port: 80, VirtualHosts: []*dataplanev1.VirtualHost{{Name: "*", Routes: []*dataplanev1.Route{{Name: "b/r/rule-0", Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "b/svc:80"}, Weight: 1}}}}}}},
			{Name: "c/other/9090", Port: 9090},
		},
		BackendGroups: []*dataplanev1.BackendGroup{{Name: "b/svc:80"}, {Name: "c/unused:80"}},
	}
	got := filterGateway(snap, types.NamespacedName{Namespace: "b", Name: "second"}, []uint32{80}, nil)
	if len(got.GetListeners()) != 1 || got.GetListeners()[0].GetName() != "a/first/80" || len(got.GetBackendGroups()) != 1 || got.GetBackendGroups()[0].GetName() != "b/svc:80" {
		t.Errorf("filterGateway of merged Gateway b/second = %v", got)
	}
	if got := filterGateway(snap, types.NamespacedName{Namespace: "b", Name: "second"}, nil, nil); len(got.GetListeners()) != 0 {
		t.Errorf("without its ports, b/second matched %v", got.GetListeners())
	}
}

// TestConfigDumpThroughAPIServer checks how dump picks the Flax pod of a node
// on a real API server, and that it asks the API server to forward the pod's
// admin port. envtest runs no kubelet, so the forwarding itself fails; the error
// names the pod.
func TestConfigDumpThroughAPIServer(t *testing.T) {
	env := envtest.Start(t, envtest.Options{})
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flax-system"}}); err != nil {
		t.Fatal(err)
	}
	pod := func(name, node string, args ...string) {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "flax-system", Name: name},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{
				{Name: "controller", Image: "flax", Command: []string{"/usr/local/bin/flax-controller"}},
				{Name: "dataplane", Image: "flax", Command: []string{"/usr/local/bin/flax-dataplane"}, Args: append([]string{"run"}, args...)},
			}},
		}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		if err := env.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pod("flax-a", "node-a", "--socket=/run/flax/dataplane.sock", "--admin-address=127.0.0.1:9911")
	pod("flax-b", "node-b", "--admin-address", "127.0.0.1:9912")
	kubeconfig := writeKubeconfig(t, env.Config)
	dump := func(args ...string) error {
		_, _, err := flaxctl(t, "", append([]string{"config", "dump", "--kubeconfig", kubeconfig, "--context", "test", "--timeout", "10s"}, args...)...)
		return err
	}
	if err := dump(); err == nil || !strings.Contains(err.Error(), "several nodes (node-a, node-b): pick one with --node") {
		t.Errorf("dump without --node: %v", err)
	}
	if err := dump("--node", "node-c"); err == nil || !strings.Contains(err.Error(), `no running flax-dataplane pod on node "node-c"`) {
		t.Errorf("dump --node node-c: %v", err)
	}
	err := dump("--node", "node-b")
	if err == nil || !strings.Contains(err.Error(), "config dump of pod flax-system/flax-b on node node-b") {
		t.Errorf("dump --node node-b: %v, want a port-forwarding failure naming pod flax-b", err)
	}
	var exit exitError
	if errors.As(err, &exit) {
		t.Error("the failure is marked as printed")
	}
	t.Logf("dump --node node-b without a kubelet: %v", err)
}

// TestDataplaneAdminAddress checks that the admin port is read from the chart's
// container spec, and that pods without flax-dataplane are not taken.
func TestDataplaneAdminAddress(t *testing.T) {
	mk := func(command []string, args ...string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Command: command, Args: args}}}}
	}
	for _, tt := range []struct {
		pod  *corev1.Pod
		want string
		ok   bool
	}{
		{mk([]string{"/usr/local/bin/flax-dataplane"}, "run", "--admin-address=127.0.0.1:9901"), "127.0.0.1:9901", true},
		{mk([]string{"flax-dataplane", "run", "--admin-address", "127.0.0.1:7000"}), "127.0.0.1:7000", true},
		{mk([]string{"flax-dataplane"}, "run"), defaultAdminAddress, true},
		{mk([]string{"flax-dataplane"}, "run", "--admin-address="), "", false},
		{mk([]string{"/usr/local/bin/flax-controller"}), "", false},
		{mk(nil), "", false},
	} {
		got, ok := dataplaneAdminAddress(tt.pod)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%v %v: %q, %v; want %q, %v", tt.pod.Spec.Containers[0].Command, tt.pod.Spec.Containers[0].Args, got, ok, tt.want, tt.ok)
		}
	}
}
