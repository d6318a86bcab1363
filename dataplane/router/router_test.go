package router

import (
	"fmt"
	"strings"
	"testing"
)

// hdrs is a Headers implementation over preallocated values, as a parser
// would provide.
type hdrs struct {
	names  []string
	values [][]byte
}

func (h *hdrs) Header(name string) ([]byte, bool) {
	for i, n := range h.names {
		if strings.EqualFold(n, name) {
			return h.values[i], true
		}
	}
	return nil, false
}

func mkHdrs(kv ...string) *hdrs {
	h := &hdrs{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.names = append(h.names, kv[i])
		h.values = append(h.values, []byte(kv[i+1]))
	}
	return h
}

// req describes a request in tests; the path may carry "?query".
type req struct {
	host, path, method string
	headers            []string
}

func (r req) view() *RequestView {
	v := &RequestView{Host: []byte(r.host), Method: []byte(r.method)}
	if v.Method == nil {
		v.Method = []byte("GET")
	}
	p, q, _ := strings.Cut(r.path, "?")
	v.Path, v.Query = []byte(p), []byte(q)
	if len(r.headers) > 0 {
		v.Headers = mkHdrs(r.headers...)
	}
	return v
}

func mustBuild(t *testing.T, vhs []VirtualHost) *Table {
	t.Helper()
	tbl, err := Build(vhs)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return tbl
}

// expect checks that r selects the route whose Action is want (-1: none).
func expect(t *testing.T, tbl *Table, r req, want int) {
	t.Helper()
	action, idx, ok := tbl.Match(r.view())
	if want < 0 {
		if ok {
			t.Errorf("%+v: got action %d (route %d), want no match", r, action, idx)
		}
		return
	}
	if !ok || action != want {
		t.Errorf("%+v: got action %d ok=%v, want %d", r, action, ok, want)
	}
}

func prefix(v string) Match { return Match{Path: PathMatch{Type: PathPrefix, Value: v}} }
func exact(v string) Match  { return Match{Path: PathMatch{Type: PathExact, Value: v}} }
func regex(v string) Match  { return Match{Path: PathMatch{Type: PathRegex, Value: v}} }

// rt makes a route whose Action is action.
func rt(action int, ms ...Match) Route {
	return Route{Name: fmt.Sprint("r", action), Action: action, Matches: ms}
}

func TestHostSelection(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Name: "exact", Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1)}},
		{Name: "wild", Hostnames: []string{"*.example.com"}, Routes: []Route{rt(2)}},
		{Name: "wild-long", Hostnames: []string{"*.foo.example.com"}, Routes: []Route{rt(3)}},
		{Name: "apex", Hostnames: []string{"example.com"}, Routes: []Route{rt(4)}},
		{Name: "all", Routes: []Route{rt(9)}},
	})
	cases := []struct {
		host string
		want int
	}{
		{"a.example.com", 1},          // exact beats wildcard
		{"b.example.com", 2},          // wildcard
		{"a.b.example.com", 2},        // wildcard spans labels
		{"x.foo.example.com", 3},      // longest suffix wins
		{"x.y.foo.example.com", 3},    // longest suffix, many labels
		{"foo.example.com", 2},        // "*.foo.example.com" needs a label before foo
		{"example.com", 4},            // wildcard does not match the apex
		{"other.org", 9},              // catch-all
		{"", 9},                       // no host
		{".example.com", 9},           // no label before the dot
		{"xexample.com", 9},           // suffix must start at a dot
		{strings.Repeat("a", 300), 9}, // too long for any hostname
	}
	for _, c := range cases {
		expect(t, tbl, req{host: c.host, path: "/"}, c.want)
	}
}

func TestHostStarIsCatchAllAndNoCatchAll(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1)}},
		{Hostnames: []string{"*"}, Routes: []Route{rt(2)}},
	})
	expect(t, tbl, req{host: "a.example.com", path: "/"}, 1)
	expect(t, tbl, req{host: "zzz", path: "/"}, 2)

	tbl = mustBuild(t, []VirtualHost{
		{Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1)}},
	})
	expect(t, tbl, req{host: "b.example.com", path: "/"}, -1)

	tbl = mustBuild(t, nil)
	expect(t, tbl, req{host: "b.example.com", path: "/"}, -1)
}

