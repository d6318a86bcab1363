package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/engine/uring"
)

// TestHTTPSEngine: with the io_uring engine, HTTPS listeners are served by its
// workers (--https-engine=uring) or by a netpoll engine beside it (netpoll, through
// engine.Split); both answer over TLS.
func TestHTTPSEngine(t *testing.T) {
	if _, err := New(Options{Engine: EngineUring, HTTPSEngine: "bogus", Log: logr.Discard()}); err == nil || !strings.Contains(err.Error(), "unknown HTTPS engine") {
		t.Errorf("bogus HTTPS engine: %v", err)
	}
	for _, https := range []string{EngineUring, EngineNetpoll} {
		t.Run(https, func(t *testing.T) {
			ip, bport := backend(t, "a")
			port := uint32(enginetest.FreePort(t))
			d, err := New(Options{Workers: 2, Engine: EngineUring, HTTPSEngine: https, Log: logr.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			// The engines are a Split: UDP listeners have their own engine beside.
			e, ok := d.engine.(*engine.Split)
			if !ok || e.UDP == nil {
				t.Fatalf("engine %T, want a split with a UDP engine", d.engine)
			}
			if _, ok := e.Plain.(*uring.Engine); !ok {
				t.Fatalf("plain engine %T, want io_uring", e.Plain)
			}
			switch {
			case e.TLS == nil:
				if https != EngineUring {
					t.Fatalf("HTTPS engine %s: the io_uring engine alone", https)
				}
			case https != EngineNetpoll || e.TLS.Name() != "netpoll":
				t.Fatalf("HTTPS engine %s: split with %s", https, e.TLS.Name())
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Error("daemon did not stop")
				}
			}()
			s := snap(1, port, &dataplanev1.Endpoint{Address: ip, Port: bport})
			cert, key := enginetest.SelfSigned(t, "a.example.com")
			s.Listeners[0].Protocol = dataplanev1.Listener_HTTPS
			s.Listeners[0].Certificates = []*dataplanev1.TLSCertificate{{ServerNames: []string{"a.example.com"}, CertPem: cert, KeyPem: key}}
			s.Hash = dataplanev1.Hash(s)
			st, err := d.Apply(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 1 || !st[0].Bound {
				t.Fatalf("listener statuses = %v", st)
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
			resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "a" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		})
	}
}
