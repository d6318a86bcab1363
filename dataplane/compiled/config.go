package compiled

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/router"
	"github.com/flaxlb/flax/dataplane/tracing"
)

// Config is a compiled snapshot. It is immutable but for each group's endpoints.
type Config struct {
	Version   uint64
	Hash      string
	Listeners []*Listener
	// Groups holds every backend group; Group.Index indexes it.
	Groups []*Group

	groups     map[string]*Group
	rateLimits map[string]*RateLimit // by bucket name
	filters    *filter.Registry      // while compiling
	spans      *tracing.Exporter     // while compiling
}

// Protocol is a listener's protocol.
type Protocol uint8

// Listener protocols.
const (
	ProtocolHTTP Protocol = iota + 1
	ProtocolHTTPS
	ProtocolTCP
	// ProtocolTLS routes connections by the server name of their ClientHello
	// to passthrough or terminating TLS routes (Listener.MatchTLS).
	ProtocolTLS
	// ProtocolUDP forwards datagrams flow by flow to Listener.UDP (served by
	// dataplane/udp, not by the connection engines).
	ProtocolUDP
)

// String returns the protocol's name.
func (p Protocol) String() string {
	switch p {
	case ProtocolHTTP:
		return "HTTP"
	case ProtocolHTTPS:
		return "HTTPS"
	case ProtocolTCP:
		return "TCP"
	case ProtocolTLS:
		return "TLS"
	case ProtocolUDP:
		return "UDP"
	}
	return "unknown"
}

// Listener is one bound address and what it serves.
type Listener struct {
	Name string
	// Stats is the metrics listener id (metrics.Worker.Listener).
	Stats uint32
	// MaxConnections caps the connections open on the listener at once (0:
	// no cap of its own).
	MaxConnections int64
	// Addr is the address to bind; an unspecified IP means every address.
	Addr     netip.AddrPort
	Protocol Protocol
	// TLS terminates HTTPS, and the terminating routes of a TLS listener;
	// SNI picks the certificate. Nil for other protocols, and for a TLS
	// listener whose routes all pass TLS through.
	TLS *tls.Config
	// TCP is the route of a TCP listener; only its Backends are used.
	TCP *Route
	// UDP is the route of a UDP listener; only its Backends are used.
	UDP *Route
	// UDPIdleTimeout ends a UDP flow idle this long; UDPMaxFlows bounds a UDP
	// listener's flows per worker. Both have their defaults filled in.
	UDPIdleTimeout time.Duration
	UDPMaxFlows    int
	// TLSRoutes are the routes of a TLS listener, selected by MatchTLS;
	// only their Backends are used, as of a TCP route.
	TLSRoutes []TLSRoute
	// TrustedHops, when TrustedHopsSet, is the number of proxies in front
	// of the listener whose forwarding headers are trusted; otherwise the
	// dataplane's default applies (proxy.Options.TrustedHops).
	TrustedHops    int
	TrustedHopsSet bool
	// MaxRequestHeaderBytes, MaxRequestHeaders, MaxResponseHeaderBytes and
	// MaxResponseHeaders are the listener's head limits; zero takes the
	// dataplane's (proxy.Options), which also caps the byte limits.
	MaxRequestHeaderBytes, MaxRequestHeaders   int
	MaxResponseHeaderBytes, MaxResponseHeaders int
	// Timeouts bound the waits of the listener's client connections.
	Timeouts ListenerTimeouts
	// Tracing, when set, traces the listener's requests.
	Tracing *Tracing
	// ConnFilters are the connection hooks of a TCP or TLS listener's extension
	// filters, in order. An HTTP listener's filters are compiled into each
	// of its routes' Filters.
	ConnFilters []filter.ConnFilter
	// HTTP2 serves HTTP/2 to clients of an HTTP or HTTPS listener: h2c
	// with prior knowledge (the connection preface) on HTTP, ALPN "h2" on
	// HTTPS. MaxConcurrentStreams is its SETTINGS_MAX_CONCURRENT_STREAMS
	// (0: the default, 100).
	HTTP2                bool
	MaxConcurrentStreams uint32

	// domains selects, on an HTTPS listener with more than one certificate,
	// the certificate a name belongs to (by the certificates' server names, as
	// virtual hosts); domainKeys names each, domainIDs are their ids (see
	// CertificateDomain). Nil
	// otherwise: every name belongs to the one certificate.
	domains    *router.Table
	domainKeys []string
	domainIDs  []uint16

	table   *router.Table
	matched []Matched         // indexed by router action
	groups  map[string]*Group // the config's, for Group
}

// TLSRoute is one route of a TLS listener.
type TLSRoute struct {
	*Route
	// Terminate has the dataplane terminate TLS with the listener's
	// certificates (Listener.TLS) and tunnel the plaintext; otherwise the
	// connection's bytes are tunneled unchanged.
	Terminate bool
}

// MatchTLS returns the route of a TLS listener for a ClientHello's server
// name (lowercase; empty when the hello has none): an exact hostname, then
// the longest wildcard suffix, then the route without hostnames; nil when
// none matches (the connection is closed). It does not allocate.
func (l *Listener) MatchTLS(serverName []byte) *TLSRoute {
	if l.table == nil || l.Protocol != ProtocolTLS {
		return nil
	}
	i, ok := l.table.MatchHost(serverName)
	if !ok {
		return nil
	}
	return &l.TLSRoutes[i]
}

// CertificateDomain returns the certificate of an HTTPS listener that a host
// name (a TLS server name, or a Host header or :authority, whose port is
// stripped) belongs to, as a non-zero id derived from the certificate's
// server names, so the same in any configuration with the same names: exact
// names first, then the longest wildcard, then the default certificate. ok
// is false when the listener has one certificate or none (nothing can be
// misdirected), or the name belongs to none. A request whose Host belongs to
// another certificate than its connection's server name is misdirected
// (421, RFC 9110 section 15.5.20): listeners sharing a port with different
// hostnames each have their own certificate entry. It does not allocate.
func (l *Listener) CertificateDomain(host []byte) (id uint16, ok bool) {
	if l.domains == nil {
		return 0, false
	}
	i, ok := l.domains.MatchAuthority(host)
	if !ok {
		return 0, false
	}
	return l.domainIDs[i], true
}

