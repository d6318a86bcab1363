package tlsconn

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The probe agrees with the kernel's list of available ULPs as it stands
// after the probe (which may have loaded the module).
func TestProbeKTLS(t *testing.T) {
	err := ProbeKTLS()
	t.Logf("ProbeKTLS: %v", err)
	list, rerr := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if rerr != nil {
		t.Skipf("no ULP list: %v", rerr)
	}
	listed := strings.Contains(" "+strings.TrimSpace(string(list))+" ", " tls ")
	if (err == nil) != listed {
		t.Fatalf("probe says %v, tcp_available_ulp is %q", err, list)
	}
}

func TestKTLSCryptoInfoLayout(t *testing.T) {
	srv, _ := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
	srv.wr.seq = 0x0102030405060708
	tx, rx, err := srv.KTLSCryptoInfo()
	if err != nil {
		t.Fatal(err)
	}
	if len(tx) != 40 || len(rx) != 40 {
		t.Fatalf("sizes %d, %d; struct tls12_crypto_info_aes_gcm_128 is 40 bytes", len(tx), len(rx))
	}
	if binary.NativeEndian.Uint16(tx[0:]) != 0x0304 || binary.NativeEndian.Uint16(tx[2:]) != 51 {
		t.Fatalf("header % x", tx[:4])
	}
	if !bytes.Equal(tx[4:12], srv.wr.iv[4:]) || !bytes.Equal(tx[12:28], srv.wr.key) ||
		!bytes.Equal(tx[28:32], srv.wr.iv[:4]) || !bytes.Equal(tx[32:40], []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("layout % x", tx)
	}
	if !bytes.Equal(rx[12:28], srv.rd.key) {
		t.Fatal("rx carries the wrong key")
	}
	cc, _ := recordPair(t, tls.TLS_CHACHA20_POLY1305_SHA256)
	tx, _, _ = cc.KTLSCryptoInfo()
	if len(tx) != 56 || !bytes.Equal(tx[4:16], cc.wr.iv[:]) {
		t.Fatalf("ChaCha20-Poly1305 layout % x", tx)
	}
	cc.pendingLen = 1
	if _, _, err := cc.KTLSCryptoInfo(); err == nil {
		t.Fatal("export with a KeyUpdate not yet sent")
	}
}

// Where the kernel has the tls ULP, a connection moved to it keeps talking to
// Go's client. (Not on machines without it: the probe test says which.)
func TestKTLSEndToEnd(t *testing.T) {
	if err := ProbeKTLS(); err != nil {
		t.Skipf("no kernel TLS: %v", err)
	}
	f := newFixture(t)
	p := f.dial(t, Options{})
	echo(t, p, []byte("userspace first"))
	tcp := p.sock.(*net.TCPConn)
	rc, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var kerr error
	if err := rc.Control(func(fd uintptr) { kerr = p.srv.EnableKTLS(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if kerr != nil {
		t.Fatal(kerr)
	}
	if _, err := tcp.Write([]byte("from the kernel")); err != nil {
		t.Fatal(err)
	}
	if got := p.clientRead(15); string(got) != "from the kernel" {
		t.Fatalf("client read %q", got)
	}
	p.clientWrite([]byte("to the kernel"))
	var got []byte // the pair's reader goroutine reads the socket
	for len(got) < 13 {
		select {
		case b := <-p.rx:
			got = append(got, b...)
		case <-time.After(5 * time.Second):
			t.Fatalf("server read %q", got)
		}
	}
	if string(got) != "to the kernel" {
		t.Fatalf("server read %q", got)
	}
}
