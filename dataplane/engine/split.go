package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/compiled"
)

// Split serves one configuration with two engines: listeners that terminate TLS (HTTPS,
// and TLS listeners with a terminating route) go to TLS (the netpoll engine, whose
// connections run crypto/tls), every other listener to Plain (the io_uring engine). Both engines share the configuration's backend groups, so
// an endpoint-only update reaches both at once.
type Split struct {
	Plain, TLS Engine
	cur        atomic.Pointer[compiled.Config]
}

var _ Engine = (*Split)(nil)

// NewSplit returns an engine that hands TLS listeners to tls and the rest to plain.
func NewSplit(plain, tls Engine) *Split { return &Split{Plain: plain, TLS: tls} }

// Name returns the plain engine's name: it is the engine that serves the hot path.
func (s *Split) Name() string { return s.Plain.Name() }

// Current returns the last applied configuration.
func (s *Split) Current() *compiled.Config { return s.cur.Load() }

// Apply gives each engine its share of cfg's listeners and returns the statuses in cfg's
// listener order. When the TLS engine refuses its share after the plain engine took
// its own, the error says so: the plain listeners then already serve cfg.
func (s *Split) Apply(cfg *compiled.Config) ([]ListenerStatus, error) {
	plain, tls := *cfg, *cfg
	plain.Listeners, tls.Listeners = nil, nil
	for _, l := range cfg.Listeners {
		if l.TerminatesTLS() {
			tls.Listeners = append(tls.Listeners, l)
		} else {
			plain.Listeners = append(plain.Listeners, l)
		}
	}
	pst, err := s.Plain.Apply(&plain)
	if err != nil {
		return nil, err
	}
	tst, err := s.TLS.Apply(&tls)
	if err != nil {
		return nil, errors.Join(errors.New("plain listeners applied, TLS listeners kept their previous config"), err)
	}
	s.cur.Store(cfg)
	byListener := make(map[*compiled.Listener]ListenerStatus, len(cfg.Listeners))
	for i, st := range pst {
		if i < len(plain.Listeners) {
			byListener[plain.Listeners[i]] = st
		}
	}
	for i, st := range tst {
		if i < len(tls.Listeners) {
			byListener[tls.Listeners[i]] = st
		}
	}
	out := make([]ListenerStatus, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		out = append(out, byListener[l])
	}
	return out, nil
}

// Run runs both engines until ctx is done; if one stops with an error, the other is
// stopped too and the error returned.
func (s *Split) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []Engine{s.Plain, s.TLS} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Run(ctx); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Drain drains both engines at once.
func (s *Split) Drain(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []Engine{s.Plain, s.TLS} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Drain(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
