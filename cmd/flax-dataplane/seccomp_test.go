package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeccompProfileInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seccomp", "flax")
	// An older profile is replaced.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "io_uring.json"), []byte(`{"old":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"seccomp-profile", "install", "--dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("install: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "installed "+filepath.Join(dir, "io_uring.json")) {
		t.Errorf("output %q", out.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "io_uring.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("seccomp", "io_uring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("installed profile differs from seccomp/io_uring.json")
	}
	fi, err := os.Stat(filepath.Join(dir, "io_uring.json"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("installed profile mode %v (%v), want 0644", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("install left %d files in %s, want only io_uring.json", len(entries), dir)
	}
	var p struct {
		DefaultAction string `json:"defaultAction"`
	}
	if err := json.Unmarshal(got, &p); err != nil || p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("installed profile: %v, defaultAction %q", err, p.DefaultAction)
	}
}

func TestSeccompProfilePrint(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"seccomp-profile", "print"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("seccomp", "io_uring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("print differs from seccomp/io_uring.json")
	}
}

func TestSeccompProfileErrors(t *testing.T) {
	for _, args := range [][]string{
		{"seccomp-profile"},
		{"seccomp-profile", "install"},
		{"seccomp-profile", "install", "--dir", t.TempDir(), "extra"},
		{"seccomp-profile", "remove"},
	} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	// A folder that cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"seccomp-profile", "install", "--dir", filepath.Join(file, "sub")}, &out, &errOut); err == nil {
		t.Error("install into a path below a file: no error")
	}
}
