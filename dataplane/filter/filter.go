package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// Request is the handle of an HTTP request given to RequestFilter and
// UpstreamRequestFilter hooks. It is valid only during the call.
type Request interface {
	// Method returns the request method.
	Method() []byte
	// Host returns the request's authority (the Host field, or the host of an
	// absolute-form target), port included when one was sent.
	Host() []byte
	// Path returns the path the request was routed by, without the query:
	// normalized (percent-encoded unreserved characters decoded, dot
	// segments removed), "/" for an empty path and "*" for an asterisk-form
	// target.
	Path() []byte
	// Query returns the query without its "?", or nothing.
	Query() []byte
	// Header returns the value of the first field named name, compared
	// without regard to ASCII case, as the client sent it.
	Header(name string) ([]byte, bool)
	// Client returns the client's address: the connection's peer, or with
	// trusted hops configured the address taken from X-Forwarded-For.
	Client() netip.Addr
	// Listener and Route return the names of the listener and route from the
	// snapshot.
	Listener() string
	Route() string
	// BackendGroup returns the name of the backend group chosen for the
	// request; empty in OnRequest unless UseBackendGroup chose one.
	BackendGroup() string

	// SetHeader replaces every field named name in the head sent upstream by
	// one with value.
	SetHeader(name, value string)
	// AddHeader appends a field to the head sent upstream.
	AddHeader(name, value string)
	// RemoveHeader removes every field named name from the head sent
	// upstream.
	RemoveHeader(name string)
	// Respond answers the request with status (200-599; any other answers
	// 500) and a text/plain body; the request never reaches a backend and
	// the filters after this one do not run. Only the first call counts.
	Respond(status int, body string)
	// UseBackendGroup sends the request to the backend group of the snapshot
	// with this name. It reports false, changing nothing, when there is no
	// such group, or when called from OnUpstreamRequest (the group is
	// chosen by then).
	UseBackendGroup(name string) bool
}

// Response is the handle of a backend's response given to ResponseFilter
// hooks. It is valid only during the call.
type Response interface {
	// Status returns the response status.
	Status() int
	// Header returns the value of the first field named name, compared
	// without regard to ASCII case, as the backend sent it.
	Header(name string) ([]byte, bool)
	// Listener, Route and BackendGroup return the names of the request's
	// listener, route and backend group.
	Listener() string
	Route() string
	BackendGroup() string

	// SetHeader, AddHeader and RemoveHeader edit the head sent to the
	// client, as Request's do for the head sent upstream.
	SetHeader(name, value string)
	AddHeader(name, value string)
	RemoveHeader(name string)
}

// Conn is the handle of a TCP or TLS listener's connection given to
// ConnFilter hooks. It is valid only during the call.
type Conn interface {
	// Client returns the address of the connection's peer.
	Client() netip.AddrPort
	// Local returns the listener's address; its IP is unspecified when the
	// listener binds every address.
	Local() netip.AddrPort
	// Listener returns the name of the listener from the snapshot.
	Listener() string
	// Reject closes the connection without connecting upstream; the filters
	// after this one do not run.
	Reject()
	// UseBackendGroup forwards the connection to the backend group of the
	// snapshot with this name instead of the listener's route. It reports
	// false, changing nothing, when there is no such group.
	UseBackendGroup(name string) bool
}

// RequestFilter runs on a request after routing, before the backend is
// chosen.
type RequestFilter interface {
	OnRequest(Request)
}

// UpstreamRequestFilter runs on a request once its backend group is chosen,
// while the head sent upstream is built.
type UpstreamRequestFilter interface {
	OnUpstreamRequest(Request)
}

// ResponseFilter runs when a backend's response head is rewritten for the
// client.
type ResponseFilter interface {
	OnResponse(Response)
}

// ConnFilter runs on a TCP listener's connection before the upstream
// connect, and on a TLS listener's once the ClientHello's server name chose
// the route (after the handshake on a terminating route).
type ConnFilter interface {
	OnConn(Conn)
}

// Registry maps names to filters. Its zero value is empty and ready to use;
// it is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	filters map[string]any
}

// Default is the registry the dataplane resolves snapshot names in, unless
// a program compiles its snapshots against another.
var Default = &Registry{}

// Register adds f under name. It fails when name is empty or taken, or
// when f implements none of the hook interfaces.
func (r *Registry) Register(name string, f any) error {
	if name == "" {
		return errors.New("register filter: empty name")
	}
	if !implementsAny(f) {
		return fmt.Errorf("register filter %q: %T implements none of RequestFilter, UpstreamRequestFilter, ResponseFilter and ConnFilter", name, f)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.filters[name]; taken {
		return fmt.Errorf("register filter %q: name already registered", name)
	}
	if r.filters == nil {
		r.filters = map[string]any{}
	}
	r.filters[name] = f
	return nil
}

// MustRegister is Register that panics on error, for init functions.
func (r *Registry) MustRegister(name string, f any) {
	if err := r.Register(name, f); err != nil {
		panic(err)
	}
}

// Lookup returns the filter registered under name.
func (r *Registry) Lookup(name string) (any, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.filters[name]
	return f, ok
}

// Registered returns the registered names, sorted.
func (r *Registry) Registered() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.filters))
	for n := range r.filters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Register adds f under name to the Default registry.
func Register(name string, f any) error { return Default.Register(name, f) }

// MustRegister adds f under name to the Default registry and panics on
// error.
func MustRegister(name string, f any) { Default.MustRegister(name, f) }

// Lookup returns the filter registered under name in the Default registry.
func Lookup(name string) (any, bool) { return Default.Lookup(name) }

// Registered returns the names registered in the Default registry, sorted.
func Registered() []string { return Default.Registered() }

func implementsAny(f any) bool {
	switch f.(type) {
	case RequestFilter, UpstreamRequestFilter, ResponseFilter, ConnFilter:
		return true
	}
	return false
}
