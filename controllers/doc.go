// Package controllers is the Kubernetes side of Flax: it runs in every node's
// flax-controller, next to that node's dataplane.
//
// The pieces, in the order data flows through them:
//
//   - Watches (controller.go, index.go). One controller-runtime controller watches
//     GatewayClasses (ours only: spec.controllerName), GatewayClassParameters
//     (flaxlb.io/v1alpha1, every change; those our classes name are handed to the
//     translator, which allocates pool addresses), Gateways (of our classes, with
//     their status: status.addresses keeps pool allocations stable),
//     HTTPRoutes, ReferenceGrants, Services and EndpointSlices (only those an
//     HTTPRoute names, found through field indexes), Secrets (only those a
//     listener's certificateRefs name, through an index from Gateway to Secret;
//     the cache holds only kubernetes.io/tls Secrets, and a referenced Secret
//     missing from it is read from the API server so that a wrong type is
//     reported as such), Namespaces (label changes, only while a listener selects
//     namespaces by label) and Nodes (readiness, address and label changes of the
//     nodes Options.NodeSelector picks: their addresses are the Gateways'
//     addresses). Status-only updates of the Gateway API objects are dropped
//     (generation predicate), so the status writer does not wake the controller.
//
//   - Coalescing (coalesce.go). Every relevant event queues the same single key.
//     The reconciler translates once the burst is over: when no event came for
//     CoalesceDelay (20ms), or CoalesceMaxWait (250ms) after the burst's first
//     event, whichever is earlier. A translation lists everything from the cache,
//     calls translate.Translate (pure) and hands the result to the delivery and
//     to the status writer.
//
//   - Delivery (delivery.go, fastpath.go). A gRPC client of the local dataplane
//     over its unix socket (Dataplane.Stream). On every (re)connect it sends the
//     full snapshot; afterwards, if the new snapshot differs from the one the
//     dataplane acknowledged only in the endpoints of some backend groups, it
//     sends one EndpointUpdate per changed group (chained by version, the last
//     one carrying the expected hash; more than 64 groups go as a full
//     snapshot), otherwise a full snapshot. Each message waits for its Ack or
//     Nack. A Nack with FULL_SNAPSHOT_REQUIRED (or any refusal of endpoints) is
//     answered with the full snapshot; a refused full snapshot is recorded and not
//     resent until the configuration changes or the session restarts. Versions
//     start at the wall clock in microseconds and grow by one per message, so they
//     keep increasing across controller restarts (and never fall below the
//     version a reconnecting dataplane reports). Lost sessions are retried with
//     capped exponential backoff (100ms doubling to 5s, jittered). The largest
//     message is 128 MiB, as on the server side.
//
//   - Results (results.go). What the dataplane answered is kept as a
//     DataplaneResult: whether it has applied anything, the rejection of the
//     latest configuration (version, Nack code, reason) and the listener states
//     of the last Ack. A rejection turns every Gateway's Programmed condition
//     False with reason Invalid and the dataplane's reason in the message (the
//     dataplane keeps serving the previous configuration, so no Gateway runs its
//     current spec); a listener the dataplane cannot bind turns that listener's
//     Programmed False with reason Pending ("not yet online and ready to accept
//     client traffic"), the bind error in the message; until the dataplane has
//     applied a first configuration, Programmed is False with reason Pending.
//     Each node's controller also emits Warning Events on the Gateways concerned
//     (ConfigurationRejected, ListenerNotBound), once per new problem.
//
//   - Status writer (status.go, conditions.go). A manager runnable that needs
//     leader election, so only the leader writes. It compares each computed status
//     with the object's current one ignoring LastTransitionTime and writes only on
//     a difference; a condition whose status is unchanged keeps its
//     LastTransitionTime; a conflicting write is retried (client-go
//     retry.RetryOnConflict), re-reading the object from the API server. On
//     HTTPRoutes it only owns the parent statuses carrying its controllerName and
//     removes them from routes that no longer attach to its Gateways.
//
//   - Metrics (metrics.go), on controller-runtime's registry: translation
//     duration, pushes by kind (full, endpoints), rejections, status writes, the
//     coalescing queue depth, the dataplane connection and applied version, and
//     the time from receiving an EndpointSlice event to the dataplane's Ack of a
//     configuration that includes it.
//
// # Per-node results and what multi-node still needs
//
// Every node translates and delivers on its own, so each dataplane gets its
// configuration even when the leader is elsewhere or the API server is gone. The
// status writer folds in results from a ResultSource. Today that source is the
// local Delivery only: the leader's conditions reflect the leader's own
// dataplane. That is exact for a single node. For several nodes, what is missing
// is the path from the other nodes to the leader: each node would publish its
// DataplaneResult (applied version and hash, rejection, unbound listeners) in a
// per-node coordination.k8s.io Lease (for example "flax-dataplane-<node>" in the
// controller's namespace, renewed periodically so a dead node's report expires),
// and the leader would watch those Leases and implement ResultSource over them,
// reporting a Gateway Programmed only when every live node has applied a
// configuration with the hash it expects. The same reports would let the
// translator's node addresses (today: every Ready node the node selector picks)
// leave out nodes whose dataplane is down. Events need no such path: every node
// already emits them for its own dataplane.
package controllers
