// Package dataplanetest provides snapshots and key material for tests of code that
// handles the dataplane contract (package dataplanev1): the contract's own tests,
// the dataplane's snapshot server and the controller's delivery.
package dataplanetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

var (
	certOnce        sync.Once
	certPEM, keyPEM []byte
)

// KeyPair returns a self-signed ECDSA certificate for app.example.com and its
// key, both PEM-encoded, generated once per test binary.
func KeyPair(t *testing.T) (cert, key []byte) {
	t.Helper()
	certOnce.Do(func() {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "app.example.com"},
			DNSNames:     []string{"app.example.com", "*.app.example.com"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
		if err != nil {
			panic(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			panic(err)
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	})
	return certPEM, keyPEM
}

// ValidSnapshot returns a snapshot that uses most features of the contract and
// passes Validate. Tests modify their own copy.
func ValidSnapshot(t *testing.T) *dataplanev1.Snapshot {
	t.Helper()
	cert, key := KeyPair(t)
	d := durationpb.New
	route := func(name string, matches ...*dataplanev1.RouteMatch) *dataplanev1.Route {
		return &dataplanev1.Route{
			Name:     name,
			Order:    &dataplanev1.RouteOrder{CreationTimestampUnixNanos: 1700000000000000000, Namespace: "default", Name: "app"},
			Matches:  matches,
			Backends: []*dataplanev1.WeightedBackend{{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "web"}, Weight: 1}},
		}
	}
	// limited gives r the rate limit that routes of both listeners share.
	limited := func(r *dataplanev1.Route) *dataplanev1.Route {
		r.RateLimit = &dataplanev1.LocalRateLimit{Bucket: "default/shared", Requests: 10, Interval: d(time.Minute)}
		return r
	}
	prefix := func(v string) *dataplanev1.RouteMatch {
		return &dataplanev1.RouteMatch{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: v}}
	}
	full := &dataplanev1.Route{
		Name:  "default/app/rule-1",
		Order: &dataplanev1.RouteOrder{CreationTimestampUnixNanos: 1700000000000000000, Namespace: "default", Name: "app", RuleIndex: 1},
		Matches: []*dataplanev1.RouteMatch{{
			Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_PATH_PREFIX, Value: "/api"},
			Headers: []*dataplanev1.HeaderMatch{
				{Type: dataplanev1.HeaderMatch_EXACT, Name: "x-env", Value: "prod"},
				{Type: dataplanev1.HeaderMatch_REGULAR_EXPRESSION, Name: "user-agent", Value: "^curl/.*"},
			},
			QueryParams: []*dataplanev1.QueryParamMatch{
				{Type: dataplanev1.QueryParamMatch_EXACT, Name: "debug", Value: "1"},
				{Type: dataplanev1.QueryParamMatch_REGULAR_EXPRESSION, Name: "id", Value: `^\d+$`},
			},
			Method: "GET",
		}},
		Filters: []*dataplanev1.RouteFilter{
			{Filter: &dataplanev1.RouteFilter_RequestHeaderModifier{RequestHeaderModifier: &dataplanev1.HeaderModifier{
				Set:    []*dataplanev1.Header{{Name: "x-route", Value: "api"}},
				Add:    []*dataplanev1.Header{{Name: "x-trace", Value: "on"}},
				Remove: []string{"x-internal"},
			}}},
			{Filter: &dataplanev1.RouteFilter_ResponseHeaderModifier{ResponseHeaderModifier: &dataplanev1.HeaderModifier{
				Remove: []string{"server"},
			}}},
			{Filter: &dataplanev1.RouteFilter_UrlRewrite{UrlRewrite: &dataplanev1.URLRewrite{
				Hostname: "backend.internal",
				Path:     &dataplanev1.PathModifier{Modifier: &dataplanev1.PathModifier_ReplacePrefixMatch{ReplacePrefixMatch: "/v2"}},
			}}},
			{Filter: &dataplanev1.RouteFilter_RequestMirror{RequestMirror: &dataplanev1.RequestMirror{
				BackendGroup: "mirror",
				Share:        &dataplanev1.RequestMirror_Fraction{Fraction: &dataplanev1.Fraction{Numerator: 1, Denominator: 1000}},
			}}},
			{Filter: &dataplanev1.RouteFilter_RequestMirror{RequestMirror: &dataplanev1.RequestMirror{
				BackendGroup: "mirror",
				Share:        &dataplanev1.RequestMirror_Percent{Percent: 5},
			}}},
			{Filter: &dataplanev1.RouteFilter_Cors{Cors: &dataplanev1.CORSPolicy{
				AllowOrigins:     []string{"https://www.example.com", "https://*.example.org:8443", "http://*"},
				AllowCredentials: true,
				AllowMethods:     []string{"GET", "PUT"},
				AllowHeaders:     []string{"x-token"},
				ExposeHeaders:    []string{"x-request-id"},
				MaxAgeSeconds:    600,
			}}},
		},
		Backends: []*dataplanev1.WeightedBackend{
			{Target: &dataplanev1.WeightedBackend_BackendGroup{BackendGroup: "api"}, Weight: 80, Filters: []*dataplanev1.RouteFilter{
				{Filter: &dataplanev1.RouteFilter_RequestHeaderModifier{RequestHeaderModifier: &dataplanev1.HeaderModifier{
					Set: []*dataplanev1.Header{{Name: "x-backend", Value: "api"}},
				}}},
			}},
			{Target: &dataplanev1.WeightedBackend_DirectResponse{DirectResponse: &dataplanev1.DirectResponse{Status: 500}}, Weight: 20},
		},
		Timeouts: &dataplanev1.RouteTimeouts{Request: d(10 * time.Second), BackendRequest: d(2 * time.Second)},
		Retry: &dataplanev1.RetryPolicy{
			Attempts:              3,
			RetryOnStatusCodes:    []uint32{502, 503, 504},
			RetryOnConnectFailure: true,
			RetryOnReset:          true,
			BackoffBase:           d(25 * time.Millisecond),
			BackoffMax:            d(time.Second),
		},
		SessionAffinity: &dataplanev1.SessionAffinity{Kind: &dataplanev1.SessionAffinity_Cookie{Cookie: &dataplanev1.CookieAffinity{Name: "flax-session", Ttl: d(time.Hour)}}},
		RateLimit:       &dataplanev1.LocalRateLimit{Bucket: "default/app/rule-1", Requests: 100, Interval: d(time.Second), Burst: 200, PerClientIp: true},
	}
	redirect := &dataplanev1.Route{
		Name: "default/redirect/rule-0",
		Filters: []*dataplanev1.RouteFilter{{Filter: &dataplanev1.RouteFilter_RequestRedirect{RequestRedirect: &dataplanev1.RequestRedirect{
			Scheme:     "https",
			Hostname:   "app.example.com",
			Path:       &dataplanev1.PathModifier{Modifier: &dataplanev1.PathModifier_ReplaceFullPath{ReplaceFullPath: "/"}},
			Port:       8443,
			StatusCode: 301,
		}}}},
	}
	direct := &dataplanev1.Route{
		Name:           "default/broken/rule-0",
		Matches:        []*dataplanev1.RouteMatch{{Path: &dataplanev1.PathMatch{Type: dataplanev1.PathMatch_EXACT, Value: "/broken"}}},
		DirectResponse: &dataplanev1.DirectResponse{Status: 500, Body: "no valid backend"},
	}
	return &dataplanev1.Snapshot{
		Version: 7,
		Listeners: []*dataplanev1.Listener{
			{
				Name: "default/gw/http", Address: "127.0.0.1", Port: 8080, Protocol: dataplanev1.Listener_HTTP,
				Timeouts: &dataplanev1.ListenerTimeouts{
					RequestHead: d(5 * time.Second), RequestBodyIdle: d(30 * time.Second),
					SendStall: d(30 * time.Second), KeepAliveIdle: d(2 * time.Minute),
				},
				VirtualHosts: []*dataplanev1.VirtualHost{
					{Name: "app", Hostnames: []string{"app.example.com", "*.app.example.com"}, Routes: []*dataplanev1.Route{
						route("default/app/rule-0", prefix("/")), full, direct,
					}},
					{Name: "legacy", Hostnames: []string{"legacy.example.com"}, Routes: []*dataplanev1.Route{redirect}},
					{Name: "catch-all", Routes: []*dataplanev1.Route{limited(route("default/any/rule-0"))}},
				},
			},
			{
				Name: "default/gw/https", Port: 8443, Protocol: dataplanev1.Listener_HTTPS,
				Certificates: []*dataplanev1.TLSCertificate{
					{ServerNames: []string{"app.example.com", "*.app.example.com"}, CertPem: cert, KeyPem: key},
					{CertPem: cert, KeyPem: key},
				},
				VirtualHosts: []*dataplanev1.VirtualHost{
					{Name: "app", Hostnames: []string{"app.example.com"}, Routes: []*dataplanev1.Route{limited(route("default/app/rule-0"))}},
				},
			},
			{
				Name: "default/gw/tcp", Address: "::1", Port: 5432, Protocol: dataplanev1.Listener_TCP,
				TcpRoute: &dataplanev1.TCPRoute{Name: "default/db/rule-0", Backends: []*dataplanev1.TCPBackend{
					{Target: &dataplanev1.TCPBackend_BackendGroup{BackendGroup: "db"}, Weight: 9},
					{Target: &dataplanev1.TCPBackend_Reject{Reject: true}, Weight: 1},
				}},
			},
		},
		BackendGroups: []*dataplanev1.BackendGroup{
			{
				Name:                          "web",
				LoadBalancing:                 &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_ROUND_ROBIN},
				ConnectTimeout:                d(time.Second),
				IdleTimeout:                   d(time.Minute),
				MaxIdleConnectionsPerEndpoint: 16,
				ResponseHeaderTimeout:         d(15 * time.Second),
				ResponseBodyIdleTimeout:       d(20 * time.Second),
				HealthCheck: &dataplanev1.HealthCheck{
					Path: "/healthz", Host: "web.internal",
					ExpectedStatuses: []*dataplanev1.StatusRange{{Min: 200, Max: 299}, {Min: 301, Max: 301}},
					Interval:         d(5 * time.Second), Timeout: d(time.Second), Jitter: d(500 * time.Millisecond),
					HealthyThreshold: 2, UnhealthyThreshold: 3,
				},
				Endpoints: []*dataplanev1.Endpoint{
					{Address: "10.0.0.1", Port: 8080, Weight: 1, Zone: "zone-a", Conditions: &dataplanev1.EndpointConditions{Ready: true, Serving: true}},
					{Address: "10.0.0.2", Port: 8080, Zone: "zone-b", Conditions: &dataplanev1.EndpointConditions{Serving: true, Terminating: true}},
				},
			},
			{
				Name:          "api",
				LoadBalancing: &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_RING_HASH, HashOn: &dataplanev1.HashOn{Key: &dataplanev1.HashOn_Header{Header: "x-user"}}},
				OutlierDetection: &dataplanev1.OutlierDetection{
					ConsecutiveServerErrors: 5, ConsecutiveConnectFailures: 3, BaseEjectionTime: d(30 * time.Second), MaxEjectionPercent: 50,
				},
				CircuitBreakers: &dataplanev1.CircuitBreakers{MaxConnections: 100, MaxPendingRequests: 10, MaxRequests: 200, MaxRetries: 3},
				RetryBudget:     &dataplanev1.RetryBudget{Percent: 25, MinRetryConcurrency: 5},
				Endpoints: []*dataplanev1.Endpoint{
					{Address: "fd00::1", Port: 9000, Weight: 3},
				},
			},
			{
				Name:          "mirror",
				LoadBalancing: &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_MAGLEV, HashOn: &dataplanev1.HashOn{Key: &dataplanev1.HashOn_SourceIp{SourceIp: true}}},
				Endpoints:     []*dataplanev1.Endpoint{{Address: "10.0.1.1", Port: 80}},
			},
			{
				Name:          "db",
				LoadBalancing: &dataplanev1.LoadBalancing{Policy: dataplanev1.LoadBalancing_LEAST_REQUEST},
			},
		},
	}
}
