package proxy

import (
	"net/netip"

	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Extension filters (package filter) run through handles that live in the
// Exchange: filterCall is converted to reqHandle, respHandle or connHandle,
// and a pointer to it is what a hook receives, so passing it as an interface
// does not allocate.
//
// Order on a request (see the package filter doc): route match, rate limit,
// request hooks, then the route's redirect, weighted backend choice or direct
// response (skipped when a hook chose a group), circuit breaker, hash key and
// affinity, upstream request hooks, the upstream head. Header edits of the
// hooks apply after the route's and the backend's header modifiers.
type filterCall struct {
	s        *Session
	upstream bool // the upstream request hook runs: the group is chosen
}

type (
	reqHandle  filterCall
	respHandle filterCall
	connHandle filterCall
)

var (
	_ filter.Request  = (*reqHandle)(nil)
	_ filter.Response = (*respHandle)(nil)
	_ filter.Conn     = (*connHandle)(nil)
	// A request filter's handle reads a request as a selection algorithm's
	// Keyer does.
	_ balancer.Request = (*reqHandle)(nil)
)

// runRequestFilters runs the route's request hooks. It reports true when a
// hook answered (the reply is under way).
func (s *Session) runRequestFilters(hooks []filter.RequestFilter) bool {
	x := s.x
	x.fcall = filterCall{s: s}
	h := (*reqHandle)(&x.fcall)
	for _, f := range hooks {
		f.OnRequest(h)
		if x.fStatus != 0 {
			s.filterReply()
			return true
		}
	}
	return false
}

// runUpstreamFilters runs the route's upstream request hooks. It reports
// true when a hook answered.
func (s *Session) runUpstreamFilters(hooks []filter.UpstreamRequestFilter) bool {
	x := s.x
	x.fcall = filterCall{s: s, upstream: true}
	h := (*reqHandle)(&x.fcall)
	for _, f := range hooks {
		f.OnUpstreamRequest(h)
		if x.fStatus != 0 {
			s.filterReply()
			return true
		}
	}
	return false
}

// runResponseFilters runs the route's response hooks while the response
// head's rewrite lists (x.remove, x.add) are being built.
func (s *Session) runResponseFilters(hooks []filter.ResponseFilter) {
	x := s.x
	x.fcall = filterCall{s: s}
	h := (*respHandle)(&x.fcall)
	for _, f := range hooks {
		f.OnResponse(h)
	}
}

// runConnFilters runs a TCP listener's connection hooks. It reports false
// when a hook rejected the connection.
func (s *Session) runConnFilters(hooks []filter.ConnFilter) bool {
	x := s.x
	x.fcall = filterCall{s: s}
	h := (*connHandle)(&x.fcall)
	for _, f := range hooks {
		f.OnConn(h)
		if x.fStatus != 0 {
			return false
		}
	}
	return true
}

// filterReply answers with the status and body a hook gave to Respond.
func (s *Session) filterReply() {
	x := s.x
	status := x.fStatus
	if status < 200 || status > 599 {
		status = 500
	}
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	s.localReplyText(status, metrics.ReasonFilter, x.fBody)
}

// mergeFilterEdits applies the request hooks' header edits to the rewrite
// lists built from the header modifiers: a name a hook set or removed drops
// what the modifiers added under it.
func mergeFilterEdits(remove [][]byte, add []http1.HeaderField, fRemove [][]byte, fAdd []http1.HeaderField) ([][]byte, []http1.HeaderField) {
	for _, n := range fRemove {
		add = dropAdded(add, n)
	}
	return append(remove, fRemove...), append(add, fAdd...)
}

// dropAdded removes the fields named name from add, in place.
func dropAdded(add []http1.HeaderField, name []byte) []http1.HeaderField {
	out := add[:0]
	for _, f := range add {
		if !equalFoldBytes(f.Name, name) {
			out = append(out, f)
		}
	}
	clear(add[len(out):])
	return out
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		c, d := a[i], b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// editable reports whether a hook may edit the field name: a token that is
// not one of the fields the proxy writes itself (host, framing, connection
// management), whose edits could change how the peer reads the message.
func editable(name string) bool {
	if !isTokenString(name) {
		return false
	}
	for _, own := range [...]string{"host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"} {
		if len(name) == len(own) && equalFold(bytesOf(name), own) {
			return false
		}
	}
	return true
}

// isTokenString reports whether s is a non-empty HTTP token (RFC 9110 §5.6.2).
func isTokenString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s may be a field value: no CR, LF or NUL.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// setField, addField and removeField edit a pair of rewrite lists.
func setField(remove [][]byte, add []http1.HeaderField, name, value string) ([][]byte, []http1.HeaderField) {
	if !editable(name) || !validValue(value) {
		return remove, add
	}
	n := bytesOf(name)
	add = dropAdded(add, n)
	return append(remove, n), append(add, http1.HeaderField{Name: n, Value: bytesOf(value)})
}

func addField(add []http1.HeaderField, name, value string) []http1.HeaderField {
	if !editable(name) || !validValue(value) {
		return add
	}
	return append(add, http1.HeaderField{Name: bytesOf(name), Value: bytesOf(value)})
}

func removeField(remove [][]byte, add []http1.HeaderField, name string) ([][]byte, []http1.HeaderField) {
	if !editable(name) {
		return remove, add
	}
	n := bytesOf(name)
	return append(remove, n), dropAdded(add, n)
}

// useGroup makes the backend group named name the exchange's backend, for
// UseBackendGroup.
func (x *Exchange) useGroup(name string) bool {
	if x.listener == nil {
		return false
	}
	g := x.listener.Group(name)
	if g == nil {
		return false
	}
	x.fBackend = compiled.Backend{Group: g, Weight: 1}
	x.backend = &x.fBackend
	return true
}

// groupName returns the name of the exchange's backend group, or "".
func (x *Exchange) groupName() string {
	if x.group != nil {
		return x.group.Name
	}
	if x.backend != nil && x.backend.Group != nil {
		return x.backend.Group.Name
	}
	return ""
}

// The read side is the request view a selection algorithm's Keyer gets.
func (h *reqHandle) view() *requestView { return (*requestView)(h.s.x) }

func (h *reqHandle) Method() []byte                    { return h.view().Method() }
func (h *reqHandle) Host() []byte                      { return h.view().Host() }
func (h *reqHandle) Path() []byte                      { return h.view().Path() }
func (h *reqHandle) Query() []byte                     { return h.view().Query() }
func (h *reqHandle) Header(name string) ([]byte, bool) { return h.view().Header(name) }
func (h *reqHandle) Client() netip.Addr                { return h.view().Client() }
func (h *reqHandle) Listener() string                  { return h.s.x.listener.Name }
func (h *reqHandle) Route() string                     { return h.s.x.route.Name }
func (h *reqHandle) BackendGroup() string              { return h.s.x.groupName() }

func (h *reqHandle) SetHeader(name, value string) {
	x := h.s.x
	x.fRemove, x.fAdd = setField(x.fRemove, x.fAdd, name, value)
}

func (h *reqHandle) AddHeader(name, value string) {
	x := h.s.x
	x.fAdd = addField(x.fAdd, name, value)
}

func (h *reqHandle) RemoveHeader(name string) {
	x := h.s.x
	x.fRemove, x.fAdd = removeField(x.fRemove, x.fAdd, name)
}

func (h *reqHandle) Respond(status int, body string) {
	x := h.s.x
	if x.fStatus == 0 {
		x.fStatus, x.fBody = status, body
	}
}

func (h *reqHandle) UseBackendGroup(name string) bool {
	if h.upstream {
		return false
	}
	return h.s.x.useGroup(name)
}

func (h *respHandle) Status() int { return h.s.x.res.Status }
func (h *respHandle) Header(name string) ([]byte, bool) {
	x := h.s.x
	return x.res.Lookup(x.up.buf[x.up.r:], name)
}
func (h *respHandle) Listener() string     { return h.s.x.listener.Name }
func (h *respHandle) Route() string        { return h.s.x.route.Name }
func (h *respHandle) BackendGroup() string { return h.s.x.groupName() }

func (h *respHandle) SetHeader(name, value string) {
	x := h.s.x
	x.remove, x.add = setField(x.remove, x.add, name, value)
}

func (h *respHandle) AddHeader(name, value string) {
	x := h.s.x
	x.add = addField(x.add, name, value)
}

func (h *respHandle) RemoveHeader(name string) {
	x := h.s.x
	x.remove, x.add = removeField(x.remove, x.add, name)
}

func (h *connHandle) Client() netip.AddrPort { return h.s.remote }
func (h *connHandle) Local() netip.AddrPort  { return h.s.x.listener.Addr }
func (h *connHandle) Listener() string       { return h.s.x.listener.Name }

func (h *connHandle) Reject() {
	x := h.s.x
	if x.fStatus == 0 {
		x.fStatus = 403
	}
}

func (h *connHandle) UseBackendGroup(name string) bool { return h.s.x.useGroup(name) }
