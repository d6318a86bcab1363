package controllers_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestDeliveryOverUnixSocket drives the delivery against the real snapshot server
// on a real unix socket: full snapshot on connect, EndpointUpdates for endpoint
// changes, a rejected snapshot and an unbound listener reaching the Gateway's
// conditions, and a dataplane restart.
func TestDeliveryOverUnixSocket(t *testing.T) {
	w := newWorld(t, "delivery", "10.11.0.1")
	dp := &fakedataplane.Dataplane{}
	stopDataplane := w.startDataplane(dp)

	class := gatewayClass("delivery", w.controllerName)
	w.create(class)
	gw := gateway(w.name, "web", class.Name, 8080)
	w.create(gw)
	w.create(service(w.name, "echo", 80, 8080))
	slice := endpointSlice(w.name, "echo-1", "echo", 8080, "10.21.0.1")
	w.create(slice)
	w.create(httpRoute(w.name, "route", "web", "echo", 80))
	group := w.name + "/echo:80"
	c := w.startController()

	// Every subtest starts from a dataplane that runs the configuration.
	eventually(t, 30*time.Second, "dataplane runs the echo group", func() error {
		g, err := backendGroup(dp.Running(), group)
		if err != nil {
			return err
		}
		if len(g.GetEndpoints()) != 1 {
			return fmt.Errorf("%d endpoints, want 1", len(g.GetEndpoints()))
		}
		return nil
	})

	t.Run("full snapshot on connect", func(t *testing.T) {
		if full, updates := dp.Counts(); full < 1 || updates != 0 {
			t.Fatalf("%d full snapshots and %d endpoint updates, want the configuration as a full snapshot", full, updates)
		}
		eventually(t, 10*time.Second, "Gateway Programmed", func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			return hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
		})
	})

	t.Run("endpoint change sends an EndpointUpdate", func(t *testing.T) {
		var fromClient, fromEvent []time.Duration
		for i := range 5 {
			fullBefore, updatesBefore := dp.Counts()
			count0, sum0 := endpointAckHistogram(t)
			addresses := []string{"10.21.0.1"}
			for j := range i + 1 {
				addresses = append(addresses, fmt.Sprintf("10.21.1.%d", j+1))
			}
			start := time.Now()
			update(w, slice, func(s *discoveryv1.EndpointSlice) { s.Endpoints = readyEndpoints(addresses...) })
			eventually(t, 10*time.Second, "endpoint update applied", func() error {
				u, ok := dp.LastUpdate()
				if _, n := dp.Counts(); !ok || n == updatesBefore {
					return fmt.Errorf("no new endpoint update")
				}
				if u.Group != group || u.Endpoints != len(addresses) {
					return fmt.Errorf("last update %+v, want group %s with %d endpoints", u, group, len(addresses))
				}
				return nil
			})
			u, _ := dp.LastUpdate()
			eventually(t, 5*time.Second, "change-to-Ack observed", func() error {
				if n, _ := endpointAckHistogram(t); n == count0 {
					return fmt.Errorf("flax_controller_endpoint_change_to_ack_seconds has no new sample")
				}
				return nil
			})
			count1, sum1 := endpointAckHistogram(t)
			if full, _ := dp.Counts(); full != fullBefore {
				t.Errorf("change %d: %d full snapshots were sent for an endpoint-only change", i, full-fullBefore)
			}
			perAck := time.Duration((sum1 - sum0) / float64(count1-count0) * float64(time.Second))
			fromClient = append(fromClient, u.At.Sub(start))
			fromEvent = append(fromEvent, perAck)
			t.Logf("change %d: client Update call → dataplane ApplyEndpoints %v; controller-measured EndpointSlice event → Ack %v",
				i, u.At.Sub(start).Round(10*time.Microsecond), perAck.Round(10*time.Microsecond))
		}
		slices.Sort(fromClient)
		slices.Sort(fromEvent)
		t.Logf("EndpointSlice change → Ack over %d changes: event→Ack min %v median %v max %v; Update call→apply min %v median %v max %v",
			len(fromEvent), fromEvent[0].Round(10*time.Microsecond), fromEvent[len(fromEvent)/2].Round(10*time.Microsecond),
			fromEvent[len(fromEvent)-1].Round(10*time.Microsecond), fromClient[0].Round(10*time.Microsecond),
			fromClient[len(fromClient)/2].Round(10*time.Microsecond), fromClient[len(fromClient)-1].Round(10*time.Microsecond))
	})

	t.Run("rejected snapshot sets Programmed False", func(t *testing.T) {
		dp.Set(9999, nil)
		update(w, gw, func(g *gatewayv1.Gateway) {
			g.Spec.Listeners = append(g.Spec.Listeners, gatewayv1.Listener{Name: "refused", Port: 9999, Protocol: gatewayv1.HTTPProtocolType})
		})
		eventually(t, 10*time.Second, "Gateway Programmed False with the dataplane's reason", func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			if err := hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionFalse, "Invalid"); err != nil {
				return err
			}
			if msg := findMessage(gw.Status.Conditions, "Programmed"); !strings.Contains(msg, "port 9999 refused by the test dataplane") {
				return fmt.Errorf("message %q lacks the dataplane's reason", msg)
			}
			return nil
		})
		eventually(t, 10*time.Second, "ConfigurationRejected event", func() error { return w.findEvent("web", "ConfigurationRejected") })
		if r := c.Delivery.Result(); r.Rejection == nil || r.InSync {
			t.Errorf("delivery result %+v, want a rejection", r)
		}

		update(w, gw, func(g *gatewayv1.Gateway) { g.Spec.Listeners = g.Spec.Listeners[:1] })
		eventually(t, 10*time.Second, "Gateway Programmed again", func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			return hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
		})
	})

	t.Run("unbound listener sets the listener's Programmed False", func(t *testing.T) {
		dp.Set(0, map[uint32]string{8081: "listen tcp :8081: bind: address already in use"})
		update(w, gw, func(g *gatewayv1.Gateway) {
			g.Spec.Listeners = append(g.Spec.Listeners, gatewayv1.Listener{Name: "alt", Port: 8081, Protocol: gatewayv1.HTTPProtocolType})
		})
		eventually(t, 10*time.Second, "listener alt Programmed False/Pending", func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			alt, err := listenerStatus(gw, "alt")
			if err != nil {
				return err
			}
			if err := hasCondition(alt.Conditions, "Programmed", metav1.ConditionFalse, "Pending"); err != nil {
				return err
			}
			if msg := findMessage(alt.Conditions, "Programmed"); !strings.Contains(msg, "address already in use") {
				return fmt.Errorf("message %q lacks the bind error", msg)
			}
			http, err := listenerStatus(gw, "http")
			if err != nil {
				return err
			}
			if err := hasCondition(http.Conditions, "Programmed", metav1.ConditionTrue, "Programmed"); err != nil {
				return fmt.Errorf("listener http: %w", err)
			}
			return hasCondition(gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed")
		})
		eventually(t, 10*time.Second, "ListenerNotBound event", func() error { return w.findEvent("web", "ListenerNotBound") })
	})

	t.Run("dataplane restart gets the full state at once", func(t *testing.T) {
		want := c.Delivery.Result().AppliedHash
		stopDataplane()
		restarted := &fakedataplane.Dataplane{}
		start := time.Now()
		w.startDataplane(restarted)
		eventually(t, 10*time.Second, "restarted dataplane runs the configuration", func() error {
			if s := restarted.Running(); s.GetHash() != want {
				return fmt.Errorf("restarted dataplane runs hash %q, want %q", s.GetHash(), want)
			}
			return nil
		})
		took := time.Since(start)
		t.Logf("dataplane restart → full snapshot applied after %v", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("the restarted dataplane got its configuration after %v, want under 2s", took)
		}
		if full, updates := restarted.Counts(); full != 1 || updates != 0 {
			t.Errorf("restarted dataplane got %d full snapshots and %d endpoint updates, want exactly one full snapshot", full, updates)
		}
	})
}

// findMessage returns the message of the condition of type typ.
func findMessage(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}
