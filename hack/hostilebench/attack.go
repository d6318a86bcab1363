package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

type attack struct {
	name string
	desc func(c *config) string
	run  func(ctx context.Context, c *config) outcome
}

// outcome is what one attack saw of its own connections.
type outcome struct {
	attempted   int           // connections tried
	failed      int           // connections that could not be opened
	released    int           // connections the proxy closed or answered before the bound
	lastRelease time.Duration // the longest time from connect to release among those
	open        int           // connections still open, unanswered, at the bound
	attackerEnd bool          // the attacker closes its own connections (one-byte): nothing to release
}

var allAttacks = []attack{
	{
		"slowloris",
		func(c *config) string {
			return fmt.Sprintf("%d connections send a request head one byte every %s", c.conns, c.interval)
		},
		func(ctx context.Context, c *config) outcome {
			return trickle(ctx, c.conns, c.interval, "GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
		},
	},
	{
		"slow-body",
		func(c *config) string {
			return fmt.Sprintf("%d POSTs with Content-Length 1000000 (under nginx's 1 MiB client_max_body_size) send one body byte every %s", c.conns, c.interval)
		},
		func(ctx context.Context, c *config) outcome {
			return trickle(ctx, c.conns, c.interval, "POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 1000000\r\n\r\n")
		},
	},
	{
		"silent",
		func(c *config) string {
			return fmt.Sprintf("%d requests routed to a backend that accepts and never answers", c.conns)
		},
		func(ctx context.Context, c *config) outcome {
			return hold(ctx, c.conns, 0, "GET /silent HTTP/1.1\r\nHost: bench\r\n\r\n", true)
		},
	},
	{
		"stalled",
		func(c *config) string {
			return fmt.Sprintf("%d requests for a %s response, never read (4 KiB receive buffer)", c.stalledConns, mib(c.largeSize))
		},
		func(ctx context.Context, c *config) outcome {
			return hold(ctx, c.stalledConns, 4096, "GET /large?n="+strconv.FormatInt(c.largeSize, 10)+" HTTP/1.1\r\nHost: bench\r\n\r\n", false)
		},
	},
	{
		"one-byte",
		func(c *config) string {
			return fmt.Sprintf("%d connections each send one byte and close", c.floodConns)
		},
		oneByte,
	},
	{
		"conn-flood",
		func(c *config) string {
			return fmt.Sprintf("%d idle connections held open (cap %d + %d; nginx worker_connections %d)", c.capConns+c.overCap, c.capConns, c.overCap, c.capConns)
		},
		func(ctx context.Context, c *config) outcome {
			return hold(ctx, c.capConns+c.overCap, 0, "", true)
		},
	},
}

// conn is one attacker connection and when the proxy released it.
type conn struct {
	c        net.Conn
	port     int
	start    time.Time
	released atomic.Int64 // time from start to release in ns; 0: not (yet)
	seen     bool         // the proxy's side was in the socket table once (watcher only)
}

func (a *conn) release() {
	d := time.Since(a.start)
	if d <= 0 {
		d = 1
	}
	a.released.CompareAndSwap(0, int64(d))
}

const dialers = 64

// dialMany opens n connections to the proxy, dialers at a time, each with a 1 s connect
// timeout, a receive buffer of rcvbuf bytes when not 0, and head written once open. It
// stops early when ctx is done.
func dialMany(ctx context.Context, n, rcvbuf int, head string) (conns []*conn, failed int) {
	d := net.Dialer{Timeout: time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", listenAddr)
				if err == nil && head != "" {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err = io.WriteString(c, head); err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					failed++
				} else {
					conns = append(conns, &conn{c: c, port: c.LocalAddr().(*net.TCPAddr).Port, start: time.Now()})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, failed
}

// readUntilReleased marks a released when the proxy sends it anything or closes it.
func readUntilReleased(a *conn) {
	var b [1]byte
	if _, err := a.c.Read(b[:]); err == nil || !isLocalClose(err) {
		a.release()
	}
}

// isLocalClose tells an error from reading a connection this program closed.
func isLocalClose(err error) bool { return errors.Is(err, net.ErrClosed) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hold opens n connections, writes head on each and keeps them until ctx is done,
// reading them when read is set (a response or a close releases them), and watching
// the proxy's side of each in the socket table.
func hold(ctx context.Context, n, rcvbuf int, head string, read bool) outcome {
	conns, failed := dialMany(ctx, n, rcvbuf, head)
	stop := watch(listenPort(), conns)
	if read {
		for _, a := range conns {
			go readUntilReleased(a)
		}
	}
	<-ctx.Done()
	return finish(n, failed, conns, stop)
}

// trickle opens n connections, writes head on each and then one more byte every
// interval until ctx is done or the proxy releases the connection.
func trickle(ctx context.Context, n int, interval time.Duration, head string) outcome {
	conns, failed := dialMany(ctx, n, 0, head)
	stop := watch(listenPort(), conns)
	for _, a := range conns {
		go readUntilReleased(a)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			for _, a := range conns {
				if a.released.Load() != 0 {
					continue
				}
				a.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := a.c.Write([]byte{'a'}); err != nil && !isTimeout(err) {
					a.release()
				}
			}
		}
	}
	return finish(n, failed, conns, stop)
}

// finish stops the watcher, closes the connections and counts them.
func finish(n, failed int, conns []*conn, stopWatch func()) outcome {
	stopWatch()
	o := outcome{attempted: n, failed: failed}
	for _, a := range conns {
		if d := time.Duration(a.released.Load()); d > 0 {
			o.released++
			o.lastRelease = max(o.lastRelease, d)
		} else {
			o.open++
		}
		a.c.Close()
	}
	return o
}

// watch polls the socket table every 100 ms and releases each connection whose proxy
// side is closing or gone (which also catches a proxy closing a connection whose
// receive window is full, where no FIN reaches the attacker).
func watch(port int, conns []*conn) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			states, err := readSocketStates(port)
			if err == nil {
				for _, a := range conns {
					if a.released.Load() != 0 {
						continue
					}
					st, ok := states[a.port]
					if ok {
						a.seen = true
					}
					if (ok && proxyClosed(st)) || (!ok && a.seen) {
						a.release()
					}
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// oneByte opens c.floodConns connections, dialers at a time, each writing one byte and
// closing, until all are done or ctx is.
func oneByte(ctx context.Context, c *config) outcome {
	d := net.Dialer{Timeout: time.Second}
	var next, attempted, failed atomic.Int64
	var wg sync.WaitGroup
	for range min(dialers, c.floodConns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(c.floodConns) && ctx.Err() == nil {
				attempted.Add(1)
				cn, err := d.DialContext(ctx, "tcp", listenAddr)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = cn.Write([]byte{'G'}) // a proxy that closed first is no failure of the attacker
				cn.Close()
			}
		}()
	}
	wg.Wait()
	// Keep the bound: the table's probe rate is over the attack's whole duration.
	<-ctx.Done()
	return outcome{attempted: int(attempted.Load()), failed: int(failed.Load()), attackerEnd: true}
}

// probes is a normal client: one GET / every 100 ms, each on a new connection.
type probes struct {
	ok, total int
	done      chan struct{}
}

func startProbes(ctx context.Context, timeout time.Duration) *probes {
	p := &probes{done: make(chan struct{})}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			p.total++
			if probe(client) == nil {
				p.ok++
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

// wait waits for the last probe (at most one probe timeout after the attack's bound).
func (p *probes) wait() (ok, total int) {
	<-p.done
	return p.ok, p.total
}

func probe(client *http.Client) error {
	resp, err := client.Get("http://" + listenAddr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// probeOnce checks that the proxy answers, retrying for up to 5 s.
func probeOnce(timeout time.Duration) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := probe(client)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sampler reads a process tree's RSS every 100 ms and keeps the largest.
type sampler struct {
	peak atomic.Int64
	done chan struct{}
	end  chan struct{}
}

func startSampler(pid int) *sampler {
	s := &sampler{done: make(chan struct{}), end: make(chan struct{})}
	go func() {
		defer close(s.end)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := benchproc.TreeRSS(pid); err == nil && rss > s.peak.Load() {
				s.peak.Store(rss)
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() int64 {
	close(s.done)
	<-s.end
	return s.peak.Load()
}
