package dataplanev1

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// FieldError is one problem with one field of a snapshot. Field is the path of the
// field in protojson names, e.g. "listeners[0].virtualHosts[1].hostnames[0]".
type FieldError struct {
	// Field is the path of the offending field.
	Field string
	// Detail says what is wrong with it.
	Detail string
}

// Error returns "<field>: <detail>".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// Validate checks that snap is a snapshot the dataplane can run, beyond what its
// protobuf types guarantee: names are unique, references resolve, addresses, ports,
// hostnames, paths, header names and regular expressions are well-formed, TLS key
// pairs parse, enums hold known values, durations are not negative, combinations of
// fields are allowed, routes naming one rate limit bucket limit alike, no field is
// unknown to this dataplane, and Hash, if set,
// matches the content. It returns nil or the errors.Join of up to
// MaxValidationErrors *FieldError values, each naming the path of its field.
func Validate(snap *Snapshot) error {
	if snap == nil {
		return errors.New("snapshot is nil")
	}
	v := &validator{groups: map[string]int{}, h2c: map[string]bool{}}
	for i, g := range snap.GetBackendGroups() {
		if _, dup := v.groups[g.GetName()]; !dup && g.GetName() != "" {
			v.groups[g.GetName()] = i
			v.h2c[g.GetName()] = g.GetProtocol() == BackendGroup_H2C
		}
	}
	v.unknownFields(snap.ProtoReflect(), "")
	v.listeners(snap.GetListeners())
	v.backendGroups(snap.GetBackendGroups())
	v.tracing(snap)
	if h, err := computeHash(snap); err != nil {
		v.add("", err.Error())
	} else if snap.GetHash() != "" && snap.GetHash() != h {
		v.addf("hash", "does not match the snapshot's content (computed %s)", h)
	}
	return v.err()
}

// validateEndpoints validates the endpoints of the backend group at index group,
// as ApplyEndpointUpdate replaced them.
func validateEndpoints(group int, endpoints []*Endpoint) error {
	v := &validator{}
	p := root.item("backendGroups", group)
	for i, e := range endpoints {
		v.unknownFields(e.ProtoReflect(), p.item("endpoints", i))
	}
	v.endpoints(p, endpoints)
	return v.err()
}

// fieldPath is the path of a field in protojson names.
type fieldPath string

// root is the path of the snapshot itself.
const root fieldPath = ""

// child is the path of field name of p.
func (p fieldPath) child(name string) fieldPath {
	if p == "" {
		return fieldPath(name)
	}
	return p + "." + fieldPath(name)
}

// at is the path of element i of the list at p.
func (p fieldPath) at(i int) fieldPath {
	return p + fieldPath("["+strconv.Itoa(i)+"]")
}

// item is the path of element i of list field name of p.
func (p fieldPath) item(name string, i int) fieldPath {
	return p.child(name).at(i)
}

// String returns the path.
func (p fieldPath) String() string { return string(p) }

// validator collects the problems found in one snapshot.
type validator struct {
	errs    []error
	dropped int
	// groups maps backend group names to their first index.
	groups map[string]int
	// h2c holds the names of the H2C backend groups.
	h2c map[string]bool
	// buckets maps rate limit bucket names to their first use.
	buckets map[string]bucketUse
}

// bucketUse is the first rate limit naming a bucket.
type bucketUse struct {
	path  fieldPath
	limit *LocalRateLimit
}

// add records a problem with the field at p.
func (v *validator) add(p fieldPath, detail string) {
	if len(v.errs) >= MaxValidationErrors {
		v.dropped++
		return
	}
	v.errs = append(v.errs, &FieldError{Field: p.String(), Detail: detail})
}

// addf records a formatted problem with the field at p.
func (v *validator) addf(p fieldPath, format string, args ...any) {
	v.add(p, fmt.Sprintf(format, args...))
}

// err returns the problems found, or nil.
func (v *validator) err() error {
	errs := v.errs
	if v.dropped > 0 {
		errs = append(errs, fmt.Errorf("and %d more problems", v.dropped))
	}
	return errors.Join(errs...)
}

// unknownFields reports fields and enum values of m and its sub-messages that this
// dataplane does not know: a newer controller may send them, and ignoring them
// could route traffic in ways the controller did not intend.
func (v *validator) unknownFields(m protoreflect.Message, p fieldPath) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		if num, _, n := protowire.ConsumeTag(raw); n > 0 {
			v.addf(p, "has a field (number %d) unknown to this dataplane; upgrade the dataplane", num)
		} else {
			v.add(p, "has malformed unknown fields")
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		fp := p.child(fd.JSONName())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				v.unknownFields(l.Get(i).Message(), fp.at(i))
			}
		case fd.IsList() && fd.Enum() != nil:
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				v.enumValue(fp.at(i), fd.Enum(), l.Get(i).Enum())
			}
		case fd.Message() != nil && !fd.IsMap():
			v.unknownFields(val.Message(), fp)
		case fd.Enum() != nil:
			v.enumValue(fp, fd.Enum(), val.Enum())
		}
		return true
	})
}

// enumValue reports a value that is not one of ed's values.
func (v *validator) enumValue(p fieldPath, ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) {
	if ed.Values().ByNumber(n) == nil {
		v.addf(p, "unknown value %d, want one of %s", n, enumNames(ed))
	}
}

