//go:build !linux

package udp

import (
	"errors"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// Options configure an Engine.
type Options struct {
	Workers   int
	AccessLog *accesslog.Logger
	Log       logr.Logger
	// IOUring and RingBuffers are those of Linux; see there.
	IOUring     bool
	RingBuffers int
}

// New fails: the UDP engine runs on Linux only (epoll, SO_REUSEPORT).
func New(*metrics.Registry, Options) (engine.Engine, error) {
	return nil, errors.New("udp engine: UDP listeners are served on Linux only")
}
