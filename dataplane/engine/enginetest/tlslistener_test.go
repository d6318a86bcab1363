package enginetest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// tlsBackend is a TLS server (crypto/tls) that answers each connection with
// its id on a line, then echoes lines.
type tlsBackend struct {
	id   string
	ln   net.Listener
	cert tlsCert
}

func startTLSBackend(t *testing.T, id string, names ...string) *tlsBackend {
	t.Helper()
	c := newTLSCert(t, names...)
	kp, err := tls.X509KeyPair(c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}})
	if err != nil {
		t.Fatal(err)
	}
	b := &tlsBackend{id: id, ln: ln, cert: c}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(nc, id+"\n")
				io.Copy(nc, nc)
			}()
		}
	}()
	return b
}

func (b *tlsBackend) group() string { return groupYAML(b.id, b.ln.Addr().String()) }

func groupYAML(name, addr string) string {
	host, p, _ := net.SplitHostPort(addr)
	return "- name: " + name + "\n  endpoints: [{address: " + host + ", port: " + p + "}]\n"
}

// pool returns a certificate pool holding the PEM certificate.
func pool(t *testing.T, certPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad certificate")
	}
	return p
}

// tlsListenerYAML is a TLS listener on port with the given tlsRoutes (YAML
// list items indented by two spaces), certificates when certs are given,
// and extra listener fields.
func tlsListenerYAML(port int, routes, extra string, certs ...tlsCert) string {
	var cs strings.Builder
	if len(certs) > 0 {
		cs.WriteString("  certificates:\n")
		for _, c := range certs {
			fmt.Fprintf(&cs, "  - {certPem: %s, keyPem: %s}\n",
				base64.StdEncoding.EncodeToString(c.cert), base64.StdEncoding.EncodeToString(c.key))
		}
	}
	return `
listeners:
- name: tls
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: TLS
` + extra + cs.String() + `  tlsRoutes:
` + routes
}

// dialVerify opens a TLS connection through the proxy for server name sni
// (none when empty) that verifies the server's certificate against roots
// (as the name sni, or as verifyAs when there is no SNI), and returns it
// with the first line the server sent.
func dialVerify(t *testing.T, port int, sni, verifyAs string, roots *x509.CertPool, maxVersion uint16) (*tls.Conn, *bufio.Reader, string) {
	t.Helper()
	cfg := &tls.Config{ServerName: sni, RootCAs: roots, MaxVersion: maxVersion}
	if sni == "" {
		// The client sends no SNI for an IP address; verify by hand.
		cfg.ServerName = "127.0.0.1"
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{DNSName: verifyAs, Roots: roots})
			return err
		}
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		t.Fatalf("tls dial %q: %v", sni, err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(tc)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: first line: %v", sni, err)
	}
	return tc, br, strings.TrimSuffix(line, "\n")
}

// echo sends a line and expects it back.
func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// TestTLSPassthroughSNI: a TLS listener forwards each connection unchanged
// to the backend its server name selects (exact, longest wildcard,
// catch-all, also for a ClientHello without a name), over TLS 1.3 and 1.2:
// the client verifies each backend's own certificate, which it could not
// if the proxy had touched a byte.
func TestTLSPassthroughSNI(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		exact := startTLSBackend(t, "exact", "a.example.com")
		wild := startTLSBackend(t, "wild", "*.example.com")
		deep := startTLSBackend(t, "deep", "*.deep.example.com")
		def := startTLSBackend(t, "default", "fallback.test")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-exact, hostnames: [a.example.com], backends: [{backendGroup: exact, weight: 1}]}
  - {name: r-wild, hostnames: ["*.example.com"], backends: [{backendGroup: wild, weight: 1}]}
  - {name: r-deep, hostnames: ["*.deep.example.com"], backends: [{backendGroup: deep, weight: 1}]}
  - {name: r-default, backends: [{backendGroup: default, weight: 1}]}
