package dataplanev1

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultCORSMaxAge is the Access-Control-Max-Age sent when CORSPolicy.max_age_seconds
// is 0: the Gateway API default.
const DefaultCORSMaxAge = 5

// MaxCORSMaxAge is the largest CORSPolicy.max_age_seconds (a day).
const MaxCORSMaxAge = 86400

// CORSOrigin is an entry of CORSPolicy.allow_origins as ParseCORSOrigin reads it.
type CORSOrigin struct {
	// Any is set for "*": every origin.
	Any bool
	// Scheme is "http" or "https".
	Scheme string
	// Host is the lowercase host; "" matches every host. With Suffix, Host starts
	// with "." and matches the hosts that end with it and have at least one more
	// label ("*.example.com").
	Host   string
	Suffix bool
	// Port is the explicit port or the scheme's default.
	Port uint16
}

// ParseCORSOrigin parses an allowed origin: "*" or "scheme://host[:port]" with
// scheme http or https, a host that is "*", "*.name" or a DNS name, and a port from
// 1 to 65535. The scheme and host are compared without case.
func ParseCORSOrigin(s string) (CORSOrigin, error) {
	if s == "*" {
		return CORSOrigin{Any: true}, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return CORSOrigin{}, fmt.Errorf("invalid origin %q: must be \"*\" or scheme://host[:port]", s)
	}
	o := CORSOrigin{Scheme: strings.ToLower(scheme)}
	switch o.Scheme {
	case "http":
		o.Port = 80
	case "https":
		o.Port = 443
	default:
		return CORSOrigin{}, fmt.Errorf("invalid origin %q: the scheme must be http or https", s)
	}
	host := rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host = rest[:i]
		p, err := strconv.ParseUint(rest[i+1:], 10, 16)
		if err != nil || p == 0 {
			return CORSOrigin{}, fmt.Errorf("invalid origin %q: the port must be a number from 1 to 65535", s)
		}
		o.Port = uint16(p)
	}
	host = strings.ToLower(host)
	switch {
	case host == "*":
		return o, nil
	case strings.HasPrefix(host, "*."):
		o.Host, o.Suffix = host[1:], true
		host = host[2:]
	default:
		o.Host = host
	}
	if problem := checkHostname(host, false); problem != "" {
		return CORSOrigin{}, fmt.Errorf("invalid origin %q: the host must be \"*\", \"*.\" and a DNS name, or a DNS name: %s", s, problem)
	}
	return o, nil
}

// corsPolicy validates a route's CORS policy.
func (v *validator) corsPolicy(p fieldPath, c *CORSPolicy) {
	origins := c.GetAllowOrigins()
	for i, o := range origins {
		if _, err := ParseCORSOrigin(o); err != nil {
			v.add(p.item("allowOrigins", i), err.Error())
		}
		if o == "*" && len(origins) > 1 {
			v.add(p.item("allowOrigins", i), `"*" must be the only origin`)
		}
	}
	v.corsTokens(p, "allowMethods", c.GetAllowMethods(), true)
	v.corsTokens(p, "allowHeaders", c.GetAllowHeaders(), false)
	v.corsTokens(p, "exposeHeaders", c.GetExposeHeaders(), false)
	if c.GetMaxAgeSeconds() > MaxCORSMaxAge {
		v.addf(p.child("maxAgeSeconds"), "must be at most %d, got %d", MaxCORSMaxAge, c.GetMaxAgeSeconds())
	}
}

// corsTokens validates a list of methods (caseSensitive) or header names: HTTP
// tokens without duplicates, or "*" alone.
func (v *validator) corsTokens(p fieldPath, field string, list []string, caseSensitive bool) {
	seen := map[string]int{}
	for i, s := range list {
		ip := p.item(field, i)
		if s == "*" {
			if len(list) > 1 {
				v.add(ip, `"*" must be the only entry`)
			}
			continue
		}
		if !v.token(ip, s) {
			continue
		}
		key := s
		if !caseSensitive {
			key = strings.ToLower(s)
		}
		if j, dup := seen[key]; dup {
			v.addf(ip, "%q is already in %s[%d]", s, field, j)
		} else {
			seen[key] = i
		}
	}
}
