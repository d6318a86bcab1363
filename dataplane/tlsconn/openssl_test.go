package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// OpenSSL's client negotiates the suites Go's client never picks on this
// hardware (AES-256-GCM, ChaCha20-Poly1305) and sends KeyUpdate itself ("K"
// on s_client's input asks for one with update_requested).
func TestOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t)
	for _, s := range []struct {
		openssl string
		id      uint16
	}{
		{"TLS_AES_128_GCM_SHA256", tls.TLS_AES_128_GCM_SHA256},
		{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384},
		{"TLS_CHACHA20_POLY1305_SHA256", tls.TLS_CHACHA20_POLY1305_SHA256},
	} {
		t.Run(s.openssl, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cmd := exec.Command(bin, "s_client", "-connect", ln.Addr().String(), "-tls1_3",
				"-ciphersuites", s.openssl, "-servername", "a.example", "-no_ign_eof")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout lockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sock, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			srv, notify := newServer(f.server, Options{})
			p := serverSide(t, sock, srv, notify)
			if err := p.serverHandshake(nil); err != nil {
				t.Fatalf("handshake: %v\n%s", err, stdout.String())
			}
			if got := p.srv.ConnectionState().CipherSuite; got != s.id || !p.srv.RecordLayer() {
				t.Fatalf("suite %x on the record layer %v", got, p.srv.RecordLayer())
			}
			exchange := func(line string) {
				t.Helper()
				if _, err := io.WriteString(stdin, line+"\n"); err != nil {
					t.Fatal(err)
				}
				got, err := p.open(len(line) + 1)
				if err != nil || string(got) != line+"\n" {
					t.Fatalf("server got %q, %v", got, err)
				}
				p.seal([]byte("echo:"), got)
				waitFor(t, &stdout, "echo:"+line, 1)
			}
			exchange("first")
			for i := range 3 {
				rd, wr := p.srv.rd.secret, p.srv.wr.secret
				if _, err := io.WriteString(stdin, "K\n"); err != nil {
					t.Fatal(err)
				}
				// s_client takes a whole read of its input as the command, so
				// the next line waits until the KeyUpdate went out.
				waitFor(t, &stdout, "KEYUPDATE\n", i+1)
				exchange("after key update " + string(rune('a'+i)))
				if bytes.Equal(rd, p.srv.rd.secret) || bytes.Equal(wr, p.srv.wr.secret) {
					t.Fatalf("keys not updated (read %v, write %v)", !bytes.Equal(rd, p.srv.rd.secret), !bytes.Equal(wr, p.srv.wr.secret))
				}
			}
			exchange(strings.Repeat("long line ", 3000))
			_ = stdin.Close()
			if _, err := p.openUntilError(); !errors.Is(err, io.EOF) {
				t.Fatalf("after s_client's input ended: %v, want close_notify", err)
			}
		})
	}
}

// waitFor waits until the output holds s at least n times.
func waitFor(t *testing.T, out *lockedBuffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("openssl never printed %.40q; output:\n%.2000s", s, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
