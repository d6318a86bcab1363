package tlsconn

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fixture struct {
	cert   tls.Certificate
	leaf   *x509.Certificate
	roots  *x509.CertPool
	server *tls.Config
	client *tls.Config
}

func newFixture(t testing.TB) *fixture {
	cert, leaf := testCert(t, "a.example")
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &fixture{
		cert: cert, leaf: leaf, roots: roots,
		server: &tls.Config{Certificates: []tls.Certificate{cert}},
		client: &tls.Config{RootCAs: roots, ServerName: "a.example"},
	}
}

func (f *fixture) dial(t testing.TB, opts Options) *pair {
	srv, notify := newServer(f.server, opts)
	return dial(t, srv, notify, f.client)
}

// echo sends msg from the client and answers it from the server with a head
// and the same bytes as body, checking both ends.
func echo(t *testing.T, p *pair, msg []byte) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); p.clientWrite(msg) }()
	got, err := p.open(len(msg))
	<-done
	if err != nil {
		t.Fatalf("server Open: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("server got %d bytes, want %d (equal prefix: %v)", len(got), len(msg), bytes.HasPrefix(msg, got))
	}
	head := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(msg))
	readDone := make(chan []byte)
	go func() { readDone <- p.clientRead(len(head) + len(msg)) }()
	p.seal(head, msg)
	back := <-readDone
	if !bytes.Equal(back, append(head, msg...)) {
		t.Fatalf("client got a different response (%d bytes)", len(back))
	}
}

func TestHandshakeAndRequests(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	st := p.srv.ConnectionState()
	if st.Version != tls.VersionTLS13 || !p.srv.RecordLayer() {
		t.Fatalf("version %x, record layer %v: want TLS 1.3 on the record layer", st.Version, p.srv.RecordLayer())
	}
	if st.ServerName != "a.example" {
		t.Errorf("ServerName %q", st.ServerName)
	}
	for i := range 200 {
		echo(t, p, pattern(1+i*37%2000, byte(i)))
	}
}

// The handshake works whatever the pieces the bytes arrive in, down to one
// byte at a time (record headers split included).
func TestHandshakeInPieces(t *testing.T) {
	f := newFixture(t)
	for _, piece := range []int{1, 3, 7, 100} {
		srv, notify := newServer(f.server, Options{})
		ln := dialRaw(t)
		p := &pair{t: t, srv: srv.NewConn(), client: tls.Client(ln.client, f.client), sock: ln.server, rx: ln.rx, notify: notify, piece: piece}
		cerr := make(chan error, 1)
		go func() { cerr <- p.client.Handshake() }()
		if err := p.serverHandshake(nil); err != nil {
			t.Fatalf("pieces of %d: %v", piece, err)
		}
		if err := <-cerr; err != nil {
			t.Fatalf("pieces of %d: client: %v", piece, err)
		}
		echo(t, p, []byte("in pieces"))
	}
}

func TestLargePayloadsSpanRecords(t *testing.T) {
	f := newFixture(t)
	for _, only := range []bool{false, true} {
		t.Run(fmt.Sprintf("cryptoTLSOnly=%v", only), func(t *testing.T) {
			p := f.dial(t, Options{CryptoTLSOnly: only})
			for _, n := range []int{MaxPlaintext - 1, MaxPlaintext, MaxPlaintext + 1, 1 << 20} {
				echo(t, p, pattern(n, byte(n)))
			}
		})
	}
}

// A response head and body that fit go out in one write and one record; a
// larger one in records of MaxPlaintext.
func TestSealOneRecordPerResponse(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	p.out = nil
	echo(t, p, pattern(100, 1))
	echo(t, p, pattern(20000, 2))
	if len(p.out) != 2 {
		t.Fatalf("%d writes, want 2", len(p.out))
	}
	if n := len(records(t, p.out[0])); n != 1 {
		t.Errorf("100-byte response: %d records, want 1", n)
	}
	recs := records(t, p.out[1])
	if len(recs) != 2 || len(recs[0]) != MaxPlaintext+RecordOverhead {
		t.Errorf("20000-byte response: %d records, first %d bytes", len(recs), len(recs[0]))
	}
}

