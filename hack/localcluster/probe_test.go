package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestExecProbeRunsTheImageBinary checks that an exec probe runs its command as the
// container would: /usr/local/bin/flax-dataplane of the Flax image is bin/flax-dataplane.
func TestExecProbeRunsTheImageBinary(t *testing.T) {
	binDir, podDir := t.TempDir(), t.TempDir()
	// The stand-in binary exits with the status its third argument names.
	script := "#!/bin/sh\n[ \"$1\" = probe ] && [ \"$PROBE_ENV\" = set ] && exit \"$2\"\nexit 9\n"
	if err := os.WriteFile(filepath.Join(binDir, "flax-dataplane"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &podRuntime{
		a:   &nodeAgent{c: &cluster{cfg: &config{binDir: binDir, dir: podDir}}},
		pod: &corev1.Pod{}, dir: podDir, ip: netip.MustParseAddr("127.0.0.1"),
		ctx: context.Background(),
	}
	cs := &containerState{
		spec: corev1.Container{Name: "dataplane", Image: "ghcr.io/flaxlb/flax:v1", Command: []string{"/usr/local/bin/flax-dataplane"}},
		env:  []string{"PROBE_ENV=set", "PATH=/usr/bin:/bin"},
	}
	probe := func(code string) error {
		pr := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
			Command: []string{"/usr/local/bin/flax-dataplane", "probe", code},
		}}}
		return r.probeOnce(cs, pr, 5*time.Second)
	}
	if err := probe("0"); err != nil {
		t.Errorf("exec probe of the mapped binary exiting 0: %v", err)
	}
	if err := probe("1"); err == nil {
		t.Error("exec probe of the mapped binary exiting 1 passed")
	}
}
