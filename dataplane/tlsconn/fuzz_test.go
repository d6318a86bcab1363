package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
)

// openAll runs Open over in until it needs more or fails.
func openAll(t *testing.T, c *Conn, in []byte) (plain []byte, rest []byte, err error) {
	for {
		p, n, err := c.Open(in)
		if n < 0 || n > len(in) {
			t.Fatalf("Open took %d of %d bytes", n, len(in))
		}
		if err != nil && len(p) > 0 {
			t.Fatalf("Open returned %d plaintext bytes with %v", len(p), err)
		}
		plain = append(plain, p...)
		in = in[n:]
		if err != nil || n == 0 {
			return plain, in, err
		}
	}
}

// FuzzOpen feeds arbitrary bytes to a record-layer connection: it never
// panics, never takes more than it was given, never returns plaintext with an
// error, keeps its first error, and delivers no more than it received.
func FuzzOpen(f *testing.F) {
	// Each seed is a stream from a fresh peer, so it opens from sequence 0.
	peer := func() *Conn {
		_, p := recordPair(f, tls.TLS_AES_128_GCM_SHA256)
		return p
	}
	seal := func(c *Conn, head, body []byte) []byte {
		out, err := c.Seal(nil, head, body)
		if err != nil {
			f.Fatal(err)
		}
		return out
	}
	one := seal(peer(), []byte("GET / HTTP/1.1\r\n\r\n"), nil)
	f.Add(one)
	f.Add(seal(peer(), []byte("GET / HTTP/1.1\r\n\r\n"), pattern(20000, 1)))
	f.Add(one[:len(one)-1])
	f.Add(one[:3])
	f.Add([]byte{recordTypeApplicationData, 3, 3, 0x41, 0x01})
	f.Add([]byte{recordTypeChangeCipherSpec, 3, 3, 0, 1, 1})
	ku := peer()
	_ = ku.sendKeyUpdate(true)
	f.Add(seal(ku, []byte("after"), nil))
	f.Add(peer().AppendAlert(nil, AlertCloseNotify))
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, _ := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
		plain, _, err := openAll(t, srv, in)
		if len(plain) > len(in) {
			t.Fatalf("%d plaintext bytes from %d input bytes", len(plain), len(in))
		}
		if err != nil {
			if _, _, err2 := srv.Open(in); !errors.Is(err2, err) {
				t.Fatalf("error not kept: %v then %v", err, err2)
			}
		}
	})
}

// FuzzSealOpen: whatever the worker seals, split between head and body, the
// peer opens as the same bytes, in records no larger than allowed.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\nbody"), 19)
	f.Add(pattern(MaxPlaintext+1, 2), 0)
	f.Add(pattern(3*MaxPlaintext, 3), MaxPlaintext-1)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		srv, peer := recordPair(t, tls.TLS_CHACHA20_POLY1305_SHA256)
		out, err := srv.Seal(nil, data[:split], data[split:])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records(t, out) {
			if len(r) > recordHeaderLen+MaxPlaintext+1+tagLen {
				t.Fatalf("record of %d bytes", len(r))
			}
		}
		got, rest, err := openAll(t, peer, out)
		if err != nil || len(rest) != 0 || !bytes.Equal(got, data) {
			t.Fatalf("opened %d of %d bytes, %d left, %v", len(got), len(data), len(rest), err)
		}
	})
}

// sealInner seals inner as a whole TLSInnerPlaintext (content and content
// type and padding as given) in one record.
func sealInner(d *direction, inner []byte) []byte {
	n := len(inner) + tagLen
	rec := []byte{recordTypeApplicationData, 3, 3, byte(n >> 8), byte(n)}
	rec = d.aead.Seal(rec, d.makeNonce(), inner, rec[:recordHeaderLen])
	d.seq++
	return rec
}

// FuzzOpenInner authenticates whatever inner plaintexts the fuzzer makes, in
// two records, so the parsing after decryption (content type, padding,
// alerts, split KeyUpdates) is what gets explored.
func FuzzOpenInner(f *testing.F) {
	f.Add([]byte("data\x17"), []byte("more\x17\x00\x00"))
	f.Add([]byte{typeKeyUpdate, 0, 0, recordTypeHandshake}, []byte{1, 1, recordTypeHandshake})
	f.Add([]byte{typeKeyUpdate, 0, 0, 1, 0, recordTypeHandshake}, []byte("x\x17"))
	f.Add([]byte{1, 0, recordTypeAlert}, []byte{2, 20, recordTypeAlert})
	f.Add([]byte{0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		srv, peer := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
		in := sealInner(&peer.wr, a)
		in = append(in, sealInner(&peer.wr, b)...)
		plain, _, err := openAll(t, srv, in)
		if len(plain) > len(a)+len(b) {
			t.Fatalf("%d plaintext bytes from %d", len(plain), len(a)+len(b))
		}
		if err == nil && len(a) > 0 && a[len(a)-1] == recordTypeApplicationData && !bytes.HasPrefix(plain, a[:len(a)-1]) {
			t.Fatalf("first record's data %q not delivered as is: %q", a, plain)
		}
	})
}

// FuzzClientHandshakeMessages seals arbitrary post-handshake messages, in
// records cut at arbitrary points, from a server to a client connection on
// the record layer: it never panics, skips session tickets whole (the data
// record after them still opens), accepts KeyUpdate, and fails on anything
// else with an alert.
func FuzzClientHandshakeMessages(f *testing.F) {
	ticket := []byte{typeNewSessionTicket, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0}
	f.Add(ticket, 5)
	f.Add(append(append([]byte(nil), ticket...), ticket...), 13)
	f.Add([]byte{typeKeyUpdate, 0, 0, 1, 0}, 0)
	f.Add([]byte{typeNewSessionTicket, 0, 1, 0}, 2)
	f.Add([]byte{2, 0, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, msgs []byte, cut int) {
		if len(msgs) == 0 || len(msgs) > MaxPlaintext {
			return
		}
		client, peer := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
		client.client = &tls.Config{}
		cut = min(max(cut, 0), len(msgs))
		var in []byte
		for _, part := range [][]byte{msgs[:cut], msgs[cut:]} {
			if len(part) == 0 {
				continue
			}
			rec, err := peer.sealRecord(nil, recordTypeHandshake, part, nil)
			if err != nil {
				t.Fatal(err)
			}
			in = append(in, rec...)
		}
		plain, rest, err := openAll(t, client, in)
		if len(plain) != 0 {
			t.Fatalf("%d plaintext bytes from handshake records", len(plain))
		}
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Remote {
				t.Fatalf("error %v is not an alert to send", err)
			}
			return
		}
		if len(rest) != 0 {
			t.Fatalf("%d bytes left unopened", len(rest))
		}
		if client.skip > 0 || client.hsMsgLen > 0 {
			return // a message continues in the next record
		}
		// After whole messages, application data opens (a KeyUpdate
		// changed the read key: the peer seals under its next key).
		if client.rd.seq == 0 {
			if err := peer.wr.update(peer.suite); err != nil {
				t.Fatal(err)
			}
			peer.wr.seq = 0
		}
		rec, err := peer.Seal(nil, []byte("data"), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := openAll(t, client, rec)
		if err != nil || string(got) != "data" {
			t.Fatalf("data after the messages: %q, %v", got, err)
		}
	})
}
