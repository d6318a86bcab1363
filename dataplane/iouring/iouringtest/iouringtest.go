// Package iouringtest decides, for tests, what happens where io_uring cannot be
// used (an old kernel, a seccomp profile, kernel.io_uring_disabled): by default
// the io_uring tests are skipped, so that the rest of a test run stays useful on
// such a machine; with FLAX_REQUIRE_IOURING=1 in the environment (CI sets it)
// they fail instead, so that a CI machine losing io_uring cannot turn the engine's
// tests into silent skips.
package iouringtest

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv names the environment variable that turns skips into failures.
const RequireEnv = "FLAX_REQUIRE_IOURING"

// Unavailable ends t because io_uring cannot be tested, for the reason given: it
// skips t, or fails it when FLAX_REQUIRE_IOURING=1.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1 requires io_uring)", reason, RequireEnv)
		return
	}
	t.Skipf("%s (set %s=1 to fail instead)", reason, RequireEnv)
}
