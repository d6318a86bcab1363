package enginetest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tlsCert is one certificate of an HTTPS listener and the names it serves.
type tlsCert struct {
	names     []string
	cert, key []byte
}

func newTLSCert(t *testing.T, names ...string) tlsCert {
	c, k := SelfSigned(t, names...)
	return tlsCert{names: names, cert: c, key: k}
}

// httpsSnapshot is an HTTPS listener on port with certs and the listener
// fields extra (e.g. timeouts), in front of the backend at addr.
func httpsSnapshot(port int, addr, extra string, certs ...tlsCert) string {
	host, p, _ := net.SplitHostPort(addr)
	var cs strings.Builder
	for _, c := range certs {
		fmt.Fprintf(&cs, "  - {serverNames: [%s], certPem: %s, keyPem: %s}\n", strings.Join(c.names, ", "),
			base64.StdEncoding.EncodeToString(c.cert), base64.StdEncoding.EncodeToString(c.key))
	}
	return `
listeners:
- name: tls
  address: 127.0.0.1
  port: ` + strconv.Itoa(port) + `
  protocol: HTTPS
` + extra + `  certificates:
` + cs.String() + `  virtualHosts:
  - name: all
    routes:
    - name: default
      backends: [{backendGroup: app, weight: 1}]
backendGroups:
- name: app
  endpoints:
  - {address: ` + host + `, port: ` + p + `}
`
}

// dialTLS opens a TLS connection to port for server name sni, at most TLS
// version maxVersion (0: the default), closed when the test ends.
func dialTLS(t *testing.T, port int, sni string, maxVersion uint16) *tls.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: maxVersion})
	if err != nil {
		t.Fatalf("tls dial %s: %v", sni, err)
	}
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { tc.Close() })
	return tc
}

// TestHTTPSKeepAliveSNI: each server name gets its own certificate, over
// TLS 1.3 and 1.2, and many requests follow each other on one connection,
// some pipelined, with X-Forwarded-Proto https.
func TestHTTPSKeepAliveSNI(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "host=%s path=%s proto=%s", r.Host, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "",
			newTLSCert(t, "a.example.com"), newTLSCert(t, "b.example.com"))))
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			for _, name := range []string{"a.example.com", "b.example.com"} {
				tc := dialTLS(t, port, name, v)
				st := tc.ConnectionState()
				if st.Version != v {
					t.Fatalf("%s: version %x, want %x", name, st.Version, v)
				}
				if cn := st.PeerCertificates[0].Subject.CommonName; cn != name {
					t.Fatalf("SNI %s got the certificate of %s", name, cn)
				}
				br := bufio.NewReader(tc)
				for i := range 100 {
					fmt.Fprintf(tc, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, name)
					if i%10 == 0 { // and a pipelined one
						fmt.Fprintf(tc, "GET /%dp HTTP/1.1\r\nHost: %s\r\n\r\n", i, name)
					}
					resp, body := ReadResponse(t, br, "GET")
					if want := fmt.Sprintf("host=%s path=/%d proto=https", name, i); resp.StatusCode != 200 || body != want {
						t.Fatalf("%s request %d: %d %q, want %q", name, i, resp.StatusCode, body, want)
					}
					if i%10 == 0 {
						resp, body := ReadResponse(t, br, "GET")
						if want := fmt.Sprintf("host=%s path=/%dp proto=https", name, i); resp.StatusCode != 200 || body != want {
							t.Fatalf("%s pipelined request %d: %d %q", name, i, resp.StatusCode, body)
						}
					}
				}
				if conns, _ := be.Counts(); conns > 4 {
					t.Fatalf("backend saw %d connections for keep-alive clients", conns)
				}
			}
		}
	})
}

// TestHTTPSRotation: a new configuration with another certificate serves
// the handshakes that follow; a connection established before keeps
// working.
func TestHTTPSRotation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		port := FreePort(t)
		te := startEngine(t, k)
		old, cur := newTLSCert(t, "old.example.com", "a.example.com"), newTLSCert(t, "new.example.com", "a.example.com")
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", old)))
		before := dialTLS(t, port, "a.example.com", 0)
		if cn := before.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "old.example.com" {
			t.Fatalf("first certificate: %s", cn)
		}
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", cur)))
		after := dialTLS(t, port, "a.example.com", 0)
		if cn := after.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "new.example.com" {
			t.Fatalf("handshake after the swap got %s, want new.example.com", cn)
		}
		for _, tc := range []*tls.Conn{before, after} {
			io.WriteString(tc, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := ReadResponse(t, bufio.NewReader(tc), "GET"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}
	})
}

