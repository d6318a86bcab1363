package deliver

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// Result is what one node's dataplane reported about the configuration its
// controller sends it.
type Result struct {
	// Node is the node the dataplane runs on.
	Node string
	// Connected is true while a session with the dataplane is open.
	Connected bool
	// Synced is true once the dataplane has acknowledged a configuration from this
	// controller process.
	Synced bool
	// InSync is true when the dataplane runs the latest configuration.
	InSync bool
	// AppliedVersion and AppliedHash identify the configuration the dataplane
	// acknowledged last.
	AppliedVersion uint64
	AppliedHash    string
	// Rejection is set while the latest configuration is rejected.
	Rejection *Rejection
	// Listeners are the listener states of the last Ack.
	Listeners []ListenerResult
	// Configs are the config hashes (translate.GatewayStatus.ConfigHash) of the
	// Gateways in the configuration the dataplane runs, by Gateway; Gateways with
	// no part in it are absent. Nil means not known, as from a node whose
	// controller does not report them: such a node is waited for only until it is
	// Synced. The Delivery does not set it (it knows snapshots, not Gateways);
	// nodes.ConfigHistory fills it in. Treat it as read-only.
	Configs map[types.NamespacedName]string
}

// Rejection is a configuration the dataplane refused; it keeps running the last
// configuration it accepted.
type Rejection struct {
	// Version of the rejected snapshot.
	Version uint64
	// Code is the Nack code.
	Code rpc.Nack_Code
	// Reason is the dataplane's explanation.
	Reason string
	// Hash is the content hash of the rejected snapshot.
	Hash string
}

// ListenerResult is the state of one dataplane listener as the dataplane reported it
// in its last Ack.
type ListenerResult struct {
	// Name is the snapshot listener's name ("<namespace>/<gateway>/<listener>").
	Name string
	// Address and Port are what the listener binds.
	Address string
	Port    uint32
	// Bound is true if the socket is bound and accepting.
	Bound bool
	// Error says why it is not bound.
	Error string
}
