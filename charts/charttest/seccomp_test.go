package charttest

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
)

// seccompProfile is the OCI form of a seccomp profile, as the kubelet hands a Localhost
// profile to the runtime.
type seccompProfile struct {
	DefaultAction   string `json:"defaultAction"`
	DefaultErrnoRet *int   `json:"defaultErrnoRet"`
	Syscalls        []struct {
		Names    []string `json:"names"`
		Action   string   `json:"action"`
		ErrnoRet *int     `json:"errnoRet"`
		Args     []struct {
			Index    uint   `json:"index"`
			Value    uint64 `json:"value"`
			ValueTwo uint64 `json:"valueTwo"`
			Op       string `json:"op"`
		} `json:"args"`
		Comment string `json:"comment"`
	} `json:"syscalls"`
}

// TestSeccompProfile checks the profile the chart's init container installs (embedded in
// flax-dataplane, `seccomp-profile install`): it denies by default, allows io_uring and
// what a Go program and the dataplane need, and keeps namespace creation and privileged
// syscalls out.
func TestSeccompProfile(t *testing.T) {
	raw := readFile(t, filepath.Join(repoRoot(t), "cmd", "flax-dataplane", "seccomp", "io_uring.json"))
	var p seccompProfile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("cmd/flax-dataplane/seccomp/io_uring.json: %v", err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("defaultAction %s, want SCMP_ACT_ERRNO", p.DefaultAction)
	}
	allowed := map[string]bool{}
	conditional := map[string]bool{}
	for _, s := range p.Syscalls {
		for _, n := range s.Names {
			if s.Action == "SCMP_ACT_ALLOW" && len(s.Args) == 0 {
				if allowed[n] {
					t.Errorf("%s allowed twice", n)
				}
				allowed[n] = true
			} else {
				conditional[n] = true
			}
		}
	}
	need := []string{
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		// Go runtime and the dataplane's sockets, epoll (netpoll), threads and pinning.
		"futex", "mmap", "munmap", "madvise", "mprotect", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
		"sigaltstack", "gettid", "tgkill", "exit", "exit_group", "sched_yield", "sched_getaffinity",
		"sched_setaffinity", "nanosleep", "getrandom", "epoll_create1", "epoll_ctl", "epoll_pwait",
		"eventfd2", "pipe2", "fcntl", "read", "write", "openat", "close", "accept4", "bind", "listen",
		"connect", "setsockopt", "getsockopt", "getsockname", "getpeername", "recvfrom", "sendto",
		"recvmsg", "sendmsg", "shutdown", "prlimit64", "uname",
	}
	for _, n := range need {
		if !allowed[n] {
			t.Errorf("%s is not allowed unconditionally", n)
		}
	}
	for _, n := range []string{"clone", "socket"} {
		if !conditional[n] {
			t.Errorf("%s must be allowed with an argument check", n)
		}
	}
	for _, n := range []string{
		"mount", "umount2", "unshare", "setns", "ptrace", "bpf", "kexec_load", "init_module",
		"reboot", "swapon", "pivot_root", "keyctl", "add_key", "perf_event_open", "open_by_handle_at", "userfaultfd", "clone3",
	} {
		if allowed[n] {
			t.Errorf("%s must not be allowed", n)
		}
	}

	r := decodeRendering(t, render(t, false))
	sp := r.daemonSet.Spec.Template.Spec.Containers[1].SecurityContext.SeccompProfile
	if sp == nil || sp.LocalhostProfile == nil || !slices.Contains([]string{"flax/io_uring.json"}, *sp.LocalhostProfile) {
		t.Errorf("dataplane localhostProfile %+v", sp)
	}
}
