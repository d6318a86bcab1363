// Package lb builds dataplane snapshots of the common shapes, with defaults, so a
// program need not assemble listener → virtual host → route → weighted backend →
// backend group by hand: a Proxy is one listener (HTTP or TCP) sending everything to
// one backend group, round robin over endpoints of weight 1 unless told otherwise.
//
// It needs only the snapshot contract (api/dataplane/v1): a snapshot built here can
// be applied to an embedded daemon (dataplane/daemon), written out as a standalone
// YAML file (dataplanev1.MarshalYAML) or sent by a controller. flax-dataplane's
// one-line proxy command is built on it.
package lb

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// Defaults of a Proxy.
const (
	// DefaultGroup is the name of a Proxy's backend group when it sets none.
	DefaultGroup = "backends"
	// DefaultListener is the name of a Proxy's listener (and of its route).
	DefaultListener = "proxy"
	// DefaultWeight is the weight of an endpoint added without one.
	DefaultWeight = 1
)

// Proxy is one listener that forwards everything it receives to one backend group.
// The zero value of every field but Listen is a working default.
type Proxy struct {
	// Listen is the address to accept on, IP:port (such as 127.0.0.1:8080 or
	// [::]:80).
	Listen string
	// Backends are the group's endpoints, IP:port each, weight DefaultWeight. It
	// may be empty: a group with no endpoints answers 503 until some are added
	// (see daemon.Pool).
	Backends []string
	// TCP proxies raw TCP connections instead of HTTP/1.1 requests.
	TCP bool
	// Group names the backend group; empty means DefaultGroup.
	Group string
	// Policy is the load-balancing policy; POLICY_UNSPECIFIED means ROUND_ROBIN
	// unless Algorithm is set.
	Policy dataplanev1.LoadBalancing_Policy
	// Algorithm names a selection algorithm registered in the dataplane
	// (balancer.Register) to use instead of Policy, which must then be unset.
	Algorithm string
	// HashHeader is the request header RING_HASH and MAGLEV hash on; empty means
	// the client's IP address. With an Algorithm it is the pick key, if set. Other
	// policies ignore it.
	HashHeader string
	// RateLimit answers 429 to requests over it (HTTP only); nil means none. Its
	// Bucket defaults to the listener's name.
	RateLimit *dataplanev1.LocalRateLimit
	// HealthCheck probes the group's endpoints actively; nil means none.
	HealthCheck *dataplanev1.HealthCheck
	// Filters name extension filters registered in the dataplane
	// (filter.Register) that run, in order, on every request (HTTP) or
	// connection (TCP) of the listener.
	Filters []string

	// Timeouts of client connections (ListenerTimeouts) and of responses
	// (BackendGroup); zero leaves the dataplane default (dataplanev1.Default*).
	RequestHead, RequestBodyIdle, SendStall, KeepAliveIdle, TunnelIdle time.Duration
	ResponseHeader, ResponseBodyIdle                                   time.Duration
}

// HTTPProxy returns the snapshot of an HTTP reverse proxy on listen that sends
// every request to backends, round robin.
func HTTPProxy(listen string, backends ...string) (*dataplanev1.Snapshot, error) {
	return Proxy{Listen: listen, Backends: backends}.Snapshot()
}

// TCPProxy returns the snapshot of a TCP proxy on listen that sends every
// connection to backends, round robin.
func TCPProxy(listen string, backends ...string) (*dataplanev1.Snapshot, error) {
	return Proxy{Listen: listen, Backends: backends, TCP: true}.Snapshot()
}

// GroupName returns the name of p's backend group.
func (p Proxy) GroupName() string {
	if p.Group == "" {
		return DefaultGroup
	}
	return p.Group
}

