// Package snapshot is how a dataplane receives its snapshots
// (github.com/flaxlb/flax/api/dataplane/v1.Snapshot), the whole configuration of one
// Flax dataplane, in one of two ways:
//
//   - From the controller, through Server, which serves the Dataplane gRPC service
//     (package rpc) on a unix socket. Every full snapshot is validated
//     (dataplanev1.Validate) and handed to an Applier; EndpointUpdates are applied on
//     top of the last good snapshot (dataplanev1.ApplyEndpointUpdate) and handed to
//     Applier.ApplyEndpoints.
//   - Standalone, from a YAML file (dataplanev1.Load), through Watcher, which reloads
//     the file when it changes or when Reload is called (on SIGHUP, see
//     ReloadOnSignal).
//
// A dataplane/daemon Daemon becomes an Applier through Adapt, which converts its
// listener statuses to their gRPC form; the daemon itself does not link gRPC.
//
// In both cases a snapshot that fails validation or that the Applier rejects never
// replaces the last good one. Validation, hashing and the YAML form belong to the
// contract (package dataplanev1), which the controller uses too.
package snapshot
