package enginetest

import (
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// silentListener returns the address of a loopback listener whose accept queue is
// full and never drained: the kernel drops further SYNs, so a connect to it hangs as
// one to a deleted pod's vanished address does.
func silentListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue until a connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Skip("the kernel keeps accepting connects to a full queue")
		}
	}
	return addr
}

// An endpoint whose connect failed is passed over for a while (passive avoidance,
// on by default): of a run of requests that round robin would send to it every
// other time, only the first tries it (its connect fails, and the request is
// retried on the other endpoint); all succeed. Both for an endpoint that refuses
// connects and one that swallows them until the connect timeout.
func TestPassiveAvoidance(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		for _, tc := range []struct {
			name string
			addr func(t *testing.T) string
		}{
			{"refused", func(t *testing.T) string {
				b := startRaw(t, modeOK)
				a := b.addr()
				b.close()
				return a
			}},
			{"silent", silentListener},
		} {
			t.Run(tc.name, func(t *testing.T) {
				good := startRaw(t, modeOK)
				bad := tc.addr(t)
				port := FreePort(t)
				y := HTTPSnapshot(port, []string{bad, good.addr()}, "  connectTimeout: 0.1s\n", "", "")
				_, cfg := startResilient(t, k, y)
				sh := cfg.Group("app").Shared
				// A new client connection per request: each needs its own upstream
				// connect, unless the endpoint's pool has one.
				tr := &http.Transport{DisableKeepAlives: true}
				c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
				const n = 12
				for i := range n {
					if st, body := Get(t, c, "http://127.0.0.1:"+strconv.Itoa(port)+"/x"); st != 200 || body != "ok" {
						t.Fatalf("request %d: %d %q", i, st, body)
					}
				}
				if got := sh.RetriesFor(metrics.RetryConnectFailed); got != 1 {
					t.Fatalf("%d requests: %d retried after a failed connect, want 1 (the endpoint is passed over after its first failure)", n, got)
				}
				if good.reqs.Load() != n {
					t.Fatalf("the good endpoint served %d of %d requests", good.reqs.Load(), n)
				}
			})
		}
	})
}
