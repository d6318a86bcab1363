package controllers_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestAddressPool runs the controller against a real API server with a
// GatewayClass whose GatewayClassParameters hold a pool of two addresses: of three
// Gateways on the same port, the two oldest get distinct addresses and are
// programmed, each on a dataplane listener of its own, and the third is not
// (AddressNotAssigned) until deleting one frees its address. A class naming
// parameters that do not exist yet is accepted once they are created. The API
// server rejects pools that are not addresses or CIDR prefixes.
func TestAddressPool(t *testing.T) {
	w := newWorld(t, "pool", "10.10.0.9")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	for _, bad := range []string{"198.51.100.1/24", "not-an-ip", "10.0.0.0/33"} {
		p := poolParameters(w.name+"-bad", flaxv1alpha1.AddressPool(bad))
		if err := w.c.Create(w.ctx, p); !apierrors.IsInvalid(err) {
			t.Errorf("GatewayClassParameters with address pool %q: got %v, want an Invalid error from the API server", bad, err)
		}
	}
	w.create(poolParameters(w.name, "198.51.100.20/31"))
	class := gatewayClass(w.name, w.controllerName)
	class.Spec.ParametersRef = &gatewayv1.ParametersReference{Group: flaxv1alpha1.GroupName, Kind: flaxv1alpha1.KindGatewayClassParameters, Name: w.name}
	w.create(class)
	late := gatewayClass(w.name+"-late", w.controllerName)
	late.Spec.ParametersRef = &gatewayv1.ParametersReference{Group: flaxv1alpha1.GroupName, Kind: flaxv1alpha1.KindGatewayClassParameters, Name: w.name + "-late"}
	w.create(late)
	// Created in order: a tie on creation time goes to the name, so g3 is the
	// youngest either way.
	for _, name := range []string{"g1", "g2", "g3"} {
		w.create(gateway(w.name, name, class.Name, 8080))
	}
	w.startController()

	pool := netip.MustParsePrefix("198.51.100.20/31")
	// programmedAt returns the address of a programmed Gateway.
	programmedAt := func(name string) (string, error) {
		gw, err := w.getGateway(name)
		if err != nil {
			return "", err
		}
		if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
			return "", fmt.Errorf("gateway %s: %w", name, err)
		}
		if len(gw.Status.Addresses) != 1 {
			return "", fmt.Errorf("gateway %s has addresses %+v, want one", name, gw.Status.Addresses)
		}
		a := gw.Status.Addresses[0].Value
		if ip, err := netip.ParseAddr(a); err != nil || !pool.Contains(ip) {
			return "", fmt.Errorf("gateway %s has address %s, want one of %s", name, a, pool)
		}
		return a, nil
	}
	// notAssigned checks that a Gateway is accepted but waits for an address.
	notAssigned := func(name string) error {
		gw, err := w.getGateway(name)
		if err != nil {
			return err
		}
		if err := hasCondition(gw.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
			return fmt.Errorf("gateway %s: %w", name, err)
		}
		if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotAssigned"); err != nil {
			return fmt.Errorf("gateway %s: %w", name, err)
		}
		if len(gw.Status.Addresses) != 0 {
			return fmt.Errorf("gateway %s has addresses %+v, want none", name, gw.Status.Addresses)
		}
		return nil
	}
	// servedOn checks that the dataplane runs exactly one listener on port 8080
	// per address in addrs, each named after its Gateway.
	servedOn := func(addrs map[string]string) error {
		got := map[string]string{}
		for _, l := range dp.Running().GetListeners() {
			if l.GetPort() == 8080 {
				got[l.GetAddress()] = l.GetName()
			}
		}
		if len(got) != len(addrs) {
			return fmt.Errorf("dataplane listeners on port 8080 %v, want %v", got, addrs)
		}
		for a, gw := range addrs {
			if got[a] != w.name+"/"+gw+"/8080" {
				return fmt.Errorf("dataplane listeners on port 8080 %v, want %s on %s", got, gw, a)
			}
		}
		return nil
	}

	var a1, a2 string
	eventually(t, 30*time.Second, "g1 and g2 programmed on distinct pool addresses, g3 AddressNotAssigned", func() error {
		var err error
		if a1, err = programmedAt("g1"); err != nil {
			return err
		}
		if a2, err = programmedAt("g2"); err != nil {
			return err
		}
		if a1 == a2 {
			return fmt.Errorf("g1 and g2 share address %s", a1)
		}
		if err := notAssigned("g3"); err != nil {
			return err
		}
		return servedOn(map[string]string{a1: "g1", a2: "g2"})
	})

	if err := w.c.Delete(w.ctx, &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "g1"}}); err != nil {
		t.Fatalf("delete gateway g1: %v", err)
	}
	eventually(t, 10*time.Second, "g3 programmed on the address g1 freed, g2 unchanged", func() error {
		a3, err := programmedAt("g3")
		if err != nil {
			return err
		}
		if a3 != a1 {
			return fmt.Errorf("g3 got %s, want %s, the address of the deleted g1", a3, a1)
		}
		got, err := programmedAt("g2")
		if err != nil {
			return err
		}
		if got != a2 {
			return fmt.Errorf("g2 moved to %s, want it to keep %s", got, a2)
		}
		return servedOn(map[string]string{a1: "g3", a2: "g2"})
	})

	classAccepted := func(name string, status metav1.ConditionStatus, reason string) func() error {
		return func() error {
			var gc gatewayv1.GatewayClass
			if err := w.c.Get(w.ctx, types.NamespacedName{Name: name}, &gc); err != nil {
				return err
			}
			return hasCondition(gc.Status.Conditions, "Accepted", status, reason)
		}
	}
	eventually(t, 10*time.Second, "class with missing parameters InvalidParameters",
		classAccepted(late.Name, metav1.ConditionFalse, "InvalidParameters"))
	w.create(poolParameters(w.name+"-late", "2001:db8::/126"))
	eventually(t, 10*time.Second, "class accepted once its parameters exist",
		classAccepted(late.Name, metav1.ConditionTrue, "Accepted"))
}

// poolParameters returns GatewayClassParameters with the given address pools.
func poolParameters(name string, pools ...flaxv1alpha1.AddressPool) *flaxv1alpha1.GatewayClassParameters {
	return &flaxv1alpha1.GatewayClassParameters{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       flaxv1alpha1.GatewayClassParametersSpec{AddressPools: pools},
	}
}
