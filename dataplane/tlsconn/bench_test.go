package tlsconn

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
)

// recordPair returns a server Conn on the record layer and its mirror (keys
// swapped) that seals what the server opens and opens what it seals.
func recordPair(tb testing.TB, id uint16) (srv, peer *Conn) {
	tb.Helper()
	s := suiteByID(id)
	h := s.hash()
	cs := bytes.Repeat([]byte{1}, h.Size())
	ss := bytes.Repeat([]byte{2}, h.Size())
	srv = &Conn{mode: modeRecord, suite: s, rekeyAfter: DefaultRekeyAfter}
	peer = &Conn{mode: modeRecord, suite: s, rekeyAfter: DefaultRekeyAfter}
	for _, d := range []struct {
		d      *direction
		secret []byte
	}{{&srv.rd, cs}, {&srv.wr, ss}, {&peer.rd, ss}, {&peer.wr, cs}} {
		if err := d.d.setSecret(s, d.secret); err != nil {
			tb.Fatal(err)
		}
	}
	return srv, peer
}

var benchSuites = []struct {
	name string
	id   uint16
}{
	{"AES128GCM", tls.TLS_AES_128_GCM_SHA256},
	{"AES256GCM", tls.TLS_AES_256_GCM_SHA384},
	{"ChaCha20Poly1305", tls.TLS_CHACHA20_POLY1305_SHA256},
}

func TestSealOpenDoNotAllocate(t *testing.T) {
	for _, s := range benchSuites {
		srv, peer := recordPair(t, s.id)
		head, body := pattern(200, 1), pattern(20000, 2)
		out := make([]byte, 0, srv.SealedLen(len(head)+len(body)))
		in := make([]byte, 0, peer.SealedLen(len(head)+len(body)))
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if out, err = srv.Seal(out[:0], head, body); err != nil {
				t.Fatal(err)
			}
			if in, err = peer.Seal(in[:0], head, body); err != nil {
				t.Fatal(err)
			}
			for b := in; len(b) > 0; {
				_, n, err := srv.Open(b)
				if err != nil || n == 0 {
					t.Fatalf("Open: %d, %v", n, err)
				}
				b = b[n:]
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Seal and Open of a 20 KiB response", s.name, allocs)
		}
	}
}

// Every suite round-trips through the mirror, and a record opened at the
// wrong sequence number fails: the nonce carries the sequence number.
func TestSuitesRoundTrip(t *testing.T) {
	for _, s := range benchSuites {
		srv, peer := recordPair(t, s.id)
		msg := pattern(40000, 5)
		rec, err := peer.Seal(nil, msg[:10], msg[10:])
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for b := rec; len(b) > 0; {
			plain, n, err := srv.Open(b)
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got, b = append(got, plain...), b[n:]
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%s: round trip differs", s.name)
		}
		rec, _ = peer.Seal(nil, []byte("skipped"), nil)
		rec, _ = peer.Seal(rec[:0], []byte("out of order"), nil)
		srv.rd.seq-- // as if the record before were opened again
		if _, _, err := srv.Open(rec); err == nil {
			t.Fatalf("%s: record opened at the wrong sequence number", s.name)
		}
	}
}

