package enginetest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// misdirectedSnapshot is an HTTPS listener on port as a controller builds it
// for Gateway listeners sharing the port: one certificate entry per listener
// hostname (the catch-all listener's without server names) and virtual hosts
// answered by the backend at addr.
func misdirectedSnapshot(port int, addr string, cert tlsCert) string {
	host, p, _ := net.SplitHostPort(addr)
	c, k := base64.StdEncoding.EncodeToString(cert.cert), base64.StdEncoding.EncodeToString(cert.key)
	var certs strings.Builder
	for _, names := range []string{"", "second-example.org", "'*.wildcard.org'", "fourth-example.wildcard.org"} {
		fmt.Fprintf(&certs, "  - {serverNames: [%s], certPem: %s, keyPem: %s}\n", names, c, k)
	}
	var vhosts strings.Builder
	for i, h := range []string{"example.org", "second-example.org", "'*.wildcard.org'", "fourth-example.wildcard.org"} {
		fmt.Fprintf(&vhosts, "  - name: v%d\n    hostnames: [%s]\n    routes:\n    - name: r%d\n      backends: [{backendGroup: app, weight: 1}]\n", i, h, i)
	}
	return `
listeners:
- name: tls
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTPS
  certificates:
` + certs.String() + `  virtualHosts:
` + vhosts.String() + `backendGroups:
- name: app
  endpoints:
  - {address: ` + host + `, port: ` + p + `}
`
}

// TestHTTPSMisdirectedRequests: on an HTTPS listener whose certificates are
// those of listeners sharing a port with different hostnames, a request
// whose Host belongs to another listener than the TLS server name selected
// is answered 421, counted as misdirected; a Host of the same listener is
// routed (200) or not found (404); a client without SNI is never
// misdirected. The cases are those of the Gateway API conformance test
// HTTPRouteHTTPSListenerDetectMisdirectedRequests, over HTTP/1.1 with a new
// connection each and with one connection for several hosts.
func TestHTTPSMisdirectedRequests(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "ok %s", r.Host) }))
		port := FreePort(t)
		te := startEngine(t, k)
		cert := newTLSCert(t, "example.org", "*.example.org", "second-example.org", "*.wildcard.org")
		te.apply(CompileYAML(t, te.reg, misdirectedSnapshot(port, be.Addr(), cert)))
		cases := []struct {
			sni, host string
			status    int
		}{
			{"example.org", "example.org", 200},
			{"example.org", "second-example.org", 421},
			{"example.org", "unknown-example.org", 404},
			{"second-example.org", "second-example.org", 200},
			{"second-example.org", "example.org", 421},
			{"second-example.org", "unknown-example.org", 421},
			{"second-example.org", "SECOND-example.org:" + strconv.Itoa(port), 200},
			{"third-example.wildcard.org", "third-example.wildcard.org", 200},
			{"third-example.wildcard.org", "fith-example.wildcard.org", 200},
			{"third-example.wildcard.org", "fourth-example.wildcard.org", 421},
			{"third-example.wildcard.org", "second-example.org", 421},
			{"third-example.wildcard.org", "unknown-example.org", 421},
			{"fourth-example.wildcard.org", "fourth-example.wildcard.org", 200},
			{"fourth-example.wildcard.org", "fith-example.wildcard.org", 421},
			{"unknown-example.org", "example.org", 200},
			{"unknown-example.org", "unknown-example.org", 404},
			{"", "second-example.org", 200},
			{"", "example.org", 200},
		}
		misdirected := 0
		for _, c := range cases {
			status, body, err := tlsRequest(port, c.sni, c.host, nil, 0)
			if err != nil || status != c.status {
				t.Fatalf("SNI %q, Host %q: %d %q (%v), want %d", c.sni, c.host, status, body, err, c.status)
			}
			if status == 200 && body != "ok "+c.host {
				t.Fatalf("SNI %q, Host %q: body %q", c.sni, c.host, body)
			}
			if status == 421 {
				misdirected++
			}
		}
		// The same over HTTP/2 (ALPN h2): every stream of a connection is
		// checked against the connection's server name, as the Gateway API
		// conformance test sends them.
		for _, c := range cases {
			status, body, err := h2Request(port, c.sni, c.host)
			if err != nil || status != c.status {
				t.Fatalf("HTTP/2, SNI %q, Host %q: %d %q (%v), want %d", c.sni, c.host, status, body, err, c.status)
			}
			if status == 200 && body != "ok "+c.host {
				t.Fatalf("HTTP/2, SNI %q, Host %q: body %q", c.sni, c.host, body)
			}
			if status == 421 {
				misdirected++
			}
		}
		WaitFor(t, "misdirected replies counted", 5*time.Second, func() bool {
			return te.reg.LocalReplies(metrics.ReasonMisdirected) == uint64(misdirected)
		})

		// One keep-alive connection for second-example.org: a request for
		// another listener's host is answered 421 and the connection keeps
		// serving its own host.
		tc := dialTLS(t, port, "second-example.org", 0)
		br := bufio.NewReader(tc)
		for i, host := range []string{"second-example.org", "example.org", "second-example.org"} {
			fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
			resp, _ := ReadResponse(t, br, "GET")
			want := 200
			if i == 1 {
				want = 421
			}
			if resp.StatusCode != want {
				t.Fatalf("keep-alive request %d for %s: %d, want %d", i, host, resp.StatusCode, want)
			}
		}
	})
}

// h2Request sends one GET for host over a new HTTP/2 connection (ALPN h2)
// whose TLS server name is sni, and returns the status and body.
func h2Request(port int, sni, host string) (int, string, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2"}},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return 0, "", fmt.Errorf("response over %s, want HTTP/2", resp.Proto)
	}
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
