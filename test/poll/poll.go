// Package poll waits in tests for a condition that other processes or goroutines
// make true (a controller writing status, a cluster rolling out a Deployment): it
// retries a check at an interval until the check passes or a deadline fails the test.
package poll

import (
	"testing"
	"time"
)

// Eventually calls check every interval until it returns nil, and fails the test
// with check's last error, naming what was awaited, once timeout has passed.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}