// listeners validates the listeners of a snapshot.
func (v *validator) listeners(ls []*Listener) {
	names := map[string]int{}
	binds := map[string]int{}
	for i, l := range ls {
		p := root.item("listeners", i)
		v.uniqueName(p.child("name"), l.GetName(), names, i, "listeners")
		if l.GetPort() < 1 || l.GetPort() > 65535 {
			v.addf(p.child("port"), "must be between 1 and 65535, got %d", l.GetPort())
		}
		addr := l.GetAddress()
		if addr != "" {
			ip, err := netip.ParseAddr(addr)
			if err != nil {
				v.addf(p.child("address"), "must be an IPv4 or IPv6 address without brackets, or empty for all addresses, got %q", addr)
			} else {
				addr = ip.String()
			}
		}
		if l.GetPort() >= 1 && l.GetPort() <= 65535 {
			// UDP ports are apart from TCP ones: a UDP listener may share a TCP
			// listener's address and port.
			bind := addr + "|" + strconv.Itoa(int(l.GetPort()))
			if l.GetProtocol() == Listener_UDP {
				bind = "udp|" + bind
			}
			if j, dup := binds[bind]; dup {
				v.addf(p, "binds the same address and port as listeners[%d]", j)
			} else {
				binds[bind] = i
			}
		}

		switch l.GetProtocol() {
		case Listener_PROTOCOL_UNSPECIFIED:
			v.add(p.child("protocol"), "must be set to HTTP, HTTPS, TCP, TLS or UDP")
		case Listener_HTTP:
			if len(l.GetCertificates()) > 0 {
				v.add(p.child("certificates"), "must be empty unless protocol is HTTPS or TLS")
			}
		case Listener_HTTPS:
			if len(l.GetCertificates()) == 0 {
				v.add(p.child("certificates"), "an HTTPS listener needs at least one certificate")
			}
		case Listener_TCP:
			if len(l.GetCertificates()) > 0 {
				v.add(p.child("certificates"), "must be empty unless protocol is HTTPS or TLS")
			}
			if len(l.GetVirtualHosts()) > 0 {
				v.add(p.child("virtualHosts"), "must be empty when protocol is TCP")
			}
			if l.GetTcpRoute() == nil {
				v.add(p.child("tcpRoute"), "a TCP listener needs a tcpRoute")
			}
		case Listener_UDP:
			v.udpListener(p, l)
		case Listener_TLS:
			if len(l.GetVirtualHosts()) > 0 {
				v.add(p.child("virtualHosts"), "must be empty when protocol is TLS")
			}
			if len(l.GetTlsRoutes()) == 0 {
				v.add(p.child("tlsRoutes"), "a TLS listener needs at least one tlsRoute")
			}
			terminates := slices.ContainsFunc(l.GetTlsRoutes(), (*TLSRoute).GetTerminate)
			switch {
			case terminates && len(l.GetCertificates()) == 0:
				v.add(p.child("certificates"), "a TLS listener with a terminating route needs at least one certificate")
			case !terminates && len(l.GetCertificates()) > 0:
				v.add(p.child("certificates"), "must be empty when no tlsRoute terminates (passthrough routes never use them)")
			}
		}
		headless := l.GetProtocol() == Listener_TCP || l.GetProtocol() == Listener_TLS || l.GetProtocol() == Listener_UDP
		if l.TrustedHops != nil {
			if headless {
				v.addf(p.child("trustedHops"), "must be unset when protocol is %s (the listener reads no headers)", l.GetProtocol())
			} else if l.GetTrustedHops() > MaxTrustedHops {
				v.addf(p.child("trustedHops"), "must be at most %d, got %d", MaxTrustedHops, l.GetTrustedHops())
			}
		}
		if hl := l.GetHeadLimits(); hl != nil {
			hp := p.child("headLimits")
			if headless {
				v.addf(hp, "must be unset when protocol is %s (the listener reads no headers)", l.GetProtocol())
			}
			for _, f := range []struct {
				name     string
				val, max uint32
				bytes    bool
			}{
				{"maxRequestHeaderBytes", hl.GetMaxRequestHeaderBytes(), MaxHeadBytes, true},
				{"maxRequestHeaders", hl.GetMaxRequestHeaders(), MaxHeadFields, false},
				{"maxResponseHeaderBytes", hl.GetMaxResponseHeaderBytes(), MaxHeadBytes, true},
				{"maxResponseHeaders", hl.GetMaxResponseHeaders(), MaxHeadFields, false},
			} {
				switch {
				case f.val > f.max:
					v.addf(hp.child(f.name), "must be at most %d, got %d", f.max, f.val)
				case f.bytes && f.val != 0 && f.val < MinHeadBytes:
					v.addf(hp.child(f.name), "must be 0 (the dataplane's) or at least %d, got %d", MinHeadBytes, f.val)
				}
			}
		}
		if l.GetTcpRoute() != nil && l.GetProtocol() != Listener_TCP {
			v.add(p.child("tcpRoute"), "must be unset unless protocol is TCP")
		}
		if l.GetUdpRoute() != nil && l.GetProtocol() != Listener_UDP {
			v.add(p.child("udpRoute"), "must be unset unless protocol is UDP")
		}
		if len(l.GetTlsRoutes()) > 0 && l.GetProtocol() != Listener_TLS {
			v.add(p.child("tlsRoutes"), "must be empty unless protocol is TLS")
		}
		if t := l.GetTimeouts(); t != nil {
			tp := p.child("timeouts")
			v.timeout(tp.child("requestHead"), t.GetRequestHead())
			v.timeout(tp.child("requestBodyIdle"), t.GetRequestBodyIdle())
			v.timeout(tp.child("sendStall"), t.GetSendStall())
			v.timeout(tp.child("keepAliveIdle"), t.GetKeepAliveIdle())
			v.timeout(tp.child("tunnelIdle"), t.GetTunnelIdle())
		}
		v.extensionFilters(p.child("extensionFilters"), l.GetExtensionFilters())
		if t := l.GetTracing(); t != nil {
			if l.GetProtocol() != Listener_HTTP && l.GetProtocol() != Listener_HTTPS {
				v.addf(p.child("tracing"), "must be unset when protocol is %s (only HTTP and HTTPS requests are traced)", l.GetProtocol())
			}
			if t.GetSamplePerMillion() > 1_000_000 {
				v.addf(p.child("tracing").child("samplePerMillion"), "must be at most 1000000 (every request), got %d", t.GetSamplePerMillion())
			}
		}
		if h := l.GetHttp2(); h != nil {
			if headless {
				v.addf(p.child("http2"), "must be unset when protocol is %s (only HTTP and HTTPS listeners serve HTTP/2)", l.GetProtocol())
			}
			if h.GetMaxConcurrentStreams() > MaxConcurrentStreams {
				v.addf(p.child("http2").child("maxConcurrentStreams"), "must be at most %d, got %d", MaxConcurrentStreams, h.GetMaxConcurrentStreams())
			}
		}
		if cv := l.GetClientValidation(); cv != nil {
			v.clientValidation(p.child("clientValidation"), l, cv)
		}
		v.certificates(p, l.GetCertificates())
		v.virtualHosts(p, l.GetVirtualHosts())
		if r := l.GetTcpRoute(); r != nil {
			v.tcpRoute(p.child("tcpRoute"), r)
		}
		v.tlsRoutes(p, l.GetTlsRoutes())
		if r := l.GetUdpRoute(); r != nil {
			v.udpRoute(p.child("udpRoute"), r)
		}
	}
}

// udpListener checks what a UDP listener must have and must leave out: it
// forwards datagrams, so nothing about connections, TLS or HTTP applies.
func (v *validator) udpListener(p fieldPath, l *Listener) {
	if l.GetUdpRoute() == nil {
		v.add(p.child("udpRoute"), "a UDP listener needs a udpRoute")
	}
	for _, f := range []struct {
		name string
		set  bool
		why  string
	}{
		{"certificates", len(l.GetCertificates()) > 0, "UDP listeners terminate no TLS"},
		{"virtualHosts", len(l.GetVirtualHosts()) > 0, "UDP listeners route no HTTP"},
		{"tlsRoutes", len(l.GetTlsRoutes()) > 0, "UDP listeners route no TLS"},
		{"timeouts", l.GetTimeouts() != nil, "a UDP flow's idle timeout is udpRoute.idleTimeout"},
		{"maxConnections", l.GetMaxConnections() != 0, "a UDP listener's bound is udpRoute.maxFlows"},
		{"extensionFilters", len(l.GetExtensionFilters()) > 0, "filters have no datagram hook"},
	} {
		if f.set {
			v.addf(p.child(f.name), "must be unset when protocol is UDP (%s)", f.why)
		}
	}
}

