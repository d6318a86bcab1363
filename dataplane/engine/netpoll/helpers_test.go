package netpoll

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testEngine is a running engine with its registry.
type testEngine struct {
	*Engine
	t      testing.TB
	reg    *metrics.Registry
	cancel context.CancelFunc
	done   chan error
}

func compileYAML(t testing.TB, reg *metrics.Registry, y string) *compiled.Config {
	t.Helper()
	snap, err := dataplanev1.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse snapshot: %v\n%s", err, y)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		t.Fatalf("validate snapshot: %v\n%s", err, y)
	}
	cfg, err := compiled.Compile(snap, reg)
	if err != nil {
		t.Fatalf("compile snapshot: %v", err)
	}
	return cfg
}

// startEngine applies the snapshot y to a new two-worker engine and runs it.
func startEngine(t testing.TB, y string, po proxy.Options) *testEngine {
	t.Helper()
	reg := metrics.NewRegistry(2)
	log := logr.Discard()
	if tt, ok := t.(*testing.T); ok {
		log = testr.New(tt)
	}
	e, err := New(reg, Options{Proxy: po, Logger: log, LingerTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	te := &testEngine{Engine: e, t: t, reg: reg, done: make(chan error, 1)}
	te.apply(y)
	ctx, cancel := context.WithCancel(context.Background())
	te.cancel = cancel
	go func() { te.done <- e.Run(ctx) }()
	t.Cleanup(te.stop)
	return te
}

func (te *testEngine) apply(y string) []engine.ListenerStatus {
	te.t.Helper()
	st, err := te.Apply(compileYAML(te.t, te.reg, y))
	if err != nil {
		te.t.Fatalf("apply: %v", err)
	}
	for _, s := range st {
		if !s.Bound {
			te.t.Fatalf("listener %s not bound: %v", s.Name, s.Err)
		}
	}
	return st
}

func (te *testEngine) stop() {
	if te.cancel == nil {
		return
	}
	te.cancel()
	te.cancel = nil
	select {
	case err := <-te.done:
		if err != nil {
			te.t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		te.t.Errorf("engine did not stop")
	}
}

// httpSnapshot is a one-listener snapshot routing everything to one group
// of endpoints, with extra routes and groups appended.
func httpSnapshot(port int, endpoints []string, extraRoutes, extraGroups string) string {
	var eps strings.Builder
	for _, e := range endpoints {
		host, p, _ := net.SplitHostPort(e)
		eps.WriteString("  - {address: " + host + ", port: " + p + "}\n")
	}
	return `
listeners:
- name: web
  address: 127.0.0.1
  port: ` + itoa(port) + `
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: default
      backends: [{backendGroup: app, weight: 1}]
` + extraRoutes + `
backendGroups:
- name: app
  endpoints:
` + eps.String() + extraGroups
}

func itoa(i int) string { return strconv.Itoa(i) }

// backend is a net/http test backend on 127.0.0.1.
type backend struct {
	ln    net.Listener
	srv   *http.Server
	mu    sync.Mutex
	conns int // connections accepted
	reqs  int
}

func startBackend(t testing.TB, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := &backend{ln: ln}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.reqs++
		b.mu.Unlock()
		h.ServeHTTP(w, r)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
		}
	}}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

func (b *backend) counts() (conns, reqs int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns, b.reqs
}

// dial opens a raw client connection with a deadline.
func dial(t testing.TB, port int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response from br for a request with method.
func readResponse(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body.Close()
	return resp, body.String()
}

// selfSigned returns a PEM certificate and key for names.
func selfSigned(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func errAddrInUse() error { return syscallEADDRINUSE }

var syscallEADDRINUSE = syscall.EADDRINUSE
