package enginetest

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/uring"
	"github.com/flaxlb/flax/dataplane/iouring/iouringtest"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

func init() { engines = append(engines, kind{name: "uring", new: newUring, limited: newUringLimited}) }

// newUring returns an io_uring engine, or skips the test where io_uring is
// unusable (an old kernel, seccomp, kernel.io_uring_disabled; a failure with
// FLAX_REQUIRE_IOURING=1).
func newUring(t *testing.T, reg *metrics.Registry) engine.Engine {
	iouringtest.Require(t)
	e, err := uring.New(uring.Options{Workers: workers, Metrics: reg, Log: testr.New(t), HTTPS: true})
	if err != nil {
		t.Fatalf("new io_uring engine: %v", err)
	}
	return e
}

func newUringLimited(t *testing.T, reg *metrics.Registry, lim engine.Limits, log logr.Logger) engine.Engine {
	iouringtest.Require(t)
	e, err := uring.New(uring.Options{
		Workers: reg.Workers(), Metrics: reg, Log: log,
		Limits: lim, Proxy: proxy.Options{BufferSize: limitedBufferSize}, HTTPS: true,
	})
	if err != nil {
		t.Fatalf("new io_uring engine: %v", err)
	}
	return e
}