// udpRoute validates the route of a UDP listener: backends as a TCP route's,
// its idle timeout and flow bound within limits.
func (v *validator) udpRoute(p fieldPath, r *UDPRoute) {
	if r.GetName() == "" {
		v.add(p.child("name"), "must not be empty")
	}
	v.tcpBackends(p, r.GetBackends())
	v.timeout(p.child("idleTimeout"), r.GetIdleTimeout())
	if r.GetMaxFlows() > MaxUDPFlows {
		v.addf(p.child("maxFlows"), "must be at most %d, got %d", MaxUDPFlows, r.GetMaxFlows())
	}
}

// clientValidation checks a listener's client certificate validation: it
// needs a handshake to apply to and a CA bundle that parses.
func (v *validator) clientValidation(p fieldPath, l *Listener, cv *ClientValidation) {
	if len(l.GetCertificates()) == 0 {
		v.add(p, "must be unset when the listener terminates no TLS (it has no certificates)")
	}
	if len(cv.GetCaCertPem()) == 0 {
		v.add(p.child("caCertPem"), "must hold at least one PEM certificate")
		return
	}
	if err := CheckCABundle(cv.GetCaCertPem()); err != nil {
		v.add(p.child("caCertPem"), err.Error())
	}
}

// CheckCABundle checks that b is a sequence of PEM CERTIFICATE blocks that
// parse, with at least one: what ClientValidation.ca_cert_pem must hold. The
// controller checks CA bundles with it before putting them in a snapshot.
func CheckCABundle(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM %s block; only CERTIFICATE blocks are allowed", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate")
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return errors.New("has bytes after its last PEM block that are not PEM")
	}
	return nil
}

// tracing checks the span exporter, and that it is set when a listener traces.
func (v *validator) tracing(snap *Snapshot) {
	t := snap.GetTracing()
	if t == nil {
		for i, l := range snap.GetListeners() {
			if l.GetTracing() != nil {
				v.add(root.item("listeners", i).child("tracing"), "needs the snapshot's tracing (the span exporter's otlpEndpoint)")
				return
			}
		}
		return
	}
	p := root.child("tracing")
	if e := t.GetOtlpEndpoint(); e == "" {
		v.add(p.child("otlpEndpoint"), "must be set (the OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces)")
	} else if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.addf(p.child("otlpEndpoint"), "must be an http or https URL with a host and no user info, got %q", e)
	}
	if n := len(t.GetServiceName()); n > 255 {
		v.addf(p.child("serviceName"), "must be at most 255 bytes, got %d", n)
	}
}

// uniqueName reports an empty name, or a name already seen at another index of
// list (recording it otherwise).
func (v *validator) uniqueName(p fieldPath, name string, seen map[string]int, i int, list string) {
	if name == "" {
		v.add(p, "must not be empty")
		return
	}
	if j, dup := seen[name]; dup {
		v.addf(p, "duplicate name %q (also %s[%d])", name, list, j)
		return
	}
	seen[name] = i
}

// extensionFilters checks the names of a listener's or route's extension filters:
// each non-empty and named once. Whether the dataplane has registered a name is its
// own check, made when it compiles the snapshot.
func (v *validator) extensionFilters(p fieldPath, names []string) {
	if len(names) == 0 {
		return
	}
	seen := make(map[string]int, len(names))
	for i, n := range names {
		v.uniqueName(p.at(i), n, seen, i, p.String())
	}
}

// certificates validates the certificates of listener p.
func (v *validator) certificates(p fieldPath, certs []*TLSCertificate) {
	names := map[string]int{}
	defaultCert := -1
	for i, c := range certs {
		cp := p.item("certificates", i)
		switch {
		case len(c.GetCertPem()) == 0:
			v.add(cp.child("certPem"), "must not be empty")
		case len(c.GetKeyPem()) == 0:
			v.add(cp.child("keyPem"), "must not be empty")
		default:
			if err := checkKeyPair(c.GetCertPem(), c.GetKeyPem()); err != nil {
				v.addf(cp, "certPem and keyPem are not a valid key pair: %v", err)
			}
		}
		if len(c.GetServerNames()) == 0 {
			if defaultCert >= 0 {
				v.addf(cp.child("serverNames"), "only one certificate may have no serverNames (also certificates[%d])", defaultCert)
			} else {
				defaultCert = i
			}
		}
		for j, n := range c.GetServerNames() {
			np := cp.item("serverNames", j)
			if problem := checkHostname(n, true); problem != "" {
				v.add(np, problem)
				continue
			}
			if k, dup := names[n]; dup {
				v.addf(np, "server name %q is also in certificates[%d]", n, k)
				continue
			}
			names[n] = i
		}
	}
}

// maxCheckedKeyPairs bounds the cache of key pairs known to be valid.
const maxCheckedKeyPairs = 4096

// checkedKeyPairs caches the SHA-256 digests of key pairs that passed
// checkKeyPair: the controller resends every certificate with every full snapshot,
// and parsing private keys is expensive.
var checkedKeyPairs = struct {
	sync.Mutex
	digests map[[sha256.Size]byte]struct{}
}{digests: map[[sha256.Size]byte]struct{}{}}

// checkKeyPair reports whether certPEM and keyPEM form a key pair crypto/tls can
// serve.
func checkKeyPair(certPEM, keyPEM []byte) error {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(certPEM)))
	h.Write(n[:])
	h.Write(certPEM)
	h.Write(keyPEM)
	var digest [sha256.Size]byte
	h.Sum(digest[:0])

	checkedKeyPairs.Lock()
	_, ok := checkedKeyPairs.digests[digest]
	checkedKeyPairs.Unlock()
	if ok {
		return nil
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	checkedKeyPairs.Lock()
	if len(checkedKeyPairs.digests) >= maxCheckedKeyPairs {
		clear(checkedKeyPairs.digests)
	}
	checkedKeyPairs.digests[digest] = struct{}{}
	checkedKeyPairs.Unlock()
	return nil
}

