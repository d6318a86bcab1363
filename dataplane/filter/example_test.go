package filter_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// tenantTag marks requests that name no tenant as public ones, and tells the
// client which tenant served it.
type tenantTag struct{}

func (tenantTag) OnRequest(r filter.Request) {
	if _, ok := r.Header("x-tenant"); !ok {
		r.SetHeader("X-Tenant", "public")
	}
}

func (tenantTag) OnResponse(r filter.Response) {
	r.SetHeader("X-Served-For-Route", r.Route())
}

// A filter registered under a name, referenced by a route of the snapshot,
// and run by the proxy's state machine on a request (driven here without
// sockets, the way an engine drives it).
func Example() {
	// A program registers its filters when it starts, usually in init and
	// in filter.Default; a private registry works the same way.
	reg := &filter.Registry{}
	reg.MustRegister("tenant-tag", tenantTag{})

	snap, err := dataplanev1.Parse([]byte(`
listeners:
- name: web
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: app
      extensionFilters: [tenant-tag]
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
  endpoints: [{address: 10.0.0.1, port: 80}]
`))
	if err != nil {
		panic(err)
	}
	mreg := metrics.NewRegistry(1)
	cfg, err := compiled.CompileWith(snap, mreg, reg)
	if err != nil {
		panic(err)
	}

	// One request through a session; print the heads it sends on.
	var listener atomic.Pointer[compiled.Listener]
	listener.Store(cfg.Listeners[0])
	w := proxy.NewWorker(mreg.Worker(0), proxy.NewPickers(0), nil, func() int64 { return 1 }, proxy.Options{})
	var s proxy.Session
	s.Open(w, &listener, netip.MustParseAddrPort("192.0.2.7:40000"), false)
	run := func() {
		for a, ok := s.Next(); ok; a, ok = s.Next() {
			switch a.Kind {
			case proxy.ActConnectUpstream:
				s.UpstreamConnected(false, nil)
			case proxy.ActSendUpstream:
				fmt.Printf("to the backend:\n%s", strings.ReplaceAll(string(a.Data), "\r\n", "\n"))
				s.Sent(proxy.Upstream, len(a.Data), nil)
			case proxy.ActSendClient:
				fmt.Printf("to the client:\n%s", strings.ReplaceAll(string(a.Data), "\r\n", "\n"))
				s.Sent(proxy.Client, len(a.Data), nil)
			}
		}
	}
	run()
	s.ClientData([]byte("GET /hello HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	run()
	s.UpstreamData([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	run()
	// Output:
	// to the backend:
	// GET /hello HTTP/1.1
	// Host: example.com
	// X-Forwarded-For: 192.0.2.7
	// X-Forwarded-Proto: http
	// X-Forwarded-Host: example.com
	// Forwarded: for=192.0.2.7;proto=http;host=example.com
	// X-Tenant: public
	//
	// to the client:
	// HTTP/1.1 204 No Content
	// X-Served-For-Route: app
}
