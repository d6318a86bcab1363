package proxy

import (
	"strconv"

	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/http1"
)

// Session affinity pins a client to an endpoint by a token, carried in a
// cookie or a header, that the proxy hands out with the first response. The
// token is the hex balancer.Hash of the endpoint's "ip:port", so it stays
// valid across workers, restarts and nodes, and reveals no address.

// affinityRequest reads the affinity token of the request being routed.
func (s *Session) affinityRequest() {
	x := s.x
	x.hasToken, x.affinityHit = false, false
	if x.route == nil {
		return
	}
	a := &x.route.Affinity
	var v []byte
	var ok bool
	switch {
	case a.Cookie != "":
		v, ok = cookieValue(x.hbuf, &x.req, a.Cookie)
	case a.Header != "":
		v, ok = x.req.Lookup(x.hbuf, a.Header)
	default:
		return
	}
	if !ok || len(v) == 0 || len(v) > 16 {
		return
	}
	t, err := strconv.ParseUint(string(v), 16, 64)
	if err != nil {
		return
	}
	x.reqToken, x.hasToken = t, true
}

// endpointHash returns the affinity hash of an endpoint address.
func endpointHash(e balancer.Endpoint) uint64 {
	var b [64]byte
	return balancer.Hash(e.Addr.AppendTo(b[:0]))
}

// affinityEndpoint finds the usable endpoint of the request's token.
func (s *Session) affinityEndpoint() (Endpoint, bool) {
	x := s.x
	eps := x.group.Endpoints()
	for i := 0; i < eps.Len(); i++ {
		e := eps.Endpoint(i)
		if !e.Ready && !(eps.TerminatingFallback() && e.Serving && e.Terminating) {
			continue
		}
		if endpointHash(e) == x.reqToken {
			if x.group.Unhealthy(eps).Has(i) {
				// Failing health checks or ejected: let the picker choose.
				return Endpoint{}, false
			}
			return Endpoint{Addr: e.Addr, Index: i, Set: eps}, true
		}
	}
	return Endpoint{}, false
}

// affinityField appends the cookie or header handing out the token of the
// chosen endpoint, unless the request already carried it.
func (s *Session) affinityField(add []http1.HeaderField) []http1.HeaderField {
	x := s.x
	if x.route == nil || x.affinityHit || !x.ep.Addr.IsValid() {
		return add
	}
	a := &x.route.Affinity
	if a.Cookie == "" && a.Header == "" {
		return add
	}
	var b [64]byte
	h := balancer.Hash(x.ep.Addr.AppendTo(b[:0]))
	t := x.token[:0]
	if a.Cookie != "" {
		t = append(t, a.Cookie...)
		t = append(t, '=')
		t = appendHex16(t, h)
		t = append(t, "; Path=/; HttpOnly"...)
		if a.CookieTTL > 0 {
			t = append(t, "; Max-Age="...)
			t = strconv.AppendInt(t, int64(a.CookieTTL.Seconds()), 10)
		}
		x.token = t
		return append(add, http1.HeaderField{Name: bytesOf("Set-Cookie"), Value: t})
	}
	t = appendHex16(t, h)
	x.token = t
	return append(add, http1.HeaderField{Name: bytesOf(a.Header), Value: t})
}

func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, digits[v>>uint(i)&0xf])
	}
	return dst
}