// compileDomains builds the certificate domains of an HTTPS listener with
// more than one certificate (CertificateDomain).
func (l *Listener) compileDomains(certs []*dataplanev1.TLSCertificate) error {
	if len(certs) < 2 {
		return nil
	}
	vhosts := make([]router.VirtualHost, 0, len(certs))
	keys := make([]string, 0, len(certs))
	for i, c := range certs {
		// The default certificate's key cannot be a server name.
		key := "*"
		if len(c.GetServerNames()) > 0 {
			key = strings.Join(c.GetServerNames(), ",")
		}
		vhosts = append(vhosts, router.VirtualHost{
			Name: key, Hostnames: c.GetServerNames(),
			Routes: []router.Route{{Name: key, Action: i}},
		})
		keys = append(keys, key)
	}
	t, err := router.Build(vhosts)
	if err != nil {
		return fmt.Errorf("certificates: build server name table: %w", err)
	}
	l.domains, l.domainKeys, l.domainIDs = t, keys, domainIDs(keys)
	return nil
}

// domainIDs gives each key a distinct non-zero 16-bit id: a hash of the key
// under the first seed that makes them distinct, so that the ids depend on
// the keys alone (a session keeps its connection's id across configurations
// in two bytes).
func domainIDs(keys []string) []uint16 {
	ids := make([]uint16, len(keys))
	for seed := uint32(0); ; seed++ {
		seen := make(map[uint16]bool, len(keys))
		distinct := true
		for i, k := range keys {
			h := fnv.New32a()
			fmt.Fprintf(h, "%d/%s", seed, k)
			v := h.Sum32()
			id := uint16(v) ^ uint16(v>>16)
			if id == 0 || seen[id] {
				distinct = false
				break
			}
			seen[id], ids[i] = true, id
		}
		if distinct {
			return ids
		}
	}
}

// TerminatesTLS reports whether the listener's connections may need a TLS
// server: an HTTPS listener, or a TLS listener with a terminating route.
func (l *Listener) TerminatesTLS() bool {
	return l.Protocol == ProtocolHTTPS || (l.Protocol == ProtocolTLS && l.TLS != nil)
}

// Group returns the backend group of the listener's config with the given name,
// or nil. It does not allocate.
func (l *Listener) Group(name string) *Group { return l.groups[name] }

// ListenerTimeouts are the timeouts a listener sets (dataplanev1.ListenerTimeouts);
// a zero field was left unset, and the engine's default applies (proxy.Options).
type ListenerTimeouts struct {
	RequestHead, RequestBodyIdle, SendStall, KeepAliveIdle, TunnelIdle time.Duration
}

// Matched is a route lookup's result.
type Matched struct {
	Route *Route
	// Prefix is the PathPrefix value of the match that matched, for ReplacePrefixMatch.
	Prefix string
}

// Match returns the route for a request, or nil when none matches (404). It does not
// allocate.
func (l *Listener) Match(v *router.RequestView) *Matched {
	if l.table == nil {
		return nil
	}
	action, _, ok := l.table.Match(v)
	if !ok {
		return nil
	}
	return &l.matched[action]
}

// Route is one HTTPRoute rule as compiled.
type Route struct {
	Name string
	// Stats is the metrics route id (metrics.Worker.Route).
	Stats                           uint32
	RequestHeaders, ResponseHeaders HeaderModifier
	Redirect                        *Redirect
	Rewrite                         *Rewrite
	Mirrors                         []Mirror
	Backends                        []Backend
	Timeouts                        Timeouts
	Retry                           RetryPolicy
	Affinity                        Affinity
	// RateLimit bounds the rate of the route's requests; nil means no limit.
	// Routes naming the same bucket share it.
	RateLimit *RateLimit
	// CORS is the route's CORS policy; nil means none.
	CORS *CORS
	// ExtAuth is the route's external authorization; nil means none.
	ExtAuth *ExtAuth
	// Filters are the hooks of the extension filters that run on the route's
	// requests: the listener's filters, then the route's.
	Filters Filters

	cumWeight []uint32 // running sum of Backends' weights
}