// virtualHosts validates the virtual hosts of listener p.
func (v *validator) virtualHosts(p fieldPath, vhs []*VirtualHost) {
	names := map[string]int{}
	hosts := map[string]int{}
	catchAll := -1
	for i, vh := range vhs {
		vp := p.item("virtualHosts", i)
		v.uniqueName(vp.child("name"), vh.GetName(), names, i, "virtualHosts")
		if len(vh.GetHostnames()) == 0 {
			if catchAll >= 0 {
				v.addf(vp.child("hostnames"), "only one virtual host of a listener may have no hostnames (also virtualHosts[%d])", catchAll)
			} else {
				catchAll = i
			}
		}
		for j, h := range vh.GetHostnames() {
			hp := vp.item("hostnames", j)
			if problem := checkHostname(h, true); problem != "" {
				v.add(hp, problem)
				continue
			}
			if k, dup := hosts[h]; dup {
				v.addf(hp, "hostname %q is also served by virtualHosts[%d]", h, k)
				continue
			}
			hosts[h] = i
		}
		for j, r := range vh.GetRoutes() {
			v.route(vp.item("routes", j), r)
		}
	}
}

// route validates one route.
func (v *validator) route(p fieldPath, r *Route) {
	if r.GetName() == "" {
		v.add(p.child("name"), "must not be empty")
	}
	for i, m := range r.GetMatches() {
		v.match(p.item("matches", i), m)
	}
	v.filters(p.child("filters"), r.GetFilters(), r, true)
	v.extensionFilters(p.child("extensionFilters"), r.GetExtensionFilters())
	for i, b := range r.GetBackends() {
		bp := p.item("backends", i)
		switch t := b.GetTarget().(type) {
		case *WeightedBackend_BackendGroup:
			v.groupRef(bp.child("backendGroup"), t.BackendGroup)
		case *WeightedBackend_DirectResponse:
			v.directResponse(bp.child("directResponse"), t.DirectResponse)
		default:
			v.add(bp, "must set backendGroup or directResponse")
		}
		if b.GetWeight() > MaxWeight {
			v.addf(bp.child("weight"), "must be at most %d, got %d", MaxWeight, b.GetWeight())
		}
		v.filters(bp.child("filters"), b.GetFilters(), r, false)
	}
	v.someWeight(p.child("backends"), len(r.GetBackends()), func(i int) uint32 { return r.GetBackends()[i].GetWeight() })
	if dr := r.GetDirectResponse(); dr != nil {
		v.directResponse(p.child("directResponse"), dr)
		if len(r.GetBackends()) > 0 {
			v.add(p.child("directResponse"), "must not be set together with backends")
		}
	}
	if t := r.GetTimeouts(); t != nil {
		tp := p.child("timeouts")
		v.duration(tp.child("request"), t.GetRequest())
		v.duration(tp.child("backendRequest"), t.GetBackendRequest())
		req, breq := t.GetRequest().AsDuration(), t.GetBackendRequest().AsDuration()
		if req > 0 && breq > req {
			v.addf(tp.child("backendRequest"), "must not exceed timeouts.request (%s), got %s", req, breq)
		}
	}
	if rp := r.GetRetry(); rp != nil {
		v.retry(p.child("retry"), rp)
	}
	if rl := r.GetRateLimit(); rl != nil {
		v.rateLimit(p.child("rateLimit"), rl)
	}
	if sa := r.GetSessionAffinity(); sa != nil {
		sp := p.child("sessionAffinity")
		switch k := sa.GetKind().(type) {
		case *SessionAffinity_Cookie:
			v.token(sp.child("cookie").child("name"), k.Cookie.GetName())
			v.duration(sp.child("cookie").child("ttl"), k.Cookie.GetTtl())
		case *SessionAffinity_Header:
			v.token(sp.child("header").child("name"), k.Header.GetName())
		default:
			v.add(sp, "must set cookie or header")
		}
	}
}

// match validates one route match.
func (v *validator) match(p fieldPath, m *RouteMatch) {
	if pm := m.GetPath(); pm != nil {
		pp := p.child("path")
		switch pm.GetType() {
		case PathMatch_TYPE_UNSPECIFIED:
			v.add(pp.child("type"), "must be set to EXACT, PATH_PREFIX or REGULAR_EXPRESSION")
		case PathMatch_EXACT, PathMatch_PATH_PREFIX:
			if problem := checkMatchPath(pm.GetValue()); problem != "" {
				v.add(pp.child("value"), problem)
			}
		case PathMatch_REGULAR_EXPRESSION:
			v.regex(pp.child("value"), pm.GetValue())
		}
	}
	headers := map[string]int{}
	for i, h := range m.GetHeaders() {
		hp := p.item("headers", i)
		if v.token(hp.child("name"), h.GetName()) {
			key := strings.ToLower(h.GetName())
			if j, dup := headers[key]; dup {
				v.addf(hp.child("name"), "header %q is already matched by headers[%d]", h.GetName(), j)
			} else {
				headers[key] = i
			}
		}
		switch h.GetType() {
		case HeaderMatch_TYPE_UNSPECIFIED:
			v.add(hp.child("type"), "must be set to EXACT or REGULAR_EXPRESSION")
		case HeaderMatch_EXACT:
			v.headerValue(hp.child("value"), h.GetValue())
		case HeaderMatch_REGULAR_EXPRESSION:
			v.regex(hp.child("value"), h.GetValue())
		}
	}
	params := map[string]int{}
	for i, q := range m.GetQueryParams() {
		qp := p.item("queryParams", i)
		switch name := q.GetName(); {
		case name == "":
			v.add(qp.child("name"), "must not be empty")
		case len(name) > 256:
			v.add(qp.child("name"), "must be at most 256 bytes long")
		case strings.ContainsFunc(name, isControl):
			v.add(qp.child("name"), "must not contain control characters")
		default:
			if j, dup := params[name]; dup {
				v.addf(qp.child("name"), "query parameter %q is already matched by queryParams[%d]", name, j)
			} else {
				params[name] = i
			}
		}
		switch q.GetType() {
		case QueryParamMatch_TYPE_UNSPECIFIED:
			v.add(qp.child("type"), "must be set to EXACT or REGULAR_EXPRESSION")
		case QueryParamMatch_EXACT:
			if strings.ContainsFunc(q.GetValue(), isControl) {
				v.add(qp.child("value"), "must not contain control characters")
			}
		case QueryParamMatch_REGULAR_EXPRESSION:
			v.regex(qp.child("value"), q.GetValue())
		}
	}
	if m.GetMethod() != "" {
		v.token(p.child("method"), m.GetMethod())
	}
}

