//go:build linux

package iouring

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWakerWakesBlockedWait(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := mustRing(t, 16, Options{})
	defer closeRing(t, r)
	const wakeUD = 0x77
	w, err := r.NewWaker(wakeUD)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := w.Wake(); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	woken := false
	for !woken {
		if err := r.SubmitAndWait(NoTimeout); err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Completions() {
			if c.UserData != wakeUD {
				t.Fatalf("unexpected completion %+v", c)
			}
			if c.Res != 8 {
				t.Fatalf("eventfd read: %+v", c)
			}
			if err := w.Handle(c); err != nil {
				t.Fatal(err)
			}
			woken = true
		}
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 5*time.Second {
		t.Errorf("woken after %v", el)
	}
	if r.InFlight() != 1 {
		t.Errorf("read not re-armed: in flight %d", r.InFlight())
	}

	// Many producers: every item must be seen, none lost to coalescing.
	const producers, perProducer = 8, 500
	var queued atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				queued.Add(1)
				if err := w.Wake(); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	var seen int64
	wakes := 0
	for seen < producers*perProducer {
		if err := r.SubmitAndWait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		cs := r.Completions()
		if len(cs) == 0 {
			t.Fatalf("lost wake-up: seen %d of %d", seen, producers*perProducer)
		}
		for _, c := range cs {
			if err := w.Handle(c); err != nil {
				t.Fatal(err)
			}
			wakes++
		}
		seen = queued.Load() // drain after Handle
	}
	wg.Wait()
	t.Logf("%d wake-ups for %d Wake calls", wakes, producers*perProducer)

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Wake(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wake after Close: %v", err)
	}
	for _, c := range collect(t, r, 2, 5*time.Second) {
		if c.UserData != wakeUD {
			t.Fatalf("unexpected completion %+v", c)
		}
		if err := w.Handle(c); err != nil {
			t.Fatal(err)
		}
	}
	if r.InFlight() != 0 {
		t.Errorf("in flight %d", r.InFlight())
	}
}
