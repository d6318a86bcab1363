package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// TCP states as /proc/net/tcp shows them (include/net/tcp_states.h).
const (
	tcpEstablished = 0x01
	tcpSynRecv     = 0x03
	tcpListen      = 0x0A
	tcpCloseWait   = 0x08
)

// proxyClosed tells whether a state of the proxy's side of a connection means the proxy
// closed it (or shut it down for writing): anything but established, half-open in the
// accept queue, or closed by the peer only.
func proxyClosed(state int) bool {
	return state != tcpEstablished && state != tcpSynRecv && state != tcpCloseWait
}

func listenPort() int {
	_, p := splitAddr(listenAddr)
	n, _ := strconv.Atoi(p)
	return n
}

// readSocketStates returns, for each IPv4 TCP socket whose local port is port (but the
// listener), its state keyed by the remote port.
func readSocketStates(port int) (map[int]int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSocketStates(f, port)
}

// parseSocketStates parses /proc/net/tcp: "sl local_address rem_address st ...", the
// addresses as hex IP:port, the state in hex.
func parseSocketStates(r io.Reader, port int) (map[int]int, error) {
	states := map[int]int{}
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			return nil, fmt.Errorf("/proc/net/tcp: short line %q", sc.Text())
		}
		lport, err1 := hexPort(f[1])
		rport, err2 := hexPort(f[2])
		st, err3 := strconv.ParseInt(f[3], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("/proc/net/tcp: bad line %q", sc.Text())
		}
		if lport != port || st == tcpListen {
			continue
		}
		states[rport] = int(st)
	}
	return states, sc.Err()
}

func hexPort(addr string) (int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0, fmt.Errorf("no port in %q", addr)
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 16)
	return int(p), err
}

// countListenSockets counts the sockets on the listen port that the proxy has not
// closed (a leak once the attacker has closed its side and the settle time passed).
func countListenSockets(port int) int {
	states, err := readSocketStates(port)
	if err != nil {
		return -1
	}
	n := 0
	for _, st := range states {
		if !proxyClosed(st) {
			n++
		}
	}
	return n
}