// PickBackend returns a backend chosen by weight using rnd as the random draw, or nil when
// the route has no backends or all weights are zero (the caller answers 500).
func (r *Route) PickBackend(rnd uint32) *Backend {
	n := len(r.cumWeight)
	if n == 0 {
		return nil
	}
	total := r.cumWeight[n-1]
	if total == 0 {
		return nil
	}
	x := uint32(uint64(rnd) * uint64(total) >> 32)
	lo, hi := 0, n-1
	for lo < hi {
		mid := (lo + hi) / 2
		if r.cumWeight[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return &r.Backends[lo]
}

// Filters are extension filters' hooks, each list in the order the filters
// are named (see package filter). The lists are typed so that the proxy calls
// hooks without type assertions.
type Filters struct {
	Request  []filter.RequestFilter
	Upstream []filter.UpstreamRequestFilter
	Response []filter.ResponseFilter
}

// add appends the hooks f implements; it reports false when f implements no
// HTTP hook.
func (fs *Filters) add(f any) bool {
	ok := false
	if h, is := f.(filter.RequestFilter); is {
		fs.Request = append(fs.Request, h)
		ok = true
	}
	if h, is := f.(filter.UpstreamRequestFilter); is {
		fs.Upstream = append(fs.Upstream, h)
		ok = true
	}
	if h, is := f.(filter.ResponseFilter); is {
		fs.Response = append(fs.Response, h)
		ok = true
	}
	return ok
}

// Backend is one weighted backendRef of a route.
type Backend struct {
	// Group is the backend group; nil when the ref is invalid, then Direct answers.
	Group                           *Group
	Direct                          *DirectResponse
	Weight                          uint32
	RequestHeaders, ResponseHeaders HeaderModifier
}

// DirectResponse is a response the proxy sends itself.
type DirectResponse struct {
	Status int
	Body   []byte
}

// HeaderModifier edits headers. Its zero value changes nothing.
type HeaderModifier struct {
	Set, Add []Header
	// Remove holds lowercase names.
	Remove []string
}

// Header is a header field to set or add.
type Header struct {
	Name, Value string
	// Lower is Name in lowercase.
	Lower string
}

// Redirect answers with a redirect; empty fields keep the request's value.
type Redirect struct {
	Scheme, Hostname string
	Port             uint32
	Status           int
	Path             *PathModifier
}

// Rewrite rewrites the request before it goes upstream; empty fields change nothing.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
}

// PathModifier replaces the whole path (FullPath) or, when IsPrefix, the matched prefix
// by PrefixReplace.
type PathModifier struct {
	FullPath      string
	PrefixReplace string
	IsPrefix      bool
}

// Mirror sends a copy of a share (Numerator/Denominator) of requests to Group.
type Mirror struct {
	Group                  *Group
	Numerator, Denominator uint32
}

// Timeouts bound a request; zero means no limit.
type Timeouts struct {
	Request, BackendRequest time.Duration
}

// RetryPolicy says when a failed attempt is retried. Attempts counts retries, not the
// first try; zero disables retries.
type RetryPolicy struct {
	Attempts                  int
	OnStatus                  []int
	OnConnectFailure, OnReset bool
	// OnBackendTimeout retries an attempt that got no response head within
	// Timeouts.BackendRequest.
	OnBackendTimeout        bool
	BackoffBase, BackoffMax time.Duration
	// ConnectEveryEndpoint lets a request whose connects fail go on past Attempts
	// until it has tried every eligible endpoint of its group once (at most
	// MaxConnectAttempts), as nginx's proxy_next_upstream does by default: a failed
	// connect reached no backend, so the extra attempts cost the backends nothing.
	// DefaultRetry sets it; snapshots cannot.
	ConnectEveryEndpoint bool
}

// MaxConnectAttempts bounds the attempts of a request under
// RetryPolicy.ConnectEveryEndpoint.
const MaxConnectAttempts = 8

// RetriesStatus reports whether a response status is retryable.
func (p *RetryPolicy) RetriesStatus(status int) bool {
	for _, s := range p.OnStatus {
		if s == status {
			return true
		}
	}
	return false
}

// Affinity pins a client to an endpoint by cookie or header, on top of a hash policy.
type Affinity struct {
	Cookie    string
	CookieTTL time.Duration
	Header    string
}

// Group is a backend group (cluster): its settings and its current endpoints.
type Group struct {
	Name  string
	Index int
	// Stats is the metrics group id (metrics.Worker.Group).
	Stats                       uint32
	ConnectTimeout, IdleTimeout time.Duration
	MaxIdlePerEndpoint          int
	HashHeader, HashCookie      string
	HashSourceIP                bool
	// Algorithm makes the group's per-worker selectors: a built-in
	// balancer.Policy or an algorithm registered by name. Keyer is set when
	// the algorithm computes the pick key from the request itself (it then
	// replaces the hash-on setting).
	Algorithm balancer.Algorithm
	Keyer     balancer.Keyer
	// HealthCheck configures active health checks; nil disables them.
	HealthCheck *HealthCheck
	// Outlier configures passive outlier detection; nil disables it.
	Outlier *OutlierDetection
	// Breakers are the group's circuit breaker limits, node-wide.
	Breakers CircuitBreakers
	// RetryBudget bounds the group's retries in flight, node-wide.
	RetryBudget RetryBudget
	// Shared is the group's node-wide state (circuit breaker gauges, health and
	// mirror counters); it is the same object in every config that has the group.
	Shared *metrics.Shared

	// ResponseHeaderTimeout and ResponseBodyIdleTimeout bound the waits on the
	// group's endpoints for a response head and for the next byte of a response
	// body; zero when unset, and the engine's default applies (proxy.Options).
	ResponseHeaderTimeout, ResponseBodyIdleTimeout time.Duration

	// TLS, when set, is the client configuration of every connection to the
	// group's endpoints (the contract's BackendTLS); TLSKey identifies it
	// across configurations (pooled connections are kept apart by it).
	TLS    *tls.Config
	TLSKey string
	// H2C is set when the group's endpoints speak cleartext HTTP/2 with
	// prior knowledge (BackendGroup.protocol H2C): the proxy sends its
	// requests as HTTP/2 streams. Tunnels (TCP and TLS listeners) ignore it.
	H2C bool

	lb     balancer.Config
	eps    atomic.Pointer[balancer.Group]
	health atomic.Pointer[EndpointHealth]
	hook   atomic.Pointer[func(*balancer.Group)]
	mirror atomic.Pointer[mirrorHolder]
	failed atomic.Pointer[connectFailures]
}

// Endpoints returns the group's current endpoints.
func (g *Group) Endpoints() *balancer.Group { return g.eps.Load() }

// Group returns the backend group with the given name, or nil.
func (c *Config) Group(name string) *Group { return c.groups[name] }

// UpdateEndpoints replaces one group's endpoints without recompiling routes. Workers pick
// from the new set on their next request; requests in flight keep the set they picked
// from.
func (c *Config) UpdateEndpoints(group string, eps []*dataplanev1.Endpoint) error {
	g := c.groups[group]
	if g == nil {
		return fmt.Errorf("update endpoints: unknown backend group %q", group)
	}
	bg, err := buildEndpoints(eps, g.lb)
	if err != nil {
		return fmt.Errorf("update endpoints of backend group %q: %w", group, err)
	}
	g.eps.Store(bg)
	if h := g.hook.Load(); h != nil {
		(*h)(bg)
	}
	return nil
}

// DefaultRetry is the retry policy of a route whose snapshot sets none: up to two
// retries, each on an endpoint not tried yet, when the connect fails or when an
// idempotent request's connection fails before any response byte (see
// proxy.Session), and past two while connects fail and endpoints not tried are left
// (ConnectEveryEndpoint). During a scale-down several endpoints of a group can
// refuse or swallow connections at once until the endpoint update arrives; the
// group's retry budget bounds the extra load of the replays (a retry after a failed
// connect adds none and takes no slot). Each retry follows within a millisecond: it goes to
// another endpoint, so waiting spares no one, and a replay holds its slot in the
// budget while it waits. An explicit policy, even an empty one, replaces it.
var DefaultRetry = RetryPolicy{
	Attempts: 2, OnConnectFailure: true, ConnectEveryEndpoint: true,
	BackoffBase: time.Millisecond, BackoffMax: time.Millisecond,
}

// Compile builds a Config from a snapshot. Route and group names are interned in reg so
// that their metrics survive config swaps. Extension filter names are resolved in
// filter.Default.
func Compile(s *dataplanev1.Snapshot, reg *metrics.Registry) (*Config, error) {
	return CompileWith(s, reg, filter.Default)
}

// CompileWith is Compile resolving extension filter names in filters. A name
// filters does not hold rejects the snapshot.
func CompileWith(s *dataplanev1.Snapshot, reg *metrics.Registry, filters *filter.Registry) (*Config, error) {
	return CompileDeps(s, Deps{Metrics: reg, Filters: filters})
}

// Deps are what a compiled config refers to beyond its snapshot.
type Deps struct {
	// Metrics interns route, group and listener names (required).
	Metrics *metrics.Registry
	// Filters resolves extension filter names; nil means filter.Default.
	Filters *filter.Registry
	// Spans receives the spans of traced requests; a snapshot whose listeners
	// trace is rejected without it.
	Spans *tracing.Exporter
}

// CompileDeps is Compile with every dependency given.
func CompileDeps(s *dataplanev1.Snapshot, d Deps) (*Config, error) {
	reg, filters := d.Metrics, d.Filters
	if filters == nil {
		filters = filter.Default
	}
	c := &Config{Version: s.GetVersion(), Hash: s.GetHash(), groups: map[string]*Group{}, filters: filters, spans: d.Spans}
	for i, pg := range s.GetBackendGroups() {
		g, err := compileGroup(pg, i, reg)
		if err != nil {
			return nil, fmt.Errorf("backendGroups[%d] (%s): %w", i, pg.GetName(), err)
		}
		if _, dup := c.groups[g.Name]; dup {
			return nil, fmt.Errorf("backendGroups[%d]: duplicate name %q", i, g.Name)
		}
		c.groups[g.Name] = g
		c.Groups = append(c.Groups, g)
	}
	for i, pl := range s.GetListeners() {
		l, err := c.compileListener(pl, reg)
		if err != nil {
			return nil, fmt.Errorf("listeners[%d] (%s): %w", i, pl.GetName(), err)
		}
		c.Listeners = append(c.Listeners, l)
	}
	c.filters = nil
	return c, nil
}

// lookupFilter resolves an extension filter name.
func (c *Config) lookupFilter(name string) (any, error) {
	if c.filters != nil {
		if f, ok := c.filters.Lookup(name); ok {
			return f, nil
		}
	}
	var names []string
	if c.filters != nil {
		names = c.filters.Registered()
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("unknown extension filter %q (this dataplane registers none)", name)
	}
	return nil, fmt.Errorf("unknown extension filter %q (this dataplane registers %s)", name, strings.Join(names, ", "))
}

// compileFilters appends the hooks of the named filters to fs.
func (c *Config) compileFilters(fs *Filters, names []string) error {
	for i, name := range names {
		f, err := c.lookupFilter(name)
		if err != nil {
			return fmt.Errorf("extensionFilters[%d]: %w", i, err)
		}
		if !fs.add(f) {
			return fmt.Errorf("extensionFilters[%d]: filter %q (%T) has no request, upstream request or response hook", i, name, f)
		}
	}
	return nil
}

func compileGroup(pg *dataplanev1.BackendGroup, index int, reg *metrics.Registry) (*Group, error) {
	g := &Group{
		Name:               pg.GetName(),
		Index:              index,
		Stats:              reg.GroupID(pg.GetName()),
		ConnectTimeout:     orDefault(pg.GetConnectTimeout().AsDuration(), dataplanev1.DefaultConnectTimeout),
		IdleTimeout:        pg.GetIdleTimeout().AsDuration(), // zero: kept until the endpoint closes them
		MaxIdlePerEndpoint: int(pg.GetMaxIdleConnectionsPerEndpoint()),

		ResponseHeaderTimeout:   pg.GetResponseHeaderTimeout().AsDuration(),
		ResponseBodyIdleTimeout: pg.GetResponseBodyIdleTimeout().AsDuration(),
		H2C:                     pg.GetProtocol() == dataplanev1.BackendGroup_H2C,
	}
	if pg.GetConnectTimeout() == nil {
		g.ConnectTimeout = dataplanev1.DefaultConnectTimeout
	}
	if pg.GetIdleTimeout() == nil {
		g.IdleTimeout = dataplanev1.DefaultIdleTimeout
	}
	if g.MaxIdlePerEndpoint == 0 {
		g.MaxIdlePerEndpoint = dataplanev1.DefaultMaxIdlePerEndpoint
	}
	lb := pg.GetLoadBalancing()
	switch lb.GetPolicy() {
	case dataplanev1.LoadBalancing_POLICY_UNSPECIFIED, dataplanev1.LoadBalancing_ROUND_ROBIN:
		g.lb.Policy = balancer.RoundRobin
	case dataplanev1.LoadBalancing_WEIGHTED_ROUND_ROBIN:
		g.lb.Policy = balancer.WeightedRoundRobin
	case dataplanev1.LoadBalancing_LEAST_REQUEST:
		g.lb.Policy = balancer.LeastRequest
	case dataplanev1.LoadBalancing_RANDOM:
		g.lb.Policy = balancer.Random
	case dataplanev1.LoadBalancing_RING_HASH:
		g.lb.Policy = balancer.RingHash
	case dataplanev1.LoadBalancing_MAGLEV:
		g.lb.Policy = balancer.Maglev
	default:
		return nil, fmt.Errorf("loadBalancing.policy: unknown policy %v", lb.GetPolicy())
	}
	g.Algorithm = g.lb.Policy
	if name := lb.GetAlgorithm(); name != "" {
		a, ok := balancer.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("loadBalancing.algorithm: no algorithm %q is registered in this dataplane (registered: %s)",
				name, strings.Join(balancer.Registered(), ", "))
		}
		if p, builtin := a.(balancer.Policy); builtin {
			g.lb.Policy = p
		}
		g.Algorithm = a
		g.Keyer, _ = a.(balancer.Keyer)
	}
	if h := lb.GetHashOn(); h != nil {
		g.HashHeader = strings.ToLower(h.GetHeader())
		g.HashCookie = h.GetCookie()
		g.HashSourceIP = h.GetSourceIp()
	}
	var err error
	if g.TLS, g.TLSKey, err = compileBackendTLS(pg.GetTls()); err != nil {
		return nil, err
	}
	g.Shared = reg.Shared(g.Stats)
	if err := compileResilience(g, pg); err != nil {
		return nil, err
	}
	if g.HealthCheck != nil {
		g.HealthCheck.TLS = g.TLS
	}
	bg, err := buildEndpoints(pg.GetEndpoints(), g.lb)
	if err != nil {
		return nil, err
	}
	g.eps.Store(bg)
	return g, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func buildEndpoints(pe []*dataplanev1.Endpoint, lb balancer.Config) (*balancer.Group, error) {
	eps := make([]balancer.Endpoint, 0, len(pe))
	seen := make(map[netip.AddrPort]int, len(pe))
	for i, e := range pe {
		addr, err := netip.ParseAddr(e.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("endpoints[%d].address: %w", i, err)
		}
		if e.GetPort() == 0 || e.GetPort() > 65535 {
			return nil, fmt.Errorf("endpoints[%d].port: %d is not in 1-65535", i, e.GetPort())
		}
		c := e.GetConditions()
		ep := balancer.Endpoint{
			Addr:   netip.AddrPortFrom(addr.Unmap(), uint16(e.GetPort())),
			Weight: e.GetWeight(),
			Zone:   e.GetZone(),
		}
		if j, dup := seen[ep.Addr]; dup {
			return nil, fmt.Errorf("endpoints[%d]: duplicate endpoint %s (also endpoints[%d])", i, ep.Addr, j)
		}
		seen[ep.Addr] = i
		if c == nil {
			// No conditions given (a hand-written standalone file): the endpoint is ready.
			ep.Ready, ep.Serving = true, true
		} else {
			ep.Ready, ep.Serving, ep.Terminating = c.GetReady(), c.GetServing(), c.GetTerminating()
		}
		eps = append(eps, ep)
	}
	return balancer.NewGroup(eps, lb)
}

func (c *Config) compileListener(pl *dataplanev1.Listener, reg *metrics.Registry) (*Listener, error) {
	l := &Listener{Name: pl.GetName(), Stats: reg.ListenerID(pl.GetName()), MaxConnections: int64(pl.GetMaxConnections()), groups: c.groups}
	ip := netip.IPv6Unspecified()
	if a := pl.GetAddress(); a != "" {
		p, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
		ip = p.Unmap()
	}
	if pl.GetPort() == 0 || pl.GetPort() > 65535 {
		return nil, fmt.Errorf("port: %d is not in 1-65535", pl.GetPort())
	}
	l.Addr = netip.AddrPortFrom(ip, uint16(pl.GetPort()))
	if pl.TrustedHops != nil {
		l.TrustedHops, l.TrustedHopsSet = int(pl.GetTrustedHops()), true
	}
	if hl := pl.GetHeadLimits(); hl != nil {
		l.MaxRequestHeaderBytes, l.MaxRequestHeaders = int(hl.GetMaxRequestHeaderBytes()), int(hl.GetMaxRequestHeaders())
		l.MaxResponseHeaderBytes, l.MaxResponseHeaders = int(hl.GetMaxResponseHeaderBytes()), int(hl.GetMaxResponseHeaders())
	}
	if t := pl.GetTimeouts(); t != nil {
		l.Timeouts = ListenerTimeouts{
			RequestHead:     t.GetRequestHead().AsDuration(),
			RequestBodyIdle: t.GetRequestBodyIdle().AsDuration(),
			SendStall:       t.GetSendStall().AsDuration(),
			KeepAliveIdle:   t.GetKeepAliveIdle().AsDuration(),
			TunnelIdle:      t.GetTunnelIdle().AsDuration(),
		}
	}
	if t := pl.GetTracing(); t != nil {
		if c.spans == nil {
			return nil, errors.New("tracing: this dataplane exports no spans (compiled without a tracing.Exporter)")
		}
		l.Tracing = &Tracing{PerMillion: t.GetSamplePerMillion(), IgnoreParent: t.GetIgnoreParent(), Spans: c.spans}
	}
	h2 := pl.GetHttp2()
	switch pl.GetProtocol() {
	case dataplanev1.Listener_HTTP, dataplanev1.Listener_PROTOCOL_UNSPECIFIED:
		l.Protocol = ProtocolHTTP
		l.HTTP2, l.MaxConcurrentStreams = !h2.GetDisabled(), h2.GetMaxConcurrentStreams()
	case dataplanev1.Listener_HTTPS:
		l.Protocol = ProtocolHTTPS
		cfg, err := compileTLS(pl.GetCertificates(), pl.GetClientValidation())
		if err != nil {
			return nil, err
		}
		l.TLS = cfg
		l.HTTP2, l.MaxConcurrentStreams = !h2.GetDisabled(), h2.GetMaxConcurrentStreams()
		if l.HTTP2 {
			// ALPN: HTTP/2 first (RFC 9113 section 3.2); a client offering
			// neither still gets HTTP/1.1.
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		if err := l.compileDomains(pl.GetCertificates()); err != nil {
			return nil, err
		}
	case dataplanev1.Listener_TLS:
		l.Protocol = ProtocolTLS
		if err := c.compileTLSRoutes(l, pl, reg); err != nil {
			return nil, err
		}
		if err := c.compileConnFilters(l, pl); err != nil {
			return nil, err
		}
		return l, nil
	case dataplanev1.Listener_TCP:
		l.Protocol = ProtocolTCP
		name := pl.GetTcpRoute().GetName()
		if name == "" {
			name = pl.GetName()
		}
		r, err := c.compileTunnelRoute(name, pl.GetTcpRoute().GetBackends(), reg, "tcpRoute")
		if err != nil {
			return nil, err
		}
		l.TCP = r
		if err := c.compileConnFilters(l, pl); err != nil {
			return nil, err
		}
		return l, nil
	case dataplanev1.Listener_UDP:
		l.Protocol = ProtocolUDP
		pr := pl.GetUdpRoute()
		name := pr.GetName()
		if name == "" {
			name = pl.GetName()
		}
		r, err := c.compileTunnelRoute(name, pr.GetBackends(), reg, "udpRoute")
		if err != nil {
			return nil, err
		}
		l.UDP = r
		l.UDPIdleTimeout = dataplanev1.DefaultUDPIdleTimeout
		if d := pr.GetIdleTimeout(); d != nil {
			l.UDPIdleTimeout = d.AsDuration()
		}
		l.UDPMaxFlows = dataplanev1.DefaultUDPMaxFlows
		if n := pr.GetMaxFlows(); n > 0 {
			l.UDPMaxFlows = int(n)
		}
		return l, nil
	default:
		return nil, fmt.Errorf("protocol: unknown protocol %v", pl.GetProtocol())
	}

	var listenerFilters Filters
	if err := c.compileFilters(&listenerFilters, pl.GetExtensionFilters()); err != nil {
		return nil, err
	}
	var vhosts []router.VirtualHost
	for vi, pv := range pl.GetVirtualHosts() {
		vh := router.VirtualHost{Name: pv.GetName(), Hostnames: pv.GetHostnames()}
		for ri, pr := range pv.GetRoutes() {
			path := fmt.Sprintf("virtualHosts[%d].routes[%d]", vi, ri)
			r, err := c.compileRoute(pr, reg, &listenerFilters)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): %w", path, pr.GetName(), err)
			}
			order := router.OrderKey{
				CreationUnixNano: pr.GetOrder().GetCreationTimestampUnixNanos(),
				Namespace:        pr.GetOrder().GetNamespace(),
				Name:             pr.GetOrder().GetName(),
				Rule:             int(pr.GetOrder().GetRuleIndex()),
			}
			matches := pr.GetMatches()
			if len(matches) == 0 {
				matches = []*dataplanev1.RouteMatch{{}}
			}
			// One router route per match, so that the action knows which prefix matched
			// (for ReplacePrefixMatch). They are added in match order, which is the
			// router's last tie-break.
			for mi, pm := range matches {
				m, prefix, err := compileMatch(pm)
				if err != nil {
					return nil, fmt.Errorf("%s.matches[%d]: %w", path, mi, err)
				}
				vh.Routes = append(vh.Routes, router.Route{
					Name: r.Name, Matches: []router.Match{m}, Order: order, Action: len(l.matched),
				})
				l.matched = append(l.matched, Matched{Route: r, Prefix: prefix})
			}
		}
		vhosts = append(vhosts, vh)
	}
	t, err := router.Build(vhosts)
	if err != nil {
		return nil, fmt.Errorf("build route table: %w", err)
	}
	l.table = t
	return l, nil
}