backendGroups:
`+exact.group()+wild.group()+deep.group()+def.group(), "")))
		cases := []struct {
			sni string
			b   *tlsBackend
			as  string
		}{
			{"a.example.com", exact, ""},
			{"A.Example.COM", exact, ""},
			{"b.example.com", wild, ""},
			{"x.deep.example.com", deep, ""},
			{"other.org", def, "fallback.test"},
			{"", def, "fallback.test"},
		}
		for _, v := range []uint16{0, tls.VersionTLS12} {
			for _, c := range cases {
				sni := c.sni
				if c.b == def && sni != "" {
					// Verify the default backend's certificate under its own name.
					sni = "fallback.test"
				}
				if c.sni == "other.org" {
					continue // covered below: the name must be sent, not verified
				}
				tc, br, id := dialVerify(t, port, sni, c.as, pool(t, c.b.cert.cert), v)
				if id != c.b.id {
					t.Fatalf("SNI %q (max version %x): reached %q, want %q", c.sni, v, id, c.b.id)
				}
				echo(t, tc, br, "hello "+c.b.id)
			}
		}
		// A name no hostname matches reaches the catch-all; the client
		// sends it and checks the certificate as fallback.test by hand.
		cfg := &tls.Config{ServerName: "other.org", InsecureSkipVerify: true}
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{DNSName: "fallback.test", Roots: pool(t, def.cert.cert)})
			return err
		}
		tc, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
		if err != nil {
			t.Fatalf("other.org: %v", err)
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(tc).ReadString('\n'); err != nil || line != "default\n" {
			t.Fatalf("other.org reached %q, %v", line, err)
		}
	})
}

// TestTLSRefused: without a catch-all, a server name no route matches is
// closed (no_route); bytes that are not a ClientHello are closed
// (bad_request), neither reaching a backend.
func TestTLSRefused(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startTLSBackend(t, "a", "a.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-a, hostnames: [a.example.com], backends: [{backendGroup: a, weight: 1}]}
backendGroups:
`+b.group(), "")))
		c := Dial(t, port)
		tc := tls.Client(c, &tls.Config{ServerName: "b.example.com", InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Fatal("handshake with an unrouted name succeeded")
		}
		WaitFor(t, "no_route", 5*time.Second, func() bool { return te.reg.LocalReplies(metrics.ReasonNoRoute) >= 1 })
		for _, junk := range []string{"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", "SSH-2.0-x\r\n", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"} {
			c := Dial(t, port)
			io.WriteString(c, junk)
			if got := expectClosed(t, c, 5*time.Second); got != "" {
				t.Fatalf("%q got %q back", junk, got)
			}
		}
		WaitFor(t, "bad_request", 5*time.Second, func() bool { return te.reg.LocalReplies(metrics.ReasonBadRequest) >= 3 })
		// The route still serves its name.
		tc2, br, id := dialVerify(t, port, "a.example.com", "", pool(t, b.cert.cert), 0)
		if id != "a" {
			t.Fatalf("reached %q", id)
		}
		echo(t, tc2, br, "still served")
	})
}

// TestTLSSlowClientHello: a ClientHello sent a few bytes at a time is
// closed by the request head timeout, whatever its pace, and counted.
func TestTLSSlowClientHello(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startTLSBackend(t, "a", "a.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-a, backends: [{backendGroup: a, weight: 1}]}
backendGroups:
`+b.group(), "  timeouts: {requestHead: 0.5s}\n")))
		hello := ClientHello(t)
		c := Dial(t, port)
		start := time.Now()
		closed := make(chan time.Duration, 1)
		go func() {
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, err := c.Read(buf); err != nil {
					closed <- time.Since(start)
					return
				}
			}
		}()
		for i := 0; i < len(hello)-1; i += 4 {
			if _, err := c.Write(hello[i:min(i+4, len(hello)-1)]); err != nil {
				break
			}
			select {
			case d := <-closed:
				if d < 400*time.Millisecond {
					t.Fatalf("closed after %v, before the 0.5s head timeout", d)
				}
				waitTimeouts(t, te, metrics.TimeoutRequestHead, 1)
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		t.Fatalf("the slow ClientHello was not closed within %v", time.Since(start))
	})
}

// plainBackend is a TCP server that greets each connection with a line
// (so the proxy must tunnel before the client speaks) and echoes.
func plainBackend(t *testing.T, greeting string) *rawBackend {
	return startRawBackend(t, func(c net.Conn) {
		io.WriteString(c, greeting+"\n")
		io.Copy(c, c)
	})
}

// TestTLSTerminateAndMixed: one TLS listener passes a name through to a
// TLS backend and terminates another with its own certificate in front of
// a plain TCP backend (which speaks first), over TLS 1.3 and 1.2.
func TestTLSTerminateAndMixed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		pass := startTLSBackend(t, "pass", "pass.example.com")
		plain := plainBackend(t, "plain")
		cert := newTLSCert(t, "term.example.com", "*.term.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-pass, hostnames: [pass.example.com], backends: [{backendGroup: pass, weight: 1}]}
  - {name: r-term, hostnames: [term.example.com, "*.term.example.com"], terminate: true, backends: [{backendGroup: plain, weight: 1}]}
backendGroups:
`+pass.group()+groupYAML("plain", plain.addr()), "", cert)))
		for _, v := range []uint16{0, tls.VersionTLS12} {
			tc, br, id := dialVerify(t, port, "pass.example.com", "", pool(t, pass.cert.cert), v)
			if id != "pass" {
				t.Fatalf("passthrough reached %q", id)
			}
			echo(t, tc, br, "through")
			for _, sni := range []string{"term.example.com", "x.term.example.com"} {
				tc, br, id := dialVerify(t, port, sni, "", pool(t, cert.cert), v)
				if id != "plain" {
					t.Fatalf("%s: terminated connection reached %q", sni, id)
				}
				echo(t, tc, br, "decrypted")
				big := strings.Repeat("0123456789abcdef", 4096) // several records each way
				echo(t, tc, br, big)
				if st := tc.ConnectionState(); st.PeerCertificates[0].Subject.CommonName != "term.example.com" {
					t.Fatalf("certificate %q", st.PeerCertificates[0].Subject.CommonName)
				}
			}
		}
	})
}

