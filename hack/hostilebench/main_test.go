package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A /proc/net/tcp excerpt: the listener on 18180 (0x4704), a connection from port 40000
// (0x9C40) established, one from 40001 the proxy closed (FIN_WAIT2), one from 40002 the
// peer closed (CLOSE_WAIT), one from 40003 waiting in the accept queue (SYN_RECV), and an
// unrelated socket on 18190 (0x470E).
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4704 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4704 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:4704 0100007F:9C41 05 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:4704 0100007F:9C42 08 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:4704 0100007F:9C43 03 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:470E 0100007F:9C44 01 00000000:00000000 00:00000000 00000000     0        0 1006 1 0000000000000000 20 4 30 10 -1
`

func TestParseSocketStates(t *testing.T) {
	states, err := parseSocketStates(strings.NewReader(procNetTCP), 18180)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int{40000: tcpEstablished, 40001: 0x05, 40002: tcpCloseWait, 40003: tcpSynRecv}
	if len(states) != len(want) {
		t.Fatalf("states = %v, want %v (no listener, no other port)", states, want)
	}
	for port, st := range want {
		if states[port] != st {
			t.Errorf("port %d: state %#x, want %#x", port, states[port], st)
		}
	}
	closed := map[int]bool{40000: false, 40001: true, 40002: false, 40003: false}
	for port, c := range closed {
		if proxyClosed(states[port]) != c {
			t.Errorf("port %d (state %#x): proxyClosed = %v, want %v", port, states[port], !c, c)
		}
	}
	if _, err := parseSocketStates(strings.NewReader("header\n 0: 0100007F:zz 00000000:0000 0A\n"), 18180); err == nil {
		t.Error("a malformed port parsed without error")
	}
}

func TestFormatRelease(t *testing.T) {
	for _, tc := range []struct {
		o    outcome
		want string
	}{
		{outcome{attempted: 10, released: 10, lastRelease: 1234 * time.Millisecond}, "all 10, last after 1.2s"},
		{outcome{attempted: 10, released: 10, lastRelease: 23456 * time.Microsecond}, "all 10, last after 23ms"},
		{outcome{attempted: 10, open: 10}, "open (10/10)"},
		{outcome{attempted: 10, released: 4, open: 5, failed: 1, lastRelease: 3 * time.Second}, "4/9, last after 3s; 5 open; 1 failed to connect"},
		{outcome{attempted: 10, failed: 10}, "none connected; 10 failed to connect"},
		{outcome{attempted: 5000, failed: 2, attackerEnd: true}, "n/a (attacker closes; 4998 sent); 2 failed to connect"},
	} {
		if got := formatRelease(tc.o); got != tc.want {
			t.Errorf("formatRelease(%+v) = %q, want %q", tc.o, got, tc.want)
		}
	}
}

func TestFormatTables(t *testing.T) {
	c := &config{duration: 8 * time.Second, settle: 3 * time.Second, conns: 500, interval: 2 * time.Second, probeTimeout: 2 * time.Second}
	out := formatTables(c, []result{
		{
			attack: "slowloris", proxy: "flax-uring", rssIdle: 10 << 20, rssPeak: 30 << 20, rssAfter: 12 << 20, probeOK: 9, probeTotal: 10,
			release: outcome{attempted: 500, open: 500},
		},
		{attack: "slowloris", proxy: "nginx", skipped: "a|b"},
		{attack: "silent", proxy: "nginx", probeOK: 0, probeTotal: 0, socketsLeft: 3, release: outcome{attempted: 500, released: 500, lastRelease: time.Second}},
	})
	for _, want := range []string{
		"### slowloris: 500 connections send a request head one byte every 2s\n",
		"| flax-uring | 10.0 MiB | 30.0 MiB | 12.0 MiB | 90% (9/10) | open (500/500) | 0 |\n",
		"| nginx | skipped: a/b | | | | | |\n",
		"### silent: 500 requests routed to a backend",
		"| nginx | 0.0 MiB | 0.0 MiB | 0.0 MiB | - | all 500, last after 1s | 3 |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "| proxy | RSS idle"); n != 2 {
		t.Errorf("%d table headers, want one per attack (2):\n%s", n, out)
	}
}

// TestWatchSeesCloseBehindFullWindow: a server fills a client's receive buffer, which
// never reads, and closes; its FIN cannot reach the client, but the watcher sees the
// server's side leave the established state. A connection the server keeps stays open.
func TestWatchSeesCloseBehindFullWindow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kept := make(chan net.Conn, 1)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 1 {
				kept <- c
				continue
			}
			// Write until the client's window and this side's send buffer are full.
			buf := make([]byte, 64<<10)
			for {
				c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Write(buf); err != nil {
					break
				}
			}
			c.Close()
		}
	}()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	var conns []*conn
	for range 2 {
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, &conn{c: c, port: c.LocalAddr().(*net.TCPAddr).Port, start: time.Now()})
		time.Sleep(50 * time.Millisecond) // accepted in this order
	}
	stop := watch(ln.Addr().(*net.TCPAddr).Port, conns)
	deadline := time.Now().Add(10 * time.Second)
	for conns[0].released.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // three more polls of the socket table
	stop()
	if conns[0].released.Load() == 0 {
		t.Error("the connection the server closed behind a full window was not seen released")
	}
	if conns[1].released.Load() != 0 {
		t.Error("the connection the server keeps was seen released")
	}
	(<-kept).Close()
}