// compileTunnelRoute compiles the weighted backends of a TCP route or of a
// TLS listener's route (path names it in errors).
func (c *Config) compileTunnelRoute(name string, backends []*dataplanev1.TCPBackend, reg *metrics.Registry, path string) (*Route, error) {
	r := &Route{Name: name, Stats: reg.RouteID(name)}
	for i, b := range backends {
		be := Backend{Weight: b.GetWeight()}
		if name := b.GetBackendGroup(); name != "" {
			be.Group = c.groups[name]
			if be.Group == nil {
				return nil, fmt.Errorf("%s.backends[%d].backendGroup: unknown backend group %q", path, i, name)
			}
		}
		r.Backends = append(r.Backends, be)
	}
	r.index()
	return r, nil
}

// compileTLSRoutes compiles a TLS listener's routes into its server-name
// table (the router's host matching, one virtual host per route) and, when
// a route terminates, its certificates.
func (c *Config) compileTLSRoutes(l *Listener, pl *dataplanev1.Listener, reg *metrics.Registry) error {
	terminates := false
	vhosts := make([]router.VirtualHost, 0, len(pl.GetTlsRoutes()))
	for i, pr := range pl.GetTlsRoutes() {
		path := fmt.Sprintf("tlsRoutes[%d]", i)
		name := pr.GetName()
		if name == "" {
			name = fmt.Sprintf("%s/%s", pl.GetName(), path)
		}
		r, err := c.compileTunnelRoute(name, pr.GetBackends(), reg, path)
		if err != nil {
			return err
		}
		l.TLSRoutes = append(l.TLSRoutes, TLSRoute{Route: r, Terminate: pr.GetTerminate()})
		terminates = terminates || pr.GetTerminate()
		vhosts = append(vhosts, router.VirtualHost{
			Name: name, Hostnames: pr.GetHostnames(),
			Routes: []router.Route{{Name: name, Action: i}},
		})
	}
	t, err := router.Build(vhosts)
	if err != nil {
		return fmt.Errorf("build server name table: %w", err)
	}
	l.table = t
	if terminates {
		cfg, err := compileTLS(pl.GetCertificates(), pl.GetClientValidation())
		if err != nil {
			return err
		}
		l.TLS = cfg
	}
	return nil
}

