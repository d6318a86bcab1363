package tlsconn

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// clientPair is a client Conn the test drives as a worker would, on a
// loopback TCP socket whose other end is a real crypto/tls server.
type clientPair struct {
	t      testing.TB
	c      *Conn
	sock   net.Conn       // the client's end
	rx     chan []byte    // what the client's end receives
	notify chan struct{}  // Options.Notify
	server chan *tls.Conn // the server's connection once its handshake ended
	srvErr chan error
	buf    []byte // received ciphertext not yet opened
}

// newClient returns a Client whose Notify feeds the returned channel.
func newClient(cfg *tls.Config, cache tls.ClientSessionCache) (*Client, chan struct{}) {
	ch := make(chan struct{}, 1)
	opts := Options{Notify: func(*Conn) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}}
	return NewClient(cfg, cache, opts), ch
}

// clientDial connects cl's new Conn to a crypto/tls server with scfg and runs
// the handshake; the error is the client's.
func clientDial(t testing.TB, cl *Client, notify chan struct{}, scfg *tls.Config) (*clientPair, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close(); raw.Close() })
	p := &clientPair{
		t: t, c: cl.NewConn(ln.Addr().String()), sock: sock, rx: make(chan []byte, 64), notify: notify,
		server: make(chan *tls.Conn, 1), srvErr: make(chan error, 1),
	}
	go readInto(sock, p.rx)
	go func() {
		sc := tls.Server(raw, scfg)
		if err := sc.Handshake(); err != nil {
			p.srvErr <- err
			raw.Close()
			return
		}
		p.server <- sc
	}()
	return p, p.handshake()
}

// serverConn is the server's side once both handshakes ended.
func (p *clientPair) serverConn() *tls.Conn {
	p.t.Helper()
	select {
	case sc := <-p.server:
		return sc
	case err := <-p.srvErr:
		p.t.Fatalf("server handshake: %v", err)
	case <-time.After(5 * time.Second):
		p.t.Fatal("server handshake did not finish")
	}
	return nil
}

// send seals head and body and writes them to the socket.
func (p *clientPair) send(head, body []byte) {
	p.t.Helper()
	out, err := p.c.Seal(nil, head, body)
	if err != nil {
		p.t.Fatalf("Seal: %v", err)
	}
	if _, err := p.sock.Write(out); err != nil {
		p.t.Fatal(err)
	}
}

// recv opens what arrives until want bytes of plaintext are read.
func (p *clientPair) recv(want int) ([]byte, error) {
	p.t.Helper()
	var got []byte
	deadline := time.After(5 * time.Second)
	for len(got) < want {
		plain, n, err := p.c.Open(p.buf)
		got = append(got, plain...)
		p.buf = p.buf[n:]
		if err != nil {
			return got, err
		}
		if len(plain) > 0 || n > 0 {
			continue
		}
		select {
		case b, ok := <-p.rx:
			if !ok {
				return got, io.ErrUnexpectedEOF
			}
			p.buf = append(p.buf, b...)
		case <-deadline:
			p.t.Fatalf("received %d bytes of %d", len(got), want)
		}
	}
	if p.c.HasPending() {
		if _, err := p.sock.Write(p.c.AppendPending(nil)); err != nil {
			p.t.Fatal(err)
		}
	}
	return got, nil
}

