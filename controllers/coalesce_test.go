package controllers

import (
	"testing"
	"time"
)

func TestCoalescer(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start
	c := newCoalescer(20*time.Millisecond, 100*time.Millisecond)
	c.now = func() time.Time { return now }

	if wait, b := c.take(); wait != 0 || b.events != 0 {
		t.Fatalf("no events: take = %v, %+v; want to translate at once", wait, b)
	}
	c.record(false)
	now = now.Add(5 * time.Millisecond)
	c.record(true)
	if wait, _ := c.take(); wait != 20*time.Millisecond {
		t.Errorf("during a burst: wait %v, want the quiet period after the last event (20ms)", wait)
	}
	// Events every 15ms keep the burst going until the max wait.
	for now.Sub(start) < 90*time.Millisecond {
		now = now.Add(15 * time.Millisecond)
		c.record(false)
	}
	if wait, _ := c.take(); wait != start.Add(100*time.Millisecond).Sub(now) {
		t.Errorf("near the max wait: wait %v, want %v", wait, start.Add(100*time.Millisecond).Sub(now))
	}
	now = start.Add(100 * time.Millisecond)
	wait, b := c.take()
	if wait != 0 || b.events != 8 || !b.endpointsChangedAt.Equal(start.Add(5*time.Millisecond)) {
		t.Errorf("at the max wait: take = %v, %+v; want 8 events, endpoints changed at +5ms", wait, b)
	}
	c.putBack(b)
	if _, again := c.take(); again.events != 8 || !again.endpointsChangedAt.Equal(b.endpointsChangedAt) {
		t.Errorf("after putBack: %+v, want the same batch", again)
	}
}