func TestCloseNotify(t *testing.T) {
	f := newFixture(t)
	for _, only := range []bool{false, true} {
		t.Run(fmt.Sprintf("cryptoTLSOnly=%v", only), func(t *testing.T) {
			p := f.dial(t, Options{CryptoTLSOnly: only})
			echo(t, p, []byte("before close"))
			if err := p.client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if _, err := p.openUntilError(); !errors.Is(err, io.EOF) {
				t.Fatalf("Open after the client's close_notify: %v, want io.EOF", err)
			}
			// The server may still answer, then closes too.
			p.seal([]byte("last words"), nil)
			p.write(p.srv.CloseNotify(nil))
			if got := p.clientRead(10); string(got) != "last words" {
				t.Fatalf("client read %q", got)
			}
			if _, err := p.client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("client read after close_notify: %v, want io.EOF", err)
			}
		})
	}
}

func TestCorruptedRecord(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	secret := []byte("never delivered")
	p.clientWrite(secret)
	p.recvRaw(recordHeaderLen + len(secret) + 1 + tagLen)
	p.buf[recordHeaderLen+3] ^= 0x40
	plain, _, err := p.srv.Open(p.buf)
	var te *Error
	if !errors.As(err, &te) || te.Alert != AlertBadRecordMAC || te.Remote {
		t.Fatalf("Open of a corrupted record: %v, want bad_record_mac", err)
	}
	if len(plain) != 0 || bytes.Contains(p.buf, secret) {
		t.Fatalf("plaintext leaked: %q", plain)
	}
	if _, _, err2 := p.srv.Open(p.buf); !errors.Is(err2, err) {
		t.Fatalf("second Open: %v, want the same error", err2)
	}
	p.write(p.srv.AppendAlert(nil, te.Alert))
	_ = p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, cerr := p.client.Read(make([]byte, 1))
	if cerr == nil || !strings.Contains(cerr.Error(), "bad record MAC") {
		t.Fatalf("client saw %v, want the bad_record_mac alert", cerr)
	}
}

func TestTruncatedAndOversizedRecords(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	msg := pattern(1000, 9)
	p.clientWrite(msg)
	n := recordHeaderLen + len(msg) + 1 + tagLen
	p.recvRaw(n)
	if len(records(t, p.buf)) != 1 {
		t.Fatal("the client split 1000 bytes into several records")
	}
	full := append([]byte(nil), p.buf[:n]...)
	for _, cut := range []int{0, 1, 4, 5, 6, n - 1} {
		plain, used, err := p.srv.Open(full[:cut])
		if err != nil || used != 0 || plain != nil {
			t.Fatalf("Open of %d of %d bytes: %q, %d, %v; want nothing yet", cut, n, plain, used, err)
		}
	}
	if got, err := p.open(len(msg)); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("whole record: %d bytes, %v", len(got), err)
	}

	over := []byte{recordTypeApplicationData, 3, 3, (maxCiphertext + 1) >> 8, (maxCiphertext + 1) & 0xff}
	_, _, err := p.srv.Open(over)
	var te *Error
	if !errors.As(err, &te) || te.Alert != AlertRecordOverflow {
		t.Fatalf("Open of an oversized header: %v, want record_overflow", err)
	}
}

