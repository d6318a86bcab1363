package enginetest

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Backend is a net/http backend on 127.0.0.1 that counts the connections it
// accepted and the requests it served. It stops when the test ends.
type Backend struct {
	ln    net.Listener
	srv   *http.Server
	mu    sync.Mutex
	conns int
	reqs  int
	open  map[net.Conn]bool
}

// StartBackend serves h on a free port of 127.0.0.1.
func StartBackend(t testing.TB, h http.Handler) *Backend {
	t.Helper()
	return StartBackendWith(t, h, nil)
}

// StartBackendWith is StartBackend with a hook that adjusts the server (its
// timeouts, say) before it starts. A hook that replaces ConnState stops the
// connection count.
func StartBackendWith(t testing.TB, h http.Handler, configure func(*http.Server)) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := &Backend{ln: ln, open: map[net.Conn]bool{}}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.reqs++
		b.mu.Unlock()
		h.ServeHTTP(w, r)
	}), ConnState: func(c net.Conn, s http.ConnState) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch s {
		case http.StateNew:
			b.conns++
			b.open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(b.open, c)
		}
	}, ReadHeaderTimeout: 10 * time.Second}
	if configure != nil {
		configure(b.srv)
	}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// Addr returns the backend's address as host:port.
func (b *Backend) Addr() string { return b.ln.Addr().String() }

// AddrPort returns the backend's address.
func (b *Backend) AddrPort() netip.AddrPort { return netip.MustParseAddrPort(b.Addr()) }

// CloseClientConns closes every connection the backend has open.
func (b *Backend) CloseClientConns() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.open {
		_ = c.Close()
	}
}

// Counts returns the connections accepted and the requests served so far.
func (b *Backend) Counts() (conns, reqs int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns, b.reqs
}