// compileConnFilters resolves the extension filters of a TCP or TLS
// listener, which run connection hooks only.
func (c *Config) compileConnFilters(l *Listener, pl *dataplanev1.Listener) error {
	for i, name := range pl.GetExtensionFilters() {
		f, err := c.lookupFilter(name)
		if err != nil {
			return fmt.Errorf("extensionFilters[%d]: %w", i, err)
		}
		h, ok := f.(filter.ConnFilter)
		if !ok {
			return fmt.Errorf("extensionFilters[%d]: filter %q (%T) has no connection hook, the only one a %s listener runs", i, name, f, l.Protocol)
		}
		l.ConnFilters = append(l.ConnFilters, h)
	}
	return nil
}

// TLS12CipherSuites are the cipher suites listeners accept from TLS 1.2
// clients: ECDHE key exchange with an AEAD only (no CBC, no RSA key
// exchange, no 3DES), as in Mozilla's "intermediate" profile. TLS 1.3's
// suites (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) are not configurable
// and all accepted. Versions before TLS 1.2 are refused, and crypto/tls
// never renegotiates as a server.
var TLS12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// compileTLS builds the TLS server configuration of a listener's
// certificates and, when cv is set, its client certificate validation.
func compileTLS(certs []*dataplanev1.TLSCertificate, cv *dataplanev1.ClientValidation) (*tls.Config, error) {
	if len(certs) == 0 {
		return nil, errors.New("certificates: an HTTPS listener, or a TLS listener with a terminating route, needs at least one certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: TLS12CipherSuites}
	for i, pc := range certs {
		cert, err := tls.X509KeyPair(pc.GetCertPem(), pc.GetKeyPem())
		if err != nil {
			return nil, fmt.Errorf("certificates[%d]: %w", i, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	// crypto/tls picks among Certificates by SNI against each leaf's names; the first is
	// the default when nothing matches.
	if cv != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cv.GetCaCertPem()) {
			return nil, errors.New("clientValidation.caCertPem: holds no certificate that parses")
		}
		// ClientCAs also names the accepted authorities in the CertificateRequest.
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if cv.GetAllowInsecureFallback() {
			// Asked for, not required nor checked: the handshake completes with
			// any certificate or none, and authorization is the backend's.
			cfg.ClientAuth = tls.RequestClientCert
		}
	}
	return cfg, nil
}

func compileMatch(pm *dataplanev1.RouteMatch) (router.Match, string, error) {
	var m router.Match
	prefix := ""
	switch p := pm.GetPath(); p.GetType() {
	case dataplanev1.PathMatch_TYPE_UNSPECIFIED, dataplanev1.PathMatch_PATH_PREFIX:
		m.Path = router.PathMatch{Type: router.PathPrefix, Value: p.GetValue()}
		prefix = p.GetValue()
		if prefix == "" {
			prefix = "/"
		}
	case dataplanev1.PathMatch_EXACT:
		m.Path = router.PathMatch{Type: router.PathExact, Value: p.GetValue()}
	case dataplanev1.PathMatch_REGULAR_EXPRESSION:
		m.Path = router.PathMatch{Type: router.PathRegex, Value: p.GetValue()}
	default:
		return m, "", fmt.Errorf("path.type: unknown type %v", p.GetType())
	}
	for _, h := range pm.GetHeaders() {
		t := router.ValueExact
		if h.GetType() == dataplanev1.HeaderMatch_REGULAR_EXPRESSION {
			t = router.ValueRegex
		}
		m.Headers = append(m.Headers, router.HeaderMatch{Type: t, Name: h.GetName(), Value: h.GetValue()})
	}
	for _, q := range pm.GetQueryParams() {
		t := router.ValueExact
		if q.GetType() == dataplanev1.QueryParamMatch_REGULAR_EXPRESSION {
			t = router.ValueRegex
		}
		m.Query = append(m.Query, router.QueryMatch{Type: t, Name: q.GetName(), Value: q.GetValue()})
	}
	m.Method = pm.GetMethod()
	return m, prefix, nil
}

func (c *Config) compileRoute(pr *dataplanev1.Route, reg *metrics.Registry, listenerFilters *Filters) (*Route, error) {
	r := &Route{Name: pr.GetName()}
	r.Stats = reg.RouteID(r.Name)
	r.Filters = Filters{
		Request:  slices.Clip(listenerFilters.Request),
		Upstream: slices.Clip(listenerFilters.Upstream),
		Response: slices.Clip(listenerFilters.Response),
	}
	if err := c.compileFilters(&r.Filters, pr.GetExtensionFilters()); err != nil {
		return nil, err
	}
	if err := c.applyFilters(pr.GetFilters(), &r.RequestHeaders, &r.ResponseHeaders, r, "filters"); err != nil {
		return nil, err
	}
	for i, pb := range pr.GetBackends() {
		b := Backend{Weight: pb.GetWeight()}
		switch {
		case pb.GetBackendGroup() != "":
			b.Group = c.groups[pb.GetBackendGroup()]
			if b.Group == nil {
				return nil, fmt.Errorf("backends[%d].backendGroup: unknown backend group %q", i, pb.GetBackendGroup())
			}
		case pb.GetDirectResponse() != nil:
			b.Direct = directResponse(pb.GetDirectResponse())
		default:
			b.Direct = &DirectResponse{Status: 500}
		}
		if err := c.applyFilters(pb.GetFilters(), &b.RequestHeaders, &b.ResponseHeaders, nil, fmt.Sprintf("backends[%d].filters", i)); err != nil {
			return nil, err
		}
		r.Backends = append(r.Backends, b)
	}
	if d := pr.GetDirectResponse(); d != nil {
		// A route without a valid backend answers itself: it stands in for all the weight.
		r.Backends = []Backend{{Direct: directResponse(d), Weight: 1}}
	}
	r.index()
	t := pr.GetTimeouts()
	r.Timeouts = Timeouts{Request: t.GetRequest().AsDuration(), BackendRequest: t.GetBackendRequest().AsDuration()}
	if rp := pr.GetRetry(); rp != nil {
		r.Retry = RetryPolicy{
			Attempts:         int(rp.GetAttempts()),
			OnConnectFailure: rp.GetRetryOnConnectFailure(),
			OnReset:          rp.GetRetryOnReset(),
			OnBackendTimeout: rp.GetRetryOnBackendTimeout(),
			BackoffBase:      rp.GetBackoffBase().AsDuration(),
			BackoffMax:       rp.GetBackoffMax().AsDuration(),
		}
		for _, s := range rp.GetRetryOnStatusCodes() {
			r.Retry.OnStatus = append(r.Retry.OnStatus, int(s))
		}
	} else {
		// No retry policy: a failed connect is retried once on another endpoint. Nothing
		// reached the backend, so this is safe for any method; it hides the moment between
		// a pod going away and its EndpointSlice update reaching the dataplane.
		r.Retry = DefaultRetry
	}
	if a := pr.GetSessionAffinity(); a != nil {
		r.Affinity = Affinity{Cookie: a.GetCookie().GetName(), CookieTTL: a.GetCookie().GetTtl().AsDuration(), Header: strings.ToLower(a.GetHeader().GetName())}
	}
	if rl := pr.GetRateLimit(); rl != nil {
		l, err := c.compileRateLimit(rl)
		if err != nil {
			return nil, err
		}
		r.RateLimit = l
	}
	return r, nil
}

func (r *Route) index() {
	r.cumWeight = make([]uint32, len(r.Backends))
	var sum uint32
	for i, b := range r.Backends {
		sum += b.Weight
		r.cumWeight[i] = sum
	}
}

func directResponse(d *dataplanev1.DirectResponse) *DirectResponse {
	status := int(d.GetStatus())
	if status == 0 {
		status = 500
	}
	return &DirectResponse{Status: status, Body: []byte(d.GetBody())}
}

// applyFilters compiles filters into req/resp header modifiers and, when r is not nil
// (route level), into r's redirect, rewrite, mirrors and CORS policy.
func (c *Config) applyFilters(fs []*dataplanev1.RouteFilter, req, resp *HeaderModifier, r *Route, path string) error {
	for i, f := range fs {
		at := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case f.GetRequestHeaderModifier() != nil:
			mergeModifier(req, f.GetRequestHeaderModifier())
		case f.GetResponseHeaderModifier() != nil:
			mergeModifier(resp, f.GetResponseHeaderModifier())
		case f.GetRequestRedirect() != nil:
			if r == nil {
				return fmt.Errorf("%s.requestRedirect: only allowed on a route", at)
			}
			rr := f.GetRequestRedirect()
			status := int(rr.GetStatusCode())
			if status == 0 {
				status = 302
			}
			r.Redirect = &Redirect{Scheme: rr.GetScheme(), Hostname: rr.GetHostname(), Port: rr.GetPort(), Status: status, Path: pathModifier(rr.GetPath())}
		case f.GetUrlRewrite() != nil:
			if r == nil {
				return fmt.Errorf("%s.urlRewrite: only allowed on a route", at)
			}
			u := f.GetUrlRewrite()
			r.Rewrite = &Rewrite{Hostname: u.GetHostname(), Path: pathModifier(u.GetPath())}
		case f.GetRequestMirror() != nil:
			if r == nil {
				return fmt.Errorf("%s.requestMirror: only allowed on a route", at)
			}
			m := f.GetRequestMirror()
			g := c.groups[m.GetBackendGroup()]
			if g == nil {
				return fmt.Errorf("%s.requestMirror.backendGroup: unknown backend group %q", at, m.GetBackendGroup())
			}
			mi := Mirror{Group: g, Numerator: 100, Denominator: 100}
			switch {
			case m.GetFraction() != nil:
				mi.Numerator, mi.Denominator = m.GetFraction().GetNumerator(), m.GetFraction().GetDenominator()
				if mi.Denominator == 0 {
					mi.Denominator = 100
				}
			case m.GetPercent() != 0:
				mi.Numerator = m.GetPercent()
			}
			r.Mirrors = append(r.Mirrors, mi)
		case f.GetCors() != nil:
			if r == nil {
				return fmt.Errorf("%s.cors: only allowed on a route", at)
			}
			c, err := compileCORS(f.GetCors())
			if err != nil {
				return fmt.Errorf("%s.cors.%w", at, err)
			}
			r.CORS = c
		case f.GetExtAuth() != nil:
			if r == nil {
				return fmt.Errorf("%s.extAuth: only allowed on a route", at)
			}
			a := f.GetExtAuth()
			g := c.groups[a.GetBackendGroup()]
			if g == nil {
				return fmt.Errorf("%s.extAuth.backendGroup: unknown backend group %q", at, a.GetBackendGroup())
			}
			r.ExtAuth = compileExtAuth(a, g)
		}
	}
	return nil
}

func mergeModifier(dst *HeaderModifier, m *dataplanev1.HeaderModifier) {
	for _, h := range m.GetSet() {
		dst.Set = append(dst.Set, Header{Name: h.GetName(), Value: h.GetValue(), Lower: strings.ToLower(h.GetName())})
	}
	for _, h := range m.GetAdd() {
		dst.Add = append(dst.Add, Header{Name: h.GetName(), Value: h.GetValue(), Lower: strings.ToLower(h.GetName())})
	}
	for _, n := range m.GetRemove() {
		dst.Remove = append(dst.Remove, strings.ToLower(n))
	}
}

func pathModifier(p *dataplanev1.PathModifier) *PathModifier {
	if p == nil {
		return nil
	}
	if _, ok := p.GetModifier().(*dataplanev1.PathModifier_ReplacePrefixMatch); ok {
		return &PathModifier{PrefixReplace: p.GetReplacePrefixMatch(), IsPrefix: true}
	}
	if _, ok := p.GetModifier().(*dataplanev1.PathModifier_ReplaceFullPath); ok {
		return &PathModifier{FullPath: p.GetReplaceFullPath()}
	}
	return nil
}

// PickerCache holds one worker's pickers, one per backend group, and rebuilds a group's
// picker when its endpoints were replaced. It is owned by one worker.
//
// Slots are indexed by Group.Index and remember two groups each, so that requests of the
// old and the new config interleaving right after a swap do not rebuild pickers on every
// request: a group index usually names the same backend group in both configs.
type PickerCache struct {
	seed  uint64
	slots [][2]pickerSlot
}

type pickerSlot struct {
	group  *Group
	eps    *balancer.Group
	picker balancer.Selector
}

// NewPickerCache returns an empty cache; seed makes each worker's random draws differ.
func NewPickerCache(seed uint64) *PickerCache { return &PickerCache{seed: seed} }

// Picker returns the worker's selector for g's current endpoints, made by g's
// Algorithm, and those endpoints (the indexes it picks refer to them). It allocates
// only when g's endpoints changed since the last call or the group is new to this
// worker.
func (pc *PickerCache) Picker(g *Group) (balancer.Selector, *balancer.Group) {
	if g.Index >= len(pc.slots) {
		pc.slots = append(pc.slots, make([][2]pickerSlot, g.Index+1-len(pc.slots))...)
	}
	pair := &pc.slots[g.Index]
	eps := g.Endpoints()
	if pair[0].group != g {
		if pair[1].group == g {
			pair[0], pair[1] = pair[1], pair[0]
		} else {
			pair[1] = pair[0]
			pair[0] = pickerSlot{group: g}
		}
	}
	s := &pair[0]
	if s.eps != eps {
		s.eps = eps
		s.picker = g.Algorithm.NewSelector(eps, pc.seed+uint64(g.Index)*0x9e3779b97f4a7c15)
	}
	return s.picker, s.eps
}

// Tracing is how a listener traces its requests (W3C Trace Context; see
// dataplanev1.ListenerTracing).
type Tracing struct {
	// PerMillion is the share of traces started here that are sampled.
	PerMillion uint32
	// IgnoreParent samples by PerMillion alone, ignoring the sampled flag of
	// an incoming traceparent.
	IgnoreParent bool
	// Spans receives the spans of sampled requests.
	Spans *tracing.Exporter
}
