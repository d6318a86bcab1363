package tlshello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// captureConn is the client's side of a connection that records what the
// client writes and never answers: the ClientHello is all it gets.
type captureConn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	closed chan struct{}
	once   sync.Once
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	return len(p), nil
}

func (c *captureConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, io.EOF
}

func (c *captureConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *captureConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

func (*captureConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (*captureConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (*captureConn) SetDeadline(time.Time) error      { return nil }
func (*captureConn) SetReadDeadline(time.Time) error  { return nil }
func (*captureConn) SetWriteDeadline(time.Time) error { return nil }

// clientHello returns the first flight of a crypto/tls client with cfg: its
// ClientHello records.
func clientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	cc := &captureConn{closed: make(chan struct{})}
	c := tls.Client(cc, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Handshake()
	}()
	// The client writes its ClientHello and waits for the server's answer.
	deadline := time.Now().Add(5 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out = cc.bytes()
		if len(out) >= recordHeaderLen {
			if n := recordHeaderLen + int(out[3])<<8 | int(out[4]); len(out) >= n {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	cc.Close()
	<-done
	if len(out) < recordHeaderLen {
		tb.Fatal("the client wrote no ClientHello")
	}
	return out
}

// replayConn is the server's side of a connection that reads b and then EOF,
// and discards what the server writes.
type replayConn struct {
	r io.Reader
	captureConn
}

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }

// errStop ends a server handshake once the ClientHello was seen.
var errStop = errors.New("stop")

// serverSees runs a crypto/tls server over b and returns the server name of
// the ClientHello it parsed, and false if it parsed none.
func serverSees(b []byte) (string, bool) {
	var name string
	seen := false
	srv := tls.Server(&replayConn{r: bytes.NewReader(b)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, seen = h.ServerName, true
			return nil, errStop
		},
	})
	_ = srv.Handshake()
	return name, seen
}

// refragment rewrites the handshake records of b as records of at most size
// payload bytes each.
func refragment(b []byte, size int) []byte {
	var payload []byte
	var vers [2]byte
	for len(b) >= recordHeaderLen {
		n := int(b[3])<<8 | int(b[4])
		vers = [2]byte{b[1], b[2]}
		payload = append(payload, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
	}
	var out []byte
	for len(payload) > 0 {
		k := min(size, len(payload))
		out = append(out, recordTypeHandshake, vers[0], vers[1], byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

// readAll feeds b to a fresh Reader in steps of step bytes (all at once when
// step is 0) and returns the outcome.
func readAll(b []byte, step int) (r *Reader, done bool, err error) {
	r = new(Reader)
	if step == 0 {
		done, err = r.Read(b)
		return r, done, err
	}
	for i := step; ; i += step {
		if i > len(b) {
			i = len(b)
		}
		done, err = r.Read(b[:i])
		if done || err != nil || i == len(b) {
			return r, done, err
		}
	}
}
