package status

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/internal/clip"
	"github.com/flaxlb/flax/controllers/translate"
)

// ResultSource supplies what the dataplanes reported, one deliver.Result per node.
// The Writer folds the results into Gateway conditions. The Controller's source is
// nodes.Leases: the local Delivery plus the other nodes' results read from their
// node Leases.
type ResultSource interface {
	// Results returns the latest result of every known dataplane.
	Results() []deliver.Result
}

// Reasons and messages Flax writes from dataplane results.
const (
	// eventReasonRejected is the Event reason for a configuration the dataplane
	// refused.
	eventReasonRejected = "ConfigurationRejected"
	// eventReasonNotBound is the Event reason for a listener the dataplane could
	// not bind.
	eventReasonNotBound = "ListenerNotBound"
	// addressNotAvailable is how a dataplane's bind error reads when the address
	// is not local on its node (Linux's text for EADDRNOTAVAIL): the Gateway's
	// address cannot be used there.
	addressNotAvailable = "cannot assign requested address"
)

// gatewayProblem is something a dataplane reported that keeps a Gateway, or one of
// its listeners, from being programmed.
type gatewayProblem struct {
	// listener is the Gateway listener concerned; empty for the whole Gateway.
	listener gatewayv1.SectionName
	// reason is the Event reason.
	reason string
	// message explains the problem.
	message string
	// addressNotUsable is set when the problem is an address of the Gateway that
	// a node cannot bind.
	addressNotUsable bool
}

// problemsOf returns what results report against gw: a rejected configuration (it
// concerns every Gateway, since the dataplane keeps running the previous one) and
// the listeners of gw served by a dataplane listener that is not bound. Dataplane
// listeners are per address and port (Gateway listeners sharing a port share one),
// so they are matched to gw's listeners by port and by binds, the addresses the
// translator bound gw's listeners on ("" for every address of the node).
func problemsOf(gw *gatewayv1.Gateway, binds []string, results []deliver.Result) []gatewayProblem {
	var out []gatewayProblem
	for _, r := range results {
		if rej := r.Rejection; rej != nil {
			out = append(out, gatewayProblem{
				reason: eventReasonRejected,
				message: clip.Truncate(fmt.Sprintf("The dataplane on node %s rejected configuration version %d (%s) and keeps serving the last one it accepted: %s",
					nodeLabel(r.Node), rej.Version, rej.Code, rej.Reason), maxConditionMessage),
			})
		}
		for _, dl := range r.Listeners {
			if dl.Bound || !slices.Contains(binds, dl.Address) {
				continue
			}
			message := clip.Truncate(fmt.Sprintf("The dataplane on node %s cannot bind %s: %s",
				nodeLabel(r.Node), hostPort(dl.Address, dl.Port), dl.Error), maxConditionMessage)
			for _, l := range gw.Spec.Listeners {
				if uint32(l.Port) != dl.Port {
					continue
				}
				out = append(out, gatewayProblem{listener: l.Name, reason: eventReasonNotBound, message: message})
			}
			if dl.Address != "" && strings.Contains(dl.Error, addressNotAvailable) {
				out = append(out, gatewayProblem{
					reason:           eventReasonNotBound,
					addressNotUsable: true,
					message: clip.Truncate(fmt.Sprintf("Address %s is not usable on node %s: it is not an address of the node",
						dl.Address, nodeLabel(r.Node)), maxConditionMessage),
				})
			}
		}
	}
	return out
}

