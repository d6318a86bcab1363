package tlsconn

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// curl fetches one HTTPS response from a Conn the test drives, over TLS 1.3
// (the record layer) and TLS 1.2 (crypto/tls).
func TestCurl(t *testing.T) {
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := newFixture(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		flags  []string
		record bool
	}{
		{"TLS1.3", []string{"--tlsv1.3"}, true},
		{"TLS1.2", []string{"--tlsv1.2", "--tls-max", "1.2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			args := append([]string{"-sS", "--http1.1", "--cacert", ca, "--resolve", fmt.Sprintf("a.example:%d:127.0.0.1", port)}, tc.flags...)
			cmd := exec.Command(bin, append(args, fmt.Sprintf("https://a.example:%d/hello", port))...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sock, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			srv, notify := newServer(f.server, Options{})
			p := serverSide(t, sock, srv, notify)
			if err := p.serverHandshake(nil); err != nil {
				t.Fatalf("handshake: %v: %s", err, errOut.String())
			}
			if p.srv.RecordLayer() != tc.record {
				t.Fatalf("record layer %v", p.srv.RecordLayer())
			}
			var req []byte
			for !bytes.Contains(req, []byte("\r\n\r\n")) {
				b, err := p.open(len(req) + 1)
				if err != nil {
					t.Fatalf("request: %v", err)
				}
				req = append(req, b...)
			}
			if !strings.HasPrefix(string(req), "GET /hello HTTP/1.1\r\n") {
				t.Fatalf("request %q", req)
			}
			body := pattern(50000, 'a')
			for i := range body {
				body[i] = 'a' + body[i]%26
			}
			p.seal(fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body)), body)
			p.write(p.srv.CloseNotify(nil))
			if err := cmd.Wait(); err != nil {
				t.Fatalf("curl: %v: %s", err, errOut.String())
			}
			if !bytes.Equal(out.Bytes(), body) {
				t.Fatalf("curl printed %d bytes, want %d", out.Len(), len(body))
			}
		})
	}
}
