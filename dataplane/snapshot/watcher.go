package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// DefaultPollInterval is how often a Watcher checks its file by default.
const DefaultPollInterval = 500 * time.Millisecond

// rereadEvery makes the Watcher read the file every this many polls even if its
// modification time and size look unchanged, for file systems with coarse
// timestamps.
const rereadEvery = 10

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Interval between checks of the file; zero means DefaultPollInterval.
	Interval time.Duration
	// Log receives what the watcher does; the zero value discards it.
	Log logr.Logger
}

// Watcher runs a standalone dataplane from a YAML snapshot file. It polls the file
// and, when its content changes or Reload is called, parses and validates it and
// hands it to an Applier. A file that fails is logged with the path of the
// offending field and the last good snapshot stays in effect.
//
// A file without a version gets one: one more than the version in effect.
type Watcher struct {
	path    string
	applier Applier
	opts    WatcherOptions
	log     logr.Logger
	reload  chan struct{}

	// Fields touched only by the goroutine running Run.
	stamp    fileStamp
	digest   [sha256.Size]byte
	polls    int
	problem  string
	lastSeen bool

	// mu guards current.
	mu      sync.Mutex
	current *dataplanev1.Snapshot
}

// fileStamp is what a poll compares to decide whether to read the file.
type fileStamp struct {
	modTime time.Time
	size    int64
}

// NewWatcher returns a Watcher of the YAML snapshot file at path that applies it
// with applier. Call Run to start it.
func NewWatcher(path string, applier Applier, opts WatcherOptions) *Watcher {
	if opts.Interval <= 0 {
		opts.Interval = DefaultPollInterval
	}
	return &Watcher{
		path:    path,
		applier: applier,
		opts:    opts,
		log:     opts.Log.WithValues("path", path),
		reload:  make(chan struct{}, 1),
	}
}

// Run loads and applies the file, then watches it until ctx is done, when it
// returns nil. If the first load fails Run returns that error at once, so that a
// dataplane does not start without a configuration; later failures are logged
// and keep the last good snapshot.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.check(ctx, true); err != nil {
		return fmt.Errorf("loading initial config: %w", err)
	}
	ticker := time.NewTicker(w.opts.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			_ = w.check(ctx, false)
		case <-w.reload:
			w.log.Info("reloading config")
			_ = w.check(ctx, true)
		}
	}
}

// Reload makes Run read, validate and apply the file now, even if it looks
// unchanged. It does not wait for that to happen.
func (w *Watcher) Reload() {
	select {
	case w.reload <- struct{}{}:
	default: // a reload is already pending
	}
}

// ReloadOnSignal calls Reload whenever the process receives one of sigs (SIGHUP
// if none are given), until ctx is done.
func (w *Watcher) ReloadOnSignal(ctx context.Context, sigs ...os.Signal) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGHUP}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				w.Reload()
			}
		}
	}()
}

// Current returns the last good snapshot, or nil if none was applied yet. The
// snapshot must not be modified.
func (w *Watcher) Current() *dataplanev1.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// check applies the file if it changed since the last check, or in any case with
// force, and returns why it could not, if it could not.
func (w *Watcher) check(ctx context.Context, force bool) error {
	fi, err := os.Stat(w.path)
	if err != nil {
		return w.fail(w.readError(err))
	}
	stamp := fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	w.polls++
	if !force && w.lastSeen && stamp == w.stamp && w.polls%rereadEvery != 0 {
		return nil
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return w.fail(w.readError(err))
	}
	digest := sha256.Sum256(data)
	changed := !w.lastSeen || digest != w.digest
	w.stamp, w.digest, w.lastSeen = stamp, digest, true
	if !force && !changed {
		return nil
	}
	return w.apply(ctx, data, force)
}

// apply parses, validates and applies data, the content of the file.
func (w *Watcher) apply(ctx context.Context, data []byte, force bool) error {
	snap, err := dataplanev1.Parse(data)
	if err != nil {
		return w.fail(err)
	}
	if err := dataplanev1.Validate(snap); err != nil {
		return w.fail(fmt.Errorf("invalid config: %w", err))
	}
	current := w.Current()
	hash := dataplanev1.Hash(snap)
	if !force && current != nil && current.GetHash() == hash {
		w.succeed(current)
		w.log.V(1).Info("config content unchanged; not reapplied", "version", current.GetVersion())
		return nil
	}
	snap = dataplanev1.WithHash(snap, hash)
	if snap.GetVersion() == 0 {
		snap = dataplanev1.ShallowCopy(snap)
		snap.Version = current.GetVersion() + 1
	}
	listeners, err := w.applier.Apply(ctx, snap)
	if err != nil {
		return w.fail(fmt.Errorf("applying config: %w", err))
	}
	w.succeed(snap)
	w.log.Info("applied config", "version", snap.GetVersion(), "hash", snap.GetHash(),
		"listeners", len(snap.GetListeners()), "backendGroups", len(snap.GetBackendGroups()))
	logListenerProblems(w.log, listeners)
	return nil
}

// succeed records snap as the snapshot in effect.
func (w *Watcher) succeed(snap *dataplanev1.Snapshot) {
	w.mu.Lock()
	w.current = snap
	w.mu.Unlock()
	w.problem = ""
}

// fail records and logs err, once for as long as it stays the same problem, and
// returns it.
// readError words a failure to stat or read the file the same way whichever
// call met it, so that a file removed between the two is reported once, not
// once per wording (fail reports a problem again only when its message changes).
func (w *Watcher) readError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("reading config file %s: %w", w.path, err)
}

func (w *Watcher) fail(err error) error {
	current := w.Current()
	if msg := err.Error(); msg != w.problem {
		w.problem = msg
		if current == nil {
			w.log.Error(err, "config rejected; no config is in effect yet")
		} else {
			w.log.Error(err, "config rejected; keeping the last good config",
				"appliedVersion", current.GetVersion(), "appliedHash", current.GetHash())
		}
	}
	return err
}
