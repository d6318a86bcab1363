package tlsconn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testCert is a self-signed ECDSA P-256 certificate for names.
func testCert(t testing.TB, names ...string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// pair is a real crypto/tls client on a loopback TCP socket and, on the other
// end, a Conn the test drives itself, as a worker would.
type pair struct {
	t      testing.TB
	srv    *Conn
	client *tls.Conn
	sock   net.Conn       // the server's end of the socket
	rx     chan []byte    // what the server's end receives, in chunks
	buf    []byte         // received and not yet opened
	notify chan struct{}  // Options.Notify
	out    [][]byte       // every write the server made after the handshake, as sent
	secret *clientSecrets // the client's traffic secrets (its KeyLogWriter)
	piece  int            // when > 0, handshake bytes are fed this many at a time
}

// clientSecrets captures the client's key log, so tests can forge records
// the way a client other than Go's would send them.
type clientSecrets struct {
	mu     sync.Mutex
	client []byte
}

func (c *clientSecrets) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) == 3 && string(f[0]) == "CLIENT_TRAFFIC_SECRET_0" {
		s := make([]byte, len(f[2])/2)
		for i := range s {
			s[i] = unhex(f[2][2*i])<<4 | unhex(f[2][2*i+1])
		}
		c.mu.Lock()
		c.client = s
		c.mu.Unlock()
	}
	return len(line), nil
}

func unhex(b byte) byte {
	if b >= 'a' {
		return b - 'a' + 10
	}
	return b - '0'
}

// newServer returns a Server whose Notify feeds the returned channel.
func newServer(cfg *tls.Config, opts Options) (*Server, chan struct{}) {
	ch := make(chan struct{}, 1)
	opts.Notify = func(*Conn) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return NewServer(cfg, opts), ch
}