func TestHostCaseAndPort(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Hostnames: []string{"Api.Example.COM"}, Routes: []Route{rt(1)}},
		{Hostnames: []string{"*.Example.com"}, Routes: []Route{rt(2)}},
		{Routes: []Route{rt(9)}},
	})
	cases := []struct {
		host string
		want int
	}{
		{"api.example.com", 1},
		{"API.EXAMPLE.COM", 1},
		{"api.example.com:8080", 1},
		{"Api.Example.Com:443", 1},
		{"api.example.com:", 1},
		{"X.EXAMPLE.com:80", 2},
		{"[::1]:8080", 9},
		{"[::1]", 9},
		{"10.0.0.1:80", 9},
	}
	for _, c := range cases {
		expect(t, tbl, req{host: c.host, path: "/"}, c.want)
	}
}

// A selected host does not fall back to a less specific host when none of
// its routes match.
func TestHostNoFallback(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1, prefix("/a"))}},
		{Hostnames: []string{"*.example.com"}, Routes: []Route{rt(2, prefix("/b"))}},
		{Routes: []Route{rt(9)}},
	})
	expect(t, tbl, req{host: "a.example.com", path: "/a"}, 1)
	expect(t, tbl, req{host: "a.example.com", path: "/b"}, -1)
	expect(t, tbl, req{host: "b.example.com", path: "/a"}, -1)
	expect(t, tbl, req{host: "b.example.com", path: "/b"}, 2)
}

func TestVirtualHostsWithSameHostnameMerge(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Hostnames: []string{"a.example.com", "A.EXAMPLE.COM"}, Routes: []Route{rt(1, prefix("/"))}},
		{Hostnames: []string{"a.example.com"}, Routes: []Route{rt(2, prefix("/api"))}},
	})
	expect(t, tbl, req{host: "a.example.com", path: "/api/x"}, 2)
	expect(t, tbl, req{host: "a.example.com", path: "/web"}, 1)
}

func TestPrefixElementBoundary(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Hostnames: []string{"slash"}, Routes: []Route{rt(1, prefix("/foo/"))}},
		{Hostnames: []string{"noslash"}, Routes: []Route{rt(2, prefix("/foo"))}},
		{Hostnames: []string{"root"}, Routes: []Route{rt(3, prefix("/"))}},
		{Hostnames: []string{"empty"}, Routes: []Route{rt(4, prefix(""))}},
		{Hostnames: []string{"deep"}, Routes: []Route{rt(5, prefix("/a/b/c"))}},
	})
	cases := []struct {
		host, path string
		want       int
	}{
		{"noslash", "/foo", 2},
		{"noslash", "/foo/", 2},
		{"noslash", "/foo/bar", 2},
		{"noslash", "/foo/bar/baz", 2},
		{"noslash", "/foobar", -1},
		{"noslash", "/fo", -1},
		{"noslash", "/", -1},
		{"noslash", "/FOO", -1}, // paths are case-sensitive
		{"slash", "/foo", 1},
		{"slash", "/foo/", 1},
		{"slash", "/foo/bar", 1},
		{"slash", "/foobar", -1},
		{"root", "/", 3},
		{"root", "/anything/at/all", 3},
		{"root", "", 3},
		{"empty", "/x", 4},
		{"deep", "/a/b/c", 5},
		{"deep", "/a/b/c/d", 5},
		{"deep", "/a/b/cd", -1},
		{"deep", "/a/b", -1},
	}
	for _, c := range cases {
		expect(t, tbl, req{host: c.host, path: c.path}, c.want)
	}
}

func TestExactPath(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{rt(1, exact("/foo"))}}})
	expect(t, tbl, req{path: "/foo"}, 1)
	expect(t, tbl, req{path: "/foo/"}, -1)
	expect(t, tbl, req{path: "/foo/bar"}, -1)
	expect(t, tbl, req{path: "/Foo"}, -1)
	expect(t, tbl, req{path: "/foo?x=1"}, 1) // query is separate
}

func TestRegexPathIsAnchored(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{rt(1, regex(`/v[0-9]+/items`))}}})
	expect(t, tbl, req{path: "/v2/items"}, 1)
	expect(t, tbl, req{path: "/v22/items"}, 1)
	expect(t, tbl, req{path: "/v2/items/1"}, -1)
	expect(t, tbl, req{path: "/x/v2/items"}, -1)
}

func TestEmptyMatchesMatchEverything(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{{Action: 7}}}})
	expect(t, tbl, req{host: "x", path: "/any/path", method: "DELETE"}, 7)
}

