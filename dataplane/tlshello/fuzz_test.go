package tlshello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// FuzzRead reads arbitrary bytes: it never panics, reads the same whole or
// byte by byte, returns a lowercase name of at most MaxNameLen bytes and an
// End within the input, and whenever a crypto/tls server parses a
// ClientHello out of the bytes, the reader found it too, with the same
// server name.
func FuzzRead(f *testing.F) {
	for _, cfg := range helloConfigs() {
		h := clientHello(f, cfg)
		f.Add(h)
		f.Add(refragment(h, 50))
	}
	f.Add(helloWithNames(f, "a.example.com", "b.example.com"))
	f.Add(helloWithName(f, "Example.COM"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, done, err := readAll(in, 0)
		name := bytes.Clone(r.ServerName())
		if done && err != nil {
			t.Fatalf("done with %v", err)
		}
		if done && (r.End() > len(in) || r.End() < recordHeaderLen) {
			t.Fatalf("End %d of %d bytes", r.End(), len(in))
		}
		if len(name) > MaxNameLen || !bytes.Equal(name, bytes.ToLower(name)) {
			t.Fatalf("name %q", name)
		}
		r1, done1, err1 := readAll(in, 1)
		if done1 != done || !errors.Is(err1, err) || (err1 == nil) != (err == nil) || !bytes.Equal(r1.ServerName(), name) || (done && r1.End() != r.End()) {
			t.Fatalf("byte by byte: %v %v %q %d; whole: %v %v %q %d", done1, err1, r1.ServerName(), r1.End(), done, err, name, r.End())
		}
		if len(in) > MaxBytes || hasEmptyRecord(in) {
			return // crypto/tls takes more than the reader waits for
		}
		if got, ok := serverSees(in); ok {
			want := strings.ToLower(got)
			if len(want) > MaxNameLen {
				want = want[:MaxNameLen]
			}
			if !done || string(name) != want {
				t.Fatalf("crypto/tls sees a ClientHello for %q; the reader: done %v, err %v, name %q", got, done, err, name)
			}
		}
	})
}

// hasEmptyRecord reports whether in has a zero-length record before its end
// (crypto/tls skips them; the reader refuses them, as RFC 8446 §5.1 forbids
// them for handshake messages).
func hasEmptyRecord(in []byte) bool {
	for len(in) >= recordHeaderLen {
		n := int(in[3])<<8 | int(in[4])
		if n == 0 {
			return true
		}
		if len(in) < recordHeaderLen+n {
			return false
		}
		in = in[recordHeaderLen+n:]
	}
	return false
}

// BenchmarkRead reads the ClientHello of a crypto/tls client with an
// X25519MLKEM768 key share (about 1.8 KB): whole, in two TCP segments, and
// spread over 512-byte records.
func BenchmarkRead(b *testing.B) {
	hello := clientHello(b, &tls.Config{ServerName: "pq.example.com", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}})
	split := refragment(hello, 512)
	for _, bc := range []struct {
		name string
		in   []byte
		cuts []int
	}{
		{"whole", hello, nil},
		{"two-segments", hello, []int{1448}},
		{"records-512", split, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var r Reader
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset()
				for _, c := range bc.cuts {
					r.Read(bc.in[:c])
				}
				if done, err := r.Read(bc.in); !done || err != nil {
					b.Fatal(done, err)
				}
			}
		})
	}
}
