package proxy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/compiled"
	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// cookieHead returns a response head with n Set-Cookie fields of about 250
// bytes each and an empty body.
func cookieHead(n int) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range n {
		b.WriteString("Set-Cookie: c" + strconv.Itoa(i) + "=" + strings.Repeat("v", 230) + "; Path=/\r\n")
	}
	// Last, where the proxy writes it.
	b.WriteString("Content-Length: 2\r\n\r\n")
	return b.String()
}

const badGateway = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n"

// A response head with 150 Set-Cookie fields (about 38 KiB, more than an
// Exchange buffer holds) is forwarded whole; the large buffers it needed
// go back when the request ends, and the next request on the connection
// uses the Exchange's own buffers again.
func TestLargeResponseHead(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	head := cookieHead(150)
	if len(head) <= DefaultBufferSize {
		t.Fatalf("test head of %d bytes fits a %d-byte buffer", len(head), DefaultBufferSize)
	}
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.takeUpstream()
	// In pieces, as a socket delivers it.
	resp := head + "ok"
	for len(resp) > 0 {
		n := min(len(resp), 4096)
		h.upstream(resp[:n])
		resp = resp[n:]
	}
	h.expectClient(head + "ok")
	if h.released != 1 || h.clientClosed {
		t.Fatalf("released %d, client closed %v", h.released, h.clientClosed)
	}
	if h.s.x != nil && h.s.x.large != nil {
		t.Fatal("large buffers kept after the request")
	}
	h.client("GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.takeUpstream()
	// The head first, so that the Exchange (and the buffers it borrows when
	// bytes arrive) is still held while the body is awaited.
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
	x := h.s.x
	if x.large != nil || len(x.up.buf) == 0 || &x.up.buf[0] != &x.bufs.UpstreamIn[0] || len(x.cliHead) == 0 || &x.cliHead[0] != &x.bufs.ClientHead[0] {
		t.Fatal("the next request does not use the Exchange's own buffers")
	}
	h.upstream("ok")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

// Heads still being sent from the Exchange's own head buffer (an interim
// response) are not touched when a large final head moves the session to
// larger buffers; the harness fails if a send's memory changes in flight.
func TestLargeResponseHeadAfterInterim(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.takeUpstream()
	h.autoSend = false
	h.upstream("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
	head := cookieHead(150)
	h.upstream(head[:20<<10])
	h.upstream(head[20<<10:] + "ok")
	h.completeSends()
	h.drain()
	h.completeSends()
	h.expectClient("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + head + "ok")
}

func TestResponseHeadLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		head string
		ok   bool
	}{
		{"500 fields pass", Options{}, fieldsHead(500), true},
		{"501 fields fail", Options{}, fieldsHead(501), false},
		{"64 KiB head fails", Options{}, cookieHead(270), false},
		{"lowered count", Options{ResponseLimits: http1.Limits{MaxHeaderCount: 150}}, cookieHead(150), false},
		{"lowered size, within buffers", Options{ResponseLimits: http1.Limits{MaxHeaderBytes: 8 << 10}}, cookieHead(40), false},
		{"raised request limits do not lower response ones", Options{Limits: http1.Limits{MaxHeaderCount: 50}}, cookieHead(150), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessOpts(t, tc.opts, 0)
			h.autoConnect = true
			h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			h.takeUpstream()
			h.upstream(tc.head + "ok")
			got := h.takeClient()
			if tc.ok {
				if got != tc.head+"ok" {
					t.Fatalf("client got %d bytes %.80q..., want the %d-byte response", len(got), got, len(tc.head)+2)
				}
				return
			}
			if got != badGateway || h.reasonCount(metrics.ReasonBadResponse) != 1 {
				t.Fatalf("client got %.80q, want 502 bad_response", got)
			}
		})
	}
}

// fieldsHead returns a 200 response head of n fields: n-1 short ones and
// its Content-Length.
func fieldsHead(n int) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range n - 1 {
		b.WriteString("X-F" + strconv.Itoa(i) + ": v\r\n")
	}
	b.WriteString("Content-Length: 2\r\n\r\n")
	return b.String()
}

// The request limits stay strict whatever the response limits are.
func TestRequestHeadLimitsSeparate(t *testing.T) {
	h := newHarness(t)
	var req strings.Builder
	req.WriteString("GET / HTTP/1.1\r\nHost: example.com\r\n")
	for i := range 100 {
		req.WriteString("X-F" + strconv.Itoa(i) + ": v\r\n")
	}
	req.WriteString("\r\n")
	h.client(req.String())
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 431 ") || len(h.connects) != 0 {
		t.Fatalf("101 request fields: %q, %d connects", got, len(h.connects))
	}
}

