package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLog runs the two streams of a container log over chunks as a process would
// write them and returns the file.
func writeLog(t *testing.T, chunks ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &containerLog{f: f}
	out, errs := l.stream("stdout"), l.stream("stderr")
	for i, c := range chunks {
		if i%2 == 0 {
			_, _ = out.Write([]byte(c))
		} else {
			_, _ = errs.Write([]byte(c))
		}
	}
	out.flush()
	errs.flush()
	f.Close()
	return path
}

func TestLogStreamWritesCRIEntries(t *testing.T) {
	path := writeLog(t, "one\ntw", "err line\n", "o\nlast without newline")
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	want := []struct{ stream, content string }{{"stdout", "one"}, {"stderr", "err line"}, {"stdout", "two"}, {"stdout", "last without newline"}}
	if len(lines) != len(want) {
		t.Fatalf("got %d entries, want %d:\n%s", len(lines), len(want), b)
	}
	for i, line := range lines {
		fields := strings.SplitN(line, " ", 4)
		if _, err := time.Parse(time.RFC3339Nano, fields[0]); err != nil {
			t.Errorf("entry %d: timestamp: %v", i, err)
		}
		if fields[1] != want[i].stream || fields[2] != "F" || fields[3] != want[i].content {
			t.Errorf("entry %d = %q, want stream %s, F, %q", i, line, want[i].stream, want[i].content)
		}
	}
}

func TestLogStreamSplitsLongLines(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+10)
	path := writeLog(t, long+"\n")
	var got bytes.Buffer
	if err := copyLogs(context.Background(), &got, path, logQuery{tailLines: -1}, nil); err != nil {
		t.Fatal(err)
	}
	if got.String() != long+"\n" {
		t.Fatalf("long line came back as %d bytes, want %d", got.Len(), len(long)+1)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), " P "); n != 1 {
		t.Fatalf("%d partial entries, want 1", n)
	}
}

func TestCopyLogsQuery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	content := "2026-11-25T10:00:00.5Z stdout F first\n" +
		"2026-11-25T10:00:01Z stderr F second\n" +
		"2026-11-25T10:00:02Z stdout P thi\n" +
		"2026-11-25T10:00:02.1Z stdout F rd\n" +
		"garbage line\n" +
		"2026-11-25T10:00:03Z stdout F fourth\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 4, 0, time.UTC)
	cases := []struct {
		query string
		want  string
	}{
		{"", "first\nsecond\nthird\nfourth\n"},
		{"tailLines=2", "third\nfourth\n"},
		{"tailLines=0", ""},
		{"sinceTime=2026-11-25T10:00:01Z", "second\nthird\nfourth\n"},
		{"sinceSeconds=2", "third\nfourth\n"},
		{"limitBytes=8", "first\nse"},
		{"timestamps=true&tailLines=1", "2026-11-25T10:00:03Z fourth\n"},
	}
	for _, c := range cases {
		v, _ := url.ParseQuery(c.query)
		q, err := parseLogQuery(v, now)
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		var got bytes.Buffer
		if err := copyLogs(context.Background(), &got, path, q, nil); err != nil {
			t.Fatal(err)
		}
		if got.String() != c.want {
			t.Errorf("%q: got %q, want %q", c.query, got.String(), c.want)
		}
	}
	for _, bad := range []string{"tailLines=-1", "sinceSeconds=0", "sinceTime=yesterday", "follow=maybe", "limitBytes=x"} {
		v, _ := url.ParseQuery(bad)
		if _, err := parseLogQuery(v, now); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCopyLogsFollowsUntilTheContainerEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &containerLog{f: f}
	out := l.stream("stdout")
	_, _ = out.Write([]byte("before\n"))
	running := make(chan bool, 1)
	running <- true
	alive := func() bool {
		select {
		case v := <-running:
			running <- v
			return v
		default:
			return true
		}
	}
	done := make(chan string)
	go func() {
		var got bytes.Buffer
		_ = copyLogs(context.Background(), &got, path, logQuery{follow: true, tailLines: -1}, alive)
		done <- got.String()
	}()
	time.Sleep(300 * time.Millisecond)
	_, _ = out.Write([]byte("after\n"))
	<-running
	running <- false
	select {
	case got := <-done:
		if got != "before\nafter\n" {
			t.Fatalf("followed %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after the container ended")
	}
	f.Close()
}
