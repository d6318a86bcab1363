package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/snapshot"
)

// dataplane is a running dataplane: a daemon serving traffic and the snapshot
// server the controller talks to, wired as `flax-dataplane run --socket` wires them.
type dataplane struct {
	daemon *daemon.Daemon
	server *snapshot.Server

	cancel context.CancelFunc
	runErr chan error
	srvErr chan error
	once   sync.Once
}

// startDataplane starts a dataplane with one worker on engine, serving the
// controller's API on socket. It is stopped when the test ends, unless stopped
// before.
func startDataplane(t *testing.T, engine, socket, node string, log logr.Logger) *dataplane {
	t.Helper()
	started := time.Now()
	d, err := daemon.New(daemon.Options{Workers: 1, Engine: engine, DrainTimeout: 5 * time.Second, Log: log})
	if err != nil {
		t.Fatalf("create dataplane with engine %s: %v", engine, err)
	}
	srv := snapshot.NewServer(snapshot.Adapt(d), snapshot.ServerOptions{NodeName: node, Engine: d.EngineName(), Log: log.WithName("snapshot")})
	ctx, cancel := context.WithCancel(context.Background())
	dp := &dataplane{daemon: d, server: srv, cancel: cancel, runErr: make(chan error, 1), srvErr: make(chan error, 1)}
	go func() { dp.srvErr <- srv.Serve(ctx, socket) }()
	go func() { dp.runErr <- d.Run(ctx) }()
	t.Cleanup(func() { dp.stop(t) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metrics of the dataplane (%s engine) started at %s:\n%s", d.EngineName(), started.Format("15:04:05.000"), dp.metrics())
		}
	})
	return dp
}

// metrics returns the dataplane's non-zero metrics, one sample a line.
func (dp *dataplane) metrics() string {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(dp.daemon.Metrics()); err != nil {
		return "registering the dataplane's metrics: " + err.Error()
	}
	mfs, err := reg.Gather()
	if err != nil {
		return "gathering the dataplane's metrics: " + err.Error()
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			if v == 0 {
				continue
			}
			b.WriteString(mf.GetName())
			if len(m.GetLabel()) > 0 {
				b.WriteByte('{')
				for i, l := range m.GetLabel() {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
				}
				b.WriteByte('}')
			}
			fmt.Fprintf(&b, " %g\n", v)
		}
	}
	return b.String()
}

// stop stops the snapshot server and drains the daemon, waiting until both have
// returned (the listeners are closed then). Only the first call does anything.
func (dp *dataplane) stop(t *testing.T) {
	t.Helper()
	dp.once.Do(func() {
		dp.cancel()
		timeout := time.After(30 * time.Second)
		for _, c := range []struct {
			what string
			errc chan error
		}{{"snapshot server", dp.srvErr}, {"dataplane", dp.runErr}} {
			select {
			case err := <-c.errc:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v", c.what, err)
				}
			case <-timeout:
				t.Errorf("%s did not stop within 30s", c.what)
			}
		}
	})
}

// logBuffer keeps the last lines logged by the controller and the dataplane of one
// test, to show them when it fails. With FLAX_TEST_LOG set to a verbosity (0,
// 1, ...) the lines also go to stderr as they come.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// logLines is how many lines a logBuffer keeps.
const logLines = 400

// newLogger returns a logger into a new logBuffer whose tail is logged when t fails.
func newLogger(t *testing.T) logr.Logger {
	b := &logBuffer{lines: make([]string, logLines)}
	verbosity, err := strconv.Atoi(os.Getenv("FLAX_TEST_LOG"))
	echo := err == nil
	if !echo {
		verbosity = 1
	}
	t.Cleanup(func() {
		if t.Failed() && !echo {
			t.Logf("last %d log lines of the controller and the dataplane:\n%s", logLines, b.String())
		}
	})
	return funcr.New(func(prefix, args string) {
		line := time.Now().Format("15:04:05.000") + " " + prefix + " " + args
		if echo {
			fmt.Fprintln(os.Stderr, line)
		}
		b.add(line)
	}, funcr.Options{Verbosity: verbosity})
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines[b.next] = line
	b.next = (b.next + 1) % len(b.lines)
	if b.next == 0 {
		b.full = true
	}
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	if b.full {
		out = append(out, b.lines[b.next:]...)
	}
	out = append(out, b.lines[:b.next]...)
	return strings.Join(out, "\n")
}