// TestTLSTerminateHandshakeTimeout: on a terminating route the head
// timeout also bounds the handshake: a client that sends its ClientHello
// and stops is closed.
func TestTLSTerminateHandshakeTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var conns atomic.Int32
		plain := startRawBackend(t, func(c net.Conn) { conns.Add(1) })
		cert := newTLSCert(t, "a.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-term, terminate: true, backends: [{backendGroup: plain, weight: 1}]}
backendGroups:
`+groupYAML("plain", plain.addr()), "  timeouts: {requestHead: 0.5s}\n", cert)))
		c := Dial(t, port)
		start := time.Now()
		c.Write(ClientHello(t))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c) // the server's flight, then the close
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open after 5s")
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("closed after %v, before the head timeout", d)
		}
		waitTimeouts(t, te, metrics.TimeoutRequestHead, 1)
		if n := conns.Load(); n != 0 {
			t.Fatalf("the backend got %d connections", n)
		}
	})
}

// TestTLSWeights: a route's connections are shared by its backends'
// weights. Its 200 connections in a row, each shut down and closed as the
// next opens, also caught an io_uring SHUTDOWN hitting the next socket given
// the closed one's descriptor number (uring shutdownNow).
func TestTLSWeights(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		light := startTLSBackend(t, "light", "w.example.com")
		heavy := startTLSBackend(t, "heavy", "w.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-w, hostnames: [w.example.com], backends: [{backendGroup: light, weight: 1}, {backendGroup: heavy, weight: 3}]}
backendGroups:
`+light.group()+heavy.group(), "")))
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(light.cert.cert)
		roots.AppendCertsFromPEM(heavy.cert.cert)
		got := map[string]int{}
		const n = 200
		for range n {
			tc, _, id := dialVerify(t, port, "w.example.com", "", roots, 0)
			got[id]++
			tc.Close()
		}
		// Expected 50:150; the bound is 5 standard deviations away, and
		// equal shares fail it.
		if got["light"] == 0 || 2*got["heavy"] < 3*got["light"] {
			t.Fatalf("weights 1:3 shared %d connections as %v", n, got)
		}
	})
}

// TestTLSConnFilter: a TLS listener's connection hooks run once the route
// is chosen: they reject a client (127.0.0.3) or send it to another group
// (127.0.0.2), on passthrough and terminating routes alike.
func TestTLSConnFilter(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		app := startTLSBackend(t, "app", "pass.example.com")
		other := startTLSBackend(t, "other", "pass.example.com")
		plain := plainBackend(t, "plain")
		cert := newTLSCert(t, "term.example.com")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-pass, hostnames: [pass.example.com], backends: [{backendGroup: app, weight: 1}]}
  - {name: r-term, hostnames: [term.example.com], terminate: true, backends: [{backendGroup: plain, weight: 1}]}
backendGroups:
`+app.group()+groupYAML("other", other.ln.Addr().String())+groupYAML("plain", plain.addr()),
			"  extensionFilters: [enginetest/tcp-guard]\n", cert)))
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(app.cert.cert)
		roots.AppendCertsFromPEM(other.cert.cert)
		roots.AppendCertsFromPEM(cert.cert)
		first := func(from, sni string) (string, error) {
			t.Helper()
			c := DialFrom(t, port, from)
			tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: roots})
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			return bufio.NewReader(tc).ReadString('\n')
		}
		for _, c := range []struct{ from, sni, want string }{
			{"127.0.0.1", "pass.example.com", "app\n"},
			{"127.0.0.2", "pass.example.com", "other\n"},
			{"127.0.0.1", "term.example.com", "plain\n"},
		} {
			if got, err := first(c.from, c.sni); err != nil || got != c.want {
				t.Fatalf("%s from %s: %q, %v; want %q", c.sni, c.from, got, err, c.want)
			}
		}
		for _, sni := range []string{"pass.example.com", "term.example.com"} {
			if got, err := first("127.0.0.3", sni); err == nil {
				t.Fatalf("%s from 127.0.0.3 got %q; want the connection closed", sni, got)
			}
		}
	})
}
