// Package clip holds two small helpers that more than one stage of the controller
// needs: Truncate bounds a message (node Lease reports, conditions, Events), and
// Earliest keeps the earlier of two optional times (the receipt time of the first
// EndpointSlice event not yet accounted for, tracked by the coalescer and by the
// delivery).
package clip

import "time"

// Truncate shortens s to at most n bytes, marking the cut, without splitting a
// UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// Earliest returns the earlier of two times, ignoring zero times.
func Earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}
