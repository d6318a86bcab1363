// Package snapshot loads, validates, hashes and receives dataplane snapshots
// (github.com/flaxlb/flax/api/dataplane/v1.Snapshot), the whole configuration of one
// Flax dataplane.
//
// A dataplane gets its snapshots in one of two ways:
//
//   - From the controller, through Server, which serves the Dataplane gRPC service
//     on a unix socket. Every full snapshot is validated and handed to an Applier;
//     EndpointUpdates are applied on top of the last good snapshot
//     (ApplyEndpointUpdate) and handed to Applier.ApplyEndpoints.
//   - Standalone, from a YAML file, through Watcher, which reloads the file when it
//     changes or when Reload is called (on SIGHUP, see ReloadOnSignal).
//
// In both cases a snapshot that fails Validate or that the Applier rejects never
// replaces the last good one.
//
// The YAML form of a snapshot (Parse, Load, MarshalYAML) uses the protojson field
// names (lowerCamelCase), enum value names, durations as strings such as "5s" and
// base64 for bytes fields. Unknown fields are errors that name the field's path, as
// are all problems Validate finds, e.g.
//
//	listeners[0].virtualHosts[1].routes[2].matches[0].path.value: must start with "/"
//
// Snapshots handled by this package are treated as immutable once built: functions
// here never modify their arguments, and may return snapshots that share unchanged
// sub-messages with their inputs.
package snapshot
