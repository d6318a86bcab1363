package netpoll

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// BenchmarkKeepAlive measures sequential keep-alive requests through the
// engine on loopback, to a raw backend answering 100 bytes.
func BenchmarkKeepAlive(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := readHead(br); err != nil {
						return
					}
					c.Write(resp)
				}
			}()
		}
	}()
	port := enginetest.FreePort(b)
	startEngine(b, enginetest.HTTPSnapshot(port, []string{ln.Addr().String()}, "", "", ""), proxy.Options{})
	c := enginetest.Dial(b, port)
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\n\r\n")
	want := len(resp)
	buf := make([]byte, want)
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		if _, err := io.ReadFull(br, buf); err != nil || !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 OK\r\n")) {
			b.Fatalf("response %q: %v", buf, err)
		}
	}
}
