// Package router holds Flax's compiled HTTP route table: the structure every
// dataplane worker consults, once per request, to turn a parsed HTTP/1.1
// request (host, path, query, method, headers) into the index of the route
// action that should serve it.
//
// # Inputs and compilation
//
// The package defines its own plain input types ([VirtualHost], [Route],
// [Match] and friends) so that it does not depend on the protobuf snapshot
// or on Kubernetes types. A separate step converts a listener's snapshot to a
// []VirtualHost and calls [Build], which validates the input, compiles the
// regular expressions and produces an immutable [*Table]. A Table is never
// modified after Build returns, so all worker threads share a single Table
// without locks; a configuration change builds a new Table and swaps the
// pointer.
//
// # Host selection
//
// The request host (the Host header or the authority) has any ":port" suffix
// removed and is compared case-insensitively. Selection follows the Gateway
// API hostname rules:
//
//   - an exact hostname beats every wildcard;
//   - among wildcards the longest suffix wins, so "*.foo.example.com" beats
//     "*.example.com";
//   - "*.example.com" matches "a.example.com" and "a.b.example.com" but not
//     "example.com";
//   - a virtual host without hostnames, or with the hostname "*", is the
//     catch-all used when nothing more specific matches.
//
// Virtual hosts that share a hostname are merged and their routes compete
// under the precedence rules below. Once a host entry is selected only its
// routes are considered: if none of them matches, Match reports no match
// rather than falling back to a less specific host (the behaviour of
// Envoy-based Gateway API implementations).
//
// # Route precedence
//
// Within the selected host every match of every route is ranked, and the
// first match, in rank order, whose conditions all hold wins. Ranking keys,
// most significant first:
//
//  1. Path match kind and length: every Exact match ranks above every
//     RegularExpression match, which ranks above every PathPrefix match.
//     Gateway API leaves the position of regular expressions
//     implementation-specific; Flax places them between Exact and Prefix
//     (as Envoy Gateway does), longer pattern first. Prefix matches rank by
//     the length of the prefix, longest first (see below for trailing
//     slashes).
//  2. A match that specifies a method ranks above one that does not.
//  3. More header matches rank above fewer.
//  4. More query parameter matches rank above fewer.
//  5. The oldest route (smallest [OrderKey].CreationUnixNano) ranks first.
//  6. The route whose "{namespace}/{name}" sorts first alphabetically ranks
//     first.
//  7. Within one route, the lower rule index, then the lower match index
//     (position in [Route].Matches), ranks first.
//
// Remaining ties (identical keys) keep input order.
//
// # Match semantics
//
// Exact path matches compare bytes. Prefix matches work on path elements:
// the prefix "/foo" matches "/foo", "/foo/" and "/foo/bar" but not
// "/foobar"; a trailing slash in the prefix is not significant for
// matching, so "/foo/" also matches "/foo" (it still ranks one character
// longer than "/foo", which only matters between these two spellings).
// The prefix "/" matches every path. Regular expressions use Go's RE2
// syntax and must match the whole value (they are anchored at both ends).
// Paths are matched as given: decoding and normalisation (dot segments,
// duplicate slashes) are the caller's job.
//
// Header names are compared case-insensitively and values exactly; when a
// match lists the same header name more than once only the first entry is
// used. Headers are looked up through the [Headers] interface, always with
// the lowercase name, and it is up to the implementation which value it
// returns for a repeated header (normally the first).
//
// Query parameter names are compared exactly (case-sensitive) and only the
// first occurrence of a parameter in the query string is used. Names and
// values are percent-decoded before comparison ("%20" is a space, "+" is
// kept as is), so configuration values are written in decoded form.
//
// Methods are compared exactly (they are case-sensitive in HTTP).
//
// A [Route] without matches behaves like a single match on the prefix "/".
//
// # Lookup structure and complexity
//
// Host lookup lowercases the host into a stack buffer and costs one map
// lookup for exact hostnames plus at most one map lookup per label for
// wildcards (keyed by the suffix starting at the dot), made only for suffix
// lengths some wildcard has.
//
// Each host entry keeps:
//
//   - a map from exact path to its ranked candidates;
//   - the regular-expression candidates in rank order;
//   - a map from normalised prefix (no trailing slash) to its ranked
//     candidates, together with a bitset of the prefix lengths present.
//
// A lookup probes the exact map once, evaluates the regex candidates in
// order, then walks the request path from its end to its start and probes
// the prefix map only at element boundaries whose length some prefix has.
// Because the probes are made from the most to the least specific path
// class, the first candidate whose method, header and query conditions all
// hold is the winner. The cost is therefore O(len(host) + len(path)) plus
// one map probe per wildcard label and per candidate path element length,
// plus the regex evaluations and the candidate checks of the buckets that
// match the path; it does not grow with the number of routes whose paths
// do not match the request.
//
// # Allocation
//
// [Table.Match] does not allocate. [RequestView] is filled by the caller
// from its parser's buffers; passing a pointer to a long-lived (for example
// per-connection or per-worker) struct as its [Headers] implementation keeps
// the interface call allocation-free. Regular-expression matching uses the
// regexp package's internal pools, which do not allocate in steady state.
package router