// Records the Go client never sends, sealed with the client's real key.
func TestForgedRecords(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name  string
		recs  func(d *direction) [][]byte
		want  string
		alert Alert
	}{
		{"padding", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeApplicationData, []byte("padded"), 300)}
		}, "padded", 0},
		{"empty records then data", func(d *direction) [][]byte {
			var r [][]byte
			for range maxUseless {
				r = append(r, forge(d, recordTypeApplicationData, nil, 0))
			}
			return append(r, forge(d, recordTypeApplicationData, []byte("x"), 0))
		}, "x", 0},
		{"too many empty records", func(d *direction) [][]byte {
			var r [][]byte
			for range maxUseless + 1 {
				r = append(r, forge(d, recordTypeApplicationData, nil, 0))
			}
			return r
		}, "", AlertUnexpectedMessage},
		{"plaintext over 2^14", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeApplicationData, make([]byte, MaxPlaintext+1), 0)}
		}, "", AlertRecordOverflow},
		{"all padding", func(d *direction) [][]byte {
			return [][]byte{forge(d, 0, nil, 10)}
		}, "", AlertUnexpectedMessage},
		{"fatal alert", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeAlert, []byte{2, 40}, 0)}
		}, "", 40},
		{"long alert", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeAlert, []byte{2, 40, 0}, 0)}
		}, "", AlertDecodeError},
		{"client NewSessionTicket", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeHandshake, []byte{4, 0, 0, 1, 0}, 0)}
		}, "", AlertUnexpectedMessage},
		{"KeyUpdate then data in one record", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0, 1}, 0)}
		}, "", AlertUnexpectedMessage},
		{"KeyUpdate bad request", func(d *direction) [][]byte {
			return [][]byte{forge(d, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 2}, 0)}
		}, "", AlertIllegalParameter},
		{"KeyUpdate split, then data", func(d *direction) [][]byte {
			a := forge(d, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0}, 0)
			b := forge(d, recordTypeHandshake, []byte{1, 0}, 0)
			if err := d.update(suiteByID(tls.TLS_AES_128_GCM_SHA256)); err != nil {
				panic(err)
			}
			return [][]byte{a, b, forge(d, recordTypeApplicationData, []byte("new key"), 0)}
		}, "new key", 0},
		{"data inside a split KeyUpdate", func(d *direction) [][]byte {
			a := forge(d, recordTypeHandshake, []byte{typeKeyUpdate, 0}, 0)
			return [][]byte{a, forge(d, recordTypeApplicationData, []byte("x"), 0)}
		}, "", AlertUnexpectedMessage},
		{"unencrypted ChangeCipherSpec", func(*direction) [][]byte {
			return [][]byte{{recordTypeChangeCipherSpec, 3, 3, 0, 1, 1}}
		}, "", AlertUnexpectedMessage},
		{"record shorter than a tag", func(*direction) [][]byte {
			return [][]byte{{recordTypeApplicationData, 3, 3, 0, 3, 1, 2, 3}}
		}, "", AlertBadRecordMAC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := f.dial(t, Options{})
			for _, r := range tc.recs(p.forger()) {
				p.buf = append(p.buf, r...)
			}
			got, err := p.open(0)
			if tc.alert == 0 {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) || te.Alert != tc.alert {
				t.Fatalf("got %q, %v; want alert %d", got, err, tc.alert)
			}
			if len(got) != 0 {
				t.Fatalf("plaintext delivered before the failure: %q", got)
			}
		})
	}
}

// The server asks for a key update: Go's client answers with its own
// KeyUpdate, which is how a real client's KeyUpdate reaches Open.
func TestServerRequestedKeyUpdate(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	echo(t, p, []byte("before"))
	oldRead, oldWrite := p.srv.rd.secret, p.srv.wr.secret
	if err := p.srv.RequestKeyUpdate(); err != nil {
		t.Fatal(err)
	}
	echo(t, p, []byte("after the server's KeyUpdate"))
	if bytes.Equal(p.srv.wr.secret, oldWrite) {
		t.Fatal("write key not updated")
	}
	// Go's client answered while reading the response; its KeyUpdate precedes
	// its next request.
	echo(t, p, []byte("after the client's KeyUpdate"))
	if bytes.Equal(p.srv.rd.secret, oldRead) {
		t.Fatal("read key not updated: the client's KeyUpdate was not seen")
	}
	for i := range 20 {
		echo(t, p, pattern(5000, byte(i)))
	}
}

// A client KeyUpdate with update_requested (Go's client never sends one on its
// own, so it is forged with the client's logged key): the server updates its
// read key, answers with its own KeyUpdate and moves its write key, which Go's
// client must follow.
func TestClientRequestedKeyUpdate(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	d := p.forger()
	p.buf = append(p.buf, forge(d, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 1}, 0)...)
	oldWrite := p.srv.wr.secret
	if _, err := p.open(0); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p.srv.wr.secret, oldWrite) || len(p.out) != 1 {
		t.Fatalf("no KeyUpdate answered (%d writes)", len(p.out))
	}
	if err := d.update(p.srv.suite); err != nil {
		t.Fatal(err)
	}
	p.buf = append(p.buf, forge(d, recordTypeApplicationData, []byte("under the next key"), 0)...)
	if got, err := p.open(0); err != nil || string(got) != "under the next key" {
		t.Fatalf("after KeyUpdate: %q, %v", got, err)
	}
	readDone := make(chan []byte)
	go func() { readDone <- p.clientRead(9) }()
	p.seal([]byte("new keys!"), nil)
	if got := <-readDone; string(got) != "new keys!" {
		t.Fatalf("client read %q", got)
	}
}

