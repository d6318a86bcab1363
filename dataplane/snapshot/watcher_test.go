package snapshot

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// runWatcher starts a watcher of path polling every few milliseconds; it is
// stopped when the test ends. It returns the channel Run's result arrives on.
func runWatcher(t *testing.T, path string, applier *fakeApplier, logs *logSink) (*Watcher, context.CancelFunc, <-chan error) {
	t.Helper()
	w := NewWatcher(path, applier, WatcherOptions{Interval: 10 * time.Millisecond, Log: logs.logger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return w, cancel, done
}

// writeFile replaces the content of path.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatcher(t *testing.T) {
	example, err := os.ReadFile("../../examples/standalone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "flax.yaml")
	writeFile(t, path, string(example))
	applier, logs := &fakeApplier{}, &logSink{}
	w, _, _ := runWatcher(t, path, applier, logs)

	// The good file is applied, with a version assigned.
	eventually(t, "the first config is applied", func() bool { return applier.count() == 1 })
	first := w.Current()
	if first.GetVersion() != 1 || first.GetHash() != dataplanev1.Hash(first) {
		t.Fatalf("after the first config: version %d, hash %q", first.GetVersion(), first.GetHash())
	}
	if logs.count("applied config", `"version"=1`) != 1 {
		t.Errorf("first config not logged:\n%s", logs)
	}

	// A bad file is reported with the field at fault; the good config stays.
	bad := strings.Replace(string(example), "value: /healthz", "value: healthz", 1)
	bad = strings.Replace(bad, "port: 9003", "port: 0", 1)
	writeFile(t, path, bad)
	eventually(t, "the bad config is reported", func() bool { return logs.count("config rejected") == 1 })
	for _, want := range []string{
		`listeners[0].virtualHosts[0].routes[0].matches[0].path.value: must start with`,
		"backendGroups[1].endpoints[0].port: must be between 1 and 65535",
	} {
		if logs.count("config rejected", want) != 1 {
			t.Errorf("the rejection does not name %q:\n%s", want, logs)
		}
	}
	if w.Current() != first || applier.count() != 1 {
		t.Errorf("a bad config replaced the good one")
	}
	if logs.count("config rejected; keeping the last good config", "path.value", `"appliedVersion"=1`) != 1 {
		t.Errorf("rejection not logged once with the field path:\n%s", logs)
	}
	// The same bad content is not reported again on every poll.
	time.Sleep(15 * 10 * time.Millisecond)
	if n := logs.count("config rejected"); n != 1 {
		t.Errorf("rejection logged %d times, want once", n)
	}

	// A typo in a field name is reported as well.
	writeFile(t, path, strings.Replace(string(example), "backendGroups:", "backendGroup:", 1))
	eventually(t, "the typo is reported", func() bool {
		return logs.count("config rejected", `backendGroup: unknown field (did you mean`, "backendGroups") == 1
	})

	// A good file again is applied.
	good := strings.Replace(string(example), "port: 8080", "port: 8081", 1)
	writeFile(t, path, good)
	eventually(t, "the second config is applied", func() bool { return applier.count() == 2 })
	second := w.Current()
	if second.GetVersion() != 2 || second.GetListeners()[0].GetPort() != 8081 {
		t.Errorf("after the second config: version %d, port %d",
			second.GetVersion(), second.GetListeners()[0].GetPort())
	}

	// Rewriting the file with the same content, or content that only differs in
	// comments, applies nothing.
	writeFile(t, path, "# just a comment\n"+good)
	time.Sleep(15 * 10 * time.Millisecond)
	if applier.count() != 2 || w.Current().GetVersion() != 2 {
		t.Errorf("an unchanged config was reapplied (%d applies, version %d)", applier.count(), w.Current().GetVersion())
	}

	// Reload reapplies the file even though it is unchanged.
	w.Reload()
	eventually(t, "the reload is applied", func() bool { return applier.count() == 3 })
	if w.Current().GetVersion() != 3 {
		t.Errorf("version after reload = %d, want 3", w.Current().GetVersion())
	}

	// So does SIGHUP, with ReloadOnSignal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.ReloadOnSignal(ctx)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SIGHUP reload is applied", func() bool { return applier.count() == 4 })

	// A file that disappears is reported, and the config stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing file is reported", func() bool { return logs.count("config rejected", "reading config file") == 1 })
	if w.Current().GetVersion() != 4 {
		t.Errorf("current version = %d after the file disappeared, want 4", w.Current().GetVersion())
	}
}

func TestWatcherVersionFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flax.yaml")
	writeFile(t, path, "version: 42\nbackendGroups:\n- name: g\n")
	applier := &fakeApplier{}
	w, _, _ := runWatcher(t, path, applier, &logSink{})
	eventually(t, "the config is applied", func() bool { return applier.count() == 1 })
	if v := w.Current().GetVersion(); v != 42 {
		t.Errorf("version = %d, want the file's 42", v)
	}
}

func TestWatcherInitialFailure(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"invalid": "listeners:\n- name: a\n  port: 80\n",
		"missing": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".yaml")
			if content != "" {
				writeFile(t, path, content)
			}
			applier, logs := &fakeApplier{}, &logSink{}
			w := NewWatcher(path, applier, WatcherOptions{Log: logs.logger()})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := w.Run(ctx)
			if err == nil {
				t.Fatal("Run succeeded with a bad initial config")
			}
			if !strings.Contains(err.Error(), "loading initial config") {
				t.Errorf("Run error = %v", err)
			}
			if name == "invalid" && !strings.Contains(err.Error(), "listeners[0].protocol: must be set") {
				t.Errorf("Run error %q does not name the field", err)
			}
			if applier.count() != 0 || w.Current() != nil {
				t.Error("a bad initial config was applied")
			}
			if logs.count("config rejected; no config is in effect yet") != 1 {
				t.Errorf("rejection not logged:\n%s", logs)
			}
		})
	}
}

// A missing file reads the same whether stat or open met it, so a file
// removed between the two is reported once.
func TestWatcherReadErrorWording(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone.yaml")
	w := NewWatcher(path, &fakeApplier{}, WatcherOptions{})
	_, statErr := os.Stat(path)
	_, openErr := os.ReadFile(path)
	a, b := w.readError(statErr), w.readError(openErr)
	if a.Error() != b.Error() || !strings.Contains(a.Error(), "reading config file "+path) || !errors.Is(a, fs.ErrNotExist) {
		t.Fatalf("stat: %v; open: %v", a, b)
	}
}
