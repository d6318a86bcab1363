package tlshello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// helloConfigs are crypto/tls client configurations whose ClientHellos the
// tests read: various server names, none, TLS 1.2 only, TLS 1.3 with a
// post-quantum key share (a large ClientHello), ALPN.
func helloConfigs() map[string]*tls.Config {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	return map[string]*tls.Config{
		"plain":      {ServerName: "example.com"},
		"mixed case": {ServerName: "API.Example.COM"},
		"deep":       {ServerName: "a.b.c.d.example.org"},
		"253 chars":  {ServerName: long},
		"no sni":     {InsecureSkipVerify: true},
		"ip literal": {ServerName: "192.0.2.7"},
		"tls12 only": {ServerName: "old.example.com", MaxVersion: tls.VersionTLS12},
		"tls13 only": {ServerName: "new.example.com", MinVersion: tls.VersionTLS13},
		"mlkem": {
			ServerName:       "pq.example.com",
			MinVersion:       tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		},
		"alpn": {ServerName: "h2.example.com", NextProtos: []string{"h2", "http/1.1"}},
	}
}

// TestServerNameMatchesCryptoTLS compares the server name read from the
// ClientHellos of a real crypto/tls client with what a crypto/tls server sees
// (ClientHelloInfo.ServerName), whole, fed in small pieces, and with the
// handshake message spread over several records.
func TestServerNameMatchesCryptoTLS(t *testing.T) {
	for name, cfg := range helloConfigs() {
		t.Run(name, func(t *testing.T) {
			hello := clientHello(t, cfg)
			want, ok := serverSees(hello)
			if !ok {
				t.Fatal("crypto/tls saw no ClientHello")
			}
			want = strings.ToLower(want)
			if name == "mlkem" && len(hello) < 1200 {
				t.Fatalf("ClientHello with an X25519MLKEM768 share is only %d bytes", len(hello))
			}
			for _, frag := range []int{0, 1, 7, 100, 512} {
				in := hello
				if frag > 0 {
					in = refragment(hello, frag)
					if got, ok := serverSees(in); !ok || strings.ToLower(got) != want {
						t.Fatalf("crypto/tls reads the hello in %d-byte records as %q, %v", frag, got, ok)
					}
				}
				for _, step := range []int{0, 1, 3, 1460} {
					r, done, err := readAll(in, step)
					if err != nil || !done {
						t.Fatalf("records of %d, steps of %d: done %v, err %v", frag, step, done, err)
					}
					if got := string(r.ServerName()); got != want {
						t.Fatalf("records of %d, steps of %d: server name %q, crypto/tls saw %q", frag, step, got, want)
					}
					if r.End() != len(in) {
						t.Fatalf("End %d, the hello is %d bytes", r.End(), len(in))
					}
				}
			}
		})
	}
}

// TestNeedMoreUntilWhole: every proper prefix of a ClientHello asks for
// more, the whole one is done, and bytes after it change nothing.
func TestNeedMoreUntilWhole(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "svc.example.com"})
	for i := 0; i < len(hello); i++ {
		var r Reader
		if done, err := r.Read(hello[:i]); done || err != nil {
			t.Fatalf("prefix of %d/%d bytes: done %v, err %v", i, len(hello), done, err)
		}
	}
	var r Reader
	after := append(bytes.Clone(hello), "early data or garbage"...)
	if done, err := r.Read(after); !done || err != nil {
		t.Fatalf("hello and more: done %v, err %v", done, err)
	}
	if r.End() != len(hello) || string(r.ServerName()) != "svc.example.com" {
		t.Fatalf("End %d (hello %d), name %q", r.End(), len(hello), r.ServerName())
	}
	r.Reset()
	if done, err := r.Read(hello[:10]); done || err != nil || len(r.ServerName()) != 0 {
		t.Fatalf("after Reset: done %v, err %v, name %q", done, err, r.ServerName())
	}
}