// TestPrecedence covers each Gateway API precedence rule in turn. In each
// case the route with Action 1 must win over the route with Action 2 for
// the request, whatever the input order.
func TestPrecedence(t *testing.T) {
	old := OrderKey{CreationUnixNano: 100, Namespace: "ns", Name: "r"}
	type tc struct {
		name   string
		winner Route // Action forced to 1
		loser  Route // Action forced to 2
		req    req
	}
	m := func(mm Match, f func(*Match)) Match { f(&mm); return mm }
	withMethod := func(mm *Match) { mm.Method = "GET" }
	oneHeader := func(mm *Match) { mm.Headers = []HeaderMatch{{Name: "x-a", Value: "1"}} }
	twoHeaders := func(mm *Match) {
		mm.Headers = []HeaderMatch{{Name: "x-a", Value: "1"}, {Name: "x-b", Value: "2"}}
	}
	oneQuery := func(mm *Match) { mm.Query = []QueryMatch{{Name: "a", Value: "1"}} }
	twoQueries := func(mm *Match) { mm.Query = []QueryMatch{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}} }
	full := req{path: "/foo/bar?a=1&b=2", method: "GET", headers: []string{"X-A", "1", "X-B", "2"}}

	cases := []tc{
		{"exact over prefix of same path", Route{Matches: []Match{exact("/foo/bar")}}, Route{Matches: []Match{prefix("/foo/bar")}}, full},
		{"exact over longer prefix spelling", Route{Matches: []Match{exact("/foo/bar")}}, Route{Matches: []Match{prefix("/foo/bar/")}}, full},
		{"exact over regex", Route{Matches: []Match{exact("/foo/bar")}}, Route{Matches: []Match{regex("/foo/.*")}}, full},
		{
			"exact without conditions over prefix with all",
			Route{Matches: []Match{exact("/foo/bar")}},
			Route{Matches: []Match{m(prefix("/foo/bar"), func(mm *Match) { withMethod(mm); twoHeaders(mm); twoQueries(mm) })}},
			full,
		},
		{"regex over longest prefix", Route{Matches: []Match{regex("/f.*")}}, Route{Matches: []Match{prefix("/foo/bar")}}, full},
		{"longer regex over shorter regex", Route{Matches: []Match{regex("/foo/ba.")}}, Route{Matches: []Match{regex("/foo/.*")}}, full},
		{"longest prefix", Route{Matches: []Match{prefix("/foo/bar")}}, Route{Matches: []Match{prefix("/foo")}}, full},
		{"longest prefix over root", Route{Matches: []Match{prefix("/foo")}}, Route{Matches: []Match{prefix("/")}}, full},
		{"trailing slash ranks longer", Route{Matches: []Match{prefix("/foo/")}}, Route{Matches: []Match{prefix("/foo")}}, full},
		{"longer prefix over method", Route{Matches: []Match{prefix("/foo/bar")}}, Route{Matches: []Match{m(prefix("/foo"), withMethod)}}, full},
		{"method", Route{Matches: []Match{m(prefix("/foo"), withMethod)}}, Route{Matches: []Match{prefix("/foo")}}, full},
		{"method over headers", Route{Matches: []Match{m(prefix("/foo"), withMethod)}}, Route{Matches: []Match{m(prefix("/foo"), twoHeaders)}}, full},
		{"more headers", Route{Matches: []Match{m(prefix("/foo"), twoHeaders)}}, Route{Matches: []Match{m(prefix("/foo"), oneHeader)}}, full},
		{"headers over query", Route{Matches: []Match{m(prefix("/foo"), oneHeader)}}, Route{Matches: []Match{m(prefix("/foo"), twoQueries)}}, full},
		{"more query params", Route{Matches: []Match{m(prefix("/foo"), twoQueries)}}, Route{Matches: []Match{m(prefix("/foo"), oneQuery)}}, full},
		{
			"older route",
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "z", Name: "z"}},
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 2, Namespace: "a", Name: "a"}},
			full,
		},
		{
			"alphabetical namespace",
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "a", Name: "z"}},
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "b", Name: "a"}},
			full,
		},
		{
			"alphabetical name",
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "a", Name: "a"}},
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "a", Name: "b"}},
			full,
		},
		// "a-b/x" < "a/x" because '-' sorts before '/': the comparison is on
		// the joined string, as the specification words it.
		{
			"alphabetical namespace/name string",
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{Namespace: "a-b", Name: "x"}},
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{Namespace: "a", Name: "x"}},
			full,
		},
		{
			"rule order",
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "a", Name: "a", Rule: 0}},
			Route{Matches: []Match{prefix("/foo")}, Order: OrderKey{CreationUnixNano: 1, Namespace: "a", Name: "a", Rule: 1}},
			full,
		},
		{
			"more specific beats older",
			Route{Matches: []Match{m(prefix("/foo"), oneQuery)}, Order: OrderKey{CreationUnixNano: 9}},
			Route{Matches: []Match{prefix("/foo")}, Order: old},
			full,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, l := c.winner, c.loser
			w.Action, l.Action = 1, 2
			for _, order := range [][]Route{{w, l}, {l, w}} {
				tbl := mustBuild(t, []VirtualHost{{Routes: order}})
				expect(t, tbl, c.req, 1)
			}
			// Also across two virtual hosts merged on the catch-all.
			tbl := mustBuild(t, []VirtualHost{{Routes: []Route{l}}, {Hostnames: []string{"*"}, Routes: []Route{w}}})
			expect(t, tbl, c.req, 1)
		})
	}
}

