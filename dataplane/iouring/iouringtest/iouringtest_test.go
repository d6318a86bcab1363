package iouringtest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how Unavailable ended it.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}

func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		env          string
		skip, failed bool
	}{
		{"", true, false},
		{"0", true, false},
		{"1", false, true},
	} {
		t.Setenv(RequireEnv, c.env)
		r := &recorder{TB: t}
		Unavailable(r, "io_uring unavailable: %v", "test")
		if r.skipped != c.skip || r.failed != c.failed || !strings.Contains(r.msg, "io_uring unavailable: test") || !strings.Contains(r.msg, RequireEnv) {
			t.Errorf("%s=%q: skipped %v failed %v (%q), want skipped %v failed %v", RequireEnv, c.env, r.skipped, r.failed, r.msg, c.skip, c.failed)
		}
	}
}
