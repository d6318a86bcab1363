//go:build linux

package uring

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleConnectionMemory measures the engine's userland memory per idle
// keep-alive connection (set FLAX_CONNMEM=1; it opens 15,000 connections).
// A child process holds the client ends, because a process here may open
// 20,000 files: it opens connections in steps, each makes one request (so
// it has borrowed and returned an Exchange) and stays open, and the parent
// records its heap and RSS after each step.
func TestIdleConnectionMemory(t *testing.T) {
	if os.Getenv("FLAX_CONNMEM") == "" {
		t.Skip("set FLAX_CONNMEM=1 to measure idle connection memory")
	}
	_, addr := benchSetup(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionClients$", "-test.v")
	cmd.Env = append(os.Environ(), "FLAX_CONNMEM_CLIENT="+addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var prevN int
	var prevHeap, prevRSS uint64
	for sc.Scan() {
		line := sc.Text()
		n, ok := strings.CutPrefix(line, "OPEN ")
		if !ok {
			if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "---") {
				t.Log(line)
			}
			continue
		}
		conns, _ := strconv.Atoi(n)
		time.Sleep(300 * time.Millisecond) // let the worker settle
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := vmRSS(t)
		heap := ms.HeapInuse
		if prevN > 0 {
			d := float64(conns - prevN)
			t.Logf("%6d idle connections: heap in use %6.1f MiB, RSS %6.1f MiB; slope since %d: heap %.0f B/conn, RSS %.0f B/conn",
				conns, float64(heap)/(1<<20), float64(rss)/(1<<20), prevN,
				float64(heap-prevHeap)/d, float64(int64(rss)-int64(prevRSS))/d)
		} else {
			t.Logf("%6d idle connections: heap in use %6.1f MiB, RSS %6.1f MiB", conns, float64(heap)/(1<<20), float64(rss)/(1<<20))
		}
		prevN, prevHeap, prevRSS = conns, heap, rss
		fmt.Fprintln(stdin, "next")
	}
}

func vmRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestIdleConnectionClients is the child of TestIdleConnectionMemory.
func TestIdleConnectionClients(t *testing.T) {
	addr := os.Getenv("FLAX_CONNMEM_CLIENT")
	if addr == "" {
		t.Skip("helper process")
	}
	in := bufio.NewReader(os.Stdin)
	req := []byte("GET /direct HTTP/1.1\r\nHost: x\r\n\r\n")
	var conns []net.Conn
	buf := make([]byte, 4096)
	for _, target := range []int{1000, 5000, 10000, 15000} {
		for len(conns) < target {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := 0
			for !strings.Contains(string(buf[:got]), "direct body\n") {
				n, err := c.Read(buf[got:])
				if err != nil {
					t.Fatalf("connection %d: %v", len(conns), err)
				}
				got += n
			}
			conns = append(conns, c)
		}
		fmt.Printf("OPEN %d\n", len(conns))
		if _, err := in.ReadString('\n'); err != nil {
			break
		}
	}
	// The parent has measured the last step: exiting closes stdout, which
	// ends the parent's loop (waiting for stdin to close instead would
	// deadlock, the parent closes it only after the loop).
}
