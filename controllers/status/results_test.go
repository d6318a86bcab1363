package status

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/translate"
)

func TestFoldResults(t *testing.T) {
	gw := &gatewayv1.Gateway{Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{
		{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType},
		{Name: "alt", Port: 8081, Protocol: gatewayv1.HTTPProtocolType},
	}}}
	gw.Namespace, gw.Name = "ns", "web"
	programmed := func(typ string, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: 3}
	}
	st := gatewayv1.GatewayStatus{
		Conditions: []metav1.Condition{programmed("Accepted", "Accepted"), programmed("Programmed", "Programmed")},
		Listeners: []gatewayv1.ListenerStatus{
			{Name: "http", Conditions: []metav1.Condition{programmed("Programmed", "Programmed")}},
			{Name: "alt", Conditions: []metav1.Condition{programmed("Programmed", "Programmed")}},
		},
	}
	gs := translate.GatewayStatus{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, Status: st, BindAddresses: []string{""}}
	synced := deliver.Result{Node: "node-a", Connected: true, Synced: true, Listeners: []deliver.ListenerResult{
		{Name: "ns/web/80", Port: 80, Bound: true},
		{Name: "ns/web/8081", Port: 8081, Error: "address already in use"},
	}}
	got := foldResults(gw, gs, []deliver.Result{synced})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("gateway Programmed = %+v, want True despite one unbound listener", c)
	}
	if c := meta.FindStatusCondition(got.Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("listener http Programmed = %+v, want True", c)
	}
	c := meta.FindStatusCondition(got.Listeners[1].Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "Pending" || !strings.Contains(c.Message, "address already in use") ||
		!strings.Contains(c.Message, "node-a") || c.ObservedGeneration != 3 {
		t.Errorf("listener alt Programmed = %+v, want False/Pending naming the node and the bind error", c)
	}
	if meta.FindStatusCondition(st.Listeners[1].Conditions, "Programmed").Status != metav1.ConditionTrue {
		t.Error("foldResults modified its input")
	}

	rejected := synced
	rejected.Listeners = nil
	rejected.Rejection = &deliver.Rejection{Version: 9, Code: rpc.Nack_INVALID, Reason: "listeners[0].port: must be 1-65535"}
	got = foldResults(gw, gs, []deliver.Result{rejected})
	c = meta.FindStatusCondition(got.Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "Invalid" || !strings.Contains(c.Message, "listeners[0].port: must be 1-65535") {
		t.Errorf("after a rejection, gateway Programmed = %+v, want False/Invalid with the reason", c)
	}

	got = foldResults(gw, gs, []deliver.Result{{Node: "node-a"}})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "Pending" {
		t.Errorf("before any Ack, gateway Programmed = %+v, want False/Pending", c)
	}
}

// TestFoldResultsAddressNotUsable checks that a Gateway whose address is not an
// address of a node is not Programmed, with reason AddressNotUsable naming the
// address, while another bind failure (a port in use) leaves the Gateway
// Programmed.
func TestFoldResultsAddressNotUsable(t *testing.T) {
	gw := &gatewayv1.Gateway{Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{
		{Name: "http", Port: 8080, Protocol: gatewayv1.HTTPProtocolType},
	}}}
	gw.Namespace, gw.Name = "ns", "static"
	ok := func(typ string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: typ, ObservedGeneration: 2}
	}
	gs := translate.GatewayStatus{
		NamespacedName: types.NamespacedName{Namespace: "ns", Name: "static"},
		Status: gatewayv1.GatewayStatus{
			Conditions: []metav1.Condition{ok("Accepted"), ok("Programmed")},
			Listeners:  []gatewayv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{ok("Programmed")}}},
		},
		BindAddresses: []string{"192.0.2.1", "10.96.0.254"},
	}
	result := func(err string) deliver.Result {
		return deliver.Result{Node: "node-a", Connected: true, Synced: true, Listeners: []deliver.ListenerResult{
			{Name: "ns/static/192.0.2.1/8080", Address: "192.0.2.1", Port: 8080, Error: err},
			{Name: "ns/static/10.96.0.254/8080", Address: "10.96.0.254", Port: 8080, Bound: true},
		}}
	}

	got := foldResults(gw, gs, []deliver.Result{result("bind 192.0.2.1:8080: uring: listen 192.0.2.1:8080: bind: cannot assign requested address")})
	c := meta.FindStatusCondition(got.Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "AddressNotUsable" || !strings.Contains(c.Message, "192.0.2.1") ||
		!strings.Contains(c.Message, "node-a") || c.ObservedGeneration != 2 {
		t.Errorf("gateway Programmed = %+v, want False/AddressNotUsable naming the address and the node", c)
	}
	if c := meta.FindStatusCondition(got.Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "Pending" {
		t.Errorf("listener Programmed = %+v, want False/Pending", c)
	}

	got = foldResults(gw, gs, []deliver.Result{result("bind 192.0.2.1:8080: address already in use")})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("with the port in use, gateway Programmed = %+v, want True (only the listener is not programmed)", c)
	}
}

