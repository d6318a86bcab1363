// Package router is the compiled HTTP route table of one listener: every dataplane
// worker asks it, once per request, which route serves a request's host, path, query,
// method and headers.
//
// Main types and entry points:
//
//   - [VirtualHost], [Route], [Match] (with [PathMatch], [HeaderMatch], [QueryMatch])
//     and [OrderKey] are the router's own plain input, free of protobuf and Kubernetes
//     types; dataplane/compiled converts a listener of the snapshot into them.
//   - [Build] validates the input, compiles regular expressions and returns a [*Table].
//   - [Table.Match] takes a [RequestView] that the caller fills from its parser's
//     buffers (headers through the [Headers] interface) and returns the winning
//     [Route].Action and its route index ([Table.RouteAt] maps it back to the input).
//
// Selection follows Gateway API. The host (port stripped, case-insensitive) picks one
// entry: an exact hostname, else the longest matching wildcard suffix, else the
// catch-all (no hostnames, or "*"); virtual hosts sharing a hostname are merged. Within
// it, matches rank by path kind (Exact, then RegularExpression, then PathPrefix by
// length), then method, number of header and query matches, route age, namespace/name,
// rule and match index, and finally input order; the first whose conditions all hold
// wins. A Route without matches is a PathPrefix "/" match. Paths are matched as given:
// normalising them is the caller's job (dataplane/proxy does it).
//
// Invariants that matter:
//
//   - A Table is immutable once Build returns: all workers share it without locks, and a
//     configuration change builds a new one and swaps a pointer.
//   - Match does not allocate, does not retain the request, and its cost does not grow
//     with the number of routes whose paths cannot match: it probes an exact-path map,
//     the regex candidates, then a prefix map only at path-element boundaries whose
//     length some prefix has.
//   - Once a host entry is selected only its routes are tried; no match there is no
//     match, with no fallback to a less specific host.
package router
