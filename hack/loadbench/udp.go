package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

// The -udp benchmark: UDP datagrams through each proxy to a UDP echo backend.
// flax serves a UDP listener (run --config, one worker) on its io_uring and on
// its epoll loops (the UDP driver follows --engine: uring or netpoll); nginx
// forwards with its stream module (listen ... udp; proxy_pass; the Debian
// package libnginx-mod-stream). The backend is this program (-serve-udp-echo)
// pinned to the load CPU, and the load is this process pinned there too:
// udpClients connected sockets, each keeping udpWindow datagrams of
// udpPayload bytes in flight and sending one more for every reply. A reply
// not back within a second counts as lost and its window is sent again. The
// figures are exchanges (a request datagram and its reply, two datagrams
// through the proxy) per second, the proxy's CPU per exchange, and exchanges
// per CPU-second of the proxy, with ratios to nginx's.

// useUDP is -udp.
var useUDP bool

const (
	udpClients = 32
	udpWindow  = 4
	udpPayload = 100
)

// nginxStreamModule is the Debian path of nginx's stream module.
const nginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// serveUDPEcho answers every datagram on addr with itself, from a few
// goroutines, until the process ends.
func serveUDPEcho(addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = c.WriteTo(buf[:n], from)
			}
		}()
	}
	wg.Wait()
	return nil
}

// runUDP is the -udp benchmark.
func runUDP(flaxBin string, d time.Duration, n, proxyCPU, loadCPU int, only string) error {
	flaxBin, dir, err := setUp(flaxBin, "nginx", "taskset")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(nginxStreamModule); err != nil {
		return fmt.Errorf("nginx's stream module (apt-get install libnginx-mod-stream): %w", err)
	}
	if err := pinForHandshakes(loadCPU); err != nil {
		return err
	}
	useUDP = true
	scheme = "udp"
	backendDesc = "backend a Go UDP echo on the load CPU"
	const backend = "127.0.0.1:18090"
	const listen = "127.0.0.1:18080"
	self, err := os.Executable()
	if err != nil {
		return err
	}
	be, err := benchproc.StartPinned(loadCPU, self, "-serve-udp-echo", backend)
	if err != nil {
		return fmt.Errorf("start backend: %w", err)
	}
	defer benchproc.Stop(be)
	if err := udpWait(backend); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	cfg, err := writeFlaxConfig(dir, "flax-udp.yaml", listen, backend, `listeners:
- name: udp
  address: 127.0.0.1
  port: {port}
  protocol: UDP
  udpRoute: {name: bench, backends: [{backendGroup: be, weight: 1}]}
backendGroups:
- name: be
  endpoints: [{endpoint}]
`)
	if err != nil {
		return err
	}
	flax := flaxFromConfig(flaxBin, cfg, proxyCPU)
	flax[1].name = "flax-epoll" // the netpoll engine's UDP listeners are on epoll
	proxies := append(flax, proxy{"nginx", func(dir string, l, b string) (*exec.Cmd, error) {
		return benchproc.StartNginx(filepath.Join(dir, "nginx"), proxyCPU, "load_module "+nginxStreamModule+";\n"+nginxEvents+`
stream { server { listen `+l+` udp reuseport; proxy_pass `+b+`; proxy_timeout 60s; } }`, "")
	}})
	runRounds(picked(proxies, only), dir, listen, backend, d, n, udpClients, proxyCPU, loadCPU, "nginx")
	return nil
}

// measureUDP is measure for -udp, once the proxy (cmd) runs.
func measureUDP(r result, cmd *exec.Cmd, listen string, d time.Duration) result {
	if err := udpWait(listen); err != nil {
		r.skipped = err.Error()
		return r
	}
	if st := udpLoad(listen, time.Second); st.replies == 0 {
		r.skipped = fmt.Sprintf("no reply while warming up: %v", st.err)
		return r
	}
	cpu0, err := benchproc.TreeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	st := udpLoad(listen, d)
	cpu1, err := benchproc.TreeCPU(cmd.Process.Pid)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	r.requests = float64(st.replies)
	r.rps = float64(st.replies) / st.elapsed.Seconds()
	if st.replies > 0 {
		r.cpuPerReq = time.Duration(float64(cpu1-cpu0) / float64(st.replies))
	}
	if st.lost > 0 || st.err != nil {
		r.errors = fmt.Sprintf("%d lost", st.lost)
		if st.err != nil {
			r.errors += fmt.Sprintf(", %v", st.err)
		}
	}
	return r
}

// udpStats is one run of udpLoad.
type udpStats struct {
	replies, lost int64
	elapsed       time.Duration
	err           error
}

// udpLoad sends datagrams to addr for d from udpClients sockets, each with
// udpWindow datagrams in flight.
func udpLoad(addr string, d time.Duration) udpStats {
	var replies, lost atomic.Int64
	var firstErr atomic.Pointer[error]
	fail := func(err error) { firstErr.CompareAndSwap(nil, &err) }
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range udpClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			msg, buf := make([]byte, udpPayload), make([]byte, 1<<16)
			send := func(n int) bool {
				for range n {
					if _, err := c.Write(msg); err != nil {
						fail(err)
						return false
					}
				}
				return true
			}
			if !send(udpWindow) {
				return
			}
			inFlight := udpWindow
			for time.Now().Before(end) {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						fail(err)
						return
					}
					lost.Add(int64(inFlight))
					if !send(udpWindow) {
						return
					}
					inFlight = udpWindow
					continue
				}
				replies.Add(1)
				if !send(1) {
					return
				}
			}
		}()
	}
	wg.Wait()
	st := udpStats{replies: replies.Load(), lost: lost.Load(), elapsed: time.Since(start)}
	if p := firstErr.Load(); p != nil {
		st.err = *p
	}
	return st
}

// udpWait waits until a datagram sent to addr gets a reply (the echo, or a
// proxy in front of it), for up to 10 s.
func udpWait(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, _ = c.Write([]byte("ping"))
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no UDP reply from %s within 10s", addr)
}

// udpPortFree fails when some process has a UDP socket bound to addr.
func udpPortFree(addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("UDP %s is in use by another process (another benchmark run?): %w", addr, err)
	}
	return c.Close()
}
