package enginetest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
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

// countingTLSBackend is an HTTP backend over TLS that counts its handshakes, the
// resumed ones among them, and names the client certificate of each request.
type countingTLSBackend struct {
	addr    string
	hs, res atomic.Int64
}

// startCountingTLSBackend serves over TLS with cfg (its VerifyConnection is
// replaced by the counting); a request for /close is answered with
// Connection: close, which ends its connection.
func startCountingTLSBackend(t *testing.T, cfg *tls.Config) *countingTLSBackend {
	t.Helper()
	b := &countingTLSBackend{}
	cfg = cfg.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		b.hs.Add(1)
		if cs.DidResume {
			b.res.Add(1)
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/close" {
				w.Header().Set("Connection", "close")
			}
			cn := "none"
			if pc := r.TLS.PeerCertificates; len(pc) > 0 {
				cn = pc[0].Subject.CommonName
			}
			fmt.Fprintf(w, "client=%s resumed=%v", cn, r.TLS.DidResume)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// certPEM returns c's certificate and key, PEM encoded, base64 encoded again
// for a snapshot's bytes fields.
func certPEM(t *testing.T, c tls.Certificate) (cert, key string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cert = base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	key = base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return cert, key
}

// TestBackendTLSClientCertificate: a backend that requires a client
// certificate (RequireAndVerifyClientCert) serves a group that presents one
// its CA issued, and fails the requests of a group without one (502), on
// TLS 1.3 and TLS 1.2.
func TestBackendTLSClientCertificate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			ca, clientCA := NewCA(t, "backend-ca"), NewCA(t, "client-ca")
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(clientCA.CertPEM)
			b := startCountingTLSBackend(t, &tls.Config{
				Certificates: []tls.Certificate{ca.ServerCert(t, []string{"backend.example.com"})},
				ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: roots, MaxVersion: v,
			})
			caPEM := base64.StdEncoding.EncodeToString(ca.CertPEM)
			cert, key := certPEM(t, clientCA.ClientCert(t, "gateway"))
			groups := map[string]string{
				"with":    "{serverName: backend.example.com, caCertPem: " + caPEM + ", clientCertPem: " + cert + ", clientKeyPem: " + key + "}",
				"without": "{serverName: backend.example.com, caCertPem: " + caPEM + "}",
			}
			port := FreePort(t)
			te := startEngine(t, k)
			te.apply(CompileYAML(t, te.reg, backendTLSSnapshot(port, b.addr, groups)))
			for _, name := range []string{"with", "without", "with"} {
				c := Dial(t, port)
				fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", name)
				resp, body := ReadResponse(t, bufio.NewReader(c), "GET")
				if name == "with" {
					if resp.StatusCode != 200 || !strings.HasPrefix(body, "client=gateway ") {
						t.Fatalf("TLS %x %s: %d %q, want 200 from a client named gateway", v, name, resp.StatusCode, body)
					}
				} else if resp.StatusCode != 502 {
					t.Fatalf("TLS %x %s: %d %q, want 502", v, name, resp.StatusCode, body)
				}
				c.Close()
			}
		}
	})
}

// TestBackendTLSReuseAndResumption: requests on a keep-alive client
// connection reuse one upstream TLS connection (one handshake for many
// requests); when the backend closes its connections, the next ones resume
// the session it gave (the backend sees DidResume).
func TestBackendTLSReuseAndResumption(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ca := NewCA(t, "backend-ca")
		b := startCountingTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{ca.ServerCert(t, []string{"backend.example.com"})}})
		caPEM := base64.StdEncoding.EncodeToString(ca.CertPEM)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, strings.Replace(backendTLSSnapshot(port, b.addr,
			map[string]string{"keep": "{serverName: backend.example.com, caCertPem: " + caPEM + "}"}),
			"{type: EXACT, value: /keep}", "{type: PATH_PREFIX, value: /}", 1)))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		get := func(path string) string {
			t.Helper()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path)
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
			}
			return body
		}
		const keep = 50
		for range keep {
			get("/")
		}
		if n := b.hs.Load(); n != 1 {
			t.Fatalf("%d keep-alive requests took %d backend handshakes, want 1", keep, n)
		}
		// Each /close ends the upstream connection: the next request dials
		// again and resumes.
		const closes = 5
		for i := range closes {
			body := get("/close")
			if want := fmt.Sprintf("resumed=%v", i > 0); !strings.HasSuffix(body, want) {
				t.Fatalf("request %d after the backend closed: %q, want %s", i, body, want)
			}
		}
		if hs, res := b.hs.Load(), b.res.Load(); hs != closes || res != closes-1 {
			t.Fatalf("backend handshakes %d, resumed %d; want %d and %d", hs, res, closes, closes-1)
		}
	})
}