// filters validates the filters of route r (or of one of its backends when
// onRoute is false) at p.
func (v *validator) filters(p fieldPath, fs []*RouteFilter, r *Route, onRoute bool) {
	seen := map[string]int{}
	once := func(fp fieldPath, kind string, i int) {
		if j, dup := seen[kind]; dup {
			v.addf(fp, "only one %s filter is allowed (also [%d])", kind, j)
			return
		}
		seen[kind] = i
	}
	for i, f := range fs {
		fp := p.at(i)
		switch k := f.GetFilter().(type) {
		case *RouteFilter_RequestHeaderModifier:
			once(fp.child("requestHeaderModifier"), "requestHeaderModifier", i)
			v.headerModifier(fp.child("requestHeaderModifier"), k.RequestHeaderModifier)
		case *RouteFilter_ResponseHeaderModifier:
			once(fp.child("responseHeaderModifier"), "responseHeaderModifier", i)
			v.headerModifier(fp.child("responseHeaderModifier"), k.ResponseHeaderModifier)
		case *RouteFilter_RequestRedirect:
			rp := fp.child("requestRedirect")
			once(rp, "requestRedirect", i)
			if !onRoute {
				v.add(rp, "is not allowed on a backend; put it on the route")
			} else if len(r.GetBackends()) > 0 {
				v.add(rp, "must not be used together with backends")
			}
			v.redirect(rp, k.RequestRedirect, r)
		case *RouteFilter_UrlRewrite:
			up := fp.child("urlRewrite")
			once(up, "urlRewrite", i)
			if h := k.UrlRewrite.GetHostname(); h != "" {
				if problem := checkHostname(h, false); problem != "" {
					v.add(up.child("hostname"), problem)
				}
			}
			if pm := k.UrlRewrite.GetPath(); pm != nil {
				v.pathModifier(up.child("path"), pm, r)
			}
		case *RouteFilter_RequestMirror:
			mp := fp.child("requestMirror")
			v.groupRef(mp.child("backendGroup"), k.RequestMirror.GetBackendGroup())
			switch s := k.RequestMirror.GetShare().(type) {
			case *RequestMirror_Percent:
				if s.Percent > 100 {
					v.addf(mp.child("percent"), "must be between 0 and 100, got %d", s.Percent)
				}
			case *RequestMirror_Fraction:
				den := s.Fraction.GetDenominator()
				if den == 0 {
					den = 100
				}
				if s.Fraction.GetNumerator() > den {
					v.addf(mp.child("fraction").child("numerator"), "must not exceed the denominator (%d), got %d", den, s.Fraction.GetNumerator())
				}
			}
		case *RouteFilter_Cors:
			cp := fp.child("cors")
			once(cp, "cors", i)
			if !onRoute {
				v.add(cp, "is not allowed on a backend; put it on the route")
			}
			v.corsPolicy(cp, k.Cors)
		case *RouteFilter_ExtAuth:
			ap := fp.child("extAuth")
			once(ap, "extAuth", i)
			if !onRoute {
				v.add(ap, "is not allowed on a backend; put it on the route")
			}
			v.extAuth(ap, k.ExtAuth)
		default:
			v.add(fp, "must set exactly one of requestHeaderModifier, responseHeaderModifier, requestRedirect, urlRewrite, requestMirror, cors or extAuth")
		}
	}
	if i, ok := seen["requestRedirect"]; ok {
		if _, ok := seen["urlRewrite"]; ok {
			v.add(p.at(i).child("requestRedirect"), "must not be used together with a urlRewrite filter")
		}
	}
}

// headerModifier validates a header modifier.
func (v *validator) headerModifier(p fieldPath, hm *HeaderModifier) {
	for _, list := range []struct {
		name    string
		headers []*Header
	}{{"set", hm.GetSet()}, {"add", hm.GetAdd()}} {
		seen := map[string]int{}
		for i, h := range list.headers {
			hp := p.item(list.name, i)
			if v.token(hp.child("name"), h.GetName()) {
				key := strings.ToLower(h.GetName())
				if j, dup := seen[key]; dup {
					v.addf(hp.child("name"), "header %q is already in %s[%d]", h.GetName(), list.name, j)
				} else {
					seen[key] = i
				}
			}
			v.headerValue(hp.child("value"), h.GetValue())
		}
	}
	seen := map[string]int{}
	for i, name := range hm.GetRemove() {
		rp := p.item("remove", i)
		if v.token(rp, name) {
			key := strings.ToLower(name)
			if j, dup := seen[key]; dup {
				v.addf(rp, "header %q is already in remove[%d]", name, j)
			} else {
				seen[key] = i
			}
		}
	}
}

// redirect validates a request redirect of route r.
func (v *validator) redirect(p fieldPath, rr *RequestRedirect, r *Route) {
	switch rr.GetScheme() {
	case "", "http", "https":
	default:
		v.addf(p.child("scheme"), "must be http, https or empty, got %q", rr.GetScheme())
	}
	if h := rr.GetHostname(); h != "" {
		if problem := checkHostname(h, false); problem != "" {
			v.add(p.child("hostname"), problem)
		}
	}
	if pm := rr.GetPath(); pm != nil {
		v.pathModifier(p.child("path"), pm, r)
	}
	if rr.GetPort() > 65535 {
		v.addf(p.child("port"), "must be between 1 and 65535, or 0 for the default, got %d", rr.GetPort())
	}
	switch rr.GetStatusCode() {
	case 0, 301, 302, 303, 307, 308:
	default:
		v.addf(p.child("statusCode"), "must be one of 301, 302, 303, 307, 308, got %d", rr.GetStatusCode())
	}
}

// pathModifier validates a path modifier of route r.
func (v *validator) pathModifier(p fieldPath, pm *PathModifier, r *Route) {
	switch m := pm.GetModifier().(type) {
	case *PathModifier_ReplaceFullPath:
		if problem := checkPathChars(m.ReplaceFullPath); problem != "" {
			v.add(p.child("replaceFullPath"), problem)
		}
	case *PathModifier_ReplacePrefixMatch:
		if problem := checkPathChars(m.ReplacePrefixMatch); problem != "" {
			v.add(p.child("replacePrefixMatch"), problem)
		}
		for i, match := range r.GetMatches() {
			if t := match.GetPath().GetType(); match.GetPath() != nil && t != PathMatch_PATH_PREFIX {
				v.addf(p.child("replacePrefixMatch"), "needs every match of the route to be a PATH_PREFIX match, but matches[%d] is %s", i, t)
				break
			}
		}
	default:
		v.add(p, "must set replaceFullPath or replacePrefixMatch")
	}
}

// directResponse validates a direct response.
func (v *validator) directResponse(p fieldPath, dr *DirectResponse) {
	if dr.GetStatus() < 200 || dr.GetStatus() > 599 {
		v.addf(p.child("status"), "must be between 200 and 599, got %d", dr.GetStatus())
	}
	if len(dr.GetBody()) > maxDirectResponseBody {
		v.addf(p.child("body"), "must be at most %d bytes long", maxDirectResponseBody)
	}
}

