//go:build linux

package uring

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

// serveH2C is the h2c backend of TestSteadyStateAllocsH2CLink: the same
// 100-byte body every time, without a Date field (its allocations, and
// net/http's, are left out of the count by serverAllocs).
func serveH2C(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Date"] = nil
	h.Set("Content-Length", "100")
	_, _ = w.Write(h2cBody)
}

var h2cBody = bytes.Repeat([]byte("x"), 100)

// TestSteadyStateAllocsH2CLink checks that a keep-alive request to an h2c
// group, carried as a stream of the worker's shared connection, does not
// allocate in the engine once the link is up.
func TestSteadyStateAllocsH2CLink(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random); make test measures them")
	}
	te := startEngineWith(t, Options{Workers: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: http.HandlerFunc(serveH2C), Protocols: p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := enginetest.FreePort(t)
	y := snapshotYAML(port, []netip.AddrPort{netip.MustParseAddrPort(ln.Addr().String())}, deadAddr(t), "")
	y = strings.Replace(y, "- name: app\n  connectTimeout: 2s\n", "- name: app\n  connectTimeout: 2s\n  protocol: H2C\n", 1)
	if st := te.apply(t, enginetest.CompileYAML(t, te.reg, y)); !st[0].Bound {
		t.Fatalf("statuses: %+v", st)
	}
	expectNoServerAllocs(t, newBenchClient(t, fmt.Sprintf("127.0.0.1:%d", port)), "over the h2c link")
}
