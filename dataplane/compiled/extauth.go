package compiled

import (
	"strings"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// ExtAuth is a route's compiled external authorization
// (dataplanev1.ExtAuth): the proxy asks Group about each request before
// forwarding it (dataplane/proxy, extauth.go).
type ExtAuth struct {
	// Group is the authorization service's backend group (HTTP/1.1).
	Group *Group
	// PathPrefix goes before the client's path in the check request, its
	// trailing "/" dropped; "" adds nothing.
	PathPrefix string
	// RequestHeaders are the lower-case names of the further client headers
	// sent with the check, besides Host and Authorization.
	RequestHeaders []string
	// ResponseHeaders are the lower-case names of the headers of an allowing
	// response set on the forwarded request; empty means all of them (but
	// Host and the hop-by-hop and framing ones).
	ResponseHeaders []string
	// Timeout bounds the check.
	Timeout time.Duration
	// MaxBody is the longest request body sent with the check (larger ones
	// get 413); 0 sends none.
	MaxBody int
}

// compileExtAuth compiles a validated external authorization whose group
// is g.
func compileExtAuth(a *dataplanev1.ExtAuth, g *Group) *ExtAuth {
	e := &ExtAuth{
		Group:      g,
		PathPrefix: strings.TrimRight(a.GetPathPrefix(), "/"),
		Timeout:    dataplanev1.DefaultExtAuthTimeout,
		MaxBody:    int(a.GetMaxBodyBytes()),
	}
	if d := a.GetTimeout(); d != nil {
		e.Timeout = d.AsDuration()
	}
	for _, n := range a.GetAllowedRequestHeaders() {
		e.RequestHeaders = append(e.RequestHeaders, strings.ToLower(n))
	}
	for _, n := range a.GetAllowedResponseHeaders() {
		e.ResponseHeaders = append(e.ResponseHeaders, strings.ToLower(n))
	}
	return e
}

// AllowsResponseHeader reports whether the response header named name (any
// case) of an allowing check goes onto the forwarded request.
func (e *ExtAuth) AllowsResponseHeader(name []byte) bool {
	if len(e.ResponseHeaders) == 0 {
		return true
	}
	for _, n := range e.ResponseHeaders {
		if equalFoldASCII(name, n) {
			return true
		}
	}
	return false
}
