package translate

import (
	"strings"
)

// Hostnames here are lowercase DNS names, exact ("app.example.com") or with a
// wildcard leftmost label ("*.example.com", matching one or more labels in front of
// "example.com"). The empty string stands for "any hostname": a listener without a
// hostname, or a route without hostnames.

// isWildcard reports whether h is a wildcard hostname.
func isWildcard(h string) bool { return strings.HasPrefix(h, "*.") }

// covers reports whether every name matched by h is also matched by outer.
func covers(outer, h string) bool {
	switch {
	case outer == "":
		return true
	case h == "":
		return false
	case !isWildcard(outer):
		return outer == h
	}
	suffix := outer[1:] // ".example.com"
	if isWildcard(h) {
		return h == outer || strings.HasSuffix(h[1:], suffix)
	}
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix)
}

// intersect returns the hostname matching exactly the names matched by both the
// listener hostname and the route hostname, if any. Per the Gateway API one of
// the two always covers the other when they intersect.
func intersect(listener, route string) (string, bool) {
	switch {
	case covers(listener, route):
		return route, true
	case covers(route, listener):
		return listener, true
	}
	return "", false
}

// moreSpecific reports whether hostname a takes precedence over b when both match
// a request: exact names first, then wildcards with more labels after the "*",
// then the empty hostname.
func moreSpecific(a, b string) bool {
	switch {
	case a == "" || b == "":
		return b == "" && a != ""
	case isWildcard(a) != isWildcard(b):
		return !isWildcard(a)
	}
	return strings.Count(a, ".") > strings.Count(b, ".") ||
		strings.Count(a, ".") == strings.Count(b, ".") && len(a) > len(b)
}

// owner returns, among the listener hostnames hosts, the most specific one that
// covers h: the listener that requests for h belong to. ok is false when none
// covers it.
func owner(hosts []string, h string) (best string, ok bool) {
	for _, lh := range hosts {
		if !covers(lh, h) {
			continue
		}
		if !ok || moreSpecific(lh, best) {
			best, ok = lh, true
		}
	}
	return best, ok
}

// validHostname reports whether h is a hostname the dataplane accepts in a
// virtual host: lowercase labels of a-z, 0-9 and '-', optionally behind "*.".
func validHostname(h string) bool {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// An IPv4 address is made of valid labels but is not a DNS name.
	last := name[strings.LastIndexByte(name, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// vhostName is the name of the virtual host serving hostname h.
func vhostName(h string) string {
	if h == "" {
		return "*"
	}
	return h
}