// foldResults returns the status gs.Status the translator computed for gw, with
// the dataplane results folded in; gs is not modified. A Programmed condition
// that the translator set True turns False when a dataplane rejected the
// configuration (reason Invalid), when a dataplane cannot bind an address of the
// Gateway because it is not an address of its node (reason AddressNotUsable),
// or, with reason Pending, when a dataplane has
// not applied any configuration yet or does not run the Gateway's current
// configuration (gs.ConfigHash); a listener's Programmed turns False (reason
// Pending) when a dataplane cannot bind its socket. Listeners are matched to
// dataplane listeners through gs.BindAddresses.
func foldResults(gw *gatewayv1.Gateway, gs translate.GatewayStatus, results []deliver.Result) gatewayv1.GatewayStatus {
	st := *gs.Status.DeepCopy()
	var gatewayMsgs, addressMsgs []string
	for _, p := range problemsOf(gw, gs.BindAddresses, results) {
		if p.addressNotUsable {
			if !slices.Contains(addressMsgs, p.message) {
				addressMsgs = append(addressMsgs, p.message)
			}
			continue
		}
		if p.listener == "" {
			gatewayMsgs = append(gatewayMsgs, p.message)
			continue
		}
		for j := range st.Listeners {
			if st.Listeners[j].Name == p.listener {
				demote(&st.Listeners[j].Conditions, string(gatewayv1.ListenerConditionProgrammed),
					string(gatewayv1.ListenerReasonPending), p.message)
			}
		}
	}
	if len(addressMsgs) > 0 {
		demote(&st.Conditions, string(gatewayv1.GatewayConditionProgrammed), string(gatewayv1.GatewayReasonAddressNotUsable),
			clip.Truncate(strings.Join(addressMsgs, "; "), maxConditionMessage))
	}
	if len(gatewayMsgs) > 0 {
		demote(&st.Conditions, string(gatewayv1.GatewayConditionProgrammed), string(gatewayv1.GatewayReasonInvalid),
			clip.Truncate(strings.Join(gatewayMsgs, "; "), maxConditionMessage))
	} else if waiting := waitingNodes(gs.NamespacedName, gs.ConfigHash, results); len(waiting) > 0 {
		what := "node " + waiting[0]
		if len(waiting) > 1 {
			what = "nodes " + strings.Join(waiting, ", ")
		}
		demote(&st.Conditions, string(gatewayv1.GatewayConditionProgrammed), string(gatewayv1.GatewayReasonPending),
			clip.Truncate(fmt.Sprintf("Waiting for the dataplane on %s to apply the current configuration of this Gateway", what), maxConditionMessage))
	}
	return st
}

// waitingNodes returns the nodes whose dataplane does not run configHash, the
// current configuration of the Gateway gw ("" when nothing of it is served): those
// that have not acknowledged any configuration from their controller yet, and
// those whose config hash for gw differs. A result without config hashes (nil
// Configs) counts as running it once Synced.
func waitingNodes(gw types.NamespacedName, configHash string, results []deliver.Result) []string {
	var nodes []string
	for _, r := range results {
		if !r.Synced || (r.Configs != nil && r.Configs[gw] != configHash) {
			nodes = append(nodes, nodeLabel(r.Node))
		}
	}
	return nodes
}

// demote sets the condition of type typ to False with reason and message if it is
// True, appending a second message if it is False already; a missing condition is
// left missing (the translator decides which conditions exist).
func demote(conds *[]metav1.Condition, typ, reason, message string) {
	c := meta.FindStatusCondition(*conds, typ)
	if c == nil {
		return
	}
	if c.Status == metav1.ConditionFalse {
		if !strings.Contains(c.Message, message) {
			c.Message = clip.Truncate(c.Message+"; "+message, maxConditionMessage)
		}
		return
	}
	c.Status = metav1.ConditionFalse
	c.Reason = reason
	c.Message = message
}

// nodeLabel names a node in messages.
func nodeLabel(node string) string {
	if node == "" {
		return "(unnamed)"
	}
	return node
}

// hostPort formats a listener address.
func hostPort(addr string, port uint32) string {
	switch {
	case addr == "":
		return fmt.Sprintf("*:%d", port)
	case strings.Contains(addr, ":"):
		return fmt.Sprintf("[%s]:%d", addr, port)
	default:
		return fmt.Sprintf("%s:%d", addr, port)
	}
}

// foldListenerSetResults returns ls with the dataplane's bind failures folded in:
// a listener of the set on a port that a dataplane cannot bind on one of binds,
// the addresses its Gateway's listeners were bound on, turns Programmed
// False/Pending. ls is not modified.
func foldListenerSetResults(ls translate.ListenerSetStatus, binds []string, results []deliver.Result) translate.ListenerSetStatus {
	out := ls
	out.Status = *ls.Status.DeepCopy()
	for _, r := range results {
		for _, dl := range r.Listeners {
			if dl.Bound || !slices.Contains(binds, dl.Address) {
				continue
			}
			message := clip.Truncate(fmt.Sprintf("The dataplane on node %s cannot bind %s: %s",
				nodeLabel(r.Node), hostPort(dl.Address, dl.Port), dl.Error), maxConditionMessage)
			for i := range out.Status.Listeners {
				l := &out.Status.Listeners[i]
				if port, ok := ls.ListenerPorts[l.Name]; ok && uint32(port) == dl.Port {
					demote(&l.Conditions, string(gatewayv1.ListenerEntryConditionProgrammed), string(gatewayv1.ListenerEntryReasonPending), message)
				}
			}
		}
	}
	return out
}
