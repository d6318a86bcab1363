package compiled

import (
	"fmt"
	"strconv"
	"strings"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// CORS is a route's compiled CORS policy (dataplanev1.CORSPolicy). The proxy
// answers preflight requests from it and adds its headers to the responses of
// requests from allowed origins; the field values are ready to be written.
type CORS struct {
	origins   []dataplanev1.CORSOrigin
	anyOrigin bool

	// Credentials sends "Access-Control-Allow-Credentials: true"; with it,
	// AnyMethod and AnyHeader echo the preflight's request method and headers
	// instead of sending "*".
	Credentials bool
	// Methods and Headers are the Access-Control-Allow-Methods and
	// Access-Control-Allow-Headers values of a preflight ("" sends none),
	// unless AnyMethod or AnyHeader ("*" allowed).
	Methods, Headers     string
	AnyMethod, AnyHeader bool
	// Expose is the Access-Control-Expose-Headers value ("" sends none).
	Expose string
	// MaxAge is the Access-Control-Max-Age value of a preflight, in seconds.
	MaxAge string
}

// compileCORS compiles a validated CORS policy.
func compileCORS(p *dataplanev1.CORSPolicy) (*CORS, error) {
	c := &CORS{Credentials: p.GetAllowCredentials()}
	for i, s := range p.GetAllowOrigins() {
		o, err := dataplanev1.ParseCORSOrigin(s)
		if err != nil {
			return nil, fmt.Errorf("allowOrigins[%d]: %w", i, err)
		}
		if o.Any {
			c.anyOrigin = true
		}
		c.origins = append(c.origins, o)
	}
	list := func(l []string) (string, bool) {
		if len(l) == 1 && l[0] == "*" {
			return "*", true
		}
		return strings.Join(l, ", "), false
	}
	c.Methods, c.AnyMethod = list(p.GetAllowMethods())
	c.Headers, c.AnyHeader = list(p.GetAllowHeaders())
	var anyExpose bool
	c.Expose, anyExpose = list(p.GetExposeHeaders())
	if anyExpose && c.Credentials {
		// With credentials "*" is a header name, not a wildcard (Fetch
		// standard), and the Gateway API forbids sending it.
		c.Expose = ""
	}
	age := p.GetMaxAgeSeconds()
	if age == 0 {
		age = dataplanev1.DefaultCORSMaxAge
	}
	c.MaxAge = strconv.FormatUint(uint64(age), 10)
	return c, nil
}

// AllowOrigin reports whether the value of a request's Origin header is an
// allowed origin. Scheme and host compare without case; an origin without a
// port has its scheme's default. It does not allocate.
func (c *CORS) AllowOrigin(origin []byte) bool {
	if len(origin) == 0 {
		return false
	}
	if c.anyOrigin {
		return true
	}
	scheme, host, port, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	for i := range c.origins {
		o := &c.origins[i]
		if o.Port != port || !equalFoldASCII(scheme, o.Scheme) {
			continue
		}
		switch {
		case o.Host == "":
			return true
		case o.Suffix:
			if len(host) > len(o.Host) && equalFoldASCII(host[len(host)-len(o.Host):], o.Host) {
				return true
			}
		case equalFoldASCII(host, o.Host):
			return true
		}
	}
	return false
}

// splitOrigin splits a serialized origin "scheme://host[:port]" (RFC 6454) of
// scheme http or https; port is the explicit port or the scheme's default.
func splitOrigin(origin []byte) (scheme, host []byte, port uint16, ok bool) {
	i := indexSchemeEnd(origin)
	if i < 0 {
		return nil, nil, 0, false
	}
	scheme, host = origin[:i], origin[i+3:]
	switch {
	case equalFoldASCII(scheme, "http"):
		port = 80
	case equalFoldASCII(scheme, "https"):
		port = 443
	default:
		return nil, nil, 0, false
	}
	// The port follows the last colon outside an IPv6 literal's brackets.
	for j := len(host) - 1; j >= 0; j-- {
		c := host[j]
		if c == ']' {
			break
		}
		if c != ':' {
			continue
		}
		digits := host[j+1:]
		if len(digits) == 0 || len(digits) > 5 {
			return nil, nil, 0, false
		}
		n := 0
		for _, d := range digits {
			if d < '0' || d > '9' {
				return nil, nil, 0, false
			}
			n = n*10 + int(d-'0')
		}
		if n == 0 || n > 65535 {
			return nil, nil, 0, false
		}
		host, port = host[:j], uint16(n)
		break
	}
	if len(host) == 0 {
		return nil, nil, 0, false
	}
	return scheme, host, port, true
}

// indexSchemeEnd returns the index of "://" in b, or -1.
func indexSchemeEnd(b []byte) int {
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == ':' && b[i+1] == '/' && b[i+2] == '/' {
			return i
		}
	}
	return -1
}

// equalFoldASCII reports whether b equals the lowercase s, ignoring the case
// of b's ASCII letters.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