func TestExpectContinueCases(t *testing.T) {
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	t.Run("no 100 before an upstream connects", func(t *testing.T) {
		h := newHarness(t)
		h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		h.connect(false, errors.New("connection refused"))
		// No body came: the connection closes after the 502.
		h.expectClient(badGateway[:len("HTTP/1.1 502 Bad Gateway\r\n")] + "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n")
		if !h.clientClosed {
			t.Fatal("client kept open with an unread body")
		}
	})
	t.Run("no 100 for a local reply", func(t *testing.T) {
		h := newHarness(t)
		h.client("PUT /direct HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 418 ") {
			t.Fatalf("client got %q", got)
		}
	})
	t.Run("no 100 when the body came already", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nda")
		h.expectUpstream("PUT /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\nda")
		h.client("ta")
		h.expectUpstream("ta")
		h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
		h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
	})
	t.Run("no 100 to an HTTP/1.0 client", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("PUT /f HTTP/1.0\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		h.expectUpstream("PUT /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\n")
		h.expectClient("")
		h.client("data")
		h.expectUpstream("data")
		h.upstream("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	t.Run("one 100 across a retry", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("PUT /retry HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
		h.expectClient(cont)
		h.client("data")
		h.expectUpstream("PUT /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\ndata")
		h.s.UpstreamEOF()
		h.drain()
		h.advance(time.Second)
		if len(h.connects) != 2 {
			t.Fatalf("%d connects, want a retry", len(h.connects))
		}
		h.expectUpstream("PUT /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\ndata")
		h.upstream("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
		h.expectClient("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	})
	t.Run("a backend 100 is forwarded when the client asked for none", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\ndata")
		h.takeUpstream()
		h.upstream("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
		h.expectClient(cont + "HTTP/1.1 204 No Content\r\n\r\n")
	})
}

// Trusted hops decide what happens to received forwarding headers, and
// where the client address comes from.
func TestTrustedHops(t *testing.T) {
	const req = "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 203.0.113.9, 198.51.100.4\r\nX-Forwarded-Proto: https\r\n" +
		"Forwarded: for=203.0.113.9;proto=https, for=198.51.100.4\r\n\r\n"
	for _, tc := range []struct {
		name     string
		opts     Options
		listener string // trustedHops line of the listener, if any
		up       string // forwarding fields sent upstream
		client   string // the client address decided
	}{
		{
			"0 hops: replaced",
			Options{},
			"",
			"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\nForwarded: for=192.0.2.7;proto=http;host=example.com\r\n",
			"192.0.2.7",
		},
		{
			"1 hop: appended, client from the last entry",
			Options{TrustedHops: 1},
			"",
			"X-Forwarded-For: 203.0.113.9, 198.51.100.4, 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n" +
				"Forwarded: for=203.0.113.9;proto=https, for=198.51.100.4, for=192.0.2.7;proto=http;host=example.com\r\n",
			"198.51.100.4",
		},
		{
			"2 hops: client from the second entry from the end",
			Options{TrustedHops: 2},
			"",
			"X-Forwarded-For: 203.0.113.9, 198.51.100.4, 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n" +
				"Forwarded: for=203.0.113.9;proto=https, for=198.51.100.4, for=192.0.2.7;proto=http;host=example.com\r\n",
			"203.0.113.9",
		},
		{
			"3 hops: list too short, the peer",
			Options{TrustedHops: 3},
			"",
			"X-Forwarded-For: 203.0.113.9, 198.51.100.4, 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n" +
				"Forwarded: for=203.0.113.9;proto=https, for=198.51.100.4, for=192.0.2.7;proto=http;host=example.com\r\n",
			"192.0.2.7",
		},
		{
			"listener 0 overrides the dataplane's 1",
			Options{TrustedHops: 1},
			"  trustedHops: 0\n",
			"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\nForwarded: for=192.0.2.7;proto=http;host=example.com\r\n",
			"192.0.2.7",
		},
		{
			"listener 1 overrides the dataplane's 0",
			Options{},
			"  trustedHops: 1\n",
			"X-Forwarded-For: 203.0.113.9, 198.51.100.4, 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n" +
				"Forwarded: for=203.0.113.9;proto=https, for=198.51.100.4, for=192.0.2.7;proto=http;host=example.com\r\n",
			"198.51.100.4",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(testSnapshot, "  protocol: HTTP\n", "  protocol: HTTP\n"+tc.listener, 1)
			cfg, reg := compileTest(t, y)
			h := openHarness(t, cfg, reg, tc.opts, 0, "192.0.2.7:40000")
			h.autoConnect = true
			h.client(req)
			h.expectUpstream("GET / HTTP/1.1\r\nHost: example.com\r\n" + tc.up + "\r\n")
			if got := h.s.x.client.String(); got != tc.client {
				t.Fatalf("client address %s, want %s", got, tc.client)
			}
		})
	}
}

func TestParseForwardedAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":             "192.0.2.1",
		"2001:db8::1":           "2001:db8::1",
		"::ffff:192.0.2.1":      "192.0.2.1",
		"192.0.2.1:8080":        "192.0.2.1",
		"[2001:db8::1]:443":     "2001:db8::1",
		"unknown":               "",
		"_hidden":               "",
		"192.0.2":               "",
		"":                      "",
		"fe80::1%eth0":          "",
		"[2001:db8::1]":         "",
		strings.Repeat("1", 60): "",
	} {
		a, ok := parseForwardedAddr([]byte(in))
		if got := a.String(); ok != (want != "") || (ok && got != want) {
			t.Errorf("parseForwardedAddr(%q) = %s, %v; want %q", in, got, ok, want)
		}
	}
	name := []byte("unknown")
	if n := testing.AllocsPerRun(100, func() { parseForwardedAddr(name) }); n != 0 {
		t.Errorf("turning down a name allocates %v times", n)
	}
}

// The per-client rate limit counts the address trust decides: behind one
// trusted proxy, two clients arriving over the same connection have a
// bucket each; without trust they share the proxy's.
func TestRateLimitPerForwardedClient(t *testing.T) {
	for _, hops := range []int{0, 1} {
		cfg, reg := compileTest(t, limitedSnapshot)
		h := openHarness(t, cfg, reg, Options{TrustedHops: hops}, 0, "10.1.1.1:40000")
		h.autoConnect = true
		for i, from := range []string{"203.0.113.1", "203.0.113.2"} {
			h.connects = nil
			h.client("GET /client HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + from + "\r\n\r\n")
			limited := hops == 0 && i == 1
			if limited {
				h.expectClient(rateLimitedReply)
				continue
			}
			if len(h.connects) != 1 {
				t.Fatalf("hops %d, client %s: not forwarded (%q)", hops, from, h.takeClient())
			}
			h.takeUpstream()
			h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	}
}

// Routes without a retry policy replay an idempotent request whose
// connection failed before any response byte on another endpoint, within
// the retry budget, and count it; a POST is never replayed once sent.
func TestDefaultRetryReplaysIdempotent(t *testing.T) {
	retries := func(h *harness, r metrics.RetryReason) uint64 {
		return h.cfg.Group("two").Shared.RetriesFor(r)
	}
	t.Run("GET after EOF", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET /default-retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
		first := h.connects[0].Addr
		h.expectUpstream("GET /default-retry HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
		h.s.UpstreamEOF()
		h.drain()
		h.advance(time.Second)
		if len(h.connects) != 2 || h.connects[1].Addr == first {
			t.Fatalf("connects %v: want a second attempt on another endpoint", h.connects)
		}
		h.expectUpstream("GET /default-retry HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
		h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if retries(h, metrics.RetryUpstreamReset) != 1 || retries(h, metrics.RetryConnectFailed) != 0 {
			t.Fatalf("retries counted: reset %d, connect %d", retries(h, metrics.RetryUpstreamReset), retries(h, metrics.RetryConnectFailed))
		}
		if got := gatherCounter(t, h.reg, "flax_upstream_retries_total", "reason", "upstream_reset", "backend_group", "two"); got != 1 {
			t.Fatalf("flax_upstream_retries_total{reason=upstream_reset} = %v", got)
		}
	})
	t.Run("PUT with a body after a failed write", func(t *testing.T) {
		h := newHarness(t)
		h.client("PUT /default-retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\ndata")
		h.autoSend = false
		h.connect(false, nil)
		h.s.Sent(Upstream, 0, errors.New("broken pipe"))
		h.pendingU, h.copyU = nil, nil
		h.drain()
		h.s.UpstreamEOF()
		h.drain()
		h.autoSend = true
		h.completeSends()
		h.advance(time.Second)
		if len(h.connects) != 2 {
			t.Fatalf("%d connects, want a retry", len(h.connects))
		}
		h.connect(false, nil)
		h.expectUpstream("PUT /default-retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\ndata")
		h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
		h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
	})
	t.Run("POST after EOF is not replayed", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("POST /default-retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\ndata")
		h.takeUpstream()
		h.s.UpstreamEOF()
		h.drain()
		h.advance(time.Second)
		if len(h.connects) != 1 {
			t.Fatalf("a POST was replayed: %v", h.connects)
		}
		h.expectClient(badGateway)
		if retries(h, metrics.RetryUpstreamReset) != 0 {
			t.Fatal("a retry was counted")
		}
	})
	t.Run("GET after response bytes is not replayed", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET /default-retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
		h.takeUpstream()
		h.upstream("HTTP/1.1 200 O")
		h.s.UpstreamEOF()
		h.drain()
		h.advance(time.Second)
		if len(h.connects) != 1 {
			t.Fatalf("replayed after response bytes: %v", h.connects)
		}
		h.expectClient(badGateway)
	})
	t.Run("replays within the policy's attempts", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("DELETE /default-retry/x HTTP/1.1\r\nHost: example.com\r\n\r\n")
		for range 1 + compiled.DefaultRetry.Attempts {
			h.takeUpstream()
			h.s.UpstreamEOF()
			h.drain()
			h.advance(time.Second)
		}
		if want := 1 + compiled.DefaultRetry.Attempts; len(h.connects) != want {
			t.Fatalf("%d connects, want %d", len(h.connects), want)
		}
		h.expectClient(badGateway)
	})
	t.Run("an explicit empty policy replays nothing", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		h.takeUpstream()
		h.s.UpstreamEOF()
		h.drain()
		h.advance(time.Second)
		if len(h.connects) != 1 {
			t.Fatalf("route app (retry: {}) retried: %v", h.connects)
		}
		h.expectClient(badGateway)
	})
}