// TestClientExchange: a client Conn handshakes with a crypto/tls server
// that verifies nothing of it, then requests and responses of every size
// cross in both directions, up to several records each.
func TestClientExchange(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		f := newFixture(t)
		cfg := f.client.Clone()
		cfg.MaxVersion = v
		cl, notify := newClient(cfg, nil)
		p, err := clientDial(t, cl, notify, f.server)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if st := p.c.ConnectionState(); st.Version != v || st.ServerName != "a.example" || p.c.RecordLayer() {
			t.Fatalf("state: version %x server name %q record layer %v", st.Version, st.ServerName, p.c.RecordLayer())
		}
		sc := p.serverConn()
		for _, size := range []int{1, 100, MaxPlaintext, 3*MaxPlaintext + 7} {
			head, body := []byte("GET / HTTP/1.1\r\n\r\n"), pattern(size, byte(size))
			p.send(head, body)
			want := append(append([]byte(nil), head...), body...)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("TLS %x size %d: server read %v, equal %v", v, size, err, bytes.Equal(got, want))
			}
			resp := pattern(size, byte(size+1))
			go func() { _, _ = sc.Write(resp) }()
			back, err := p.recv(len(resp))
			if err != nil || !bytes.Equal(back, resp) {
				t.Fatalf("TLS %x size %d: client got %d bytes, %v", v, size, len(back), err)
			}
			// TLS 1.3 moves to the record layer once crypto/tls has read
			// a record (no ticket comes: a client without a session cache
			// does not ask for one), at the next Open.
			if size > 1 && p.c.RecordLayer() != (v == tls.VersionTLS13) {
				t.Fatalf("TLS %x after a response: record layer %v", v, p.c.RecordLayer())
			}
		}
		// close_notify from the server is io.EOF (CloseWrite: a Close could reset
		// the socket before the alert is read).
		go func() { _ = sc.CloseWrite() }()
		if _, err := p.recv(1); !errors.Is(err, io.EOF) {
			t.Fatalf("TLS %x: after the server's close_notify: %v, want io.EOF", v, err)
		}
	}
}

// TestClientVerification: the server's certificate is checked against the
// client's roots and server name; a mismatch fails the handshake (the
// worker's connect failure), and so does a server that asks for a client
// certificate the client does not have, while a client with one the server
// trusts gets through.
func TestClientVerification(t *testing.T) {
	f := newFixture(t)
	wrongName := f.client.Clone()
	wrongName.ServerName = "b.example"
	cl, notify := newClient(wrongName, nil)
	var ce *tls.CertificateVerificationError
	if _, err := clientDial(t, cl, notify, f.server); !errors.As(err, &ce) {
		t.Fatalf("server name mismatch: %v, want a certificate verification error", err)
	}
	_, otherLeaf := testCert(t, "a.example")
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(otherLeaf)
	wrongCA := f.client.Clone()
	wrongCA.RootCAs = otherRoots
	cl, notify = newClient(wrongCA, nil)
	if _, err := clientDial(t, cl, notify, f.server); !errors.As(err, &ce) {
		t.Fatalf("unknown CA: %v, want a certificate verification error", err)
	}

	clientCert, clientLeaf := testCert(t, "client.example")
	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(clientLeaf)
	mtls := f.server.Clone()
	mtls.ClientAuth = tls.RequireAndVerifyClientCert
	mtls.ClientCAs = clientRoots
	mtls.MaxVersion = tls.VersionTLS12 // the client learns of the refusal in its handshake
	cl, notify = newClient(f.client, nil)
	if _, err := clientDial(t, cl, notify, mtls); err == nil {
		t.Fatal("handshake without the client certificate a server requires succeeded")
	}
	withCert := f.client.Clone()
	withCert.Certificates = []tls.Certificate{clientCert}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		s := mtls.Clone()
		s.MaxVersion = v
		cl, notify = newClient(withCert, nil)
		p, err := clientDial(t, cl, notify, s)
		if err != nil {
			t.Fatalf("TLS %x with the client certificate: %v", v, err)
		}
		sc := p.serverConn()
		if pc := sc.ConnectionState().PeerCertificates; len(pc) != 1 || pc[0].Subject.CommonName != "client.example" {
			t.Fatalf("TLS %x: server saw client certificates %v", v, pc)
		}
	}
}