// retry validates a retry policy.
func (v *validator) retry(p fieldPath, rp *RetryPolicy) {
	if rp.GetAttempts() > MaxRetryAttempts {
		v.addf(p.child("attempts"), "must be at most %d, got %d", MaxRetryAttempts, rp.GetAttempts())
	}
	for i, c := range rp.GetRetryOnStatusCodes() {
		if c < 400 || c > 599 {
			v.addf(p.item("retryOnStatusCodes", i), "must be between 400 and 599, got %d", c)
		}
	}
	v.duration(p.child("backoffBase"), rp.GetBackoffBase())
	v.duration(p.child("backoffMax"), rp.GetBackoffMax())
	if rp.GetBackoffMax() != nil && rp.GetBackoffMax().AsDuration() < rp.GetBackoffBase().AsDuration() {
		v.addf(p.child("backoffMax"), "must not be less than backoffBase (%s)", rp.GetBackoffBase().AsDuration())
	}
}

// rateLimit validates a route's rate limit; routes naming the same bucket must
// limit alike.
func (v *validator) rateLimit(p fieldPath, rl *LocalRateLimit) {
	if rl.GetRequests() < 1 {
		v.add(p.child("requests"), "must be at least 1")
	}
	ip := p.child("interval")
	switch d := rl.GetInterval(); {
	case d == nil:
		v.addf(ip, "must be set, between %s and %s", MinRateLimitInterval, MaxRateLimitInterval)
	case d.CheckValid() != nil:
		v.addf(ip, "invalid duration: %v", d.CheckValid())
	case d.AsDuration() < MinRateLimitInterval || d.AsDuration() > MaxRateLimitInterval:
		v.addf(ip, "must be between %s and %s, got %s", MinRateLimitInterval, MaxRateLimitInterval, d.AsDuration())
	}
	name := rl.GetBucket()
	if name == "" {
		v.add(p.child("bucket"), "must not be empty")
		return
	}
	if v.buckets == nil {
		v.buckets = map[string]bucketUse{}
	}
	first, seen := v.buckets[name]
	if !seen {
		v.buckets[name] = bucketUse{path: p, limit: rl}
		return
	}
	if a, b := first.limit, rl; a.GetRequests() != b.GetRequests() || a.GetInterval().AsDuration() != b.GetInterval().AsDuration() ||
		burstOf(a) != burstOf(b) || a.GetPerClientIp() != b.GetPerClientIp() {
		v.addf(p, "bucket %q is also used by %s with another limit (%s); routes sharing a bucket must have equal limits, got %s",
			name, first.path, describeLimit(a), describeLimit(b))
	}
}

// burstOf returns a rate limit's capacity: burst, or requests when burst is 0.
func burstOf(rl *LocalRateLimit) uint32 {
	if rl.GetBurst() == 0 {
		return rl.GetRequests()
	}
	return rl.GetBurst()
}

// describeLimit returns a rate limit in words.
func describeLimit(rl *LocalRateLimit) string {
	s := fmt.Sprintf("%d requests per %s, burst %d", rl.GetRequests(), rl.GetInterval().AsDuration(), burstOf(rl))
	if rl.GetPerClientIp() {
		s += ", per client IP"
	}
	return s
}

// tcpRoute validates the route of a TCP listener.
func (v *validator) tcpRoute(p fieldPath, r *TCPRoute) {
	if r.GetName() == "" {
		v.add(p.child("name"), "must not be empty")
	}
	v.tcpBackends(p, r.GetBackends())
}

// tlsRoutes validates the routes of a TLS listener: names unique, hostnames as
// virtual hosts have them (each in one route, one route without any), backends as
// a TCP route's.
func (v *validator) tlsRoutes(p fieldPath, routes []*TLSRoute) {
	names := map[string]int{}
	hosts := map[string]int{}
	catchAll := -1
	for i, r := range routes {
		rp := p.item("tlsRoutes", i)
		v.uniqueName(rp.child("name"), r.GetName(), names, i, "tlsRoutes")
		if len(r.GetHostnames()) == 0 {
			if catchAll >= 0 {
				v.addf(rp.child("hostnames"), "only one tlsRoute of a listener may have no hostnames (also tlsRoutes[%d])", catchAll)
			} else {
				catchAll = i
			}
		}
		for j, h := range r.GetHostnames() {
			hp := rp.item("hostnames", j)
			if problem := checkHostname(h, true); problem != "" {
				v.add(hp, problem)
				continue
			}
			if k, dup := hosts[h]; dup {
				v.addf(hp, "hostname %q is also routed by tlsRoutes[%d]", h, k)
				continue
			}
			hosts[h] = i
		}
		v.tcpBackends(rp, r.GetBackends())
	}
}

// tcpBackends validates the weighted backends of a TCP or TLS route (p is the
// route's path).
func (v *validator) tcpBackends(p fieldPath, backends []*TCPBackend) {
	for i, b := range backends {
		bp := p.item("backends", i)
		switch t := b.GetTarget().(type) {
		case *TCPBackend_BackendGroup:
			v.groupRef(bp.child("backendGroup"), t.BackendGroup)
		case *TCPBackend_Reject:
			if !t.Reject {
				v.add(bp.child("reject"), "must be true when set")
			}
		default:
			v.add(bp, "must set backendGroup or reject")
		}
		if b.GetWeight() > MaxWeight {
			v.addf(bp.child("weight"), "must be at most %d, got %d", MaxWeight, b.GetWeight())
		}
	}
	v.someWeight(p.child("backends"), len(backends), func(i int) uint32 { return backends[i].GetWeight() })
}

// someWeight reports a list of n weighted backends whose weights are all zero:
// zero sends a backend nothing, so such a list could serve nothing, and a weight
// left out (zero) is the usual cause. An empty list is not reported here.
func (v *validator) someWeight(p fieldPath, n int, weight func(int) uint32) {
	for i := range n {
		if weight(i) > 0 {
			return
		}
	}
	if n > 0 {
		v.add(p, "every weight is 0, so no backend would get any traffic; give at least one backend a weight of 1 or more (a weight left out is 0)")
	}
}

// groupRef reports a reference to a backend group that does not exist.
func (v *validator) groupRef(p fieldPath, name string) {
	if name == "" {
		v.add(p, "must not be empty")
		return
	}
	if _, ok := v.groups[name]; !ok {
		v.addf(p, "backend group %q does not exist", name)
	}
}

// algorithmName checks the name of a registered selection algorithm: 1 to 63
// characters of lower-case letters, digits, '_', '-' and '.'.
func (v *validator) algorithmName(p fieldPath, name string) {
	if len(name) > 63 {
		v.add(p, "must be at most 63 characters")
		return
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			v.addf(p, "%q: only lower-case letters, digits, '_', '-' and '.' are allowed", name)
			return
		}
	}
}