// TestHTTPSLargeResponse: a response of several MiB reaches a client that
// reads it in small pieces, intact.
func TestHTTPSLargeResponse(t *testing.T) {
	const size = 6 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(payload)
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(payload)
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "a.example.com"))))
		tc := dialTLS(t, port, "a.example.com", 0)
		for range 2 {
			io.WriteString(tc, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReaderSize(tc, 4<<10), nil)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			r := io.TeeReader(resp.Body, h)
			n, err := ReadSlowly(r, 16<<10, 200*time.Microsecond)
			if err != nil || n != size {
				t.Fatalf("read %d of %d bytes: %v", n, size, err)
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatal("response body corrupted")
			}
		}
	})
}

// closedWithin reports whether the server closes c (a read ends other than
// by the deadline) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHTTPSHandshakeTimeout: the request head timeout bounds the handshake,
// for a client that sends nothing and for one that stops in the middle of
// its ClientHello.
func TestHTTPSHandshakeTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "  timeouts: {requestHead: "+tHead+"}\n", newTLSCert(t, "a.example.com"))))

		// A real ClientHello, cut short.
		hello := ClientHello(t)
		for _, sent := range [][]byte{nil, hello[:len(hello)/2]} {
			c := Dial(t, port)
			start := time.Now()
			if _, err := c.Write(sent); err != nil {
				t.Fatal(err)
			}
			if !closedWithin(c, 5*time.Second) {
				t.Fatalf("client that sent %d bytes of its hello still open after 5s", len(sent))
			}
			if el := time.Since(start); el < 400*time.Millisecond || el > 3*time.Second {
				t.Fatalf("client that sent %d bytes closed after %v, want about %s", len(sent), el, tHead)
			}
		}
		// The listener still serves.
		tc := dialTLS(t, port, "a.example.com", 0)
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := ReadResponse(t, bufio.NewReader(tc), "GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// corruptConn flips a bit in the next write after arm is set.
type corruptConn struct {
	net.Conn
	arm atomic.Bool
}

func (c *corruptConn) Write(p []byte) (int, error) {
	if c.arm.Swap(false) && len(p) > 10 {
		q := append([]byte(nil), p...)
		q[len(q)-3] ^= 0x40
		return c.Conn.Write(q)
	}
	return c.Conn.Write(p)
}

// TestHTTPSCorruptRecord: a record that fails authentication closes the
// connection without a response, with a bad_record_mac alert; the request
// before it was served.
func TestHTTPSCorruptRecord(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var reqs atomic.Int32
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs.Add(1)
			io.WriteString(w, "ok")
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "a.example.com"))))
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			raw := Dial(t, port)
			cc := &corruptConn{Conn: raw}
			tc := tls.Client(cc, &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true, MaxVersion: v})
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(tc)
			io.WriteString(tc, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := ReadResponse(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("first request: %d %q", resp.StatusCode, body)
			}
			n := reqs.Load()
			cc.arm.Store(true)
			io.WriteString(tc, "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
			_, err := br.ReadByte()
			if err == nil {
				t.Fatalf("TLS %x: a response to a corrupted record", v)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("TLS %x: connection with a corrupted record still open", v)
			}
			if !strings.Contains(err.Error(), "bad record MAC") {
				t.Logf("TLS %x: read ended with %v (no bad_record_mac alert seen)", v, err)
				if v == tls.VersionTLS13 {
					t.Fatalf("TLS 1.3: want a bad_record_mac alert, got %v", err)
				}
			}
			if reqs.Load() != n {
				t.Fatalf("the corrupted request reached the backend")
			}
		}
	})
}

// TestHTTPSTimeouts: a TLS client that reads slowly but steadily gets its
// whole response, and one that stops reading is closed after the send stall
// timeout, with its backend connection.
func TestHTTPSTimeouts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var ended atomic.Int32
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 1024)
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer ended.Add(1)
			if r.URL.Path == "/small" {
				w.Header().Set("Content-Length", "65536")
				for range 4 {
					w.Write(chunk)
				}
				return
			}
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(),
			"  timeouts: {requestHead: "+tHead+", sendStall: "+tSendStall+"}\n", newTLSCert(t, "a.example.com"))))

		dial := func() *tls.Conn {
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
			}}
			nc, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(nc, &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true})
			tc.SetDeadline(time.Now().Add(20 * time.Second))
			t.Cleanup(func() { tc.Close() })
			return tc
		}

		// Slow but moving: 1 KiB every 50ms, gaps ten times shorter than the
		// send stall timeout, about 3s in all.
		tc := dial()
		io.WriteString(tc, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReaderSize(tc, 1<<10), nil)
		if err != nil {
			t.Fatal(err)
		}
		total, err := ReadSlowly(resp.Body, 1<<10, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("slow TLS reader cut after %d bytes: %v", total, err)
		}
		if total != 65536 {
			t.Fatalf("read %d bytes, want 65536", total)
		}

		// Stopped: the backend's write fails once the proxy gives up.
		before := ended.Load()
		tc = dial()
		io.WriteString(tc, "GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
		WaitFor(t, "the backend connection closed", 10*time.Second, func() bool { return ended.Load() > before })
		if !closedWithin(tc, 5*time.Second) {
			t.Fatal("stalled TLS client still open")
		}
	})
}