// TestClientResumption: with a session cache, the NewSessionTicket a TLS 1.3
// server sends after the handshake is read by crypto/tls when the worker
// opens the first response, and the next connection to the same peer
// resumes (the server says so); tickets are kept per peer, so a connection
// to another address does not offer them.
func TestClientResumption(t *testing.T) {
	f := newFixture(t)
	cache := tls.NewLRUClientSessionCache(8)
	cl, notify := newClient(f.client, cache)
	for i := range 3 {
		p, err := clientDial(t, cl, notify, f.server)
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		sc := p.serverConn()
		// Each connection has its own port: only a cache keyed by server
		// name alone would resume here.
		if sc.ConnectionState().DidResume {
			t.Fatalf("connection %d to a new address resumed", i)
		}
		go func() { _, _ = sc.Write([]byte("x")) }()
		if _, err := p.recv(1); err != nil {
			t.Fatal(err)
		}
	}

	// One listener, several connections: the second and later resume.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resumed := make(chan bool, 4)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer raw.Close()
				sc := tls.Server(raw, f.server)
				if err := sc.Handshake(); err != nil {
					resumed <- false
					return
				}
				resumed <- sc.ConnectionState().DidResume
				_, _ = sc.Write([]byte("x"))
				_, _ = io.Copy(io.Discard, sc)
			}()
		}
	}()
	for i := range 3 {
		sock, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		p := &clientPair{t: t, c: cl.NewConn(ln.Addr().String()), sock: sock, rx: make(chan []byte, 64), notify: notify}
		go readInto(sock, p.rx)
		if err := p.handshake(); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		if r := <-resumed; r != (i > 0) {
			t.Fatalf("connection %d: server DidResume %v", i, r)
		}
		if _, err := p.recv(1); err != nil { // reads the ticket, then the byte
			t.Fatal(err)
		}
		if st := p.c.ConnectionState(); st.DidResume != (i > 0) {
			t.Fatalf("connection %d: client DidResume %v", i, st.DidResume)
		}
		// Engines call Open until it gives nothing more; that last call,
		// with every record read, moves the connection (the ticket and the
		// byte may have come in one read, the byte returned first).
		if plain, _, err := p.c.Open(nil); err != nil || len(plain) > 0 {
			t.Fatalf("connection %d: %q, %v after the byte", i, plain, err)
		}
		if !p.c.RecordLayer() {
			t.Fatalf("connection %d: still on crypto/tls after the ticket", i)
		}
		sock.Close()
	}
}

// handshake drives p.c's handshake over p.sock.
func (p *clientPair) handshake() error {
	p.c.Start()
	deadline := time.After(5 * time.Second)
	for {
		if out := p.c.Output(nil); len(out) > 0 {
			if _, err := p.sock.Write(out); err != nil {
				return err
			}
		}
		done, err := p.c.Done()
		if done {
			if out := p.c.Output(nil); len(out) > 0 && err == nil {
				if _, err := p.sock.Write(out); err != nil {
					return err
				}
			}
			p.buf = p.c.Leftover(nil)
			return err
		}
		select {
		case b, ok := <-p.rx:
			if !ok {
				p.c.CloseRead()
				continue
			}
			if err := p.c.Feed(b); err != nil {
				return err
			}
		case <-p.notify:
		case <-deadline:
			return errors.New("handshake did not finish")
		}
	}
}

// memPair handshakes a client Conn with a server Conn in memory, each fed
// the other's output, and returns both established.
func memPair(tb testing.TB, ccfg, scfg *tls.Config, copts, sopts Options) (client, server *Conn) {
	tb.Helper()
	cl := NewClient(ccfg, nil, copts)
	srv := NewServer(scfg, sopts)
	client, server = cl.NewConn("peer"), srv.NewConn()
	client.Start()
	deadline := time.Now().Add(5 * time.Second)
	var cdone, sdone bool
	var cbuf, sbuf []byte
	for !cdone || !sdone {
		if time.Now().After(deadline) {
			tb.Fatal("in-memory handshake did not finish")
		}
		if out := client.Output(nil); len(out) > 0 {
			if !sdone {
				if err := server.Feed(out); err != nil {
					tb.Fatal(err)
				}
			} else {
				sbuf = append(sbuf, out...)
			}
		}
		if out := server.Output(nil); len(out) > 0 {
			if !cdone {
				if err := client.Feed(out); err != nil {
					tb.Fatal(err)
				}
			} else {
				cbuf = append(cbuf, out...)
			}
		}
		if !cdone {
			if d, err := client.Done(); d {
				if err != nil {
					tb.Fatal(err)
				}
				cdone = true
				cbuf = client.Leftover(cbuf)
			}
		}
		if !sdone {
			if d, err := server.Done(); d {
				if err != nil {
					tb.Fatal(err)
				}
				sdone = true
				sbuf = server.Leftover(sbuf)
			}
		}
		time.Sleep(time.Millisecond)
	}
	// Whatever crossed after the handshakes (the server's ticket) is opened.
	for b := cbuf; ; {
		_, n, err := client.Open(b)
		if err != nil {
			tb.Fatal(err)
		}
		b = b[n:]
		if n == 0 && len(b) == 0 {
			break
		}
	}
	if len(sbuf) > 0 {
		if _, _, err := server.Open(sbuf); err != nil {
			tb.Fatal(err)
		}
	}
	return client, server
}

