package daemon

import (
	"fmt"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/netpoll"
	"github.com/flaxlb/flax/dataplane/iouring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// selectEngine creates the engine asked for. With EngineAuto it probes io_uring and falls
// back to netpoll, returning why. Asking for uring explicitly fails when the probe fails.
func selectEngine(name string, httpsUring bool, workers int, po proxy.Options, reg *metrics.Registry, al *accesslog.Logger, lim engine.Limits, log logr.Logger) (engine.Engine, string, error) {
	switch name {
	case EngineNetpoll:
		e, err := newNetpoll(workers, po, reg, al, lim, log)
		return e, "", err
	case EngineUring, EngineAuto:
		probeErr := iouring.Probe()
		if probeErr == nil {
			e, err := newUring(httpsUring, workers, po, reg, al, lim, log)
			if err == nil {
				return e, "", nil
			}
			probeErr = err
		}
		if name == EngineUring {
			return nil, "", fmt.Errorf("engine uring: %w", probeErr)
		}
		e, err := newNetpoll(workers, po, reg, al, lim, log)
		return e, probeErr.Error(), err
	default:
		return nil, "", fmt.Errorf("unknown engine %q (want %s, %s or %s)", name, EngineAuto, EngineUring, EngineNetpoll)
	}
}

func newNetpoll(workers int, po proxy.Options, reg *metrics.Registry, al *accesslog.Logger, lim engine.Limits, log logr.Logger) (engine.Engine, error) {
	e, err := netpoll.New(reg, netpoll.Options{Workers: workers, Proxy: po, AccessLog: al, Limits: lim, Logger: log.WithName("netpoll")})
	if err != nil {
		return nil, fmt.Errorf("engine netpoll: %w", err)
	}
	return e, nil
}