// BenchmarkSeal encrypts one response of the given size into a record
// (or records of 16 KiB).
func BenchmarkSeal(b *testing.B) {
	for _, s := range benchSuites {
		for _, size := range []int{100, MaxPlaintext} {
			b.Run(fmt.Sprintf("%s/%d", s.name, size), func(b *testing.B) {
				srv, _ := recordPair(b, s.id)
				p := pattern(size, 1)
				out := make([]byte, 0, srv.SealedLen(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					out, _ = srv.Seal(out[:0], p, nil)
				}
			})
		}
	}
}

// BenchmarkOpen decrypts records in place; they are sealed in batches with
// the timer stopped.
func BenchmarkOpen(b *testing.B) {
	for _, s := range benchSuites {
		for _, size := range []int{100, MaxPlaintext} {
			b.Run(fmt.Sprintf("%s/%d", s.name, size), func(b *testing.B) {
				srv, peer := recordPair(b, s.id)
				p := pattern(size, 1)
				const batch = 256
				buf := make([]byte, 0, batch*peer.SealedLen(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i += batch {
					b.StopTimer()
					buf = buf[:0]
					for range min(batch, b.N-i) {
						buf, _ = peer.Seal(buf, p, nil)
					}
					b.StartTimer()
					for in := buf; len(in) > 0; {
						_, n, err := srv.Open(in)
						if err != nil {
							b.Fatal(err)
						}
						in = in[n:]
					}
				}
			})
		}
	}
}

// switchConn passes the handshake through to a net.Pipe, then writes into
// sink and reads from src, so crypto/tls's record cost is measured without
// I/O.
type switchConn struct {
	net.Conn
	sink io.Writer
	src  io.Reader
}

func (c *switchConn) Write(p []byte) (int, error) {
	if c.sink != nil {
		return c.sink.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *switchConn) Read(p []byte) (int, error) {
	if c.src != nil {
		return c.src.Read(p)
	}
	return c.Conn.Read(p)
}

// cryptoTLSPair is a tls.Conn pair after a TLS 1.3 AES-128-GCM handshake over
// net.Pipe.
func cryptoTLSPair(b *testing.B) (srv, client *tls.Conn, sc, cc *switchConn) {
	f := newFixture(b)
	a, z := net.Pipe()
	sc, cc = &switchConn{Conn: a}, &switchConn{Conn: z}
	srv, client = tls.Server(sc, f.server), tls.Client(cc, f.client)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := client.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if s := srv.ConnectionState().CipherSuite; s != tls.TLS_AES_128_GCM_SHA256 {
		b.Fatalf("suite %x", s)
	}
	return srv, client, sc, cc
}

// BenchmarkCryptoTLSWrite is crypto/tls's cost for what BenchmarkSeal does:
// tls.Conn.Write of one payload into a conn that only counts bytes.
func BenchmarkCryptoTLSWrite(b *testing.B) {
	for _, size := range []int{100, MaxPlaintext} {
		b.Run(fmt.Sprintf("AES128GCM/%d", size), func(b *testing.B) {
			srv, _, sc, _ := cryptoTLSPair(b)
			sc.sink = io.Discard
			p := pattern(size, 1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.Write(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCryptoTLSRead is crypto/tls's cost for what BenchmarkOpen does:
// tls.Conn.Read of records another tls.Conn sealed in batches beforehand.
func BenchmarkCryptoTLSRead(b *testing.B) {
	for _, size := range []int{100, MaxPlaintext} {
		b.Run(fmt.Sprintf("AES128GCM/%d", size), func(b *testing.B) {
			srv, client, sc, cc := cryptoTLSPair(b)
			var wire bytes.Buffer
			cc.sink, sc.src = &wire, &wire
			p := pattern(size, 1)
			plain := make([]byte, size)
			const batch = 256
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				wire.Reset()
				k := min(batch, b.N-i)
				for range k {
					if _, err := client.Write(p); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for range k {
					if _, err := io.ReadFull(srv, plain); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkCryptoTLSOnlyMode is Seal on the path TLS 1.2 takes: tls.Conn
// driven by the worker over the in-memory conn (TLS 1.2, and TLS 1.3 with
// Options.CryptoTLSOnly).
func BenchmarkCryptoTLSOnlyMode(b *testing.B) {
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS12", tls.VersionTLS12}, {"TLS13", tls.VersionTLS13}} {
		for _, size := range []int{100, MaxPlaintext} {
			b.Run(fmt.Sprintf("%s/AES128GCM/%d", v.name, size), func(b *testing.B) {
				f := newFixture(b)
				f.client.MaxVersion = v.max
				p := f.dial(b, Options{CryptoTLSOnly: true})
				if s := p.srv.ConnectionState().CipherSuite; s != tls.TLS_AES_128_GCM_SHA256 && s != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
					b.Fatalf("suite %x", s)
				}
				msg := pattern(size, 1)
				out := make([]byte, 0, 2*size+1024)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if out, err = p.srv.Seal(out[:0], msg, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkHandshake is one full handshake (client included), through a
// Conn (handshake goroutine, in-memory conn, secret capture, sequence
// check) and through tls.Server on a net.Conn, to price the goroutine and
// the in-memory conn.
func BenchmarkHandshake(b *testing.B) {
	f := newFixture(b)
	ccfg := f.client.Clone()
	ccfg.ClientSessionCache = nil
	b.Run("tlsconn", func(b *testing.B) {
		srv, notify := newServer(f.server, Options{})
		b.ReportAllocs()
		for b.Loop() {
			a, z := net.Pipe()
			client := tls.Client(z, ccfg)
			errc := make(chan error, 1)
			go func() { errc <- client.Handshake() }()
			c := srv.NewConn()
			rx := make(chan []byte, 8)
			go func() {
				buf := make([]byte, 16<<10)
				for {
					n, err := a.Read(buf)
					if n > 0 {
						rx <- append([]byte(nil), buf[:n]...)
					}
					if err != nil {
						close(rx)
						return
					}
				}
			}()
			for {
				if out := c.Output(nil); len(out) > 0 {
					if _, err := a.Write(out); err != nil {
						b.Fatal(err)
					}
				}
				done, err := c.Done()
				if err != nil {
					b.Fatal(err)
				}
				if done {
					break
				}
				select {
				case in := <-rx:
					if err := c.Feed(in); err != nil {
						b.Fatal(err)
					}
				case <-notify:
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			a.Close()
			z.Close()
		}
	})
	b.Run("crypto-tls", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a, z := net.Pipe()
			client := tls.Client(z, ccfg)
			errc := make(chan error, 1)
			go func() { errc <- client.Handshake() }()
			if err := tls.Server(a, f.server).Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			a.Close()
			z.Close()
		}
	})
}

// BenchmarkRecordState is the memory an established record-layer connection
// holds for its keys (B/op): the Conn and both directions' AEADs and secrets.
func BenchmarkRecordState(b *testing.B) {
	for _, s := range benchSuites {
		b.Run(s.name, func(b *testing.B) {
			st := suiteByID(s.id)
			secret := bytes.Repeat([]byte{1}, st.hash().Size())
			b.ReportAllocs()
			for b.Loop() {
				c := &Conn{mode: modeRecord, suite: st}
				if err := c.rd.setSecret(st, secret); err != nil {
					b.Fatal(err)
				}
				if err := c.wr.setSecret(st, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
