// Package filter is the dataplane's extension point: Go code that runs on the
// requests, responses and TCP connections the proxy handles. A filter can read
// and change headers, answer a request itself, choose another backend group, or
// turn a TCP connection away.
//
// A filter is any value implementing one or more of the hook interfaces
// RequestFilter, UpstreamRequestFilter, ResponseFilter and ConnFilter. It is
// registered under a name when the program starts, and a snapshot names it in a
// listener's or route's extensionFilters:
//
//	type tenantTag struct{}
//
//	func (tenantTag) OnRequest(r filter.Request) {
//		if _, ok := r.Header("x-tenant"); !ok {
//			r.SetHeader("X-Tenant", "public")
//		}
//	}
//
//	func init() { filter.MustRegister("tenant-tag", tenantTag{}) }
//
// and in the snapshot:
//
//	routes:
//	- name: default/app/rule-0
//	  extensionFilters: [tenant-tag]
//
// The dataplane resolves the names when it compiles a snapshot, in Default
// unless the program says otherwise (dataplane/daemon's Options.Filters,
// compiled.CompileWith); a name that is not registered rejects the whole
// snapshot, and the last good one stays in force. Filters are Go code, so a
// program that uses them builds its own dataplane binary around
// dataplane/daemon; the stock flax-dataplane registers none.
//
// # When hooks run
//
// For an HTTP request that matched a route, the hooks run in this order:
//
//  1. OnRequest, after routing and the route's rate limit, before the route's
//     redirect, its backend choice and its direct response. Respond answers
//     the request here; UseBackendGroup sends it to another backend group
//     (which skips the route's redirect, weighted backend choice and direct
//     response, and the chosen backend's own header modifiers; the route's
//     header modifiers and URL rewrite still apply).
//  2. OnUpstreamRequest, once the backend group is chosen, while the head sent
//     upstream is built (once per request, however many attempts follow).
//  3. OnResponse, when the response head from the backend is rewritten for the
//     client (for each final response, and for a 101 Switching Protocols).
//     Replies the proxy makes itself (errors, redirects, Respond) do not run
//     response hooks.
//
// For a TCP listener, OnConn runs for each accepted connection before the
// upstream connect.
//
// In each hook the listener's filters run first, then the route's, each list
// in its order. A filter that calls Respond (or Reject) stops the ones after
// it.
//
// # Headers
//
// The read side of a handle shows the request or response as it was received.
// Header edits apply to the head sent on (upstream for requests, to the client
// for responses) after the built-in header modifiers of the route and the
// backend (Gateway API RequestHeaderModifier and ResponseHeaderModifier): a
// filter's SetHeader replaces a field a built-in modifier set or added, and its
// RemoveHeader removes it. The proxy owns the Host field and the fields that
// frame a message or manage its connection (Content-Length, Transfer-Encoding,
// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade): edits of
// them are dropped. The request's forwarding fields (X-Forwarded-*, Forwarded)
// are written before the edits' additions. Copies of the request sent to a
// route's mirrors carry the same edits.
//
// # Rules for filters
//
// Hooks run on the dataplane's worker threads, on the hot path, one request at
// a time per worker but on many workers at once: a filter's own state must be
// safe for concurrent use. A handle is valid only during the hook call that
// received it; byte slices it returns refer to the request's buffers and must
// not be kept or modified. Strings given to SetHeader, AddHeader and Respond are
// used without copying until the request ends, so they must not be built on
// unsafe memory that changes. A hook must not block (a worker serves many
// connections on one thread) and must not panic (a panic in a worker ends the
// dataplane process). With these rules, a filter that only reads and sets headers does
// not allocate.
//
// Header names given to SetHeader, AddHeader and RemoveHeader must be HTTP
// tokens and values must not contain CR, LF or NUL; the proxy drops an edit
// that breaks this rule rather than send a malformed head.
package filter
