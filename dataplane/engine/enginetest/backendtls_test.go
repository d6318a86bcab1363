package enginetest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// startTLSHTTPBackend serves, over TLS with cert, the server name the client
// sent and the request's path, on a free port of 127.0.0.1.
func startTLSHTTPBackend(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "tls sni=%s path=%s", r.TLS.ServerName, r.URL.Path)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		_ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// backendTLSSnapshot is an HTTP listener on port whose route /NAME goes to
// backend group NAME, one group per entry of groups (its tls settings, YAML
// flow mappings), all with the endpoint addr.
func backendTLSSnapshot(port int, addr string, groups map[string]string) string {
	host, p, _ := net.SplitHostPort(addr)
	var routes, gs strings.Builder
	for name, tlsYAML := range groups {
		fmt.Fprintf(&routes, "    - name: %s\n      matches: [{path: {type: EXACT, value: /%s}}]\n      backends: [{backendGroup: %s, weight: 1}]\n", name, name, name)
		fmt.Fprintf(&gs, "- name: %s\n  tls: %s\n  endpoints: [{address: %s, port: %s}]\n", name, tlsYAML, host, p)
	}
	return `
listeners:
- name: web
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
` + routes.String() + `backendGroups:
` + gs.String()
}

// TestBackendTLS: a backend group with TLS connects to its endpoints over
// TLS with its server name and serves the request when the certificate
// chains to the group's CA and carries the server name, or one of the
// group's subject alternative names (DNS or URI) instead; a certificate of
// another CA, or without the names, fails the connect (502,
// connect_failed). Pooled connections are kept apart by the group's TLS:
// a connection verified for one group never serves another whose check
// would fail.
func TestBackendTLS(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ca, other := NewCA(t, "backend-ca"), NewCA(t, "other-ca")
		addr := startTLSHTTPBackend(t, ca.ServerCert(t, []string{"backend.example.com"}, "spiffe://cluster.local/ns/a/sa/b"))
		caPEM, otherPEM := base64.StdEncoding.EncodeToString(ca.CertPEM), base64.StdEncoding.EncodeToString(other.CertPEM)
		groups := map[string]string{
			"verified":    "{serverName: backend.example.com, caCertPem: " + caPEM + "}",
			"wrong-name":  "{serverName: other.example.com, caCertPem: " + caPEM + "}",
			"wrong-ca":    "{serverName: backend.example.com, caCertPem: " + otherPEM + "}",
			"san-dns":     "{serverName: other.example.com, caCertPem: " + caPEM + ", subjectAltNames: [{hostname: backend.example.com}]}",
			"san-uri":     "{serverName: other.example.com, caCertPem: " + caPEM + ", subjectAltNames: [{uri: 'spiffe://cluster.local/ns/a/sa/b'}]}",
			"san-missing": "{serverName: backend.example.com, caCertPem: " + caPEM + ", subjectAltNames: [{uri: 'spiffe://cluster.local/ns/x/sa/y'}]}",
		}
		port := FreePort(t)
		te := startEngine(t, k)
		cfg := CompileYAML(t, te.reg, backendTLSSnapshot(port, addr, groups))
		te.apply(cfg)
		c := Dial(t, port)
		br := bufio.NewReader(c)
		failed := 0
		// One client connection: each request may reuse a pooled upstream
		// connection of an earlier one.
		for _, name := range []string{"verified", "wrong-name", "verified", "wrong-ca", "san-dns", "san-uri", "san-missing", "verified"} {
			fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", name)
			resp, body := ReadResponse(t, br, "GET")
			switch name {
			case "wrong-name", "wrong-ca", "san-missing":
				failed++
				if resp.StatusCode != 502 {
					t.Fatalf("%s: %d %q, want 502", name, resp.StatusCode, body)
				}
			default:
				sni := "backend.example.com"
				if strings.HasPrefix(name, "san-") {
					sni = "other.example.com"
				}
				if want := "tls sni=" + sni + " path=/" + name; resp.StatusCode != 200 || body != want {
					t.Fatalf("%s: %d %q, want 200 %q", name, resp.StatusCode, body, want)
				}
			}
		}
		if n := te.reg.LocalReplies(metrics.ReasonConnectFailed); n != uint64(failed) {
			t.Fatalf("connect failures counted: %d, want %d", n, failed)
		}
	})
}