// exchange seals req on a and opens it on b, then seals resp on b and opens
// it on a, with the buffers given.
func exchange(tb testing.TB, a, b *Conn, req, resp, abuf, bbuf []byte) ([]byte, []byte) {
	var err error
	if abuf, err = a.Seal(abuf[:0], req, nil); err != nil {
		tb.Fatal(err)
	}
	openWant(tb, b, abuf, len(req))
	if bbuf, err = b.Seal(bbuf[:0], resp, nil); err != nil {
		tb.Fatal(err)
	}
	openWant(tb, a, bbuf, len(resp))
	return abuf, bbuf
}

func openWant(tb testing.TB, c *Conn, in []byte, want int) {
	got := 0
	for got < want {
		p, n, err := c.Open(in)
		if err != nil {
			tb.Fatal(err)
		}
		got += len(p)
		in = in[n:]
		if n == 0 && len(p) == 0 {
			if p, _, err = c.Open(nil); err != nil || len(p) == 0 {
				tb.Fatalf("opened %d of %d bytes", got, want)
			}
			got += len(p)
		}
	}
}

// TestClientRecordLayer: a client connection on the record layer (after
// the move from crypto/tls) exchanges with a tlsconn server both ways,
// answers the server's KeyUpdate request with its own, rekeys on its own
// after RekeyAfter records, and skips later session tickets; a client with
// Options.CryptoTLSOnly stays on crypto/tls.
func TestClientRecordLayer(t *testing.T) {
	f := newFixture(t)
	client, server := memPair(t, f.client, f.server, Options{}, Options{RekeyAfter: 3})
	abuf, bbuf := exchange(t, client, server, []byte("first"), []byte("response"), nil, nil)
	if _, _, err := client.Open(nil); err != nil { // the move happens here
		t.Fatal(err)
	}
	if !client.RecordLayer() || !server.RecordLayer() {
		t.Fatalf("record layer: client %v, server %v", client.RecordLayer(), server.RecordLayer())
	}
	for i := range 10 {
		if i == 4 {
			if err := server.RequestKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		}
		req, resp := pattern(100+i, byte(i)), pattern(3000*i+1, byte(i+1))
		abuf, bbuf = exchange(t, client, server, req, resp, abuf, bbuf)
		if client.HasPending() { // the client's KeyUpdate answer
			if _, _, err := server.Open(client.AppendPending(nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if client.rd.seq > 5 || client.wr.seq > 5 {
		t.Fatalf("sequence numbers read %d, written %d: no key update happened", client.rd.seq, client.wr.seq)
	}
	// A second ticket from the server: a handshake record the client skips.
	ticket := []byte{typeNewSessionTicket, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0}
	rec, err := server.sealRecord(nil, recordTypeHandshake, ticket, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, n, err := client.Open(rec); err != nil || n != len(rec) || len(p) != 0 {
		t.Fatalf("skipping a ticket: %d bytes, %d taken, %v", len(p), n, err)
	}
	exchange(t, client, server, []byte("after"), []byte("ticket"), abuf, bbuf)

	client, _ = memPair(t, f.client, f.server, Options{CryptoTLSOnly: true}, Options{})
	if client.RecordLayer() {
		t.Fatal("a CryptoTLSOnly client moved to the record layer")
	}
}

// BenchmarkClientExchange prices the client side of a keep-alive exchange
// (seal a request, open a response) on crypto/tls driven synchronously
// (before the first ticket, or with CryptoTLSOnly), on the record layer a
// client moves to, and with both ends the record layer's mirror; the peer
// (a tlsconn server on the record layer) is included. TLS 1.3, AES-128-GCM.
func BenchmarkClientExchange(b *testing.B) {
	f := newFixture(b)
	ccfg := f.client.Clone()
	ccfg.CipherSuites = []uint16{tls.TLS_AES_128_GCM_SHA256}
	for _, size := range []int{100, MaxPlaintext} {
		req, resp := pattern(100, 1), pattern(size, 2)
		b.Run(fmt.Sprintf("crypto-tls/%d", size), func(b *testing.B) {
			client, server := memPair(b, ccfg, f.server, Options{CryptoTLSOnly: true}, Options{})
			if client.RecordLayer() || !server.RecordLayer() {
				b.Fatal("unexpected paths")
			}
			abuf, bbuf := make([]byte, 0, 2*MaxPlaintext), make([]byte, 0, 2*MaxPlaintext)
			b.ReportAllocs()
			for b.Loop() {
				abuf, bbuf = exchange(b, client, server, req, resp, abuf, bbuf)
			}
		})
		b.Run(fmt.Sprintf("client-record-layer/%d", size), func(b *testing.B) {
			client, server := memPair(b, ccfg, f.server, Options{}, Options{})
			exchange(b, client, server, req, resp, nil, nil)
			if _, _, err := client.Open(nil); err != nil {
				b.Fatal(err)
			}
			if !client.RecordLayer() || !server.RecordLayer() {
				b.Fatal("unexpected paths")
			}
			abuf, bbuf := make([]byte, 0, 2*MaxPlaintext), make([]byte, 0, 2*MaxPlaintext)
			b.ReportAllocs()
			for b.Loop() {
				abuf, bbuf = exchange(b, client, server, req, resp, abuf, bbuf)
			}
		})
		b.Run(fmt.Sprintf("record-layer/%d", size), func(b *testing.B) {
			server, client := recordPair(b, tls.TLS_AES_128_GCM_SHA256)
			abuf, bbuf := make([]byte, 0, 2*MaxPlaintext), make([]byte, 0, 2*MaxPlaintext)
			b.ReportAllocs()
			for b.Loop() {
				abuf, bbuf = exchange(b, client, server, req, resp, abuf, bbuf)
			}
		})
	}
}

// TestClientWithoutTickets: a client with a session cache whose server sends
// no ticket still moves to the record layer, after a few records, and
// exchanges there.
func TestClientWithoutTickets(t *testing.T) {
	f := newFixture(t)
	scfg := f.server.Clone()
	scfg.SessionTicketsDisabled = true
	cl, notify := newClient(f.client, tls.NewLRUClientSessionCache(4))
	p, err := clientDial(t, cl, notify, scfg)
	if err != nil {
		t.Fatal(err)
	}
	sc := p.serverConn()
	for i := range ticketPatience + 2 {
		p.send([]byte("ping"), nil)
		got := make([]byte, 4)
		if _, err := io.ReadFull(sc, got); err != nil || string(got) != "ping" {
			t.Fatalf("round %d: server read %q, %v", i, got, err)
		}
		go func() { _, _ = sc.Write([]byte("pong")) }()
		if b, err := p.recv(4); err != nil || string(b) != "pong" {
			t.Fatalf("round %d: client read %q, %v", i, b, err)
		}
	}
	if _, _, err := p.c.Open(nil); err != nil {
		t.Fatal(err)
	}
	if !p.c.RecordLayer() {
		t.Fatal("no ticket came and the client stayed on crypto/tls")
	}
	p.send([]byte("on the record layer"), nil)
	got := make([]byte, 19)
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "on the record layer" {
		t.Fatalf("server read %q, %v", got, err)
	}
}
