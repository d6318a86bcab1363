package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// markerEnv is set on every process the cluster starts, to the state folder, so that a
// later run (or `down`) finds and kills what a crashed run left behind.
const markerEnv = "FLAX_LOCALCLUSTER_DIR"

// process is a started child process in its own process group.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// startProcess starts argv with stdout and stderr appended to logPath. env is the full
// environment (the marker is added); dir is the working folder ("" keeps ours).
func startProcess(name, stateDir, logPath, dir string, env, argv []string) (*process, error) {
	return spawn(name, stateDir, logPath, dir, env, argv, false)
}

// startContainer is startProcess for a container: its output is written in the CRI
// logging format (see kubelet.go), after moving an earlier instance's log aside.
func startContainer(name, stateDir, logPath, dir string, env, argv []string) (*process, error) {
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > 0 {
		if err := os.Rename(logPath, logPath+".previous"); err != nil {
			return nil, err
		}
	}
	return spawn(name, stateDir, logPath, dir, env, argv, true)
}

func spawn(name, stateDir, logPath, dir string, env, argv []string, cri bool) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string{}, env...), markerEnv+"="+stateDir)
	cmd.Dir = dir
	var streams []*logStream
	if cri {
		l := &containerLog{f: logFile}
		streams = []*logStream{l.stream("stdout"), l.stream("stderr")}
		cmd.Stdout, cmd.Stderr = streams[0], streams[1]
		// Output is copied through pipes; a leftover child holding them open must not
		// keep Wait from returning once the process has ended.
		cmd.WaitDelay = 2 * time.Second
	} else {
		cmd.Stdout = logFile
		cmd.Stderr = logFile
	}
	// Own process group, so that stop reaches forked children; SIGKILL if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		for _, s := range streams {
			s.flush()
		}
		logFile.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode returns the exit code after the process ended (-1 when killed by a signal).
func (p *process) exitCode() int {
	return p.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Leftover members of the group (a child that ignored SIGTERM).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// killMarked kills every process whose environment carries the marker of stateDir.
func killMarked(stateDir string) int {
	want := []byte(markerEnv + "=" + stateDir + "\x00")
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		n++
	}
	return n
}

// runOut runs a short command and returns its stdout; the error carries stderr.
func runOut(dir string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// runIn runs a command with stdin and returns its combined output on error.
func runIn(stdin string, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