// TestFoldResultsWaitsForEveryNode checks that a Gateway is Programmed only once
// every node runs its current configuration, and that the condition names the
// nodes it waits for.
func TestFoldResultsWaitsForEveryNode(t *testing.T) {
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	gw := &gatewayv1.Gateway{Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType}}}}
	gw.Namespace, gw.Name = web.Namespace, web.Name
	programmed := metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", Message: "ok", ObservedGeneration: 4}
	gs := translate.GatewayStatus{
		NamespacedName: web,
		Status: gatewayv1.GatewayStatus{
			Conditions: []metav1.Condition{programmed},
			Listeners:  []gatewayv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{programmed}}},
		},
		BindAddresses: []string{""},
		ConfigHash:    "new",
	}
	node := func(name string, configs map[types.NamespacedName]string) deliver.Result {
		return deliver.Result{Node: name, Connected: true, Synced: true, Configs: configs}
	}
	check := func(what string, results []deliver.Result, status metav1.ConditionStatus, reason string, names, notNames []string) {
		t.Helper()
		got := foldResults(gw, gs, results)
		c := meta.FindStatusCondition(got.Conditions, "Programmed")
		if c.Status != status || c.Reason != reason || c.ObservedGeneration != 4 {
			t.Errorf("%s: Programmed = %+v, want %s/%s", what, c, status, reason)
		}
		for _, n := range names {
			if !strings.Contains(c.Message, n) {
				t.Errorf("%s: Programmed message %q does not name %s", what, c.Message, n)
			}
		}
		for _, n := range notNames {
			if strings.Contains(c.Message, n) {
				t.Errorf("%s: Programmed message %q names %s", what, c.Message, n)
			}
		}
		if l := meta.FindStatusCondition(got.Listeners[0].Conditions, "Programmed"); l.Status != metav1.ConditionTrue {
			t.Errorf("%s: listener Programmed = %+v, want True (a lagging node is a Gateway matter)", what, l)
		}
	}
	current := map[types.NamespacedName]string{web: "new", other: "x"}
	stale := map[types.NamespacedName]string{web: "old", other: "x"}

	check("one node lags", []deliver.Result{node("node-a", current), node("node-b", stale)},
		metav1.ConditionFalse, "Pending", []string{"node node-b", "current configuration"}, []string{"node-a"})
	check("a node does not know what it runs", []deliver.Result{node("node-a", current), node("node-b", map[types.NamespacedName]string{})},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("a node lacks the new Gateway", []deliver.Result{node("node-a", current), node("node-b", map[types.NamespacedName]string{other: "x"})},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("two nodes lag", []deliver.Result{node("node-a", current), node("node-b", stale), node("node-c", stale)},
		metav1.ConditionFalse, "Pending", []string{"nodes node-b, node-c"}, []string{"node-a"})
	check("a node never acknowledged", []deliver.Result{node("node-a", current), {Node: "node-b", Connected: true}},
		metav1.ConditionFalse, "Pending", []string{"node-b"}, []string{"node-a"})
	check("every node caught up", []deliver.Result{node("node-a", current), node("node-b", current)},
		metav1.ConditionTrue, "Programmed", nil, []string{"node-a", "node-b"})
	check("a node without config hashes counts once synced", []deliver.Result{node("node-a", current), node("node-b", nil)},
		metav1.ConditionTrue, "Programmed", nil, nil)

	rejected := node("node-b", stale)
	rejected.Rejection = &deliver.Rejection{Version: 9, Code: rpc.Nack_INVALID, Reason: "bad port"}
	check("a lagging node that rejected the configuration", []deliver.Result{node("node-a", current), rejected},
		metav1.ConditionFalse, "Invalid", []string{"bad port", "node-b"}, nil)

	unserved := gs
	unserved.ConfigHash = ""
	got := foldResults(gw, unserved, []deliver.Result{node("node-a", map[types.NamespacedName]string{other: "x"})})
	if c := meta.FindStatusCondition(got.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("a Gateway with nothing in the snapshot waits for a node that runs nothing of it: %+v", c)
	}
}

func TestFoldListenerSetResults(t *testing.T) {
	programmed := metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: 2}
	ls := translate.ListenerSetStatus{
		NamespacedName: types.NamespacedName{Namespace: "ns", Name: "extra"},
		Gateway:        types.NamespacedName{Namespace: "ns", Name: "web"},
		Status: gatewayv1.ListenerSetStatus{
			Conditions: []metav1.Condition{programmed},
			Listeners: []gatewayv1.ListenerEntryStatus{
				{Name: "a", Conditions: []metav1.Condition{programmed}},
				{Name: "b", Conditions: []metav1.Condition{programmed}},
			},
		},
		ListenerPorts: map[gatewayv1.SectionName]gatewayv1.PortNumber{"a": 8081, "b": 9000},
	}
	results := []deliver.Result{{Node: "node-a", Connected: true, Synced: true, Listeners: []deliver.ListenerResult{
		{Name: "ns/web/8081", Address: "10.0.0.1", Port: 8081, Error: "address already in use"},
		{Name: "other/gw/9000", Address: "10.0.0.2", Port: 9000, Error: "address already in use"},
	}}}
	got := foldListenerSetResults(ls, []string{"10.0.0.1"}, results)
	c := meta.FindStatusCondition(got.Status.Listeners[0].Conditions, "Programmed")
	if c.Status != metav1.ConditionFalse || c.Reason != "Pending" || !strings.Contains(c.Message, "10.0.0.1:8081") {
		t.Errorf("listener a Programmed = %+v, want False/Pending naming the unbound address", c)
	}
	if c := meta.FindStatusCondition(got.Status.Listeners[1].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("listener b Programmed = %+v, want True: the unbound 9000 is on another Gateway's address", c)
	}
	if meta.FindStatusCondition(ls.Status.Listeners[0].Conditions, "Programmed").Status != metav1.ConditionTrue {
		t.Error("foldListenerSetResults modified its input")
	}
}
