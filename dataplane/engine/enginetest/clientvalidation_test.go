package enginetest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// clientValidation is the listener field asking clients for a certificate of ca.
func clientValidation(ca *CA, fallback bool) string {
	return fmt.Sprintf("  clientValidation: {caCertPem: %s, allowInsecureFallback: %v}\n",
		base64.StdEncoding.EncodeToString(ca.CertPEM), fallback)
}

// tlsRequest makes one GET for host over a new TLS connection to port with
// server name sni, presenting cert when it is not nil, at most TLS version
// maxVersion (0: the default). It returns the status and body, or the error
// of the handshake or of the exchange (a server that refuses a client
// certificate under TLS 1.3 says so after the client's handshake is done).
func tlsRequest(port int, sni, host string, cert *tls.Certificate, maxVersion uint16) (int, string, error) {
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: maxVersion}
	if cert != nil {
		// Sent whatever CAs the server names (a crypto/tls client given
		// Certificates would send none that the server's list leaves out).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		return 0, "", fmt.Errorf("handshake: %w", err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return 0, "", fmt.Errorf("send: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return 0, "", fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestHTTPSClientValidation: a listener with client validation in
// AllowValidOnly mode serves clients with a certificate of its CA and fails
// the handshake of clients without one or with one of another CA, over TLS
// 1.3 and 1.2, counting the failures in flax_tls_handshakes_total; in
// AllowInsecureFallback mode all three are served; a configuration with a
// rotated CA applies to the handshakes that follow.
func TestHTTPSClientValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "ok %s", r.Host)
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		caA, caB := NewCA(t, "ca-a"), NewCA(t, "ca-b")
		certA, certB := caA.ClientCert(t, "client-a"), caB.ClientCert(t, "client-b")
		server := newTLSCert(t, "a.example.com")
		apply := func(ca *CA, fallback bool) {
			te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), clientValidation(ca, fallback), server)))
		}
		type client struct {
			name string
			cert *tls.Certificate
		}
		clients := []client{{"ca-a certificate", &certA}, {"ca-b certificate", &certB}, {"no certificate", nil}}
		id := te.reg.ListenerID("tls")
		// expect checks that each client is served or refused as want says,
		// and that the refusals were counted as failed handshakes.
		expect := func(want map[string]bool) {
			t.Helper()
			ok0, failed0 := te.reg.TLSHandshakes(id)
			var refused uint64
			for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
				for _, c := range clients {
					status, body, err := tlsRequest(port, "a.example.com", "a.example.com", c.cert, v)
					served := err == nil && status == 200 && body == "ok a.example.com"
					if served != want[c.name] {
						t.Fatalf("TLS %x, %s: served %v (status %d %q, err %v), want %v", v, c.name, served, status, body, err, want[c.name])
					}
					if !served {
						refused++
					}
				}
			}
			served := uint64(2*len(clients)) - refused
			WaitFor(t, "handshake counts", 5*time.Second, func() bool {
				ok, failed := te.reg.TLSHandshakes(id)
				return ok-ok0 == served && failed-failed0 == refused
			})
		}
		apply(caA, false)
		expect(map[string]bool{"ca-a certificate": true})
		apply(caA, true)
		expect(map[string]bool{"ca-a certificate": true, "ca-b certificate": true, "no certificate": true})
		// Rotation: established connections keep their handshake, new ones use ca-b.
		apply(caB, false)
		expect(map[string]bool{"ca-b certificate": true})
	})
}

// TestTLSTerminateClientValidation: a TLS listener's terminating route
// checks client certificates as an HTTPS listener does (AllowValidOnly): a
// client of the CA reaches the backend, clients without a certificate or
// with one of another CA do not, while a passthrough route on the same
// listener is untouched (the backend's handshake, no certificate asked).
func TestTLSTerminateClientValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		pass := startTLSBackend(t, "pass", "pass.example.com")
		plain := plainBackend(t, "plain")
		cert := newTLSCert(t, "term.example.com")
		caA, caB := NewCA(t, "ca-a"), NewCA(t, "ca-b")
		certA, certB := caA.ClientCert(t, "client-a"), caB.ClientCert(t, "client-b")
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, tlsListenerYAML(port, `
  - {name: r-pass, hostnames: [pass.example.com], backends: [{backendGroup: pass, weight: 1}]}
  - {name: r-term, hostnames: [term.example.com], terminate: true, backends: [{backendGroup: plain, weight: 1}]}
backendGroups:
`+pass.group()+groupYAML("plain", plain.addr()), clientValidation(caA, false), cert)))
		greeting := func(cert *tls.Certificate) (string, error) {
			cfg := &tls.Config{ServerName: "term.example.com", InsecureSkipVerify: true}
			if cert != nil {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			d := net.Dialer{Timeout: 5 * time.Second}
			tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
			if err != nil {
				return "", err
			}
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			return bufio.NewReader(tc).ReadString('\n')
		}
		if line, err := greeting(&certA); err != nil || line != "plain\n" {
			t.Fatalf("client of the CA: %q, %v", line, err)
		}
		for name, c := range map[string]*tls.Certificate{"no certificate": nil, "another CA": &certB} {
			if line, err := greeting(c); err == nil {
				t.Fatalf("%s reached the backend: %q", name, line)
			}
		}
		tc, br, id := dialVerify(t, port, "pass.example.com", "", pool(t, pass.cert.cert), 0)
		if id != "pass" {
			t.Fatalf("passthrough reached %q", id)
		}
		echo(t, tc, br, "through")
	})
}