// backendGroups validates the backend groups of a snapshot.
func (v *validator) backendGroups(gs []*BackendGroup) {
	names := map[string]int{}
	for i, g := range gs {
		p := root.item("backendGroups", i)
		v.uniqueName(p.child("name"), g.GetName(), names, i, "backendGroups")
		if lb := g.GetLoadBalancing(); lb != nil {
			lp := p.child("loadBalancing")
			hashed := lb.GetPolicy() == LoadBalancing_RING_HASH || lb.GetPolicy() == LoadBalancing_MAGLEV
			switch {
			case lb.GetAlgorithm() != "":
				if lb.GetPolicy() != LoadBalancing_POLICY_UNSPECIFIED {
					v.addf(lp.child("policy"), "must be unspecified with algorithm %q", lb.GetAlgorithm())
				}
				v.algorithmName(lp.child("algorithm"), lb.GetAlgorithm())
			case hashed && lb.GetHashOn() == nil:
				v.addf(lp.child("hashOn"), "must be set for policy %s", lb.GetPolicy())
			case !hashed && lb.GetHashOn() != nil:
				v.addf(lp.child("hashOn"), "must be unset for policy %s; only RING_HASH and MAGLEV hash", lb.GetPolicy())
			}
			if h := lb.GetHashOn(); h != nil {
				hp := lp.child("hashOn")
				switch k := h.GetKey().(type) {
				case *HashOn_Header:
					v.token(hp.child("header"), k.Header)
				case *HashOn_Cookie:
					v.token(hp.child("cookie"), k.Cookie)
				case *HashOn_SourceIp:
					if !k.SourceIp {
						v.add(hp.child("sourceIp"), "must be true when set")
					}
				default:
					v.add(hp, "must set header, cookie or sourceIp")
				}
			}
		}
		if hc := g.GetHealthCheck(); hc != nil {
			v.healthCheck(p.child("healthCheck"), hc, g.GetProtocol())
		}
		if od := g.GetOutlierDetection(); od != nil {
			op := p.child("outlierDetection")
			v.duration(op.child("baseEjectionTime"), od.GetBaseEjectionTime())
			if od.GetMaxEjectionPercent() > 100 {
				v.addf(op.child("maxEjectionPercent"), "must be between 0 and 100, got %d", od.GetMaxEjectionPercent())
			}
		}
		if rb := g.GetRetryBudget(); rb != nil && rb.GetPercent() > 100 {
			v.addf(p.child("retryBudget").child("percent"), "must be between 0 and 100, got %d", rb.GetPercent())
		}
		if t := g.GetTls(); t != nil {
			v.backendTLS(p.child("tls"), t)
			if g.GetProtocol() == BackendGroup_H2C {
				v.add(p.child("protocol"), "must not be H2C with tls set: the dataplane speaks HTTP/1.1 over TLS to backends (h2 over TLS is not supported yet)")
			}
		}
		v.duration(p.child("connectTimeout"), g.GetConnectTimeout())
		v.duration(p.child("idleTimeout"), g.GetIdleTimeout())
		v.timeout(p.child("responseHeaderTimeout"), g.GetResponseHeaderTimeout())
		v.timeout(p.child("responseBodyIdleTimeout"), g.GetResponseBodyIdleTimeout())
		v.endpoints(p, g.GetEndpoints())
	}
}

// MaxSubjectAltNames bounds BackendTLS.subject_alt_names.
const MaxSubjectAltNames = 16

// backendTLS validates a backend group's TLS: a server name, one source of
// trust anchors, and well-formed subject alternative names.
func (v *validator) backendTLS(p fieldPath, t *BackendTLS) {
	if problem := checkHostname(t.GetServerName(), false); problem != "" {
		v.add(p.child("serverName"), problem)
	}
	switch {
	case len(t.GetCaCertPem()) > 0 && t.GetSystemRoots():
		v.add(p.child("systemRoots"), "must be false when caCertPem is set (one source of trust anchors)")
	case len(t.GetCaCertPem()) > 0:
		if err := CheckCABundle(t.GetCaCertPem()); err != nil {
			v.add(p.child("caCertPem"), err.Error())
		}
	case !t.GetSystemRoots():
		v.add(p, "must set caCertPem or systemRoots (the certificates backends are verified against)")
	}
	switch c, k := t.GetClientCertPem(), t.GetClientKeyPem(); {
	case len(c) == 0 && len(k) == 0:
	case len(c) == 0 || len(k) == 0:
		v.add(p.child("clientCertPem"), "clientCertPem and clientKeyPem must be set together")
	default:
		if err := checkKeyPair(c, k); err != nil {
			v.add(p.child("clientCertPem"), err.Error())
		}
	}
	if n := len(t.GetSubjectAltNames()); n > MaxSubjectAltNames {
		v.addf(p.child("subjectAltNames"), "must have at most %d entries, got %d", MaxSubjectAltNames, n)
	}
	for i, san := range t.GetSubjectAltNames() {
		sp := p.item("subjectAltNames", i)
		switch n := san.GetName().(type) {
		case *SubjectAltName_Hostname:
			if problem := checkHostname(n.Hostname, true); problem != "" {
				v.add(sp.child("hostname"), problem)
			}
		case *SubjectAltName_Uri:
			if u, err := url.Parse(n.Uri); err != nil || !u.IsAbs() {
				v.add(sp.child("uri"), "must be an absolute URI such as spiffe://cluster.local/ns/a/sa/b")
			}
		default:
			v.add(sp, "must set hostname or uri")
		}
	}
}

// healthCheck validates the health check of a group speaking protocol.
func (v *validator) healthCheck(p fieldPath, hc *HealthCheck, protocol BackendGroup_Protocol) {
	if g := hc.GetGrpc(); g != nil {
		gp := p.child("grpc")
		if protocol != BackendGroup_H2C {
			v.add(gp, "must be unset unless the group's protocol is H2C (gRPC health checks speak h2c), and the group speaks HTTP/1.1")
		}
		if hc.GetPath() != "" {
			v.add(p.child("path"), "must be empty when grpc is set (the probe calls grpc.health.v1.Health/Check)")
		}
		if len(hc.GetExpectedStatuses()) > 0 {
			v.add(p.child("expectedStatuses"), "must be empty when grpc is set (only the SERVING status is healthy)")
		}
		if s := g.GetService(); len(s) > MaxGRPCHealthService {
			v.addf(gp.child("service"), "must be at most %d bytes, got %d", MaxGRPCHealthService, len(s))
		} else if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }); i >= 0 {
			v.addf(gp.child("service"), "must be printable ASCII without spaces, got %q at byte %d", s[i:i+1], i)
		}
	}
	if hc.GetGrpc() == nil {
		if problem := checkPathChars(hc.GetPath()); problem != "" {
			v.add(p.child("path"), problem)
		}
	}
	if h := hc.GetHost(); h != "" {
		if _, err := netip.ParseAddr(h); err != nil {
			if problem := checkHostname(h, false); problem != "" {
				v.add(p.child("host"), problem)
			}
		}
	}
	for i, r := range hc.GetExpectedStatuses() {
		rp := p.item("expectedStatuses", i)
		if r.GetMin() < 100 || r.GetMin() > 599 {
			v.addf(rp.child("min"), "must be between 100 and 599, got %d", r.GetMin())
		}
		if r.GetMax() < r.GetMin() || r.GetMax() > 599 {
			v.addf(rp.child("max"), "must be between min (%d) and 599, got %d", r.GetMin(), r.GetMax())
		}
	}
	v.duration(p.child("interval"), hc.GetInterval())
	v.duration(p.child("timeout"), hc.GetTimeout())
	v.duration(p.child("jitter"), hc.GetJitter())
	if iv, to := hc.GetInterval().AsDuration(), hc.GetTimeout().AsDuration(); iv > 0 && to > iv {
		v.addf(p.child("timeout"), "must not exceed interval (%s), got %s", iv, to)
	}
}

