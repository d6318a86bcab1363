package dataplanev1

import (
	"strings"
	"time"
)

// ExtAuth limits and defaults.
const (
	// DefaultExtAuthTimeout bounds a check when ExtAuth.timeout is unset.
	DefaultExtAuthTimeout = 10 * time.Second
	// MaxExtAuthBody is the largest ExtAuth.max_body_bytes.
	MaxExtAuthBody = 64 << 10
	// MaxExtAuthHeaders bounds ExtAuth.allowed_request_headers and
	// allowed_response_headers (the Gateway API's limit).
	MaxExtAuthHeaders = 64
	// MaxExtAuthPathPrefix is the longest ExtAuth.path_prefix.
	MaxExtAuthPathPrefix = 1024
)

// extAuth validates a route's external authorization.
func (v *validator) extAuth(p fieldPath, a *ExtAuth) {
	gp := p.child("backendGroup")
	v.groupRef(gp, a.GetBackendGroup())
	if v.h2c[a.GetBackendGroup()] {
		v.addf(gp, "backend group %q is H2C; the authorization service must speak HTTP/1.1", a.GetBackendGroup())
	}
	if pre := a.GetPathPrefix(); pre != "" {
		if len(pre) > MaxExtAuthPathPrefix {
			v.addf(p.child("pathPrefix"), "must be at most %d bytes long", MaxExtAuthPathPrefix)
		} else if problem := checkPathChars(pre); problem != "" {
			v.add(p.child("pathPrefix"), problem)
		}
	}
	v.headerNames(p, "allowedRequestHeaders", a.GetAllowedRequestHeaders())
	v.headerNames(p, "allowedResponseHeaders", a.GetAllowedResponseHeaders())
	v.timeout(p.child("timeout"), a.GetTimeout())
	if n := a.GetMaxBodyBytes(); n > MaxExtAuthBody {
		v.addf(p.child("maxBodyBytes"), "must be at most %d, got %d", MaxExtAuthBody, n)
	}
}

// headerNames validates a list of header names: tokens, at most
// MaxExtAuthHeaders, no duplicates (ignoring case).
func (v *validator) headerNames(p fieldPath, list string, names []string) {
	if len(names) > MaxExtAuthHeaders {
		v.addf(p.child(list), "must have at most %d entries, got %d", MaxExtAuthHeaders, len(names))
		return
	}
	seen := map[string]int{}
	for i, n := range names {
		np := p.item(list, i)
		if !v.token(np, n) {
			continue
		}
		key := strings.ToLower(n)
		if j, dup := seen[key]; dup {
			v.addf(np, "header %q is already in %s[%d]", n, list, j)
		} else {
			seen[key] = i
		}
	}
}
