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
//     namespaces by label), Nodes (readiness, address and label changes of the
//     nodes Options.NodeSelector picks: their addresses are the Gateways'
//     addresses), and Flax's BackendPolicies and RoutePolicies (flaxlb.io/v1alpha1,
//     every spec change; the Services a BackendPolicy targets are watched and
//     handed to the translator too, without their EndpointSlices, so that a
//     target appearing or losing its port is reported). Status-only updates of the
//     Gateway API objects and the policies are dropped (generation predicate), so
//     the status writer does not wake the controller.
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
//   - Config hashes (configs.go). The translator gives every Gateway a config
//     hash (translate.GatewayStatus.ConfigHash): a digest of the dataplane
//     listeners serving it and of the settings of the backend groups they use,
//     endpoints left out, with nothing node-specific in it, so every node's
//     translation of the same objects agrees. Each controller remembers the
//     config hashes of the snapshots it published recently by snapshot hash, so
//     that the hash its dataplane acknowledges tells which configuration of each
//     Gateway the node runs (DataplaneResult.Configs; unknown, and so waited
//     for, when the acknowledged snapshot is no longer remembered). A Gateway is
//     Programmed only when every node whose results count runs the config hash
//     the leader computed for it; otherwise Programmed is False with reason
//     Pending, naming the nodes it waits for. Endpoint changes alone do not
//     change config hashes, so they never turn Programmed False.
//
//   - Status writer (status.go, conditions.go). A manager runnable that needs
//     leader election, so only the leader writes. It compares each computed status
//     with the object's current one ignoring LastTransitionTime and writes only on
//     a difference; a condition whose status is unchanged keeps its
//     LastTransitionTime; a conflicting write is retried (client-go
//     retry.RetryOnConflict), re-reading the object from the API server. On
//     HTTPRoutes it only owns the parent statuses carrying its controllerName and
//     removes them from routes that no longer attach to its Gateways. On
//     BackendPolicies and RoutePolicies it owns the status.ancestors entries
//     carrying its controllerName, keeps those of other controllers, and never
//     writes more than the API's 16 entries.
//
//   - Metrics (metrics.go), on controller-runtime's registry: translation
//     duration, pushes by kind (full, endpoints), rejections, status writes, the
//     coalescing queue depth, the dataplane connection and applied version, and
//     the time from receiving an EndpointSlice event to the dataplane's Ack of a
//     configuration that includes it.
//
// # Per-node results through node Leases (nodelease.go)
//
// Every node translates and delivers on its own. Each node's controller also
// maintains a coordination.k8s.io/v1 Lease "flax-node-<node>" in the controller's
// namespace (Options.LeaseNamespace: the leader-election namespace, else the pod's,
// else "default"): holderIdentity is the node, it is renewed every 10s with
// leaseDurationSeconds 40, and the annotation flaxlb.io/dataplane-result holds a
// JSON summary of the local DataplaneResult (applied version and hash, connected,
// synced, rejection, unbound listeners, and the config hash of every Gateway it
// runs), rewritten when the result changes other than in version and hash (so not
// for endpoint updates, which the renewals carry). Nothing is deleted on shutdown:
// the Lease expires. Every controller watches the Leases of that namespace (a
// separate namespaced cache); a changed result, or a Lease coming back from expiry,
// queues the world key, and a translation requeues itself at the earliest expiry
// of a fresh Lease. The status writer's ResultSource is the local Delivery plus
// every other node whose Lease has not expired and whose Node is Ready and picked
// by the node selector, so a rejection, an unbound listener or a configuration
// not yet applied on any live node shows in the leader's conditions, naming the
// node. A node whose Lease carries no config hashes (a controller that predates
// them) is waited for only until it is synced. Gateway addresses are those of Ready
// selected nodes whose fresh Lease says the dataplane is connected (the local node:
// its Delivery); while no node Lease exists at all (fresh install), every Ready
// selected node counts, as before. Events need no such path: every node emits them
// for its own dataplane.
package controllers
