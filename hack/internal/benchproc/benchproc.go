// Package benchproc holds what the benchmark programs under hack/ share: starting the
// processes under test pinned to a CPU (nginx from a generated config among them),
// stopping them, waiting for a listener, and reading a process tree's CPU time and
// resident memory from /proc.
package benchproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StartPinned starts name with args on one CPU (taskset execs in place, so the returned
// command's pid is the program's), in its own process group, its output on stderr.
func StartPinned(cpu int, name string, args ...string) (*exec.Cmd, error) {
	return StartPinnedTo(os.Stderr, cpu, name, args...)
}

// StartPinnedTo is StartPinned with the program's output going to out.
func StartPinnedTo(out io.Writer, cpu int, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

// StartNginx writes an nginx config into dir and starts nginx on one CPU with one
// worker process. main holds directives of the main context (at least the events
// block), http those of the http block (upstreams and servers); temporary files, the
// pid file and the error log go to dir.
func StartNginx(dir string, cpu int, main, http string) (*exec.Cmd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off; master_process on; worker_processes 1; user root;
pid %[1]s/nginx.pid; error_log %[1]s/error.log warn;
%[2]s
http { access_log off; client_body_temp_path %[1]s; proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
%[3]s
}
`, dir, main, http)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return StartPinned(cpu, "nginx", "-p", dir, "-c", path)
}

// Stop sends SIGTERM to cmd's process group, SIGKILL after 5 s, and waits for it.
func Stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Let the listening port go before the next proxy binds it.
	time.Sleep(200 * time.Millisecond)
}

// WaitListen waits up to 10 s for a TCP listener on addr.
func WaitListen(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after 10s", addr)
}

// TreeCPU returns the user+system CPU time of pid and all its descendants (nginx's
// workers are children of its master).
func TreeCPU(pid int) (time.Duration, error) {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var total time.Duration
	err := walkTree(pid, func(p int) error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return err
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * tick
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	return total, nil
}

// TreeRSS returns the resident memory (VmRSS) of pid and all its descendants, in bytes.
func TreeRSS(pid int) (int64, error) {
	var total int64
	err := walkTree(pid, func(p int) error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return err
		}
		rss, err := parseVMRSS(string(b))
		total += rss
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return total, nil
}

// parseVMRSS returns the VmRSS line of a /proc/PID/status file in bytes, 0 when there is
// none (a zombie, a kernel thread).
func parseVMRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, nil
}

// walkTree calls read for pid and each of its descendants. An error reading pid itself
// is returned; a descendant that is gone by the time it is read is skipped.
func walkTree(pid int, read func(pid int) error) error {
	pids := []int{pid}
	for len(pids) > 0 {
		p := pids[0]
		pids = pids[1:]
		if err := read(p); err != nil {
			if p == pid {
				return err
			}
			continue
		}
		kids, err := children(p)
		if err != nil {
			return err
		}
		pids = append(pids, kids...)
	}
	return nil
}

func children(pid int) ([]int, error) {
	var out []int
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	for _, t := range tasks {
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Split(bufio.ScanWords)
		for sc.Scan() {
			if c, err := strconv.Atoi(sc.Text()); err == nil {
				out = append(out, c)
			}
		}
		f.Close()
	}
	return out, nil
}

// PinSelf pins every thread of the calling process to cpu. Threads the Go runtime
// creates later inherit the mask of the thread that creates them, so the whole process
// stays on cpu.
func PinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to cpu %d: %w", tid, cpu, err)
		}
	}
	return nil
}
