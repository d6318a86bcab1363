package router

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// maxHostLen bounds the hosts the router lowercases on the stack. DNS names
// are at most 253 characters, so longer hosts can only hit the catch-all.
const maxHostLen = 255

// Table is a compiled, immutable route table for one listener. It is safe
// for concurrent use by any number of goroutines.
type Table struct {
	exact    map[string]*hostTable     // lowercase hostname
	wildcard map[string]*hostTable     // lowercase suffix including the dot: ".example.com"
	wildLens [maxHostLen/64 + 1]uint64 // bitset of the lengths of the keys of wildcard
	catchAll *hostTable                // nil when there is none
	routes   []routeLoc                // indexed by the routeIdx Match returns
}

// routeLoc maps a table-wide route index back to the input.
type routeLoc struct {
	vhost, route int32
}

// hostTable holds the candidates of one host entry.
type hostTable struct {
	exact      map[string][]candidate // exact path -> ranked candidates
	regex      []regexCandidate       // ranked
	prefix     map[string][]candidate // normalised prefix -> ranked candidates
	root       []candidate            // prefix "/" (normalised to "")
	prefixLens []uint64               // bitset of the lengths of the keys of prefix
	maxPrefix  int                    // longest key of prefix
}

// regexCandidate is a candidate guarded by a path regular expression.
type regexCandidate struct {
	re *regexp.Regexp
	candidate
}

// candidate is one compiled Match: its non-path conditions and its result.
type candidate struct {
	method  string
	headers []valueMatcher
	query   []valueMatcher
	action  int
	route   int
}

// valueMatcher compares one header or query parameter.
type valueMatcher struct {
	name  string // lowercase for headers, decoded for query parameters
	value string // exact value when re is nil
	re    *regexp.Regexp
}

// pathClass orders path match kinds; lower ranks first.
type pathClass uint8

const (
	classExact pathClass = iota
	classRegex
	classPrefix
)

// entry is a candidate with its ranking keys, used only while building.
type entry struct {
	class   pathClass
	key     string // exact path, regex source or normalised prefix
	length  int    // length of the configured path value
	re      *regexp.Regexp
	method  bool
	nHeader int
	nQuery  int
	created int64
	nsName  string
	rule    int
	match   int
	seq     int // input order, the final tie-breaker
	cand    candidate
}

// Build compiles the virtual hosts of one listener into a Table. It returns
// an error for an invalid hostname, path, header or query match, or regular
// expression. The input is not retained.
func Build(listenerVHosts []VirtualHost) (*Table, error) {
	t := &Table{
		exact:    make(map[string]*hostTable),
		wildcard: make(map[string]*hostTable),
	}
	exact := make(map[string][]entry)
	wildcard := make(map[string][]entry)
	var catchAll []entry
	haveCatchAll := false
	regexes := make(map[string]*regexp.Regexp) // shares identical patterns
	seq := 0

	for vi := range listenerVHosts {
		vh := &listenerVHosts[vi]
		var entries []entry
		for ri := range vh.Routes {
			r := &vh.Routes[ri]
			idx := len(t.routes)
			t.routes = append(t.routes, routeLoc{vhost: int32(vi), route: int32(ri)})
			matches := r.Matches
			if len(matches) == 0 {
				matches = []Match{{}}
			}
			for mi := range matches {
				e, err := compileMatch(&matches[mi], regexes)
				if err != nil {
					return nil, fmt.Errorf("router: virtual host %q route %q match %d: %w", vh.Name, r.Name, mi, err)
				}
				e.created = r.Order.CreationUnixNano
				e.nsName = r.Order.Namespace + "/" + r.Order.Name
				e.rule = r.Order.Rule
				e.match = mi
				e.seq = seq
				seq++
				e.cand.action = r.Action
				e.cand.route = idx
				entries = append(entries, e)
			}
		}
		if len(vh.Hostnames) == 0 {
			catchAll = append(catchAll, entries...)
			haveCatchAll = true
			continue
		}
		seen := make(map[string]bool, len(vh.Hostnames))
		for _, hn := range vh.Hostnames {
			kind, key, err := parseHostname(hn)
			if err != nil {
				return nil, fmt.Errorf("router: virtual host %q: %w", vh.Name, err)
			}
			if seen[key] {
				continue // listed twice in one virtual host
			}
			seen[key] = true
			switch kind {
			case hostExact:
				exact[key] = append(exact[key], entries...)
			case hostWildcard:
				wildcard[key] = append(wildcard[key], entries...)
			case hostCatchAll:
				catchAll = append(catchAll, entries...)
				haveCatchAll = true
			}
		}
	}

	for k, es := range exact {
		t.exact[k] = buildHost(es)
	}
	for k, es := range wildcard {
		t.wildcard[k] = buildHost(es)
		t.wildLens[len(k)/64] |= 1 << (len(k) % 64)
	}
	if haveCatchAll {
		t.catchAll = buildHost(catchAll)
	}
	return t, nil
}

