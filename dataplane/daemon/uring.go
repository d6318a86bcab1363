package daemon

import (
	"errors"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
)

func newUring(int, *metrics.Registry, logr.Logger) (engine.Engine, error) {
	return nil, errors.New("the io_uring engine is not built yet")
}
