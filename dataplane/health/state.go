package health

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// endpointState is what the node knows about one endpoint of a group.
type endpointState struct {
	addr netip.AddrPort

	// Active health checking.
	healthy   bool
	successes int // consecutive, while unhealthy
	failures  int // consecutive, while healthy

	// Outlier detection.
	ejections    int       // ejection multiplier
	ejectedUntil time.Time // zero when not ejected
	decayAt      time.Time // when the multiplier decreases next; zero when it is 0
}

// newEndpointState returns the state of an endpoint seen for the first time: healthy
// (see the package documentation for why).
func newEndpointState(addr netip.AddrPort) *endpointState {
	return &endpointState{addr: addr, healthy: true}
}

// observe applies one probe result to the health state machine and reports whether
// the endpoint's verdict changed.
func (e *endpointState) observe(ok bool, healthyThreshold, unhealthyThreshold int) bool {
	if ok {
		e.failures = 0
		if e.healthy {
			return false
		}
		e.successes++
		if e.successes >= max(healthyThreshold, 1) {
			e.healthy, e.successes = true, 0
			return true
		}
		return false
	}
	e.successes = 0
	if !e.healthy {
		return false
	}
	e.failures++
	if e.failures >= max(unhealthyThreshold, 1) {
		e.healthy, e.failures = false, 0
		return true
	}
	return false
}

// ejected reports whether the endpoint is ejected at now.
func (e *endpointState) ejected(now time.Time) bool {
	return !e.ejectedUntil.IsZero() && now.Before(e.ejectedUntil)
}

// eject ejects the endpoint at now and returns for how long.
func (e *endpointState) eject(now time.Time, base, maxTime time.Duration) time.Duration {
	e.ejections++
	d := ejectionTime(base, e.ejections, maxTime)
	e.ejectedUntil = now.Add(d)
	e.decayAt = time.Time{}
	return d
}

// tick ends an ejection whose time is up and decays the multiplier; it reports
// whether the endpoint returned.
func (e *endpointState) tick(now time.Time, base time.Duration) bool {
	returned := false
	if !e.ejectedUntil.IsZero() && !now.Before(e.ejectedUntil) {
		e.ejectedUntil = time.Time{}
		e.decayAt = now.Add(base)
		returned = true
	}
	for e.ejectedUntil.IsZero() && e.ejections > 0 && !e.decayAt.IsZero() && !now.Before(e.decayAt) {
		e.ejections--
		e.decayAt = e.decayAt.Add(base)
		if e.ejections == 0 {
			e.decayAt = time.Time{}
		}
	}
	return returned
}

// next returns the earliest time tick has something to do, zero when never.
func (e *endpointState) next() time.Time {
	if !e.ejectedUntil.IsZero() {
		return e.ejectedUntil
	}
	if e.ejections > 0 {
		return e.decayAt
	}
	return time.Time{}
}

// ejectionTime is the length of the n-th ejection: base × n, capped at maxTime.
func ejectionTime(base time.Duration, n int, maxTime time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	if maxTime < base {
		maxTime = base
	}
	if base > 0 && time.Duration(n) > maxTime/base {
		return maxTime
	}
	return base * time.Duration(n)
}

// maxEjected is how many of n endpoints may be ejected at once under pct percent:
// the floor of the share, but at least one (a single bad endpoint of a small group
// must be ejectable), and never more than n.
func maxEjected(n, pct int) int {
	if n <= 0 || pct <= 0 {
		return 0
	}
	return min(max(n*pct/100, 1), n)
}

// probeDelay returns the delay before the next probe round: interval plus a random
// share of jitter in [0, jitter].
func probeDelay(interval, jitter time.Duration, rng *rand.Rand) time.Duration {
	if jitter <= 0 {
		return interval
	}
	return interval + time.Duration(rng.Int64N(int64(jitter)+1))
}
