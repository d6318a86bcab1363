// Package nodes carries every node's dataplane result to the leader, and says which
// nodes serve Gateways. Every node translates and delivers on its own; only the
// leader writes status, so it must learn what the other nodes' dataplanes did.
//
// Leases (leases.go) maintain a coordination.k8s.io/v1 Lease "flax-node-<node>"
// per node in one namespace (the controller's), written by that node only
// (publish.go): holderIdentity is the node, it is renewed every 10s with
// leaseDurationSeconds 40, and the annotation flaxlb.io/dataplane-result holds a
// JSON summary of the local deliver.Result (report.go: applied version and hash,
// connected, synced, rejection, unbound listeners, and the config hash of every
// Gateway it runs). It is rewritten when the result changes other than in version
// and hash, so not for endpoint updates, which the renewals carry. Nothing is
// deleted on shutdown: the Lease expires.
//
// Every node reads all node Leases from a cache of that namespace (read.go). A node
// counts while its Lease has not expired and its Node is Ready and picked by the
// node selector (node.go); the local node always counts, by its Delivery. Results
// is the status writer's source; GatewayAddresses gives the addresses of counted
// nodes whose dataplane is connected (every Ready selected node while no node
// Lease exists at all, as on a fresh install).
//
// ConfigHistory (confighistory.go) remembers the Gateways' config hashes of the
// snapshots this node published recently, by snapshot hash: the Delivery knows the
// acknowledged configuration only by its hash, and the history turns it into the
// config hash of each Gateway the node runs. A snapshot no longer remembered gives
// no config hashes, so the node is waited for until it runs the current one.
package nodes
