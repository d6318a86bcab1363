package router

// PathMatchType selects how a [PathMatch] compares the request path.
type PathMatchType uint8

const (
	// PathPrefix matches a path-element prefix. It is the zero value, as in
	// Gateway API, and an empty value means "/".
	PathPrefix PathMatchType = iota
	// PathExact matches the whole path byte for byte.
	PathExact
	// PathRegex matches the whole path against an RE2 regular expression.
	PathRegex
)

// String returns the Gateway API name of t.
func (t PathMatchType) String() string {
	switch t {
	case PathPrefix:
		return "PathPrefix"
	case PathExact:
		return "Exact"
	case PathRegex:
		return "RegularExpression"
	}
	return "PathMatchType(?)"
}

// ValueMatchType selects how a header or query parameter value is compared.
type ValueMatchType uint8

const (
	// ValueExact compares the value byte for byte. It is the zero value.
	ValueExact ValueMatchType = iota
	// ValueRegex matches the whole value against an RE2 regular expression.
	ValueRegex
)

// String returns the Gateway API name of t.
func (t ValueMatchType) String() string {
	switch t {
	case ValueExact:
		return "Exact"
	case ValueRegex:
		return "RegularExpression"
	}
	return "ValueMatchType(?)"
}

// PathMatch is the path condition of a [Match].
type PathMatch struct {
	// Type is the kind of comparison; the zero value is PathPrefix.
	Type PathMatchType
	// Value is the path, prefix or regular expression. Exact and prefix
	// values must start with "/"; an empty prefix means "/".
	Value string
}

// HeaderMatch is one header condition of a [Match].
type HeaderMatch struct {
	// Type is the kind of value comparison; the zero value is ValueExact.
	Type ValueMatchType
	// Name is the header name, compared case-insensitively.
	Name string
	// Value is the expected value or the regular expression.
	Value string
}

// QueryMatch is one query parameter condition of a [Match].
type QueryMatch struct {
	// Type is the kind of value comparison; the zero value is ValueExact.
	Type ValueMatchType
	// Name is the parameter name, compared exactly after percent-decoding.
	Name string
	// Value is the expected (decoded) value or the regular expression.
	Value string
}

// Match is one set of conditions of a [Route]; all of them must hold.
type Match struct {
	// Path is the path condition; the zero value matches every path.
	Path PathMatch
	// Headers are header conditions.
	Headers []HeaderMatch
	// Query are query parameter conditions.
	Query []QueryMatch
	// Method, when not empty, must equal the request method.
	Method string
}

// OrderKey carries the tie-breakers Gateway API defines across and within
// routes, after the match-specificity keys.
type OrderKey struct {
	// CreationUnixNano is the creation timestamp of the HTTPRoute; older
	// routes win.
	CreationUnixNano int64
	// Namespace and Name identify the HTTPRoute; "{namespace}/{name}"
	// sorting first alphabetically wins.
	Namespace, Name string
	// Rule is the index of the rule within the HTTPRoute; lower wins. The
	// match index is the position of a match in [Route].Matches.
	Rule int
}

// Route is one HTTPRoute rule as seen by the router: a set of alternative
// matches and the action to run when one of them wins.
type Route struct {
	// Name identifies the route in error messages.
	Name string
	// Matches are alternatives; an empty list matches every request.
	Matches []Match
	// Order carries the Gateway API tie-breakers.
	Order OrderKey
	// Action is an opaque value returned by [Table.Match], typically an
	// index into the caller's backends and filters.
	Action int
}

// VirtualHost groups the routes that serve a set of hostnames.
type VirtualHost struct {
	// Name identifies the virtual host in error messages.
	Name string
	// Hostnames are exact ("a.example.com") or wildcard ("*.example.com")
	// hostnames. No hostnames, or "*", makes this the catch-all.
	Hostnames []string
	// Routes are the routes serving the hostnames.
	Routes []Route
}

// Headers gives the router read access to request headers.
//
// Header is called with a lowercase name and must match it against the
// request's header names case-insensitively, returning the value (normally
// of the first occurrence) and whether the header is present. It must not
// allocate; implement it on a pointer to a long-lived struct.
type Headers interface {
	Header(name string) ([]byte, bool)
}

// RequestView is the part of a request the router looks at. The caller
// fills it from its parser's buffers; the router neither retains nor
// modifies it.
type RequestView struct {
	// Host is the Host header or authority; a ":port" suffix is ignored and
	// the comparison is case-insensitive.
	Host []byte
	// Path is the request path without the query string.
	Path []byte
	// Query is the raw query string, without the leading "?".
	Query []byte
	// Method is the request method.
	Method []byte
	// Headers looks up request headers; nil means the request has none.
	Headers Headers
}
