// Package deliver is the third stage, watch → translate → deliver → status: the
// gRPC client of the local dataplane (Dataplane.Stream over its unix socket). Every
// node delivers to its own dataplane, leader or not.
//
// Publish hands it the latest translated snapshot. On every (re)connect the
// Delivery sends the full snapshot; afterwards, if the new snapshot differs from
// the one the dataplane acknowledged only in the endpoints of some backend groups
// (fastpath.go), it sends one EndpointUpdate per changed group, chained by version,
// the last one carrying the expected hash (more than 64 groups go as a full
// snapshot); otherwise a full snapshot. Each message waits for its Ack or Nack. A
// Nack with FULL_SNAPSHOT_REQUIRED (or any refusal of endpoints) is answered with
// the full snapshot; a refused full snapshot is recorded and not resent until the
// configuration changes or the session restarts.
//
// Versions start at the wall clock in microseconds and grow by one per message, so
// they keep increasing across controller restarts, and never fall below the version
// a reconnecting dataplane reports in Hello. Lost sessions are retried with capped
// exponential backoff (100ms doubling to 5s, jittered). The largest message is
// 128 MiB, as on the server side.
//
// What the dataplane answered is kept as a Result (result.go): whether it has
// applied anything, the rejection of the latest configuration (version, Nack code,
// reason) and the listener states of the last Ack. Options.OnResult is called when
// it changes; packages nodes and status turn Results into node Leases, conditions
// and Events. Metrics (metrics.go): pushes by kind, rejections, the connection, the
// applied version, and the time from an EndpointSlice event to the Ack of a
// configuration that includes it.
package deliver