// TestRejects: bytes that are not a routable ClientHello fail with the
// error that says why, as early as it can be seen.
func TestRejects(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "example.com"})
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(hello)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"http", []byte("GET / HTTP/1.1\r\n"), ErrNotTLS},
		{"one http byte", []byte("G"), ErrNotTLS},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), ErrNotTLS},
		{"sslv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, ErrNotTLS},
		{"bad record version", []byte{22, 2, 0, 0, 10, 1, 0, 0, 6}, ErrNotTLS},
		{"alert record", mut(func(b []byte) []byte { b[0] = 21; return b }), ErrNotTLS},
		{"empty record", []byte{22, 3, 1, 0, 0}, ErrMalformed},
		{"record too long", []byte{22, 3, 1, 0x40, 0x01}, ErrMalformed},
		{"server hello", mut(func(b []byte) []byte { b[5] = 2; return b }), ErrMalformed},
		{"empty hello", []byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, ErrMalformed},
		{"hello over the limit", []byte{22, 3, 1, 0, 4, 1, 0, 0x40, 0x00}, ErrTooLarge},
		{"second record not handshake", append(refragment(hello, 100)[:105], 23), ErrMalformed},
		{"truncated body", []byte{22, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0}, ErrMalformed},
		{"trailing dot", helloWithName(t, "example.com."), ErrMalformed},
		{"two host names", helloWithNames(t, "a.example.com", "b.example.com"), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, step := range []int{0, 1} {
				_, done, err := readAll(c.in, step)
				if done || !errors.Is(err, c.want) {
					t.Fatalf("steps of %d: done %v, err %v, want %v", step, done, err, c.want)
				}
			}
		})
	}
	if _, ok := serverSees(helloWithName(t, "example.com.")); ok {
		t.Error("crypto/tls accepts a name with a trailing dot: the reader should too")
	}
	if _, ok := serverSees(helloWithNames(t, "a.example.com", "b.example.com")); ok {
		t.Error("crypto/tls accepts two host names: the reader should too")
	}
}

// TestLongNameIsCut: a server name longer than any DNS name is kept cut to
// MaxNameLen bytes (no hostname matches it), as crypto/tls accepts it.
func TestLongNameIsCut(t *testing.T) {
	long := strings.Repeat("x", 300)
	in := helloWithName(t, long)
	if got, ok := serverSees(in); !ok || got != long {
		t.Fatalf("crypto/tls saw %q, %v", got, ok)
	}
	r, done, err := readAll(in, 0)
	if !done || err != nil || string(r.ServerName()) != long[:MaxNameLen] {
		t.Fatalf("done %v, err %v, name %d bytes", done, err, len(r.ServerName()))
	}
}

// TestNoExtensions: a ClientHello without extensions has no server name.
func TestNoExtensions(t *testing.T) {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0)
	in := records(handshake(body))
	r, done, err := readAll(in, 1)
	if !done || err != nil || len(r.ServerName()) != 0 {
		t.Fatalf("done %v, err %v, name %q", done, err, r.ServerName())
	}
}

// TestReadDoesNotAllocate: reading a ClientHello, in one piece or in many,
// allocates nothing.
func TestReadDoesNotAllocate(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "pq.example.com", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}})
	split := refragment(hello, 300)
	var r Reader
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset()
		r.Read(split[:500])
		r.Read(split)
	})
	if allocs != 0 || string(r.ServerName()) != "pq.example.com" {
		t.Fatalf("%v allocations per read, name %q", allocs, r.ServerName())
	}
}

// handshake wraps a ClientHello body in its handshake header.
func handshake(body []byte) []byte {
	n := len(body)
	return append([]byte{typeClientHello, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// records wraps handshake bytes in one record.
func records(msg []byte) []byte {
	n := len(msg)
	return append([]byte{recordTypeHandshake, 3, 1, byte(n >> 8), byte(n)}, msg...)
}

// helloWithNames builds a minimal ClientHello whose server_name extension
// lists names as host_name entries.
func helloWithNames(tb testing.TB, names ...string) []byte {
	tb.Helper()
	var list []byte
	for _, n := range names {
		list = append(list, nameTypeHostName, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	ext := []byte{0, extServerName, byte((len(list) + 2) >> 8), byte(len(list) + 2), byte(len(list) >> 8), byte(len(list))}
	ext = append(ext, list...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0)
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	return records(handshake(body))
}

func helloWithName(tb testing.TB, name string) []byte { return helloWithNames(tb, name) }
