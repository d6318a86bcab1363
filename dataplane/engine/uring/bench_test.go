//go:build linux

package uring

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

// rawBackend is an HTTP/1.1 backend that answers every GET with the same
// 100-byte response from fixed buffers, so that it does not allocate and
// allocation counts measure the engine.
type rawBackend struct {
	l       net.Listener
	addr    netip.AddrPort
	certPEM []byte // over TLS (benchBackendTLS): its certificate, for the group's CA
}

var rawResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))

func startRawBackend(t testing.TB) *rawBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{l: l, addr: netip.MustParseAddrPort(l.Addr().String())}
	if benchBackendTLS {
		certPEM, keyPEM := enginetest.SelfSigned(t, "backend")
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		b.certPEM = certPEM
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveRaw(c)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return b
}

func serveRaw(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 64*len(rawResponse))
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		out = out[:0]
		for {
			i := bytes.Index(buf[:have], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			out = append(out, rawResponse...)
			copy(buf, buf[i+4:have])
			have -= i + 4
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// benchClient is one keep-alive client connection sending the same GET.
type benchClient struct {
	c    net.Conn
	req  []byte
	resp []byte // one full response, learned from the first exchange
	buf  []byte
}

func newBenchClient(t testing.TB, addr string) *benchClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if benchTLS {
		tc := tls.Client(c, &tls.Config{ServerName: "bench", InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = tc
	}
	bc := &benchClient{c: c, req: []byte("GET /app/x HTTP/1.1\r\nHost: bench\r\n\r\n")}
	if _, err := c.Write(bc.req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var head bytes.Buffer
	cl := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("first response: %v", err)
		}
		head.WriteString(line)
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	if !strings.HasPrefix(head.String(), "HTTP/1.1 200") || cl != 100 {
		t.Fatalf("first response head: %q", head.String())
	}
	body := make([]byte, cl)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	bc.resp = append(head.Bytes(), body...)
	bc.buf = make([]byte, len(bc.resp))
	_ = c.SetReadDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return bc
}

// do sends one request and reads its response.
func (bc *benchClient) do() error {
	if _, err := bc.c.Write(bc.req); err != nil {
		return err
	}
	_, err := io.ReadFull(bc.c, bc.buf)
	return err
}

// benchTLS makes benchSetup's listener HTTPS (TLS 1.3 on the record layer)
// and the bench clients TLS clients.
var benchTLS bool

// benchBackendTLS makes benchSetup's backend a TLS server (TLS 1.3,
// AES-128-GCM) that the workers connect to with TLS.
var benchBackendTLS bool

// withBackendTLS runs f with benchBackendTLS set.
func withBackendTLS(f func()) {
	benchBackendTLS = true
	defer func() { benchBackendTLS = false }()
	f()
}

// withTLS runs f with benchTLS set.
func withTLS(f func()) {
	benchTLS = true
	defer func() { benchTLS = false }()
	f()
}

// benchSetup starts a one-worker engine in front of a raw backend.
func benchSetup(t testing.TB) (*testEngine, string) {
	te := startEngineWith(t, Options{Workers: 1, HTTPS: benchTLS})
	be := startRawBackend(t)
	port := enginetest.FreePort(t)
	y := snapshotYAML(port, []netip.AddrPort{be.addr}, deadAddr(t), "")
	if benchBackendTLS {
		y = strings.Replace(y, "- name: app\n  connectTimeout: 2s\n", "- name: app\n  connectTimeout: 2s\n  tls: {serverName: backend, caCertPem: "+
			base64.StdEncoding.EncodeToString(be.certPEM)+"}\n", 1)
	}
	if benchTLS {
		cert, key := enginetest.SelfSigned(t, "bench")
		y = strings.Replace(y, "  protocol: HTTP\n", fmt.Sprintf("  protocol: HTTPS\n  certificates:\n  - {certPem: %s, keyPem: %s}\n",
			base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(key)), 1)
	}
	st := te.apply(t, enginetest.CompileYAML(t, te.reg, y))
	if !st[0].Bound {
		t.Fatalf("statuses: %+v", st)
	}
	return te, fmt.Sprintf("127.0.0.1:%d", port)
}

// workerCPU returns the CPU time the engine's worker threads used so far.
func (te *testEngine) workerCPU(t testing.TB) time.Duration {
	te.mu.Lock()
	defer te.mu.Unlock()
	var total time.Duration
	for _, w := range te.workers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", w.tid.Load()))
		if err != nil {
			t.Logf("worker CPU time unavailable: %v", err)
			return 0
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// BenchmarkProxyKeepAlive measures requests through a one-worker engine on
// keep-alive connections to a non-allocating backend. allocs/op counts the
// whole process (client and backend do not allocate); worker-µs/op is the
// engine thread's CPU time per request.
func BenchmarkProxyKeepAlive(b *testing.B) { benchmarkProxyKeepAlive(b) }

// BenchmarkProxyKeepAliveTLS is BenchmarkProxyKeepAlive over TLS 1.3
// (AES-128-GCM) terminated by the workers.
func BenchmarkProxyKeepAliveTLS(b *testing.B) { withTLS(func() { benchmarkProxyKeepAlive(b) }) }

// BenchmarkProxyKeepAliveBackendTLS is BenchmarkProxyKeepAlive with TLS 1.3
// (AES-128-GCM) from the workers to the backend: a plain client, each
// request sealed and each response opened by the worker on its pooled
// upstream TLS connection. allocs/op includes the crypto/tls backend's.
func BenchmarkProxyKeepAliveBackendTLS(b *testing.B) {
	withBackendTLS(func() { benchmarkProxyKeepAlive(b) })
}

func benchmarkProxyKeepAlive(b *testing.B) {
	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			te, addr := benchSetup(b)
			clients := make([]*benchClient, conns)
			for i := range clients {
				clients[i] = newBenchClient(b, addr)
			}
			for _, c := range clients { // warm up the pools
				for i := 0; i < 100; i++ {
					if err := c.do(); err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu0 := te.workerCPU(b)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / conns
			for i, c := range clients {
				n := per
				if i == 0 {
					n += b.N - per*conns
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < n; j++ {
						if err := c.do(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if cpu := te.workerCPU(b) - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "worker-µs/op")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			if !bytes.Equal(clients[0].buf, clients[0].resp) {
				b.Fatalf("last response differs from the first:\n%q\n%q", clients[0].buf, clients[0].resp)
			}
		})
	}
}

// TestSteadyStateAllocs checks that proxying a keep-alive request does not
// allocate once the pools are warm: AllocsPerRun counts every allocation
// of the process, and neither the raw client nor the raw backend allocates.
func TestSteadyStateAllocs(t *testing.T) { testSteadyStateAllocs(t) }

// TestSteadyStateAllocsTLS checks the same over TLS 1.3 terminated by the
// worker. crypto/tls's client allocates once per read, so the allocations
// are counted from the memory profile, by the stacks that made them.
func TestSteadyStateAllocsTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random); make test measures them")
	}
	benchTLS = true
	defer func() { benchTLS = false }()
	_, addr := benchSetup(t)
	expectNoServerAllocs(t, newBenchClient(t, addr), "over TLS terminated by the worker")
}

// TestSteadyStateAllocsBackendTLS checks that a keep-alive request to a
// backend over TLS does not allocate in the engine once its upstream TLS
// connection is pooled: the worker seals the request and opens the response
// on tlsconn's record layer, which the client connection moved to once
// crypto/tls had read the backend's session ticket (on crypto/tls, each
// response cost one allocation). The backend's crypto/tls is left out of
// the count, by its stacks.
func TestSteadyStateAllocsBackendTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random); make test measures them")
	}
	withBackendTLS(func() {
		_, addr := benchSetup(t)
		expectNoServerAllocs(t, newBenchClient(t, addr), "proxied to a TLS backend")
	})
}

// expectNoServerAllocs warms bc up with 2000 requests, then checks that 2000
// more allocate nothing in Flax's code (serverAllocs) and that the responses
// stayed the same.
func expectNoServerAllocs(t *testing.T, bc *benchClient, what string) {
	t.Helper()
	for range 2000 {
		if err := bc.do(); err != nil {
			t.Fatal(err)
		}
	}
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	before := serverAllocs()
	const n = 2000
	for range n {
		if err := bc.do(); err != nil {
			t.Fatal(err)
		}
	}
	if all := serverAllocs() - before; all != 0 {
		t.Errorf("%.3f allocations per request %s, outside the client and backend, want 0", float64(all)/n, what)
	}
	if !bytes.Equal(bc.buf, bc.resp) {
		t.Errorf("response changed:\n%q\n%q", bc.buf, bc.resp)
	}
}

// serverAllocs returns the objects allocated so far, per the memory profile,
// by Flax's code (the engine's worker and the handshake goroutines), leaving
// out the bench client's, the raw backend's, this function's and the
// runtime's own (its scavenger's timers).
func serverAllocs() int64 {
	// The profile is published by garbage collections: two make sure it
	// holds every allocation made before the call.
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+64)
	}
	var total int64
	for _, r := range recs {
		fr := runtime.CallersFrames(r.Stack())
		ours := false
		for {
			f, more := fr.Next()
			if strings.Contains(f.Function, "(*benchClient).do") || strings.Contains(f.Function, "uring.serverAllocs") ||
				strings.Contains(f.Function, "uring.serveRaw") || strings.Contains(f.Function, "uring.serveH2C") {
				ours = false
				break
			}
			if strings.HasPrefix(f.Function, "github.com/flaxlb/flax/") {
				ours = true
			}
			if !more {
				break
			}
		}
		if ours {
			total += r.AllocObjects
		}
	}
	return total
}

func testSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	_, addr := benchSetup(t)
	bc := newBenchClient(t, addr)
	for i := 0; i < 2000; i++ {
		if err := bc.do(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if err := bc.do(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per proxied request, want 0", allocs)
	}
	if !bytes.Equal(bc.buf, bc.resp) {
		t.Errorf("response changed:\n%q\n%q", bc.buf, bc.resp)
	}
}