// TestBackendTLSTunnel: a TCP listener's tunnel to a group with TLS carries
// the client's bytes over TLS both ways; the client's half-close reaches the
// backend as close_notify, and the backend's last bytes and close come back.
func TestBackendTLSTunnel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ca := NewCA(t, "backend-ca")
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.ServerCert(t, []string{"backend.example.com"})}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = io.Copy(c, c) // echo until close_notify
					_, _ = io.WriteString(c, "bye")
				}()
			}
		}()
		host, p, _ := net.SplitHostPort(ln.Addr().String())
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, `
listeners:
- name: tcp
  address: 127.0.0.1
  port: `+strconv.Itoa(port)+`
  protocol: TCP
  tcpRoute: {name: tcp, backends: [{backendGroup: app, weight: 1}]}
backendGroups:
- name: app
  tls: {serverName: backend.example.com, caCertPem: `+base64.StdEncoding.EncodeToString(ca.CertPEM)+`}
  endpoints: [{address: `+host+`, port: `+p+`}]
`))
		c := Dial(t, port)
		msg := strings.Repeat("tunnel over tls ", 4000) // several records
		go func() { _, _ = io.WriteString(c, msg) }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo: %v (%d bytes)", err, len(got))
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(c)
		if err != nil || string(rest) != "bye" {
			t.Fatalf("after the half-close: %q, %v; want bye and EOF", rest, err)
		}
	})
}

// TestBackendTLSHandshakeFails: an endpoint that accepts but never answers
// the ClientHello fails the connect once the group's connect timeout has
// passed (it bounds the handshake as well), and one that speaks plain HTTP
// fails it at once; both are 502 connect failures.
func TestBackendTLSHandshakeFails(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		silent, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { silent.Close() })
		go func() {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				c, err := silent.Accept()
				if err != nil {
					return
				}
				held = append(held, c) // read nothing, write nothing
			}
		}()
		plain := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		ca := NewCA(t, "backend-ca")
		caPEM := base64.StdEncoding.EncodeToString(ca.CertPEM)
		port := FreePort(t)
		y := strings.Replace(backendTLSSnapshot(port, silent.Addr().String(),
			map[string]string{"silent": "{serverName: backend.example.com, caCertPem: " + caPEM + "}"}),
			"  tls:", "  connectTimeout: 0.3s\n  tls:", 1)
		host, p, _ := net.SplitHostPort(plain.Addr())
		y += "- name: plain\n  tls: {serverName: backend.example.com, caCertPem: " + caPEM + "}\n  endpoints: [{address: " + host + ", port: " + p + "}]\n"
		y = strings.Replace(y, "    routes:\n", "    routes:\n    - name: plain\n      matches: [{path: {type: EXACT, value: /plain}}]\n      backends: [{backendGroup: plain, weight: 1}]\n", 1)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, y))
		for _, name := range []string{"silent", "plain"} {
			c := Dial(t, port)
			start := time.Now()
			fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", name)
			resp, body := ReadResponse(t, bufio.NewReader(c), "GET")
			if resp.StatusCode != 502 {
				t.Fatalf("%s: %d %q, want 502", name, resp.StatusCode, body)
			}
			t.Logf("%s: 502 after %v", name, time.Since(start))
		}
		if n := te.reg.LocalReplies(metrics.ReasonConnectFailed); n != 2 {
			t.Fatalf("connect failures counted: %d, want 2", n)
		}
	})
}

// TestBackendTLSExtAuth: an ExternalAuth filter whose authorization group
// has TLS checks requests over TLS on every engine (the check is an
// ordinary upstream exchange): allowed requests reach the app with the
// service's header, denied ones get its 401.
func TestBackendTLSExtAuth(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ca := NewCA(t, "auth-ca")
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.ServerCert(t, []string{"auth.example.com"})}})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer good" {
				w.Header().Set("X-User", "alice")
				return
			}
			w.WriteHeader(http.StatusUnauthorized)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		app := appBackend(t)
		port := FreePort(t)
		_, authPort, _ := net.SplitHostPort(ln.Addr().String())
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{app.Addr()}, "", `    - name: authed
      matches: [{path: {type: PATH_PREFIX, value: /app}}]
      filters:
      - extAuth: {backendGroup: auth, allowedResponseHeaders: [x-user]}
      backends: [{backendGroup: app, weight: 1}]
`, `- name: auth
  tls: {serverName: auth.example.com, caCertPem: `+base64.StdEncoding.EncodeToString(ca.CertPEM)+`}
  endpoints:
  - {address: 127.0.0.1, port: `+authPort+`}
`)))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		for i, tc := range []struct {
			auth string
			code int
			body string
		}{
			{"Bearer good", 200, "app GET /app/x user=alice internal= body="},
			{"Bearer bad", 401, ""},
			{"Bearer good", 200, "app GET /app/x user=alice internal= body="},
		} {
			fmt.Fprintf(c, "GET /app/x HTTP/1.1\r\nHost: shop\r\nAuthorization: %s\r\n\r\n", tc.auth)
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != tc.code || body != tc.body {
				t.Fatalf("request %d (%s): %d %q, want %d %q", i, tc.auth, resp.StatusCode, body, tc.code, tc.body)
			}
		}
	})
}
