package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// backendEnv carries "NAME@ADDRESS:PORT" to a re-executed test binary, making
// TestHelperBackend serve as that backend.
const backendEnv = "FLAX_IT_BACKEND"

// backendReady is the line a backend prints on stdout once it listens.
const backendReady = "flax-it-backend-ready"

// netns is a network namespace created for the test, joined to the host by a veth
// pair.
type netns struct {
	// name of the namespace, as `ip netns` knows it.
	name string
	// hostAddr is the host side's address; addrs are the namespace side's.
	hostAddr string
	addrs    []string
}

// requireNetAdmin skips the test unless it runs as root with the ip command.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: this test creates a network namespace for its backends and must run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: this test creates a network namespace for its backends with the ip command (iproute2), which is not installed")
	}
}

// ip runs the ip command with args and returns its combined output.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// newNetns creates a network namespace flax-it-<random> and a veth pair: host side
// 10.251.N.1/24, namespace side 10.251.N.2/24 and 10.251.N.3/24, both up, with no
// default route in the namespace. N is random among the /24s no host interface or
// route uses. The namespace and the veth are deleted when the test ends.
func newNetns(t *testing.T) *netns {
	t.Helper()
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	name := "flax-it-" + suffix
	// Interface names are at most 15 bytes.
	hostVeth, nsVeth := "flaxit"+suffix+"h", "flaxit"+suffix+"n"
	subnet, err := freeSubnet()
	if err != nil {
		t.Fatal(err)
	}
	n := &netns{
		name:     name,
		hostAddr: subnet + ".1",
		addrs:    []string{subnet + ".2", subnet + ".3"},
	}
	if _, err := ip("netns", "add", name); err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		// Deleting either end removes the pair; the host end is gone already if
		// creating the pair failed, hence no error for it.
		_, _ = ip("link", "del", hostVeth)
		if _, err := ip("netns", "del", name); err != nil {
			t.Errorf("delete network namespace: %v", err)
		}
	})
	steps := [][]string{
		{"link", "add", hostVeth, "type", "veth", "peer", "name", nsVeth, "netns", name},
		{"addr", "add", n.hostAddr + "/24", "dev", hostVeth},
		{"link", "set", hostVeth, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	}
	for _, a := range n.addrs {
		steps = append(steps, []string{"-n", name, "addr", "add", a + "/24", "dev", nsVeth})
	}
	steps = append(steps, []string{"-n", name, "link", "set", nsVeth, "up"})
	for _, s := range steps {
		if _, err := ip(s...); err != nil {
			t.Fatalf("set up network namespace %s: %v", name, err)
		}
	}
	// Nothing in the namespace may leave it: only the veth's own subnet is routed.
	routes, err := ip("-n", name, "-4", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(routes) != "" {
		t.Fatalf("network namespace %s has a default route: %s", name, routes)
	}
	t.Logf("network namespace %s: host %s (%s), namespace %s (%s)", name, n.hostAddr, hostVeth, strings.Join(n.addrs, ", "), nsVeth)
	return n
}

// freeSubnet returns "10.251.N" for a random N in 1..254 such that no address or
// route of the host lies in 10.251.N.0/24.
func freeSubnet() (string, error) {
	for range 50 {
		subnet := fmt.Sprintf("10.251.%d", 1+rand.IntN(254))
		prefix := subnet + ".0/24"
		addrs, err := ip("-4", "-o", "addr", "show", "to", prefix)
		if err != nil {
			return "", err
		}
		routes, err := ip("-4", "route", "show", "root", prefix)
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(addrs) == "" && strings.TrimSpace(routes) == "" {
			return subnet, nil
		}
	}
	return "", errors.New("no free /24 in 10.251.0.0/16 for the test's network namespace")
}

// startBackend runs an HTTP backend named name inside the namespace, listening on
// addr (IP:port), and waits until it answers from the host. It stops when the test
// ends.
func (n *netns) startBackend(t *testing.T, name, addr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.name, exe, "-test.run=^TestHelperBackend$")
	cmd.Env = append(os.Environ(), backendEnv+"="+name+"@"+addr)
	// The backend exits when its stdin closes: when the test closes stdinW, or
	// when the test process dies. (Not Pdeathsig: it fires when the OS thread
	// that started the child exits, and the io_uring workers end their locked
	// threads when the dataplane stops.)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = stdinR
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start backend %s: %v", name, err)
	}
	stdinR.Close()
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.TrimSpace(sc.Text()) == backendReady {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		defer stdinW.Close()
		select {
		case <-exited:
			t.Errorf("backend %s exited during the test: %s; stderr: %s", name, cmd.ProcessState, stderr.String())
			return
		default:
		}
		stdinW.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("backend %s exited before listening: %s; stderr: %s", name, cmd.ProcessState, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("backend %s did not listen within 30s; stderr: %s", name, stderr.String())
	}
	// The host reaches it through the veth.
	eventually(t, 10*time.Second, "backend "+name+" answers from the host", func() error {
		code, body, err := get(addr, "backend.test", "/")
		if err != nil {
			return err
		}
		if code != http.StatusOK || body != name {
			return fmt.Errorf("got %d %q, want 200 %q", code, body, name)
		}
		return nil
	})
}

// TestHelperBackend is not a test: it is the HTTP backend that startBackend runs
// inside the network namespace, by re-executing the test binary with backendEnv
// set. It answers every request with its name and exits when stdin closes.
func TestHelperBackend(t *testing.T) {
	spec := os.Getenv(backendEnv)
	if spec == "" {
		t.Skip("helper process of TestControllerAndDataplane; it runs only when re-executed by that test")
	}
	name, addr, ok := strings.Cut(spec, "@")
	if !ok {
		fmt.Fprintf(os.Stderr, "%s=%q: want NAME@ADDRESS:PORT\n", backendEnv, spec)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "backend %s: %v\n", name, err)
		os.Exit(2)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, name)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println(backendReady)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "backend %s: %v\n", name, err)
		os.Exit(2)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// httpClient sends each request on a new connection (so that a restarted dataplane
// is reached at once) and never through a proxy from the environment.
var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// get sends GET path with Host host to addr (IP:port) and returns the status code
// and body.
func get(addr, host, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("reading the body of GET %s%s: %w", addr, path, err)
	}
	return resp.StatusCode, string(body), nil
}

// eventually calls check until it returns nil, failing the test with the last error
// after timeout. It returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
