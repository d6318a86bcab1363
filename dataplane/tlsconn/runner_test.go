package tlsconn

import (
	"testing"
	"time"
)

// waitFor polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Handshakes one after another run on the goroutine the first one started
// (its stack already grown), not on a new goroutine each.
func TestHandshakeGoroutinesReused(t *testing.T) {
	f := newFixture(t)
	p := f.dial(t, Options{})
	echo(t, p, []byte("first"))
	started := runnersStarted.Load()
	for i := range 10 {
		waitUntil(t, "an idle handshake goroutine", func() bool { return idleRunners.Load() > 0 })
		time.Sleep(time.Millisecond) // from counted idle to waiting on the channel
		p := f.dial(t, Options{})
		echo(t, p, []byte{byte(i)})
	}
	// The window between counting itself idle and waiting may cost a
	// new goroutine now and then, never one per handshake.
	if n := runnersStarted.Load() - started; n > 2 {
		t.Fatalf("10 handshakes in a row started %d goroutines, want them to reuse the idle one", n)
	}
}

// At most maxIdleRunners finished handshake goroutines wait; the others
// exit.
func TestIdleHandshakeGoroutinesBounded(t *testing.T) {
	f := newFixture(t)
	srv, _ := newServer(f.server, Options{})
	defer maxIdleRunners.Store(MaxIdleRunners)
	// Occupy every idle goroutine and at least 4 new ones with handshakes
	// waiting for the rest of a record header.
	n := int(idleRunners.Load()) + 4
	started := runnersStarted.Load()
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = srv.NewConn()
		if err := conns[i].Feed([]byte{recordTypeHandshake}); err != nil {
			t.Fatal(err)
		}
	}
	if got := runnersStarted.Load() - started; got < 4 {
		t.Fatalf("%d handshakes in progress started %d goroutines, want at least 4", n, got)
	}
	maxIdleRunners.Store(2)
	for _, c := range conns {
		c.Abort()
	}
	for _, c := range conns {
		waitUntil(t, "the aborted handshake's end", func() bool { done, _ := c.Done(); return done })
	}
	waitUntil(t, "2 idle handshake goroutines", func() bool { return idleRunners.Load() == 2 })
	time.Sleep(10 * time.Millisecond)
	if got := idleRunners.Load(); got != 2 {
		t.Fatalf("%d idle handshake goroutines, want the bound, 2", got)
	}
	// A new handshake still finds one.
	maxIdleRunners.Store(MaxIdleRunners)
	p := f.dial(t, Options{})
	echo(t, p, []byte("after"))
}