// A listener's head limits replace the dataplane's field counts, and lower
// (never raise) its byte limits.
func TestListenerHeadLimits(t *testing.T) {
	fields := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-F" + strconv.Itoa(i) + ": v\r\n")
		}
		return b.String()
	}
	bigField := "X-Big: " + strings.Repeat("b", 17<<10) + "\r\n"
	for _, tc := range []struct {
		name, limits string
		req, resp    string // extra request fields, response head
		want         string // status line prefix the client gets
	}{
		{"response fields lowered", "{maxResponseHeaders: 10}", "", fieldsHead(11), "HTTP/1.1 502 "},
		{"response fields at the lowered limit", "{maxResponseHeaders: 10}", "", fieldsHead(10), "HTTP/1.1 200 "},
		{"response fields raised", "{maxResponseHeaders: 1000}", "", fieldsHead(600), "HTTP/1.1 200 "},
		{"response bytes lowered", "{maxResponseHeaderBytes: 8192}", "", cookieHead(40), "HTTP/1.1 502 "},
		{"request fields lowered", "{maxRequestHeaders: 5}", fields(5), "", "HTTP/1.1 431 "},
		{"request fields raised", "{maxRequestHeaders: 200}", fields(150), fieldsHead(1), "HTTP/1.1 200 "},
		{"request bytes lowered", "{maxRequestHeaderBytes: 2048}", "X-Pad: " + strings.Repeat("p", 2100) + "\r\n", "", "HTTP/1.1 431 "},
		{"request bytes not raised over the dataplane's", "{maxRequestHeaderBytes: 65535}", bigField, "", "HTTP/1.1 431 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(testSnapshot, "  protocol: HTTP\n", "  protocol: HTTP\n  headLimits: "+tc.limits+"\n", 1)
			cfg, reg := compileTest(t, y)
			h := openHarness(t, cfg, reg, Options{}, 0, "192.0.2.7:40000")
			h.autoConnect = true
			h.client("GET / HTTP/1.1\r\nHost: example.com\r\n" + tc.req + "\r\n")
			if tc.resp != "" && len(h.connects) == 1 {
				h.takeUpstream()
				h.upstream(tc.resp + "ok")
			}
			if got := h.takeClient(); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("client got %.60q, want %q", got, tc.want)
			}
		})
	}
}