// Seal rekeys on its own before a key protects RekeyAfter records, and never
// reuses a sequence number.
func TestRekeyAndSequenceExhaustion(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{RekeyAfter: 5})
	first := p.srv.wr.secret
	for i := range 12 {
		echo(t, p, pattern(100, byte(i)))
	}
	if bytes.Equal(first, p.srv.wr.secret) || p.srv.wr.seq > 5 {
		t.Fatalf("no rekey: seq %d", p.srv.wr.seq)
	}

	p.srv.wr.seq = ^uint64(0)
	p.srv.rekeyAfter = ^uint64(0)
	if _, err := p.srv.Seal(nil, []byte("x"), nil); !errors.Is(err, errSeqExhausted) {
		t.Fatalf("Seal at the last sequence number: %v", err)
	}
	q := f.dial(t, Options{})
	q.srv.rd.seq = ^uint64(0)
	q.clientWrite([]byte("x"))
	q.recvRaw(recordHeaderLen + 1 + 1 + tagLen)
	if _, _, err := q.srv.Open(q.buf); !errors.Is(err, errSeqExhausted) {
		t.Fatalf("Open at the last sequence number: %v", err)
	}
}

// Bytes the client sends right after its Finished reach the worker through
// Leftover, not crypto/tls.
func TestDataRightAfterFinished(t *testing.T) {
	f := newFixture(t)
	srv, notify := newServer(f.server, Options{})
	ln := dialRaw(t)
	p := &pair{t: t, srv: srv.NewConn(), client: tls.Client(ln.client, f.client), sock: ln.server, rx: ln.rx, notify: notify}
	hold := make(chan struct{})
	go func() {
		if err := p.client.Handshake(); err == nil {
			_, _ = p.client.Write([]byte("early request"))
		}
		close(hold)
	}()
	if err := p.serverHandshake(hold); err != nil {
		t.Fatal(err)
	}
	if len(p.buf) == 0 {
		t.Fatal("no leftover bytes: the client's data went to crypto/tls")
	}
	if got, err := p.open(13); err != nil || string(got) != "early request" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestSNIChoosesCertificate(t *testing.T) {
	a, aLeaf := testCert(t, "a.example")
	b, bLeaf := testCert(t, "b.example")
	roots := x509.NewCertPool()
	roots.AddCert(aLeaf)
	roots.AddCert(bLeaf)
	srv, notify := newServer(&tls.Config{Certificates: []tls.Certificate{a, b}}, Options{})
	for _, tc := range []struct {
		name string
		leaf *x509.Certificate
	}{{"a.example", aLeaf}, {"b.example", bLeaf}} {
		p := dial(t, srv, notify, &tls.Config{RootCAs: roots, ServerName: tc.name})
		got := p.client.ConnectionState().PeerCertificates[0]
		if !got.Equal(tc.leaf) {
			t.Errorf("SNI %s: served %v", tc.name, got.DNSNames)
		}
		if p.srv.ConnectionState().ServerName != tc.name {
			t.Errorf("server saw SNI %q", p.srv.ConnectionState().ServerName)
		}
		echo(t, p, []byte(tc.name))
	}
}

func TestRotation(t *testing.T) {
	oldCert, oldLeaf := testCert(t, "a.example")
	newCert, newLeaf := testCert(t, "a.example")
	roots := x509.NewCertPool()
	roots.AddCert(oldLeaf)
	roots.AddCert(newLeaf)
	ccfg := &tls.Config{RootCAs: roots, ServerName: "a.example"}

	t.Run("GetCertificate", func(t *testing.T) {
		var current atomic.Pointer[tls.Certificate]
		current.Store(&oldCert)
		srv, notify := newServer(&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return current.Load(), nil
		}}, Options{})
		old := dial(t, srv, notify, ccfg)
		echo(t, old, []byte("old"))
		current.Store(&newCert)
		fresh := dial(t, srv, notify, ccfg)
		if !fresh.client.ConnectionState().PeerCertificates[0].Equal(newLeaf) {
			t.Fatal("new connection did not get the new certificate")
		}
		for i := range 5 {
			echo(t, old, pattern(1000, byte(i)))
			echo(t, fresh, pattern(1000, byte(i)))
		}
	})
	t.Run("new Server", func(t *testing.T) {
		srv1, n1 := newServer(&tls.Config{Certificates: []tls.Certificate{oldCert}}, Options{})
		old := dial(t, srv1, n1, ccfg)
		srv2, n2 := newServer(&tls.Config{Certificates: []tls.Certificate{newCert}}, Options{})
		fresh := dial(t, srv2, n2, ccfg)
		if !old.client.ConnectionState().PeerCertificates[0].Equal(oldLeaf) ||
			!fresh.client.ConnectionState().PeerCertificates[0].Equal(newLeaf) {
			t.Fatal("wrong certificates")
		}
		echo(t, old, []byte("still here"))
		echo(t, fresh, []byte("new"))
	})
}

