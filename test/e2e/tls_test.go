//go:build e2e

package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaxlb/flax/test/poll"
)

// The HTTPS Gateway of TestCertificateRotationUnderLoad.
const (
	rotatePort = "8094"
	rotateHost = "rotate.example.com"
)

// rotateGatewayYAML is an HTTPS Gateway terminating TLS with Secret e2e-rotate, and a
// route from it to echo.
const rotateGatewayYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: e2e-rotate
  namespace: demo
spec:
  gatewayClassName: flax
  listeners:
  - name: https
    protocol: HTTPS
    port: ` + rotatePort + `
    hostname: ` + rotateHost + `
    tls:
      mode: Terminate
      certificateRefs: [{name: e2e-rotate}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e2e-rotate
  namespace: demo
spec:
  parentRefs: [{name: e2e-rotate}]
  hostnames: [` + rotateHost + `]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
`

// testCA issues the certificates of the rotation test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flax e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// secretJSON returns Secret e2e-rotate (type kubernetes.io/tls) holding a new key and
// a certificate for rotateHost with the given serial number, signed by the CA.
func (ca *testCA) secretJSON(t testing.TB, serial int64) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: rotateHost}, DNSNames: []string{rotateHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]string{"name": "e2e-rotate", "namespace": demoNS},
		"stringData": map[string]string{
			"tls.crt": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			"tls.key": string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tlsResult is one request of tlsLoad.
type tlsResult struct {
	start, end time.Time
	worker     int
	keepAlive  bool
	conn       int   // the worker's connection number (keep-alive workers redial after a failure)
	serial     int64 // serial number of the certificate the connection's handshake got
	err        string
}

// tlsLoad sends requests over HTTPS: keep-alive workers each on one connection made
// at the start (a new one only after a failure), new-connection workers with a full
// handshake per request (no session cache: a resumed session would not show the
// certificate again). Each result records the certificate's serial number.
type tlsLoad struct {
	addr string
	cfg  *tls.Config
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results []tlsResult
}

func startTLSLoad(t testing.TB, addr string, pool *x509.CertPool, keepAlive, fresh int) *tlsLoad {
	l := &tlsLoad{addr: addr, stop: make(chan struct{}), cfg: &tls.Config{
		RootCAs: pool, ServerName: rotateHost, MinVersion: tls.VersionTLS12, ClientSessionCache: nil,
	}}
	for i := range keepAlive + fresh {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.worker(i, i < keepAlive)
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the workers and waits for them.
func (l *tlsLoad) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *tlsLoad) all() []tlsResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tlsResult(nil), l.results...)
}

func (l *tlsLoad) worker(id int, keepAlive bool) {
	var c *tls.Conn
	var br *bufio.Reader
	var serial int64
	conns := 0
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		r := tlsResult{start: time.Now(), worker: id, keepAlive: keepAlive}
		err := func() error {
			if c == nil {
				d := &net.Dialer{Timeout: 5 * time.Second}
				nc, err := tls.DialWithDialer(d, "tcp", l.addr, l.cfg)
				if err != nil {
					return fmt.Errorf("handshake: %w", err)
				}
				c, br, conns = nc, bufio.NewReader(nc), conns+1
				serial = c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
			}
			r.conn, r.serial = conns, serial
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			req := "GET /rotate HTTP/1.1\r\nHost: " + rotateHost + "\r\n\r\n"
			if !keepAlive {
				req = "GET /rotate HTTP/1.1\r\nHost: " + rotateHost + "\r\nConnection: close\r\n\r\n"
			}
			if _, err := io.WriteString(c, req); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return fmt.Errorf("response: %w", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("body: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
			}
			return nil
		}()
		r.end = time.Now()
		if err != nil {
			r.err = err.Error()
		}
		if err != nil || !keepAlive {
			if c != nil {
				c.Close()
			}
			c = nil
		}
		l.mu.Lock()
		l.results = append(l.results, r)
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// handshakeSerial makes one connection to addr, sends one request and returns the
// serial number of the certificate the handshake got.
func handshakeSerial(addr string, pool *x509.CertPool) (int64, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: rotateHost})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /rotate HTTP/1.1\r\nHost: "+rotateHost+"\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestCertificateRotationUnderLoad serves an HTTPS Gateway under load from clients on
// kept connections and clients with a new connection (a full handshake) per request,
// and replaces the listener's Secret twice with a new key and certificate: no request
// fails, the kept connections go on (on the certificate they started with), and new
// handshakes get each new certificate (compared by serial number) within seconds and
// never the old one again.
func TestCertificateRotationUnderLoad(t *testing.T) {
	ca := newTestCA(t)
	t.Cleanup(func() {
		_, _ = kubectlErr(rotateGatewayYAML, "delete", "--ignore-not-found", "-f", "-")
		_, _ = kubectlErr("", "delete", "--ignore-not-found", "-n", demoNS, "secret/e2e-rotate")
	})
	kubectl(t, ca.secretJSON(t, 101), "apply", "-f", "-")
	kubectl(t, rotateGatewayYAML, "apply", "-f", "-")

	var addr string
	poll.Eventually(t, time.Minute, 500*time.Millisecond, "Gateway e2e-rotate serves the first certificate", func() error {
		out, err := kubectlErr("", "get", "-n", demoNS, "gateway/e2e-rotate", "-o", "jsonpath={.status.addresses[0].value}")
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Errorf("no address yet: %w", err)
		}
		addr = net.JoinHostPort(strings.TrimSpace(out), rotatePort)
		serial, err := handshakeSerial(addr, ca.pool)
		if err != nil {
			return err
		}
		if serial != 101 {
			return fmt.Errorf("serial %d, want 101", serial)
		}
		return nil
	})

	const keepAlive, fresh = 3, 3
	l := startTLSLoad(t, addr, ca.pool, keepAlive, fresh)
	time.Sleep(2 * time.Second)

	// Each rotation: when the first new handshake got the new certificate.
	type rotation struct {
		serial        int64
		applied, seen time.Time
	}
	var rotations []rotation
	for _, serial := range []int64{102, 103} {
		applied := time.Now()
		kubectl(t, ca.secretJSON(t, serial), "apply", "-f", "-")
		var seen time.Time
		poll.Eventually(t, time.Minute, 100*time.Millisecond, fmt.Sprintf("a new handshake gets certificate %d", serial), func() error {
			for _, r := range l.all() {
				if !r.keepAlive && r.err == "" && r.serial == serial && r.start.After(applied) {
					seen = r.start
					return nil
				}
			}
			return errors.New("not yet")
		})
		rotations = append(rotations, rotation{serial, applied, seen})
		t.Logf("certificate %d: first new handshake with it %v after the Secret was applied", serial, seen.Sub(applied).Round(time.Millisecond))
		time.Sleep(2 * time.Second) // more load on the new certificate
	}
	l.Stop()

	rs := l.all()
	var failed []string
	perWorker := map[int][]tlsResult{}
	for _, r := range rs {
		if r.err != "" {
			failed = append(failed, fmt.Sprintf("worker %d (keep-alive %v) at %s: %s", r.worker, r.keepAlive, r.start.Format("15:04:05.000"), r.err))
		}
		perWorker[r.worker] = append(perWorker[r.worker], r)
	}
	t.Logf("%d requests, %d failed", len(rs), len(failed))
	if len(failed) > 0 {
		t.Errorf("failed requests:\n%s", strings.Join(failed, "\n"))
	}

	last := rotations[len(rotations)-1]
	for w := range keepAlive {
		got := perWorker[w]
		if len(got) == 0 {
			t.Errorf("keep-alive worker %d made no request", w)
			continue
		}
		// One connection throughout, made before the first rotation, still answering
		// after the last one, on the certificate it began with.
		if end := got[len(got)-1]; end.conn != 1 || end.serial != 101 || !end.start.After(last.seen) {
			t.Errorf("keep-alive worker %d: last request on connection %d with certificate %d at %s; want connection 1 (no redial), certificate 101, after %s",
				w, end.conn, end.serial, end.start.Format("15:04:05.000"), last.seen.Format("15:04:05.000"))
		}
	}
	// New handshakes: the certificate in force, never an older one once a newer one
	// was seen (a second of slack for the dataplane's workers to pick up the config).
	for _, r := range rs {
		if r.keepAlive || r.err != "" {
			continue
		}
		want := int64(101)
		for _, rot := range rotations {
			if r.start.After(rot.seen.Add(time.Second)) {
				want = rot.serial
			}
		}
		if r.serial < want {
			t.Errorf("worker %d: handshake at %s got certificate %d, want %d or newer", r.worker, r.start.Format("15:04:05.000"), r.serial, want)
		}
	}
	seen := map[int64]int{}
	for _, r := range rs {
		if !r.keepAlive && r.err == "" {
			seen[r.serial]++
		}
	}
	t.Logf("new handshakes per certificate serial: %v", seen)
	for _, s := range []int64{101, 102, 103} {
		if seen[s] == 0 {
			t.Errorf("no new handshake got certificate %d", s)
		}
	}
}