// Snapshot returns p as a validated snapshot of version 1 with its hash set.
func (p Proxy) Snapshot() (*dataplanev1.Snapshot, error) {
	la, err := netip.ParseAddrPort(p.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want IP:port: %w", p.Listen, err)
	}
	policy := p.Policy
	if policy == dataplanev1.LoadBalancing_POLICY_UNSPECIFIED && p.Algorithm == "" {
		policy = dataplanev1.LoadBalancing_ROUND_ROBIN
	}
	group := &dataplanev1.BackendGroup{
		Name:                    p.GroupName(),
		LoadBalancing:           &dataplanev1.LoadBalancing{Policy: policy, Algorithm: p.Algorithm},
		ResponseHeaderTimeout:   optDuration(p.ResponseHeader),
		ResponseBodyIdleTimeout: optDuration(p.ResponseBodyIdle),
		HealthCheck:             p.HealthCheck,
	}
	switch {
	case p.Algorithm != "":
		if p.HashHeader != "" {
			group.LoadBalancing.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_Header{Header: p.HashHeader}}
		}
	case policy == dataplanev1.LoadBalancing_RING_HASH || policy == dataplanev1.LoadBalancing_MAGLEV:
		if p.HashHeader != "" {
			group.LoadBalancing.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_Header{Header: p.HashHeader}}
		} else {
			group.LoadBalancing.HashOn = &dataplanev1.HashOn{Key: &dataplanev1.HashOn_SourceIp{SourceIp: true}}
		}
	}
	for _, b := range p.Backends {
		e, err := Endpoint(b, DefaultWeight)
		if err != nil {
			return nil, err
		}
		group.Endpoints = append(group.Endpoints, e)
	}
	l := &dataplanev1.Listener{
		Name: DefaultListener, Address: la.Addr().String(), Port: uint32(la.Port()), Protocol: dataplanev1.Listener_HTTP,
		ExtensionFilters: p.Filters,
	}
	if p.RequestHead != 0 || p.RequestBodyIdle != 0 || p.SendStall != 0 || p.KeepAliveIdle != 0 || p.TunnelIdle != 0 {
		l.Timeouts = &dataplanev1.ListenerTimeouts{
			RequestHead: optDuration(p.RequestHead), RequestBodyIdle: optDuration(p.RequestBodyIdle),
			SendStall: optDuration(p.SendStall), KeepAliveIdle: optDuration(p.KeepAliveIdle),
			TunnelIdle: optDuration(p.TunnelIdle),
		}
	}
	if p.TCP {
		if p.RateLimit != nil {
			return nil, errors.New("rate limit: HTTP only, not with TCP")
		}
		l.Protocol = dataplanev1.Listener_TCP
		l.TcpRoute = &dataplanev1.TCPRoute{Name: DefaultListener, Backends: []*dataplanev1.TCPBackend{{
			Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: group.GetName()}, Weight: DefaultWeight,
		}}}
	} else {
		var limit *dataplanev1.LocalRateLimit
		if p.RateLimit != nil {
			limit = &dataplanev1.LocalRateLimit{
				Bucket: p.RateLimit.GetBucket(), Requests: p.RateLimit.GetRequests(), Interval: p.RateLimit.GetInterval(),
				Burst: p.RateLimit.GetBurst(), PerClientIp: p.RateLimit.GetPerClientIp(),
			}
			if limit.Bucket == "" {
				limit.Bucket = DefaultListener
			}
		}
		l.VirtualHosts = []*dataplanev1.VirtualHost{{Name: "all", Routes: []*dataplanev1.Route{{
			Name:      DefaultListener,
			Matches:   []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: "/"}}},
			Backends:  []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: group.GetName()}, Weight: DefaultWeight}},
			RateLimit: limit,
		}}}}
	}
	snap := &dataplanev1.Snapshot{Version: 1, Listeners: []*dataplanev1.Listener{l}, BackendGroups: []*dataplanev1.BackendGroup{group}}
	snap.Hash = dataplanev1.Hash(snap)
	if err := dataplanev1.Validate(snap); err != nil {
		return nil, fmt.Errorf("invalid proxy settings: %w", err)
	}
	return snap, nil
}

// Endpoint returns the endpoint at addr (IP:port) with weight (0 means
// DefaultWeight), ready and serving.
func Endpoint(addr string, weight uint32) (*dataplanev1.Endpoint, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("backend %q: want IP:port: %w", addr, err)
	}
	if ap.Port() == 0 {
		return nil, fmt.Errorf("backend %q: port must be between 1 and 65535", addr)
	}
	if weight == 0 {
		weight = DefaultWeight
	}
	if weight > dataplanev1.MaxWeight {
		return nil, fmt.Errorf("backend %q: weight must be at most %d, got %d", addr, dataplanev1.MaxWeight, weight)
	}
	return &dataplanev1.Endpoint{
		Address: ap.Addr().Unmap().String(), Port: uint32(ap.Port()), Weight: weight,
		Conditions: &dataplanev1.EndpointConditions{Ready: true, Serving: true},
	}, nil
}

// policies maps the policy names of flax-dataplane's --lb flag to policies.
var policies = map[string]dataplanev1.LoadBalancing_Policy{
	"round-robin":          dataplanev1.LoadBalancing_ROUND_ROBIN,
	"weighted-round-robin": dataplanev1.LoadBalancing_WEIGHTED_ROUND_ROBIN,
	"least-request":        dataplanev1.LoadBalancing_LEAST_REQUEST,
	"random":               dataplanev1.LoadBalancing_RANDOM,
	"ring-hash":            dataplanev1.LoadBalancing_RING_HASH,
	"maglev":               dataplanev1.LoadBalancing_MAGLEV,
}

// PolicyNames lists the names ParsePolicy knows, sorted.
func PolicyNames() []string {
	return slices.Sorted(maps.Keys(policies))
}

// ParsePolicy returns the policy of a name such as "round-robin" or "maglev".
func ParsePolicy(name string) (dataplanev1.LoadBalancing_Policy, error) {
	if p, ok := policies[name]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("%q: unknown policy (known: %v)", name, PolicyNames())
}

// optDuration returns d as a protobuf duration, nil for zero (unset).
func optDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
