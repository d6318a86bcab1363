package poll

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// run calls Eventually on a recorder and reports what it failed with ("" if it
// returned).
func run(t *testing.T, timeout time.Duration, check func() error) (failed string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil {
			if p != r {
				panic(p)
			}
			failed = r.failed
		}
	}()
	Eventually(r, timeout, time.Millisecond, "the thing", check)
	return ""
}

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	calls := 0
	if failed := run(t, 5*time.Second, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); failed != "" {
		t.Fatalf("failed: %s", failed)
	}
	if calls != 3 {
		t.Fatalf("check called %d times, want 3", calls)
	}
}

func TestEventuallyFailsAfterTimeout(t *testing.T) {
	start := time.Now()
	failed := run(t, 30*time.Millisecond, func() error { return errors.New("still false") })
	if !strings.Contains(failed, "the thing") {
		t.Fatalf("failure %q does not name what was awaited", failed)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", d)
	}
}