func TestMatchOrderWithinRoute(t *testing.T) {
	// Two identical matches in one route: the first one wins; both belong
	// to the same route, so check the route index and that a later, more
	// specific match still outranks it.
	r := Route{Action: 1, Matches: []Match{prefix("/a"), prefix("/a"), exact("/a/b")}}
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{r}}})
	expect(t, tbl, req{path: "/a/x"}, 1)
	expect(t, tbl, req{path: "/a/b"}, 1)

	// Rule order vs match order: rule 0's second match beats rule 1's first.
	r0 := Route{Action: 1, Order: OrderKey{Rule: 0}, Matches: []Match{exact("/nope"), prefix("/a")}}
	r1 := Route{Action: 2, Order: OrderKey{Rule: 1}, Matches: []Match{prefix("/a")}}
	for _, order := range [][]Route{{r0, r1}, {r1, r0}} {
		tbl := mustBuild(t, []VirtualHost{{Routes: order}})
		expect(t, tbl, req{path: "/a"}, 1)
	}
}

// A more specific match whose conditions fail falls through to the next
// candidate.
func TestFallThroughToLessSpecific(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{
		rt(1, Match{Path: PathMatch{Type: PathExact, Value: "/a/b"}, Method: "POST"}),
		rt(2, Match{Path: PathMatch{Type: PathRegex, Value: "/a/.*"}, Headers: []HeaderMatch{{Name: "x", Value: "y"}}}),
		rt(3, Match{Path: PathMatch{Value: "/a/b"}, Query: []QueryMatch{{Name: "q", Value: "1"}}}),
		rt(4, prefix("/a")),
		rt(5, prefix("/")),
	}}})
	expect(t, tbl, req{path: "/a/b", method: "POST"}, 1)
	expect(t, tbl, req{path: "/a/b", headers: []string{"x", "y"}}, 2)
	expect(t, tbl, req{path: "/a/b?q=1"}, 3)
	expect(t, tbl, req{path: "/a/b"}, 4)
	expect(t, tbl, req{path: "/b"}, 5)
}

func TestMethodMatch(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{rt(1, Match{Method: "POST"})}}})
	expect(t, tbl, req{path: "/", method: "POST"}, 1)
	expect(t, tbl, req{path: "/", method: "GET"}, -1)
	expect(t, tbl, req{path: "/", method: "post"}, -1)
}

func TestHeaderMatch(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{
		rt(1, Match{Headers: []HeaderMatch{{Name: "X-Env", Value: "Canary"}}}),
		rt(2, Match{Path: PathMatch{Value: "/re"}, Headers: []HeaderMatch{{Type: ValueRegex, Name: "x-ver", Value: `v[0-9]+`}}}),
		rt(3, Match{Path: PathMatch{Value: "/dup"}, Headers: []HeaderMatch{{Name: "x-d", Value: "1"}, {Name: "X-D", Value: "2"}}}),
	}}})
	cases := []struct {
		r    req
		want int
	}{
		{req{path: "/", headers: []string{"x-env", "Canary"}}, 1},
		{req{path: "/", headers: []string{"X-ENV", "Canary"}}, 1},  // name case-insensitive
		{req{path: "/", headers: []string{"x-env", "canary"}}, -1}, // value exact
		{req{path: "/", headers: []string{"x-env", "Canary "}}, -1},
		{req{path: "/", headers: []string{"x-other", "Canary"}}, -1},
		{req{path: "/"}, -1}, // nil Headers
		{req{path: "/re", headers: []string{"x-ver", "v12"}}, 2},
		{req{path: "/re", headers: []string{"x-ver", "v12b"}}, -1}, // anchored
		{req{path: "/re", headers: []string{"x-ver", "av12"}}, -1},
		{req{path: "/dup", headers: []string{"x-d", "1"}}, 3}, // only the first entry counts
		{req{path: "/dup", headers: []string{"x-d", "2"}}, -1},
	}
	for _, c := range cases {
		expect(t, tbl, c.r, c.want)
	}
}