// TestHTTPSUpgrade: a WebSocket-style upgrade over TLS becomes a tunnel in
// both directions; the client's close_notify reaches the backend as EOF, and
// the backend's close reaches the client as close_notify after its last
// bytes.
func TestHTTPSUpgrade(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := startRawBackend(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Header.Get("Upgrade") != "websocket" {
				io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				return
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nwelcome;")
			buf := make([]byte, 4096)
			for {
				n, err := br.Read(buf)
				if n > 0 {
					c.Write(bytes.ToUpper(buf[:n]))
				}
				if err != nil {
					io.WriteString(c, "bye;") // after the client's EOF
					return
				}
			}
		})
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.addr(), "", newTLSCert(t, "a.example.com"))))
		tc := dialTLS(t, port, "a.example.com", 0)
		br := bufio.NewReader(tc)
		io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		got := make([]byte, len("welcome;"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "welcome;" {
			t.Fatalf("server bytes %q: %v", got, err)
		}
		for i := range 50 {
			msg := fmt.Sprintf("message %d;", i) + strings.Repeat("x", i*300)
			io.WriteString(tc, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != strings.ToUpper(msg) {
				t.Fatalf("echo %d: %v", i, err)
			}
		}
		if err := tc.CloseWrite(); err != nil { // close_notify
			t.Fatal(err)
		}
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "bye;" {
			t.Fatalf("after close_notify: %q, %v (want the backend's last bytes, then close_notify)", rest, err)
		}
	})
}

// TestHTTPSLargeUpload: request bodies of several MiB reach the backend
// intact over TLS 1.3 and 1.2, many records a request.
func TestHTTPSLargeUpload(t *testing.T) {
	const size = 4 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*13 + i>>9)
	}
	want := fmt.Sprintf("%x", sha256.Sum256(payload))
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "a.example.com"))))
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			tc := dialTLS(t, port, "a.example.com", v)
			br := bufio.NewReader(tc)
			for range 2 {
				fmt.Fprintf(tc, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
				go tc.Write(payload)
				resp, body := ReadResponse(t, br, "POST")
				if resp.StatusCode != 200 || body != fmt.Sprintf("%d %s", size, want) {
					t.Fatalf("TLS %x upload: %d %q", v, resp.StatusCode, body)
				}
			}
		}
	})
}

// TestHTTPSHandshakeCounts: completed and failed TLS handshakes are counted per
// listener (flax_tls_handshakes_total).
func TestHTTPSHandshakeCounts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "a.example.com"))))
		for range 3 {
			tc := dialTLS(t, port, "a.example.com", 0)
			fmt.Fprint(tc, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
			if resp, body := ReadResponse(t, bufio.NewReader(tc), "GET"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		}
		// A client that offers only TLS 1.1 fails its handshake.
		d := net.Dialer{Timeout: 5 * time.Second}
		if tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
			&tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			tc.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
		id := te.reg.ListenerID("tls")
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok, failed := te.reg.TLSHandshakes(id)
			if ok == 3 && failed == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("handshakes counted: %d ok, %d failed; want 3 and 1", ok, failed)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestHTTPSProtocolFloor: TLS 1.2 clients must offer an ECDHE AEAD suite
// (compiled.TLS12CipherSuites) and older versions are refused, on both
// engines; the handshake failure does not disturb the next client.
func TestHTTPSProtocolFloor(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "a.example.com"))))
		dial := func(cfg *tls.Config) error {
			d := net.Dialer{Timeout: 5 * time.Second}
			cfg.ServerName, cfg.InsecureSkipVerify = "a.example.com", true
			tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
			if err != nil {
				return err
			}
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
			ok   bool
		}{
			{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
			{"TLS 1.2 CBC only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			}}, false},
			{"TLS 1.2 ChaCha20-Poly1305", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			}}, true},
			{"TLS 1.2 AES-256-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			}}, true},
			{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
		} {
			err := dial(tc.cfg)
			if tc.ok && err != nil {
				t.Errorf("%s: %v, want a served request", tc.name, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("%s: served, want the handshake refused", tc.name)
			}
		}
	})
}
