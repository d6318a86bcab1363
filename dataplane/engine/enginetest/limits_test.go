package enginetest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// A response head of 150 Set-Cookie fields (about 38 KiB, more than a
// session's own buffers hold) reaches the client whole: 200, not 502.
func TestLargeResponseHead(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := range 150 {
				w.Header().Add("Set-Cookie", "c"+strconv.Itoa(i)+"="+strings.Repeat("v", 230)+"; Path=/")
			}
			io.WriteString(w, "ok")
		}))
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		for range 2 { // the connection stays usable afterwards
			io.WriteString(c, "GET /cookies HTTP/1.1\r\nHost: example.com\r\n\r\n")
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != 200 || body != "ok" || len(resp.Header.Values("Set-Cookie")) != 150 {
				t.Fatalf("got %d %q with %d cookies, want 200 \"ok\" with 150", resp.StatusCode, body, len(resp.Header.Values("Set-Cookie")))
			}
		}
	})
}

// A client that sends Expect: 100-continue gets the proxy's own 100
// (Continue) although the backend never sends one, so the body and the
// response follow without a stall; the expectation is not forwarded.
func TestExpectContinueBackendWithout100(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := startRaw(t, modeOK) // reads whole requests, never writes a 100
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.addr()}, "", "", "")))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		io.WriteString(c, "PUT /upload HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		// A client waits for the 100 (curl gives up after 1s): it must come
		// well before that.
		c.SetReadDeadline(time.Now().Add(900 * time.Millisecond))
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("first line %q, %v: want the 100 (Continue)", line, err)
		}
		if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("after the 100: %q, %v", blank, err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "data")
		resp, body := ReadResponse(t, br, "PUT")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		be.mu.Lock()
		defer be.mu.Unlock()
		if !slices.Equal(be.bodies, []string{"PUT /upload data"}) {
			t.Fatalf("backend saw %q", be.bodies)
		}
	})
}

// Forwarded and X-Forwarded-For follow one setting, the listener's trusted
// hops: with 0 what the client sent is replaced, with 1 it is kept and the
// proxy's element appended.
func TestForwardedTrustedHops(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s|%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"))
		}))
		for _, tc := range []struct {
			hops int
			want string
		}{
			{0, "127.0.0.1|for=127.0.0.1;proto=http;host=example.com"},
			{1, "203.0.113.9, 127.0.0.1|for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=example.com"},
		} {
			t.Run(strconv.Itoa(tc.hops), func(t *testing.T) {
				te := startEngine(t, k)
				port := FreePort(t)
				y := strings.Replace(HTTPSnapshot(port, []string{be.Addr()}, "", "", ""),
					"  protocol: HTTP\n", "  protocol: HTTP\n  trustedHops: "+strconv.Itoa(tc.hops)+"\n", 1)
				te.apply(CompileYAML(t, te.reg, y))
				c := Dial(t, port)
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.9\r\n"+
					"Forwarded: for=203.0.113.9;proto=https\r\n\r\n")
				resp, body := ReadResponse(t, bufio.NewReader(c), "GET")
				if resp.StatusCode != 200 || body != tc.want {
					t.Fatalf("backend saw %q (%d), want %q", body, resp.StatusCode, tc.want)
				}
			})
		}
	})
}

// An endpoint that resets the connection after reading a request, before
// any response byte: a GET on a route without a retry policy is replayed
// on the other endpoint (200) and counted; a POST is not replayed (502).
func TestReplayAfterReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		bad := startRaw(t, modeResetNow)
		good := startRaw(t, modeOK)
		te := startEngine(t, k)
		port := FreePort(t)
		cfg := CompileYAML(t, te.reg, HTTPSnapshot(port, []string{bad.addr(), good.addr()}, "", "", ""))
		te.apply(cfg)
		send := func(method, path string) int {
			c := Dial(t, port)
			body := ""
			if method == "POST" {
				body = "Content-Length: 4\r\n\r\ndata"
			} else {
				body = "\r\n"
			}
			io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: example.com\r\n"+body)
			resp, _ := ReadResponse(t, bufio.NewReader(c), method)
			return resp.StatusCode
		}
		saw := func(b *scriptedBackend, req string) bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return slices.Contains(b.bodies, req)
		}
		for i := range 20 {
			path := "/get" + strconv.Itoa(i)
			if code := send("GET", path); code != 200 {
				t.Fatalf("GET %s: %d, want 200", path, code)
			}
		}
		if bad.reqs.Load() == 0 {
			t.Fatal("the resetting endpoint got no request: nothing was replayed")
		}
		sh := cfg.Group("app").Shared
		if got := sh.RetriesFor(metrics.RetryUpstreamReset); got != uint64(bad.reqs.Load()) {
			t.Fatalf("replays counted %d, want %d (requests the resetting endpoint took)", got, bad.reqs.Load())
		}
		before := bad.reqs.Load()
		posts502 := 0
		for i := range 20 {
			path := "/post" + strconv.Itoa(i)
			code := send("POST", path)
			switch {
			case saw(bad, "POST "+path+" data"):
				if code != 502 || saw(good, "POST "+path+" data") {
					t.Fatalf("POST %s reset by an endpoint: %d, replayed %v; want 502, not replayed", path, code, saw(good, "POST "+path+" data"))
				}
				posts502++
			case code != 200:
				t.Fatalf("POST %s: %d, want 200", path, code)
			}
		}
		if posts502 == 0 || bad.reqs.Load() == before {
			t.Fatal("no POST reached the resetting endpoint")
		}
		if got := sh.RetriesFor(metrics.RetryUpstreamReset); got != uint64(before) {
			t.Fatalf("replays counted %d after POSTs, want %d", got, before)
		}
	})
}
