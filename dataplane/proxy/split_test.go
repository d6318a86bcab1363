package proxy

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	splitRequest = "POST /up?x=1 HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n" +
		"5\r\nhello\r\n6;e=1\r\n world\r\n0\r\nT: v\r\n\r\n" +
		"GET /two HTTP/1.1\r\nHost: example.com\r\n\r\n"
	splitResponse = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: s\r\n\r\n" +
		"3\r\nabc\r\n0\r\n\r\n"
	splitResponse2 = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwxyz"
)

// runSplit feeds the script in the given pieces and returns what each side
// received.
func runSplit(t *testing.T, reqCuts, respCuts []int) (string, string, string) {
	h := newHarness(t)
	h.autoConnect = true
	feed := func(data string, cuts []int, fn func(string)) {
		prev := 0
		for _, c := range cuts {
			fn(data[prev:c])
			prev = c
		}
		fn(data[prev:])
	}
	feed(splitRequest, reqCuts, func(p string) {
		if p != "" {
			h.client(p)
		}
	})
	feed(splitResponse, respCuts, func(p string) {
		if p != "" {
			h.upstream(p)
		}
	})
	feed(splitResponse2, respCuts[:0], h.upstream)
	return h.takeClient(), h.takeUpstream(), h.takeLog()
}

func TestSplitAtEveryByte(t *testing.T) {
	wantC, wantU, _ := runSplit(t, nil, nil)
	if !strings.HasPrefix(wantU, "POST /up?x=1 HTTP/1.1\r\n") || !strings.Contains(wantU, "GET /two HTTP/1.1\r\n") ||
		!strings.Contains(wantU, "5\r\nhello\r\n6;e=1\r\n world\r\n0\r\nT: v\r\n\r\n") {
		t.Fatalf("unsplit run sent upstream %q", wantU)
	}
	if wantC != "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: s\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+splitResponse2 {
		t.Fatalf("unsplit run sent the client %q", wantC)
	}
	for i := 1; i < len(splitRequest); i++ {
		c, u, _ := runSplit(t, []int{i}, nil)
		if c != wantC || u != wantU {
			t.Fatalf("request split at %d: client %q upstream %q", i, c, u)
		}
	}
	for i := 1; i < len(splitResponse); i++ {
		c, u, _ := runSplit(t, nil, []int{i})
		if c != wantC || u != wantU {
			t.Fatalf("response split at %d: client %q upstream %q", i, c, u)
		}
	}
	every := func(n int) []int {
		c := make([]int, n-1)
		for i := range c {
			c[i] = i + 1
		}
		return c
	}
	c, u, _ := runSplit(t, every(len(splitRequest)), every(len(splitResponse)))
	if c != wantC || u != wantU {
		t.Fatalf("byte-at-a-time: client %q upstream %q", c, u)
	}
}

// TestFlowControl streams large bodies both ways through small reads and
// sends that complete late, with random pacing, and checks every byte.
func TestFlowControl(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 300<<10)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	for round := range 20 {
		h := newHarness(t)
		h.autoSend = false
		h.autoConnect = true
		reqHead := "PUT /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: 307200\r\n\r\n"
		respHead := "HTTP/1.1 200 OK\r\nContent-Length: 307200\r\n\r\n"
		cin := []byte(reqHead + string(body))
		uin := []byte(respHead + string(body))
		early := round%2 == 1 // the response streams while the request body does
		for steps := 0; ; steps++ {
			if steps > 1e6 {
				x := h.s.x
				t.Fatalf("round %d: no progress: cin %d uin %d wantC %v wantU %v phase %d up %d in %+v up %+v csends %d usends %d log %s",
					round, len(cin), len(uin), h.s.WantClientData(), h.s.WantUpstreamData(), x.phase, x.upState,
					[]int{x.in.r, x.in.ready, x.in.proc, x.in.w}, []int{x.up.r, x.up.ready, x.up.proc, x.up.w}, x.csends.n, x.usends.n, h.takeLog()[:200])
			}
			moved := false
			if len(cin) > 0 && h.s.WantClientData() {
				n := min(len(cin), 1+rng.IntN(40000))
				k := h.s.ClientData(cin[:n])
				cin = cin[k:]
				moved = moved || k > 0
			}
			h.drain()
			// The response completes only after the request body (an
			// early complete response would end the connection).
			if limit := len(uin) - len(cin); limit > 0 && h.s.WantUpstreamData() && (early || len(cin) == 0) {
				n := min(limit, 1+rng.IntN(40000))
				k := h.s.UpstreamData(uin[:n])
				uin = uin[k:]
				moved = moved || k > 0
			}
			h.drain()
			if len(h.pendingC) > 0 && rng.IntN(2) == 0 {
				h.completeOne(Client)
				moved = true
			}
			if len(h.pendingU) > 0 && rng.IntN(2) == 0 {
				h.completeOne(Upstream)
				moved = true
			}
			h.drain()
			if len(cin) == 0 && len(uin) == 0 && len(h.pendingC) == 0 && len(h.pendingU) == 0 && !moved {
				break
			}
		}
		gotU, gotC := h.takeUpstream(), h.takeClient()
		if early && strings.HasPrefix(gotC, "HTTP/1.1 200 OK\r\nContent-Length: 307200\r\nConnection: close\r\n\r\n") {
			// The response started before the request body was complete:
			// the connection closes after it.
			gotC = strings.Replace(gotC, "Connection: close\r\n", "", 1)
			if !h.clientClosed {
				t.Fatalf("round %d: early response without close", round)
			}
			h.clientClosed = false
		}
		if !strings.HasPrefix(gotU, "PUT /big HTTP/1.1\r\n") || !bytes.Equal([]byte(gotU[strings.Index(gotU, "\r\n\r\n")+4:]), body) {
			t.Fatalf("round %d: upstream got %d bytes, body mismatch", round, len(gotU))
		}
		if gotC[:len(respHead)] != respHead || !bytes.Equal([]byte(gotC[len(respHead):]), body) {
			t.Fatalf("round %d: client got %d bytes, body mismatch", round, len(gotC))
		}
		if h.released != 1 || h.clientClosed {
			t.Fatalf("round %d: released %d, closed %v; log %s", round, h.released, h.clientClosed, h.takeLog())
		}
	}
}