// dial connects a client to a new Conn of srv and completes the handshake.
func dial(t testing.TB, srv *Server, notify chan struct{}, ccfg *tls.Config) *pair {
	t.Helper()
	p, err := tryDial(t, srv, notify, ccfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return p
}

func tryDial(t testing.TB, srv *Server, notify chan struct{}, ccfg *tls.Config) (*pair, error) {
	t.Helper()
	ln := dialRaw(t)
	secrets := &clientSecrets{}
	ccfg = ccfg.Clone()
	ccfg.KeyLogWriter = secrets
	p := &pair{
		t: t, srv: srv.NewConn(), client: tls.Client(ln.client, ccfg), sock: ln.server,
		rx: ln.rx, notify: notify, secret: secrets,
	}
	cerr := make(chan error, 1)
	go func() { cerr <- p.client.Handshake() }()
	if err := p.serverHandshake(nil); err != nil {
		return p, err
	}
	if err := <-cerr; err != nil {
		return p, err
	}
	return p, nil
}

type rawConns struct {
	client, server net.Conn
	rx             chan []byte
}

// dialRaw connects two loopback TCP sockets; what the server's end receives
// arrives on rx.
func dialRaw(t testing.TB) rawConns {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	rx := make(chan []byte, 64)
	go readInto(server, rx)
	return rawConns{client, server, rx}
}

// readInto sends what c receives to rx, in chunks, and closes rx at the end.
func readInto(c net.Conn, rx chan<- []byte) {
	defer close(rx)
	for {
		b := make([]byte, 64<<10)
		n, err := c.Read(b)
		if n > 0 {
			rx <- b[:n]
		}
		if err != nil {
			return
		}
	}
}

// serverSide is a pair for a client other than Go's on the far end of sock.
func serverSide(t testing.TB, sock net.Conn, srv *Server, notify chan struct{}) *pair {
	p := &pair{t: t, srv: srv.NewConn(), sock: sock, rx: make(chan []byte, 64), notify: notify}
	go readInto(sock, p.rx)
	return p
}

// serverHandshake is the worker's handshake loop: feed what arrives, send what
// crypto/tls writes, until Done. hold, when not nil, is closed by the test
// before any byte is fed after the server's first flight.
func (p *pair) serverHandshake(hold chan struct{}) error {
	deadline := time.After(5 * time.Second)
	flights := 0
	for {
		if out := p.srv.Output(nil); len(out) > 0 {
			flights++
			if _, err := p.sock.Write(out); err != nil {
				return err
			}
		}
		done, err := p.srv.Done()
		if err != nil {
			return err
		}
		if done {
			if out := p.srv.Output(nil); len(out) > 0 {
				if _, err := p.sock.Write(out); err != nil {
					return err
				}
			}
			p.buf = p.srv.Leftover(p.buf)
			return nil
		}
		if hold != nil && flights > 0 {
			select {
			case <-hold:
			case <-deadline:
				return errors.New("test: hold never released")
			}
			hold = nil
			time.Sleep(50 * time.Millisecond) // let the client's bytes arrive
			var all []byte
			for more := true; more; {
				select {
				case b := <-p.rx:
					all = append(all, b...)
				default:
					more = false
				}
			}
			if err := p.srv.Feed(all); err != nil {
				return err
			}
			continue
		}
		select {
		case b, ok := <-p.rx:
			if !ok {
				p.srv.CloseRead()
				continue
			}
			if err := p.feed(b); err != nil {
				return err
			}
		case <-p.notify:
		case <-deadline:
			return errors.New("test: handshake timed out")
		}
	}
}

func (p *pair) feed(b []byte) error {
	for p.piece > 0 && len(b) > p.piece {
		if err := p.srv.Feed(b[:p.piece]); err != nil {
			return err
		}
		b = b[p.piece:]
	}
	return p.srv.Feed(b)
}

// recvRaw waits until the server's buffer holds at least n bytes.
func (p *pair) recvRaw(n int) {
	p.t.Helper()
	timeout := time.After(5 * time.Second)
	for len(p.buf) < n {
		select {
		case b, ok := <-p.rx:
			if !ok {
				p.t.Fatalf("socket closed with %d of %d bytes", len(p.buf), n)
			}
			p.buf = append(p.buf, b...)
		case <-timeout:
			p.t.Fatalf("timed out with %d of %d bytes", len(p.buf), n)
		}
	}
}

// open runs Open over the buffered bytes until it needs more, returning the
// plaintext; with want > 0 it waits for that much.
func (p *pair) open(want int) ([]byte, error) {
	p.t.Helper()
	var got []byte
	timeout := time.After(5 * time.Second)
	for {
		for {
			plain, n, err := p.srv.Open(p.buf)
			got = append(got, plain...)
			p.buf = p.buf[n:]
			if err != nil {
				return got, err
			}
			if n == 0 && len(plain) == 0 || p.srv.mode == modeCryptoTLS && len(plain) == 0 {
				break
			}
		}
		p.flushPending()
		if len(got) >= want {
			return got, nil
		}
		select {
		case b, ok := <-p.rx:
			if !ok {
				return got, io.ErrUnexpectedEOF
			}
			p.buf = append(p.buf, b...)
		case <-timeout:
			p.t.Fatalf("timed out with %d of %d plaintext bytes", len(got), want)
		}
	}
}

// openUntilError opens what arrives until Open fails.
func (p *pair) openUntilError() ([]byte, error) {
	p.t.Helper()
	var got []byte
	for range 100 {
		b, err := p.open(len(got) + 1)
		got = append(got, b...)
		if err != nil {
			return got, err
		}
	}
	p.t.Fatal("Open never failed")
	return nil, nil
}

// flushPending sends what the record layer queued on its own.
func (p *pair) flushPending() {
	if p.srv.HasPending() {
		p.write(p.srv.AppendPending(nil))
	}
}

func (p *pair) write(b []byte) {
	p.t.Helper()
	p.out = append(p.out, b)
	if _, err := p.sock.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// seal seals head and body and sends them as one write.
func (p *pair) seal(head, body []byte) {
	p.t.Helper()
	dst := make([]byte, 0, p.srv.SealedLen(len(head)+len(body)))
	out, err := p.srv.Seal(dst, head, body)
	if err != nil {
		p.t.Fatalf("Seal: %v", err)
	}
	p.write(out)
}

// clientRead reads exactly n bytes on the client.
func (p *pair) clientRead(n int) []byte {
	p.t.Helper()
	_ = p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(p.client, b); err != nil {
		p.t.Fatalf("client read: %v", err)
	}
	return b
}

// clientWrite writes on the client without waiting for the server to read.
func (p *pair) clientWrite(b []byte) {
	p.t.Helper()
	_ = p.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.client.Write(b); err != nil {
		p.t.Fatalf("client write: %v", err)
	}
}

// forger seals records as the client, from its logged secret, for messages
// Go's client never sends.
func (p *pair) forger() *direction {
	p.t.Helper()
	p.secret.mu.Lock()
	secret := p.secret.client
	p.secret.mu.Unlock()
	if secret == nil {
		p.t.Fatal("client secret not logged")
	}
	d := &direction{}
	if err := d.setSecret(p.srv.suite, secret); err != nil {
		p.t.Fatal(err)
	}
	return d
}

// forge seals one record with inner content typ (and padding zero bytes).
func forge(d *direction, typ byte, data []byte, padding int) []byte {
	n := len(data) + 1 + padding
	rec := make([]byte, recordHeaderLen, recordHeaderLen+n+tagLen)
	rec[0], rec[1], rec[2] = recordTypeApplicationData, 3, 3
	rec[3], rec[4] = byte((n+tagLen)>>8), byte(n+tagLen)
	inner := append(append(append([]byte(nil), data...), typ), make([]byte, padding)...)
	rec = d.aead.Seal(rec, d.makeNonce(), inner, rec[:recordHeaderLen])
	d.seq++
	return rec
}

// records splits a byte stream into TLS records.
func records(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < recordHeaderLen {
			t.Fatalf("partial header %x", b)
		}
		n := recordHeaderLen + (int(b[3])<<8 | int(b[4]))
		if n > len(b) {
			t.Fatalf("partial record: %d of %d", len(b), n)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}
