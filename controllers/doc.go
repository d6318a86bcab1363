// Package controllers is the Kubernetes side of Flax. cmd/flax-controller runs it
// on every node, next to that node's dataplane. Data flows through four stages,
// one package each:
//
//	watch (this package) → translate → deliver → status (leader)
//	                                   └→ nodes: Leases carry each node's result to the leader
//
// In order:
//
//   - controllers (this package): New wires everything into a controller-runtime
//     manager. One controller watches (watch.go) GatewayClasses of
//     Options.ControllerName, their Gateways, ListenerSets and GatewayClassParameters,
//     HTTPRoutes, GRPCRoutes, TCPRoutes and TLSRoutes (when served), ReferenceGrants, Flax's
//     BackendPolicies and RoutePolicies, BackendTLSPolicies (when served), the
//     metadata of the Gateway API CRDs (their bundle versions), and only the Services,
//     EndpointSlices, TLS Secrets, CA ConfigMaps (metadata; the referenced ones are
//     read), Namespaces and Nodes they use, found through field indexes (index.go). Status-only updates are dropped,
//     so the status writer does not wake it. Every event queues one key; a
//     translation runs after 20ms without events, or 250ms after a burst's first
//     event (coalesce.go). It lists its input from the cache (input.go), calls
//     translate.Translate and hands the Output to the next stages. The Services
//     Flax creates for Gateways (GatewayClassParameters spec.service) are watched
//     too (their load balancer status is a Gateway's address) and written by a
//     leader-only writer (gatewayservices.go).
//   - translate: a pure function, objects → dataplane snapshot + statuses, with
//     golden-file tests.
//   - deliver: the gRPC client of the local dataplane's unix socket: full
//     snapshots, endpoint-only updates, Acks and Nacks, reconnects.
//   - nodes: each node publishes its dataplane's result in a "flax-node-<node>"
//     Lease, so the leader sees every node; it also decides which nodes' addresses
//     Gateways get.
//   - status: the leader-only writer of Gateway, route and policy status, with the
//     nodes' results folded into Programmed, and every node's Warning Events.
//
// Only the status writer needs leader election; everything else runs on every
// node. This package and those below it import no dataplane package (test/layout
// checks this): the snapshot in api/dataplane/v1 is the whole contract. The tests
// of this package run the controller on a real kube-apiserver and etcd
// (test/envtest) against a fake dataplane served by the real snapshot server.
package controllers
