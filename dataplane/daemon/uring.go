package daemon

import (
	"fmt"

	"github.com/go-logr/logr"

	"github.com/flaxlb/flax/dataplane/accesslog"
	"github.com/flaxlb/flax/dataplane/engine"
	"github.com/flaxlb/flax/dataplane/engine/uring"
	"github.com/flaxlb/flax/dataplane/metrics"
	"github.com/flaxlb/flax/dataplane/proxy"
)

// newUring returns the io_uring engine. With httpsUring it serves every listener, TLS
// included (dataplane/tlsconn); without, it serves plain HTTP and TCP listeners, with the
// netpoll engine beside it for HTTPS listeners (crypto/tls per connection).
func newUring(httpsUring bool, workers int, po proxy.Options, reg *metrics.Registry, al *accesslog.Logger, lim engine.Limits, log logr.Logger) (engine.Engine, error) {
	u, err := uring.New(uring.Options{Workers: workers, Proxy: po, Metrics: reg, AccessLog: al, Limits: lim, Log: log.WithName("uring"), HTTPS: httpsUring})
	if err != nil {
		return nil, err
	}
	if httpsUring {
		return u, nil
	}
	tls, err := newNetpoll(workers, po, reg, al, lim, log)
	if err != nil {
		return nil, fmt.Errorf("netpoll engine for TLS listeners: %w", err)
	}
	return engine.NewSplit(u, tls), nil
}
