package engine

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"net/netip"
	"testing"

	"github.com/flaxlb/flax/dataplane/compiled"
)

// recorder is an Engine that records what it is given and reports every listener bound.
type recorder struct {
	name     string
	got      []*compiled.Listener
	applyErr error
	runErr   error
	drained  bool
}

func (r *recorder) Name() string              { return r.name }
func (r *recorder) Current() *compiled.Config { return nil }
func (r *recorder) Apply(cfg *compiled.Config) ([]ListenerStatus, error) {
	if r.applyErr != nil {
		return nil, r.applyErr
	}
	r.got = cfg.Listeners
	var st []ListenerStatus
	for _, l := range cfg.Listeners {
		st = append(st, ListenerStatus{Name: l.Name + "@" + r.name, Addr: l.Addr, Bound: true})
	}
	return st, nil
}

func (r *recorder) Run(ctx context.Context) error {
	if r.runErr != nil {
		return r.runErr
	}
	<-ctx.Done()
	return nil
}

func (r *recorder) Drain(context.Context) error { r.drained = true; return nil }

func TestSplitRoutesTLSListeners(t *testing.T) {
	plain, tls := &recorder{name: "uring"}, &recorder{name: "netpoll"}
	s := NewSplit(plain, tls)
	cfg := &compiled.Config{Listeners: []*compiled.Listener{
		{Name: "a", Protocol: compiled.ProtocolHTTP, Addr: netip.MustParseAddrPort("127.0.0.1:80")},
		{Name: "b", Protocol: compiled.ProtocolHTTPS, Addr: netip.MustParseAddrPort("127.0.0.1:443")},
		{Name: "c", Protocol: compiled.ProtocolTCP, Addr: netip.MustParseAddrPort("127.0.0.1:5432")},
		{Name: "d", Protocol: compiled.ProtocolTLS, Addr: netip.MustParseAddrPort("127.0.0.1:8443")},
		{Name: "e", Protocol: compiled.ProtocolTLS, TLS: &cryptotls.Config{}, Addr: netip.MustParseAddrPort("127.0.0.1:9443")},
	}}
	st, err := s.Apply(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A TLS listener goes to netpoll only when a route terminates TLS.
	want := []string{"a@uring", "b@netpoll", "c@uring", "d@uring", "e@netpoll"}
	if len(st) != len(want) {
		t.Fatalf("statuses = %v", st)
	}
	for i, w := range want {
		if st[i].Name != w {
			t.Errorf("status %d = %s, want %s (statuses keep the config's listener order)", i, st[i].Name, w)
		}
	}
	if len(plain.got) != 3 || len(tls.got) != 2 || tls.got[0].Name != "b" || tls.got[1].Name != "e" {
		t.Errorf("plain got %d listeners, tls got %v", len(plain.got), tls.got)
	}
	if s.Current() != cfg || len(cfg.Listeners) != 5 {
		t.Error("Apply changed or did not record the config")
	}
	if s.Name() != "uring" {
		t.Errorf("name = %s", s.Name())
	}
	if err := s.Drain(context.Background()); err != nil || !plain.drained || !tls.drained {
		t.Errorf("drain: %v, plain %v tls %v", err, plain.drained, tls.drained)
	}
}

func TestSplitErrors(t *testing.T) {
	boom := errors.New("boom")
	s := NewSplit(&recorder{name: "p"}, &recorder{name: "t", applyErr: boom})
	if _, err := s.Apply(&compiled.Config{}); !errors.Is(err, boom) {
		t.Errorf("apply: %v", err)
	}
	if s.Current() != nil {
		t.Error("a failed apply was recorded as current")
	}
	s = NewSplit(&recorder{name: "p"}, &recorder{name: "t", runErr: boom})
	if err := s.Run(context.Background()); !errors.Is(err, boom) {
		t.Errorf("run: %v (one engine failing must stop both and report it)", err)
	}
}

func TestWithUDPHandsUDPListenersToTheUDPEngine(t *testing.T) {
	plain, tls, udp := &recorder{name: "uring"}, &recorder{name: "netpoll"}, &recorder{name: "udp"}
	// A Split gets the UDP engine as its third; any other engine is wrapped.
	for _, e := range []Engine{WithUDP(NewSplit(plain, tls), udp), WithUDP(plain, udp)} {
		cfg := &compiled.Config{Listeners: []*compiled.Listener{
			{Name: "a", Protocol: compiled.ProtocolTCP, Addr: netip.MustParseAddrPort("127.0.0.1:53")},
			{Name: "b", Protocol: compiled.ProtocolUDP, Addr: netip.MustParseAddrPort("127.0.0.1:53")},
			{Name: "c", Protocol: compiled.ProtocolHTTPS, Addr: netip.MustParseAddrPort("127.0.0.1:443")},
		}}
		st, err := e.Apply(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wantC := "c@netpoll"
		if _, split := e.(*Split); split && e.(*Split).TLS == nil {
			wantC = "c@uring"
		}
		if st[0].Name != "a@uring" || st[1].Name != "b@udp" || st[2].Name != wantC {
			t.Fatalf("statuses %v %v %v, want a@uring b@udp %s", st[0].Name, st[1].Name, st[2].Name, wantC)
		}
		if e.Name() != "uring" {
			t.Fatalf("Name = %q, want the plain engine's", e.Name())
		}
	}
}