// NumRoutes returns the number of routes in the table; route indexes
// returned by Match are in [0, NumRoutes).
func (t *Table) NumRoutes() int { return len(t.routes) }

// RouteAt maps a route index returned by Match to the position of the route
// in the input of Build: listenerVHosts[vhost].Routes[route].
func (t *Table) RouteAt(routeIdx int) (vhost, route int) {
	l := t.routes[routeIdx]
	return int(l.vhost), int(l.route)
}

type hostKind uint8

const (
	hostExact hostKind = iota
	hostWildcard
	hostCatchAll
)

// parseHostname validates and lowercases a configured hostname. Wildcards
// are keyed by their suffix including the leading dot.
func parseHostname(hn string) (hostKind, string, error) {
	h := strings.ToLower(hn)
	switch {
	case h == "*":
		return hostCatchAll, "*", nil
	case h == "":
		return 0, "", errors.New("empty hostname")
	case strings.ContainsAny(h, ":/[] ") || strings.HasPrefix(h, ".") || strings.Contains(h, ".."):
		return 0, "", fmt.Errorf("invalid hostname %q", hn)
	case len(h) > maxHostLen:
		return 0, "", fmt.Errorf("hostname %q is too long", hn)
	case strings.HasPrefix(h, "*."):
		suffix := h[1:]
		if len(suffix) < 2 || strings.Contains(suffix, "*") || strings.HasPrefix(suffix, "..") {
			return 0, "", fmt.Errorf("invalid wildcard hostname %q", hn)
		}
		return hostWildcard, suffix, nil
	case strings.Contains(h, "*"):
		return 0, "", fmt.Errorf("invalid hostname %q: a wildcard must be the whole first label", hn)
	}
	return hostExact, h, nil
}

// compileMatch validates one Match and compiles it into an entry without
// its route-level keys.
func compileMatch(m *Match, regexes map[string]*regexp.Regexp) (entry, error) {
	var e entry
	switch m.Path.Type {
	case PathExact:
		if !strings.HasPrefix(m.Path.Value, "/") {
			return e, fmt.Errorf("exact path %q must start with \"/\"", m.Path.Value)
		}
		e.class, e.key, e.length = classExact, m.Path.Value, len(m.Path.Value)
	case PathPrefix:
		v := m.Path.Value
		if v == "" {
			v = "/"
		}
		if !strings.HasPrefix(v, "/") {
			return e, fmt.Errorf("path prefix %q must start with \"/\"", m.Path.Value)
		}
		e.class, e.key, e.length = classPrefix, strings.TrimRight(v, "/"), len(v)
	case PathRegex:
		re, err := compileRegex(m.Path.Value, regexes)
		if err != nil {
			return e, fmt.Errorf("path: %w", err)
		}
		e.class, e.key, e.length, e.re = classRegex, m.Path.Value, len(m.Path.Value), re
	default:
		return e, fmt.Errorf("unknown path match type %d", m.Path.Type)
	}

	e.cand.method = m.Method
	e.method = m.Method != ""

	for i, h := range m.Headers {
		if h.Name == "" {
			return e, fmt.Errorf("header match %d: empty name", i)
		}
		name := strings.ToLower(h.Name)
		if slices.ContainsFunc(e.cand.headers, func(v valueMatcher) bool { return v.name == name }) {
			continue // Gateway API: only the first entry for a name counts
		}
		vm, err := compileValue(name, h.Type, h.Value, regexes)
		if err != nil {
			return e, fmt.Errorf("header match %q: %w", h.Name, err)
		}
		e.cand.headers = append(e.cand.headers, vm)
	}
	for i, q := range m.Query {
		if q.Name == "" {
			return e, fmt.Errorf("query match %d: empty name", i)
		}
		if slices.ContainsFunc(e.cand.query, func(v valueMatcher) bool { return v.name == q.Name }) {
			continue
		}
		vm, err := compileValue(q.Name, q.Type, q.Value, regexes)
		if err != nil {
			return e, fmt.Errorf("query match %q: %w", q.Name, err)
		}
		e.cand.query = append(e.cand.query, vm)
	}
	e.nHeader, e.nQuery = len(e.cand.headers), len(e.cand.query)
	return e, nil
}

