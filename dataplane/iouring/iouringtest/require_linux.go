package iouringtest

import (
	"testing"

	"github.com/flaxlb/flax/dataplane/iouring"
)

// Require returns when io_uring works here (iouring.Probe succeeds) and otherwise
// ends t through Unavailable.
func Require(t testing.TB) {
	t.Helper()
	if err := iouring.Probe(); err != nil {
		Unavailable(t, "io_uring unavailable: %v", err)
	}
}