// TLS 1.2 stays on crypto/tls, driven from the worker without a goroutine.
func TestTLS12StaysOnCryptoTLS(t *testing.T) {
	f := newFixture(t)
	ccfg := f.client.Clone()
	ccfg.MaxVersion = tls.VersionTLS12
	srv, notify := newServer(f.server, Options{})
	p := dial(t, srv, notify, ccfg)
	if p.srv.ConnectionState().Version != tls.VersionTLS12 || p.srv.RecordLayer() {
		t.Fatalf("version %x, record layer %v", p.srv.ConnectionState().Version, p.srv.RecordLayer())
	}
	for i := range 50 {
		echo(t, p, pattern(1+i*397, byte(i)))
	}
	echo(t, p, pattern(1<<20, 3))
}

func TestHandshakeBounds(t *testing.T) {
	f := newFixture(t)
	t.Run("input limit", func(t *testing.T) {
		srv, _ := newServer(f.server, Options{MaxHandshakeInput: 100})
		c := srv.NewConn()
		if err := c.Feed(make([]byte, 101)); !errors.Is(err, errHandshakeTooLarge) {
			t.Fatalf("Feed over the limit: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv, notify := newServer(f.server, Options{HandshakeTimeout: 50 * time.Millisecond})
		c := srv.NewConn()
		// A record header announcing a ClientHello that never comes.
		if err := c.Feed([]byte{recordTypeHandshake, 3, 1, 1, 0}); err != nil {
			t.Fatal(err)
		}
		waitDone(t, c, notify)
	})
	t.Run("abort", func(t *testing.T) {
		srv, notify := newServer(f.server, Options{})
		c := srv.NewConn()
		if err := c.Feed([]byte{recordTypeHandshake, 3, 1}); err != nil {
			t.Fatal(err)
		}
		c.Abort()
		waitDone(t, c, notify)
	})
	t.Run("garbage", func(t *testing.T) {
		srv, notify := newServer(f.server, Options{})
		c := srv.NewConn()
		if err := c.Feed([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		waitDone(t, c, notify)
		if _, _, err := c.Open([]byte{23, 3, 3, 0, 0}); err == nil {
			t.Fatal("Open after a failed handshake succeeded")
		}
	})
}

func waitDone(t *testing.T, c *Conn, notify chan struct{}) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		done, err := c.Done()
		if done {
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			return
		}
		select {
		case <-notify:
		case <-time.After(10 * time.Millisecond):
		case <-timeout:
			t.Fatal("handshake goroutine did not end")
		}
	}
}

// A client resuming with a ticket from an earlier connection of the same
// Server gets a PSK handshake, and the record layer still takes over (the
// ticket itself was sealed by crypto/tls under the key the record layer
// checks).
func TestResumption(t *testing.T) {
	f := newFixture(t)
	srv, notify := newServer(f.server, Options{})
	ccfg := f.client.Clone()
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	first := dial(t, srv, notify, ccfg)
	if first.srv.wr.seq == 0 {
		t.Fatal("no NewSessionTicket counted under the application key")
	}
	echo(t, first, []byte("first")) // the client reads its ticket here
	second := dial(t, srv, notify, ccfg)
	if !second.client.ConnectionState().DidResume || !second.srv.ConnectionState().DidResume {
		t.Fatal("second connection did not resume")
	}
	if !second.srv.RecordLayer() {
		t.Fatal("resumed connection not on the record layer")
	}
	echo(t, second, pattern(30000, 4))
}