func compileValue(name string, typ ValueMatchType, value string, regexes map[string]*regexp.Regexp) (valueMatcher, error) {
	switch typ {
	case ValueExact:
		return valueMatcher{name: name, value: value}, nil
	case ValueRegex:
		re, err := compileRegex(value, regexes)
		if err != nil {
			return valueMatcher{}, err
		}
		return valueMatcher{name: name, re: re}, nil
	}
	return valueMatcher{}, fmt.Errorf("unknown value match type %d", typ)
}

// compileRegex compiles pattern anchored at both ends, sharing compiled
// expressions between identical patterns (a *regexp.Regexp is safe for
// concurrent use).
func compileRegex(pattern string, regexes map[string]*regexp.Regexp) (*regexp.Regexp, error) {
	if re, ok := regexes[pattern]; ok {
		return re, nil
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", pattern, err)
	}
	regexes[pattern] = re
	return re, nil
}

// compareEntries ranks entries; a negative result means a ranks first.
func compareEntries(a, b *entry) int {
	if c := cmp.Compare(a.class, b.class); c != 0 {
		return c
	}
	if c := cmp.Compare(b.length, a.length); c != 0 { // longer first
		return c
	}
	if a.method != b.method {
		if a.method {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(b.nHeader, a.nHeader); c != 0 {
		return c
	}
	if c := cmp.Compare(b.nQuery, a.nQuery); c != 0 {
		return c
	}
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	if c := strings.Compare(a.nsName, b.nsName); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rule, b.rule); c != 0 {
		return c
	}
	if c := cmp.Compare(a.match, b.match); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// buildHost ranks the entries of one host entry and distributes them to
// the lookup structures, keeping the rank order inside every bucket.
func buildHost(entries []entry) *hostTable {
	es := slices.Clone(entries)
	slices.SortFunc(es, func(a, b entry) int { return compareEntries(&a, &b) })

	ht := &hostTable{
		exact:  make(map[string][]candidate),
		prefix: make(map[string][]candidate),
	}
	for i := range es {
		e := &es[i]
		switch e.class {
		case classExact:
			ht.exact[e.key] = append(ht.exact[e.key], e.cand)
		case classRegex:
			ht.regex = append(ht.regex, regexCandidate{re: e.re, candidate: e.cand})
		case classPrefix:
			if e.key == "" {
				ht.root = append(ht.root, e.cand)
				continue
			}
			ht.prefix[e.key] = append(ht.prefix[e.key], e.cand)
			ht.maxPrefix = max(ht.maxPrefix, len(e.key))
		}
	}
	ht.prefixLens = make([]uint64, ht.maxPrefix/64+1)
	for k := range ht.prefix {
		ht.prefixLens[len(k)/64] |= 1 << (len(k) % 64)
	}
	return ht
}
