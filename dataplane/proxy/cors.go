package proxy

import (
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// A route's CORS policy (compiled.CORS) runs right after its rate limit:
//
//   - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
//     answered here with 204, through the local-reply path, and never reaches
//     a backend. An allowed Origin gets the Access-Control-* fields; any other
//     gets none, so the browser fails the preflight.
//   - Any other request goes on as usual. When its Origin is allowed, the
//     Origin is copied (the request head does not outlive routing) and the
//     response head gets Access-Control-Allow-Origin (the Origin echoed, never
//     "*"), -Allow-Credentials and -Expose-Headers through the same rewrite
//     lists as the response header modifiers. The backend's own fields of
//     those names are removed whatever the Origin: the route's policy decides.
//
// The proxy's own replies to routed requests (redirects, direct responses)
// get the same fields (appendCORS). Every response of a route with a policy
// carries "Vary: Origin", since what it holds depends on the Origin.

// CORS field names: lowercase for the rewrite lists' removals.
var (
	corsAllowOrigin      = []byte("access-control-allow-origin")
	corsAllowCredentials = []byte("access-control-allow-credentials")
	corsExposeHeaders    = []byte("access-control-expose-headers")
	varyName             = []byte("Vary")
	varyOrigin           = []byte("Origin")
	corsAllowOriginName  = []byte("Access-Control-Allow-Origin")
	corsCredentialsName  = []byte("Access-Control-Allow-Credentials")
	corsExposeName       = []byte("Access-Control-Expose-Headers")
	corsTrue             = []byte("true")
)

// maxOrigin bounds the Origin value kept for the response; a longer Origin
// (none is legitimately) is treated as not allowed.
const maxOrigin = 1024

// cors applies the route's CORS policy to the request being routed. It
// reports true when it answered a preflight.
func (s *Session) cors(c *compiled.CORS) bool {
	x := s.x
	origin, ok := x.Header("origin")
	if !ok {
		return false
	}
	if x.method == http1.MethodOptions {
		if method, ok := x.Header("access-control-request-method"); ok {
			s.preflight(c, origin, method)
			return true
		}
	}
	if len(origin) <= maxOrigin && c.AllowOrigin(origin) {
		x.corsOrigin = append(x.corsOrigin[:0], origin...)
		x.corsAllowed = true
	}
	return false
}

// preflight answers a CORS preflight request.
func (s *Session) preflight(c *compiled.CORS, origin, method []byte) {
	x := s.x
	if !x.reqBodyDone {
		s.closeAfter = true
		s.linger = true
	}
	h := s.replyStart(204)
	if c.AllowOrigin(origin) {
		h = appendFieldBytes(h, "Access-Control-Allow-Origin: ", origin)
		if c.Credentials {
			h = append(h, "Access-Control-Allow-Credentials: true\r\n"...)
		}
		switch {
		case c.AnyMethod && c.Credentials:
			h = appendFieldBytes(h, "Access-Control-Allow-Methods: ", method)
		case c.Methods != "":
			h = appendField(h, "Access-Control-Allow-Methods", c.Methods)
		}
		switch {
		case c.AnyHeader && c.Credentials:
			if headers, ok := x.Header("access-control-request-headers"); ok {
				h = appendFieldBytes(h, "Access-Control-Allow-Headers: ", headers)
			}
		case c.Headers != "":
			h = appendField(h, "Access-Control-Allow-Headers", c.Headers)
		}
		if c.Expose != "" {
			h = appendField(h, "Access-Control-Expose-Headers", c.Expose)
		}
		h = appendField(h, "Access-Control-Max-Age", c.MaxAge)
	}
	h = append(h, "Vary: Origin\r\n"...)
	h = appendFields(h, &x.route.ResponseHeaders)
	s.replyEnd(h, 204, metrics.ReasonCORSPreflight, nil)
}

// appendFieldBytes appends the field whose "Name: " is prefix and whose value
// is value.
func appendFieldBytes(h []byte, prefix string, value []byte) []byte {
	h = append(h, prefix...)
	h = append(h, value...)
	return append(h, "\r\n"...)
}

// appendCORS appends the CORS fields of the route's policy, if any, to a
// reply the proxy makes itself for a request it routed (a redirect, a direct
// response), as corsFields does for a backend's response.
func (s *Session) appendCORS(h []byte) []byte {
	x := s.x
	c := x.route.CORS
	if c == nil {
		return h
	}
	h = append(h, "Vary: Origin\r\n"...)
	if !x.corsAllowed {
		return h
	}
	h = appendFieldBytes(h, "Access-Control-Allow-Origin: ", x.corsOrigin)
	if c.Credentials {
		h = append(h, "Access-Control-Allow-Credentials: true\r\n"...)
	}
	if c.Expose != "" {
		h = appendField(h, "Access-Control-Expose-Headers", c.Expose)
	}
	return h
}

// corsFields adds the CORS policy's fields to a response head's rewrite lists.
func (x *Exchange) corsFields(c *compiled.CORS, remove [][]byte, add []http1.HeaderField) ([][]byte, []http1.HeaderField) {
	remove = append(remove, corsAllowOrigin, corsAllowCredentials, corsExposeHeaders)
	add = append(add, http1.HeaderField{Name: varyName, Value: varyOrigin})
	if !x.corsAllowed {
		return remove, add
	}
	add = append(add, http1.HeaderField{Name: corsAllowOriginName, Value: x.corsOrigin})
	if c.Credentials {
		add = append(add, http1.HeaderField{Name: corsCredentialsName, Value: corsTrue})
	}
	if c.Expose != "" {
		add = append(add, http1.HeaderField{Name: corsExposeName, Value: bytesOf(c.Expose)})
	}
	return remove, add
}
