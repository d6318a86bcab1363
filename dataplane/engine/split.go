package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flaxlb/flax/dataplane/compiled"
)

// Split serves one configuration with up to three engines: listeners that terminate TLS
// (HTTPS, and TLS listeners with a terminating route) go to TLS (the netpoll engine,
// whose connections run crypto/tls), UDP listeners to UDP (dataplane/udp), every other
// listener to Plain (the io_uring engine). A nil TLS or UDP engine leaves its listeners
// to Plain. All engines share the configuration's backend groups, so an endpoint-only
// update reaches them at once.
type Split struct {
	Plain, TLS Engine
	// UDP serves the UDP listeners when set.
	UDP Engine
	cur atomic.Pointer[compiled.Config]
}

var _ Engine = (*Split)(nil)

// NewSplit returns an engine that hands TLS listeners to tls and the rest to plain.
func NewSplit(plain, tls Engine) *Split { return &Split{Plain: plain, TLS: tls} }

// WithUDP returns an engine that serves UDP listeners with udp and every other
// listener as e does: e itself gets udp when it is a Split without one.
func WithUDP(e, udp Engine) Engine {
	if s, ok := e.(*Split); ok && s.UDP == nil && s.cur.Load() == nil {
		s.UDP = udp
		return s
	}
	return &Split{Plain: e, UDP: udp}
}

// Name returns the plain engine's name: it is the engine that serves the hot path.
func (s *Split) Name() string { return s.Plain.Name() }

// Current returns the last applied configuration.
func (s *Split) Current() *compiled.Config { return s.cur.Load() }

// engines returns the engines in use: Plain first, then TLS and UDP when set.
func (s *Split) engines() []Engine {
	out := []Engine{s.Plain}
	for _, e := range []Engine{s.TLS, s.UDP} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// engineFor returns the engine that serves l.
func (s *Split) engineFor(l *compiled.Listener) Engine {
	switch {
	case l.Protocol == compiled.ProtocolUDP && s.UDP != nil:
		return s.UDP
	case l.TerminatesTLS() && s.TLS != nil:
		return s.TLS
	}
	return s.Plain
}

// Apply gives each engine its share of cfg's listeners and returns the statuses in cfg's
// listener order. When an engine refuses its share after an earlier one took its own,
// the error says so: the earlier engines' listeners then already serve cfg.
func (s *Split) Apply(cfg *compiled.Config) ([]ListenerStatus, error) {
	engines := s.engines()
	shares := make([]compiled.Config, len(engines))
	for i := range shares {
		shares[i] = *cfg
		shares[i].Listeners = nil
	}
	for _, l := range cfg.Listeners {
		e := s.engineFor(l)
		for i := range engines {
			if engines[i] == e {
				shares[i].Listeners = append(shares[i].Listeners, l)
				break
			}
		}
	}
	byListener := make(map[*compiled.Listener]ListenerStatus, len(cfg.Listeners))
	for i, e := range engines {
		st, err := e.Apply(&shares[i])
		if err != nil {
			if i == 0 {
				return nil, err
			}
			return nil, errors.Join(fmt.Errorf("listeners of engines before %s applied, its listeners kept their previous config", e.Name()), err)
		}
		for j, x := range st {
			if j < len(shares[i].Listeners) {
				byListener[shares[i].Listeners[j]] = x
			}
		}
	}
	s.cur.Store(cfg)
	out := make([]ListenerStatus, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		out = append(out, byListener[l])
	}
	return out, nil
}

// Run runs the engines until ctx is done; if one stops with an error, the others are
// stopped too and the error returned.
func (s *Split) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engines := s.engines()
	var wg sync.WaitGroup
	errs := make([]error, len(engines))
	for i, e := range engines {
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

// Drain drains the engines at once.
func (s *Split) Drain(ctx context.Context) error {
	engines := s.engines()
	var wg sync.WaitGroup
	errs := make([]error, len(engines))
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Drain(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