// endpoints validates the endpoints of the backend group at p.
func (v *validator) endpoints(p fieldPath, es []*Endpoint) {
	seen := map[netip.AddrPort]int{}
	for i, e := range es {
		ep := p.item("endpoints", i)
		ip, err := netip.ParseAddr(e.GetAddress())
		if err != nil {
			v.addf(ep.child("address"), "must be an IPv4 or IPv6 address without brackets, got %q", e.GetAddress())
		}
		portOK := e.GetPort() >= 1 && e.GetPort() <= 65535
		if !portOK {
			v.addf(ep.child("port"), "must be between 1 and 65535, got %d", e.GetPort())
		}
		if e.GetWeight() > MaxWeight {
			v.addf(ep.child("weight"), "must be at most %d, got %d", MaxWeight, e.GetWeight())
		}
		if err == nil && portOK {
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(e.GetPort()))
			if j, dup := seen[ap]; dup {
				v.addf(ep, "duplicate endpoint %s (also endpoints[%d])", ap, j)
			} else {
				seen[ap] = i
			}
		}
	}
}

// duration reports an invalid or negative duration; nil is valid.
func (v *validator) duration(p fieldPath, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.addf(p, "invalid duration: %v", err)
		return
	}
	if d.AsDuration() < 0 {
		v.addf(p, "must not be negative, got %s", d.AsDuration())
	}
}

// timeout reports a timeout outside MinTimeout..MaxTimeout; nil (the default) is
// valid.
func (v *validator) timeout(p fieldPath, d *durationpb.Duration) {
	switch {
	case d == nil:
	case d.CheckValid() != nil:
		v.addf(p, "invalid duration: %v", d.CheckValid())
	case d.AsDuration() < MinTimeout || d.AsDuration() > MaxTimeout:
		v.addf(p, "must be between %s and %s, got %s (leave it unset for the default)", MinTimeout, MaxTimeout, d.AsDuration())
	}
}

// token reports a name that is not an HTTP token (RFC 9110 section 5.6.2) and
// returns whether it is one.
func (v *validator) token(p fieldPath, s string) bool {
	if s == "" {
		v.add(p, "must not be empty")
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			v.addf(p, "must be an HTTP token, but %q contains %q", s, s[i])
			return false
		}
	}
	return true
}

// headerValue reports a header value that could not be sent as one.
func (v *validator) headerValue(p fieldPath, s string) {
	if len(s) > maxHeaderValueLength {
		v.addf(p, "must be at most %d bytes long", maxHeaderValueLength)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r != '\t' && isControl(r) }); i >= 0 {
		v.addf(p, "must not contain control characters such as CR, LF or NUL, found %q", s[i])
	}
}

// regex reports an empty or invalid Go RE2 expression.
func (v *validator) regex(p fieldPath, expr string) {
	if expr == "" {
		v.add(p, "must not be empty")
		return
	}
	if len(expr) > maxPathLength {
		v.addf(p, "must be at most %d bytes long", maxPathLength)
		return
	}
	if _, err := regexp.Compile(expr); err != nil {
		v.addf(p, "invalid regular expression: %v", err)
	}
}

// isTokenChar reports whether c is a tchar of RFC 9110.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isControl reports whether r is an ASCII control character.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkHostname returns what is wrong with the DNS name h, or "". With
// allowWildcard, h may start with "*." (a wildcard as the whole leftmost label).
func checkHostname(h string, allowWildcard bool) string {
	if h == "" {
		return "must not be empty"
	}
	name := h
	if allowWildcard && strings.HasPrefix(h, "*.") {
		name = h[2:]
	}
	if strings.Contains(name, "*") {
		if allowWildcard {
			return fmt.Sprintf("invalid hostname %q: a wildcard is only allowed as the whole leftmost label, as in \"*.example.com\"", h)
		}
		return fmt.Sprintf("invalid hostname %q: wildcards are not allowed here", h)
	}
	if len(h) > 253 {
		return fmt.Sprintf("invalid hostname %q: longer than 253 characters", h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Sprintf("invalid hostname %q: must be a DNS name, not an IP address", h)
	}
	if strings.ToLower(h) != h {
		return fmt.Sprintf("invalid hostname %q: must be lowercase", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("invalid hostname %q: labels must be 1 to 63 characters long", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("invalid hostname %q: labels must not start or end with '-'", h)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Sprintf("invalid hostname %q: %q is not allowed (only a-z, 0-9, '-' and '.')", h, c)
			}
		}
	}
	return ""
}

// checkPathChars returns what is wrong with the absolute path s, or "": it must
// start with "/" and hold only characters allowed in a URI path (RFC 3986), with
// "%" starting a percent-encoded byte.
func checkPathChars(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if s[0] != '/' {
		return `must start with "/"`
	}
	if len(s) > maxPathLength {
		return fmt.Sprintf("must be at most %d bytes long", maxPathLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Sprintf("%q at byte %d must start a percent-encoded byte such as %%20", c, i)
			}
		default:
			return fmt.Sprintf("must not contain %q (byte %d); percent-encode it", c, i)
		}
	}
	return ""
}

// checkMatchPath returns what is wrong with an EXACT or PATH_PREFIX path value, or
// "": beyond checkPathChars it must be normalized, since the dataplane matches
// normalized request paths.
func checkMatchPath(s string) string {
	if problem := checkPathChars(s); problem != "" {
		return problem
	}
	switch {
	case strings.Contains(s, "//"):
		return `must not contain "//"`
	case strings.Contains(s, "/./"), strings.HasSuffix(s, "/."):
		return `must not contain a "." segment`
	case strings.Contains(s, "/../"), strings.HasSuffix(s, "/.."):
		return `must not contain a ".." segment`
	case strings.Contains(strings.ToLower(s), "%2f"):
		return `must not contain an encoded "/" (%2F)`
	}
	return ""
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