// askedHeaders records the name it was asked for and answers "b".
type askedHeaders struct{ asked string }

func (h *askedHeaders) Header(name string) ([]byte, bool) {
	h.asked = name
	return []byte("b"), true
}

// TestHeaderLookupLowercase checks that Headers is asked with the lowercase name.
func TestHeaderLookupLowercase(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{rt(1, Match{Headers: []HeaderMatch{{Name: "X-A", Value: "b"}}})}}})
	h := &askedHeaders{}
	v := &RequestView{Path: []byte("/"), Headers: h}
	if a, _, ok := tbl.Match(v); !ok || a != 1 {
		t.Fatalf("got %d %v", a, ok)
	}
	if h.asked != "x-a" {
		t.Errorf("header looked up as %q, want lowercase", h.asked)
	}
}

func TestQueryMatch(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{{Routes: []Route{
		rt(1, Match{Query: []QueryMatch{{Name: "animal", Value: "whale"}}}),
		rt(2, Match{Path: PathMatch{Value: "/re"}, Query: []QueryMatch{{Type: ValueRegex, Name: "id", Value: `[0-9]{3}`}}}),
		rt(3, Match{Path: PathMatch{Value: "/sp"}, Query: []QueryMatch{{Name: "q", Value: "a b&c"}}}),
		rt(4, Match{Path: PathMatch{Value: "/re2"}, Query: []QueryMatch{{Type: ValueRegex, Name: "q", Value: `a b`}}}),
		rt(5, Match{Path: PathMatch{Value: "/empty"}, Query: []QueryMatch{{Name: "flag", Value: ""}}}),
	}}})
	cases := []struct {
		path string
		want int
	}{
		{"/?animal=whale", 1},
		{"/?x=1&animal=whale&y=2", 1},
		{"/?Animal=whale", -1}, // names are case-sensitive
		{"/?animal=Whale", -1},
		{"/?animal=dolphin&animal=whale", -1}, // the first value is used
		{"/?animal=whale&animal=dolphin", 1},
		{"/?anim%61l=wh%61le", 1}, // percent-decoded
		{"/?animal=whale%", -1},   // malformed escape kept literally
		{"/?animal", -1},
		{"/", -1},
		{"/re?id=123", 2},
		{"/re?id=1234", -1}, // anchored
		{"/re?id=%31%32%33", 2},
		{"/sp?q=a%20b%26c", 3},
		{"/sp?q=a+b%26c", -1}, // '+' is not a space
		{"/re2?q=a%20b", 4},
		{"/re2?q=a%20bc", -1},
		{"/empty?flag", 5},
		{"/empty?flag=", 5},
		{"/empty?flag=1", -1},
	}
	for _, c := range cases {
		expect(t, tbl, req{path: c.path}, c.want)
	}
}

