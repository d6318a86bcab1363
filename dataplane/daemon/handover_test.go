package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

// TestHandOver runs two dataplanes on the same Gateway and admin ports, as a
// DaemonSet surge does on one node: the second binds alongside the first, each one's
// Ready speaks for itself, and the Gateway keeps answering while the first drains and
// exits.
func TestHandOver(t *testing.T) {
	for _, eng := range []string{EngineNetpoll, EngineUring} {
		t.Run(eng, func(t *testing.T) { testHandOver(t, eng) })
	}
}

func testHandOver(t *testing.T, eng string) {
	ip, port := backend(t, "a")
	gw := uint32(enginetest.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	start := func() (*Daemon, context.CancelFunc, chan error) {
		d, err := New(Options{
			Workers: 2, Engine: eng, AdminAddr: admin, AdminReusePort: true,
			DrainGrace: 300 * time.Millisecond, DrainTimeout: 2 * time.Second, Log: logr.Discard(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ready(); err == nil || !strings.Contains(err.Error(), "no config") {
			t.Errorf("Ready before any config = %v, want no config applied yet", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		st, err := d.Apply(ctx, snap(1, gw, &dataplanev1.Endpoint{Address: ip, Port: port}))
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 1 || !st[0].Bound {
			t.Fatalf("listener statuses = %v, want bound", st)
		}
		deadline := time.Now().Add(5 * time.Second)
		for d.Ready() != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := d.Ready(); err != nil {
			t.Fatalf("Ready after apply = %v", err)
		}
		return d, cancel, done
	}
	oldD, stopOld, oldDone := start()
	newD, stopNew, newDone := start()
	defer func() { stopNew(); <-newDone }()

	url := fmt.Sprintf("http://127.0.0.1:%d/", gw)
	cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed, total := 0, 0
	getAll := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			total++
			resp, err := cl.Get(url)
			if err != nil {
				failed++
				t.Logf("GET: %v", err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed++
			}
		}
	}
	getAll(100 * time.Millisecond)
	stopOld()
	time.Sleep(50 * time.Millisecond)
	if err := oldD.Ready(); err == nil || err.Error() != "draining" {
		t.Errorf("old dataplane Ready while draining = %v, want draining", err)
	}
	if err := newD.Ready(); err != nil {
		t.Errorf("new dataplane Ready while the old one drains = %v", err)
	}
	getAll(500 * time.Millisecond) // the grace, the listeners closing, the exit
	select {
	case err := <-oldDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old dataplane did not stop")
	}
	getAll(100 * time.Millisecond)
	if resp, err := cl.Get("http://" + admin + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin /readyz after the hand-over: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Without tcp_migrate_req a connection queued on a closing listener may be
	// reset; with it (or without a race) none fails.
	if failed > 0 && migrateReq() {
		t.Errorf("%d of %d requests failed during the hand-over", failed, total)
	}
	t.Logf("%s: %d requests during the hand-over, %d failed (tcp_migrate_req=%v)", eng, total, failed, migrateReq())
}

// migrateReq reports whether net.ipv4.tcp_migrate_req is on.
func migrateReq() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
