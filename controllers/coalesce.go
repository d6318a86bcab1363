package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flaxlb/flax/controllers/internal/clip"
)

// worldKey is the only key the controller's queue ever holds: every relevant event
// asks for one translation of the whole world.
var worldKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "flax-world"}}

// Coalescing defaults.
const (
	// DefaultCoalesceDelay is the quiet period after the last event before a
	// translation starts.
	DefaultCoalesceDelay = 20 * time.Millisecond
	// DefaultCoalesceMaxWait bounds how long a stream of events can hold a
	// translation back.
	DefaultCoalesceMaxWait = 250 * time.Millisecond
)

// coalescer folds bursts of watch events into one translation: a translation
// starts once no event arrived for delay, or maxWait after the first event of the
// burst, whichever is earlier. The workqueue holds the single worldKey, and the
// reconciler asks take whether the burst is over.
type coalescer struct {
	delay, maxWait time.Duration
	now            func() time.Time

	mu sync.Mutex
	// first and last are the receipt times of the first and the last event not
	// yet taken.
	first, last time.Time
	// pending counts the events not yet taken.
	pending int
	// endpointsChangedAt is the receipt time of the first EndpointSlice event not
	// yet taken.
	endpointsChangedAt time.Time
}

// batch is the set of events one translation covers.
type batch struct {
	// events is the number of events.
	events int
	// first is the receipt time of the first event.
	first time.Time
	// endpointsChangedAt is the receipt time of the first EndpointSlice event;
	// zero if none.
	endpointsChangedAt time.Time
}

// newCoalescer returns a coalescer; zero durations take the defaults.
func newCoalescer(delay, maxWait time.Duration) *coalescer {
	if delay <= 0 {
		delay = DefaultCoalesceDelay
	}
	if maxWait < delay {
		maxWait = max(DefaultCoalesceMaxWait, delay)
	}
	return &coalescer{delay: delay, maxWait: maxWait, now: time.Now}
}

// record notes an event; endpoints marks an EndpointSlice event.
func (c *coalescer) record(endpoints bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == 0 {
		c.first = now
	}
	c.last = now
	c.pending++
	if endpoints && c.endpointsChangedAt.IsZero() {
		c.endpointsChangedAt = now
	}
	queueDepth.Set(float64(c.pending))
}

// take returns how long to wait for the burst to end, or, if it has ended (or
// there was no event, as for the initial sync), zero and the batch to translate
// now.
func (c *coalescer) take() (time.Duration, batch) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending > 0 {
		quiet, deadline := c.last.Add(c.delay), c.first.Add(c.maxWait)
		if now.Before(quiet) && now.Before(deadline) {
			next := quiet
			if deadline.Before(next) {
				next = deadline
			}
			return next.Sub(now), batch{}
		}
	}
	b := batch{events: c.pending, first: c.first, endpointsChangedAt: c.endpointsChangedAt}
	c.pending, c.first, c.last, c.endpointsChangedAt = 0, time.Time{}, time.Time{}, time.Time{}
	queueDepth.Set(0)
	return 0, b
}

// putBack returns the events of a batch whose translation failed, so that the next
// translation covers them.
func (c *coalescer) putBack(b batch) {
	if b.events == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.first = clip.Earliest(c.first, b.first)
	if c.last.IsZero() {
		c.last = b.first
	}
	c.pending += b.events
	c.endpointsChangedAt = clip.Earliest(c.endpointsChangedAt, b.endpointsChangedAt)
	queueDepth.Set(float64(c.pending))
}

// enqueue returns an event handler that, for every event whose object (old or new)
// is relevant, records it and queues worldKey after the coalescing delay. A nil
// relevant accepts every object; endpoints marks EndpointSlice events.
func enqueue[T client.Object](c *coalescer, endpoints bool, relevant func(context.Context, T) bool) handler.TypedEventHandler[T, reconcile.Request] {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...T) {
		for _, o := range objs {
			if relevant == nil || relevant(ctx, o) {
				c.record(endpoints)
				q.AddAfter(worldKey, c.delay)
				return
			}
		}
	}
	return handler.TypedFuncs[T, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[T], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[T], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[T], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.TypedGenericEvent[T], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
	}
}