func TestRouteAt(t *testing.T) {
	vhs := []VirtualHost{
		{Hostnames: []string{"a"}, Routes: []Route{rt(10, exact("/x")), rt(11, exact("/y"))}},
		{Hostnames: []string{"b"}, Routes: []Route{rt(20, exact("/x"))}},
	}
	tbl := mustBuild(t, vhs)
	if tbl.NumRoutes() != 3 {
		t.Fatalf("NumRoutes = %d", tbl.NumRoutes())
	}
	for _, c := range []struct {
		host, path string
		vh, r      int
	}{{"a", "/x", 0, 0}, {"a", "/y", 0, 1}, {"b", "/x", 1, 0}} {
		action, idx, ok := tbl.Match(req{host: c.host, path: c.path}.view())
		if !ok {
			t.Fatalf("%s%s: no match", c.host, c.path)
		}
		vh, r := tbl.RouteAt(idx)
		if vh != c.vh || r != c.r || vhs[vh].Routes[r].Action != action {
			t.Errorf("%s%s: RouteAt(%d) = %d,%d", c.host, c.path, idx, vh, r)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name string
		vh   VirtualHost
	}{
		{"empty hostname", VirtualHost{Hostnames: []string{""}}},
		{"hostname with port", VirtualHost{Hostnames: []string{"a.com:80"}}},
		{"wildcard not first label", VirtualHost{Hostnames: []string{"a.*.com"}}},
		{"partial wildcard label", VirtualHost{Hostnames: []string{"*a.com"}}},
		{"bare wildcard dot", VirtualHost{Hostnames: []string{"*."}}},
		{"leading dot", VirtualHost{Hostnames: []string{".example.com"}}},
		{"empty label", VirtualHost{Hostnames: []string{"a..example.com"}}},
		{"exact without slash", VirtualHost{Routes: []Route{rt(1, exact("foo"))}}},
		{"empty exact", VirtualHost{Routes: []Route{rt(1, exact(""))}}},
		{"prefix without slash", VirtualHost{Routes: []Route{rt(1, prefix("foo"))}}},
		{"bad path regex", VirtualHost{Routes: []Route{rt(1, regex("(["))}}},
		{"bad path type", VirtualHost{Routes: []Route{rt(1, Match{Path: PathMatch{Type: 9, Value: "/"}})}}},
		{"empty header name", VirtualHost{Routes: []Route{rt(1, Match{Headers: []HeaderMatch{{Value: "x"}}})}}},
		{"bad header regex", VirtualHost{Routes: []Route{rt(1, Match{Headers: []HeaderMatch{{Type: ValueRegex, Name: "a", Value: "("}}})}}},
		{"bad header type", VirtualHost{Routes: []Route{rt(1, Match{Headers: []HeaderMatch{{Type: 7, Name: "a"}}})}}},
		{"empty query name", VirtualHost{Routes: []Route{rt(1, Match{Query: []QueryMatch{{Value: "x"}}})}}},
		{"bad query regex", VirtualHost{Routes: []Route{rt(1, Match{Query: []QueryMatch{{Type: ValueRegex, Name: "a", Value: "+"}}})}}},
	}
	for _, c := range cases {
		_, err := Build([]VirtualHost{c.vh})
		if err == nil {
			t.Errorf("%s: Build succeeded", c.name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "router: ") {
			t.Errorf("%s: error %q lacks the package prefix", c.name, msg)
		}
	}
}

// allocTable has every kind of match, so that the allocation test exercises
// every code path of Match.
func allocTable(t testing.TB) (*Table, []*RequestView) {
	tbl, err := Build([]VirtualHost{
		{Hostnames: []string{"api.example.com"}, Routes: []Route{
			rt(1, exact("/healthz")),
			rt(2, regex(`/v[0-9]+/items/[0-9]+`)),
			rt(3, Match{
				Path: PathMatch{Value: "/users"}, Method: "POST",
				Headers: []HeaderMatch{{Name: "X-Tenant", Value: "acme"}, {Type: ValueRegex, Name: "x-ver", Value: `v[12]`}},
				Query:   []QueryMatch{{Name: "a", Value: "b c"}, {Type: ValueRegex, Name: "id", Value: `[a-z]+ [0-9]+`}},
			}),
			rt(4, prefix("/users")),
		}},
		{Hostnames: []string{"*.example.com"}, Routes: []Route{rt(5, prefix("/static/"))}},
		{Routes: []Route{rt(6, exact("/only"))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := mkHdrs("x-tenant", "acme", "X-Ver", "v2")
	views := []*RequestView{
		{Host: []byte("API.example.com:443"), Path: []byte("/healthz"), Method: []byte("GET")},
		{Host: []byte("api.example.com"), Path: []byte("/v1/items/42"), Method: []byte("GET")},
		{Host: []byte("api.example.com"), Path: []byte("/users/7/posts"), Query: []byte("z=1&a=b%20c&id=abc%2012"), Method: []byte("POST"), Headers: h},
		{Host: []byte("api.example.com"), Path: []byte("/users/7"), Query: []byte("a=x"), Method: []byte("POST"), Headers: h},
		{Host: []byte("a.b.example.com"), Path: []byte("/static/app.js"), Method: []byte("GET")},
		{Host: []byte("elsewhere.org"), Path: []byte("/nothing"), Method: []byte("GET")},
	}
	return tbl, views
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl, views := allocTable(t)
	want := []int{1, 2, 3, 4, 5, -1}
	for i, v := range views {
		a, _, ok := tbl.Match(v)
		if (want[i] < 0 && ok) || (want[i] >= 0 && a != want[i]) {
			t.Fatalf("view %d: got %d %v, want %d", i, a, ok, want[i])
		}
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, v := range views {
			tbl.Match(v)
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per run", allocs)
	}
}

// benchTable builds 1,000 routes over 100 hosts (90 exact hostnames and 10
// wildcards), 10 routes each, mixing exact, prefix, regex, method, header
// and query matches, and returns requests hitting a spread of them.
func benchTable(b *testing.B) (*Table, []*RequestView) {
	var vhs []VirtualHost
	for h := range 100 {
		host := fmt.Sprintf("svc%d.example.com", h)
		if h%10 == 9 {
			host = fmt.Sprintf("*.zone%d.example.net", h)
		}
		vh := VirtualHost{Name: host, Hostnames: []string{host}}
		for r := range 10 {
			route := Route{
				Name: fmt.Sprintf("h%d-r%d", h, r), Action: h*10 + r,
				Order: OrderKey{CreationUnixNano: int64(r), Namespace: "default", Name: fmt.Sprintf("route-%d", h)},
			}
			switch r {
			case 0:
				route.Matches = []Match{exact("/healthz")}
			case 1:
				route.Matches = []Match{exact(fmt.Sprintf("/api/v1/svc%d/status", h))}
			case 2:
				route.Matches = []Match{{Path: PathMatch{Value: "/api/v1/users"}, Method: "POST"}}
			case 3:
				route.Matches = []Match{{
					Path:    PathMatch{Value: "/api/v1/users"},
					Headers: []HeaderMatch{{Name: "x-canary", Value: "true"}},
				}}
			case 4:
				route.Matches = []Match{prefix("/api/v1/users")}
			case 5:
				route.Matches = []Match{{
					Path:  PathMatch{Value: "/api/v2"},
					Query: []QueryMatch{{Name: "beta", Value: "1"}},
				}}
			case 6:
				route.Matches = []Match{prefix("/api/v2"), prefix("/api/v3")}
			case 7:
				route.Matches = []Match{prefix("/static/")}
			case 8:
				route.Matches = []Match{regex(`/files/[a-z0-9]+\.txt`)}
			case 9:
				route.Matches = []Match{prefix("/")}
			}
			vh.Routes = append(vh.Routes, route)
		}
		vhs = append(vhs, vh)
	}
	tbl, err := Build(vhs)
	if err != nil {
		b.Fatal(err)
	}
	if tbl.NumRoutes() != 1000 {
		b.Fatalf("%d routes", tbl.NumRoutes())
	}
	canary := mkHdrs("User-Agent", "bench", "X-Canary", "true", "Accept", "*/*")
	plain := mkHdrs("User-Agent", "bench", "Accept", "*/*")
	var views []*RequestView
	for h := 0; h < 100; h += 7 {
		host := fmt.Sprintf("svc%d.example.com", h)
		if h%10 == 9 {
			host = fmt.Sprintf("web.zone%d.example.net", h)
		}
		hb := []byte(host)
		views = append(views,
			&RequestView{Host: hb, Path: []byte("/healthz"), Method: []byte("GET"), Headers: plain},
			&RequestView{Host: hb, Path: []byte("/api/v1/users/123/orders"), Method: []byte("GET"), Headers: canary},
			&RequestView{Host: hb, Path: []byte("/api/v1/users/123"), Method: []byte("GET"), Headers: plain},
			&RequestView{Host: hb, Path: []byte("/api/v2/items"), Query: []byte("page=2&beta=1"), Method: []byte("GET"), Headers: plain},
			&RequestView{Host: hb, Path: []byte("/static/css/site.css"), Method: []byte("GET"), Headers: plain},
			&RequestView{Host: hb, Path: []byte("/index.html"), Method: []byte("GET"), Headers: plain},
		)
	}
	return tbl, views
}

func BenchmarkMatch(b *testing.B) {
	tbl, views := benchTable(b)
	for _, v := range views {
		if _, _, ok := tbl.Match(v); !ok {
			b.Fatalf("no match for %s%s", v.Host, v.Path)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tbl.Match(views[i%len(views)])
	}
}

func BenchmarkMatchKinds(b *testing.B) {
	tbl, _ := benchTable(b)
	h := mkHdrs("User-Agent", "bench", "X-Canary", "true")
	cases := []struct {
		name string
		v    *RequestView
	}{
		{"exact", &RequestView{Host: []byte("svc42.example.com"), Path: []byte("/healthz"), Method: []byte("GET")}},
		{"prefix-deep", &RequestView{Host: []byte("svc42.example.com"), Path: []byte("/api/v1/users/123/orders/456/items"), Method: []byte("GET")}},
		{"header", &RequestView{Host: []byte("SVC42.Example.com:8443"), Path: []byte("/api/v1/users/1"), Method: []byte("GET"), Headers: h}},
		{"query", &RequestView{Host: []byte("svc42.example.com"), Path: []byte("/api/v2/x"), Query: []byte("a=1&b=2&beta=1"), Method: []byte("GET")}},
		{"regex", &RequestView{Host: []byte("svc42.example.com"), Path: []byte("/files/report42.txt"), Method: []byte("GET")}},
		{"wildcard-host", &RequestView{Host: []byte("a.b.zone19.example.net"), Path: []byte("/static/x.js"), Method: []byte("GET")}},
		{"unknown-host", &RequestView{Host: []byte("nope.example.org"), Path: []byte("/"), Method: []byte("GET")}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(c.v)
			}
		})
	}
}

// TestConcurrentMatch runs Match on one Table from four goroutines, as the
// workers do, over requests that reach every kind of match (regular
// expressions on query values included, which borrow decoding buffers from a
// sync.Pool): every result must equal the sequential one. Under -race (make
// test-race) it also checks that Match only reads the table.
func TestConcurrentMatch(t *testing.T) {
	tbl, views := allocTable(t)
	type result struct {
		action, route int
		ok            bool
	}
	want := make([]result, len(views))
	for i, v := range views {
		a, r, ok := tbl.Match(v)
		want[i] = result{a, r, ok}
	}
	if want[len(want)-1].ok || !want[0].ok {
		t.Fatalf("reference results %v: the first view must match, the last must not", want)
	}
	const goroutines, rounds = 4, 1000
	errs := make(chan string, goroutines)
	for g := range goroutines {
		go func() {
			for range rounds {
				for j := range views {
					// Start each goroutine at another view, so that they run
					// different kinds of match at the same time.
					i := (j + g) % len(views)
					if a, r, ok := tbl.Match(views[i]); (result{a, r, ok}) != want[i] {
						errs <- fmt.Sprintf("goroutine %d, view %d: got %v, sequential %v", g, i, result{a, r, ok}, want[i])
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for range goroutines {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}

// TestMatchHost selects by host alone, as TLS listeners do with the server
// name: exact, longest wildcard suffix, catch-all (also for no name), no port
// stripped, and only routes without conditions; no allocation.
func TestMatchHost(t *testing.T) {
	tbl := mustBuild(t, []VirtualHost{
		{Name: "exact", Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1)}},
		{Name: "wild", Hostnames: []string{"*.example.com"}, Routes: []Route{rt(2)}},
		{Name: "wild-long", Hostnames: []string{"*.foo.example.com"}, Routes: []Route{rt(3)}},
		{Name: "cond", Hostnames: []string{"c.example.org"}, Routes: []Route{rt(5, exact("/x"))}},
		{Name: "all", Routes: []Route{rt(9)}},
	})
	cases := []struct {
		name string
		want int
	}{
		{"a.example.com", 1},
		{"A.EXAMPLE.com", 1},
		{"b.example.com", 2},
		{"x.foo.example.com", 3},
		{"example.com", 9},
		{"a.example.com:443", 9}, // a server name has no port
		{"", 9},
		{"c.example.org", -1}, // its only route has conditions
		{strings.Repeat("a", 256), 9},
	}
	for _, c := range cases {
		got, ok := tbl.MatchHost([]byte(c.name))
		if (c.want < 0) == ok || (ok && got != c.want) {
			t.Errorf("MatchHost(%q) = %d, %v; want %d", c.name, got, ok, c.want)
		}
	}
	if _, ok := mustBuild(t, []VirtualHost{{Hostnames: []string{"a.example.com"}, Routes: []Route{rt(1)}}}).MatchHost(nil); ok {
		t.Error("no name and no catch-all matched")
	}
	name := []byte("x.foo.example.com")
	if n := testing.AllocsPerRun(100, func() { tbl.MatchHost(name) }); n != 0 {
		t.Errorf("MatchHost allocates %v times", n)
	}
}
