package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

const xff = "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\nForwarded: for=192.0.2.7;proto=http;host=example.com\r\n"

func TestKeepAliveExchange(t *testing.T) {
	h := newHarness(t)
	if !h.s.WantClientData() || h.s.WantUpstreamData() {
		t.Fatalf("fresh session: want client %v, upstream %v", h.s.WantClientData(), h.s.WantUpstreamData())
	}
	h.client("GET /x?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n")
	h.expectLog("Connect 10.0.0.1:80 fresh=false")
	h.connect(false, nil)
	h.expectUpstream("GET /x?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n" + xff + "\r\n")
	if h.s.WantClientData() || !h.s.WantUpstreamData() {
		t.Fatalf("awaiting response: want client %v, upstream %v", h.s.WantClientData(), h.s.WantUpstreamData())
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up\r\n\r\nhel")
	h.upstream("lo")
	h.expectClient("HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\n\r\nhello")
	h.expectLog("SendUpstream; SendClient; SendClient; SendClient; Release")
	if h.clientClosed || !h.s.Idle() || h.s.x != nil {
		t.Fatalf("after exchange: closed %v, idle %v, exchange %v", h.clientClosed, h.s.Idle(), h.s.x != nil)
	}
	if h.timer != h.now+int64(DefaultIdleTimeout) {
		t.Fatalf("idle timer %d, want now+%v", h.timer-h.now, DefaultIdleTimeout)
	}
	// A second request on the same connection.
	h.client("GET /y HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(true, nil)
	h.expectUpstream("GET /y HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 204 No Content\r\n\r\n")
	h.expectClient("HTTP/1.1 204 No Content\r\n\r\n")
	if got := requestsCount(t, h.reg, "app", "2xx"); got != 2 {
		t.Fatalf("flax_requests_total{route=app,code=2xx} = %v, want 2", got)
	}
	if got := gatherCounter(t, h.reg, "flax_upstream_requests_total", "backend_group", "one"); got != 2 {
		t.Fatalf("upstream requests = %v, want 2", got)
	}
	h.s.ClientEOF()
	h.drain()
	if !h.clientClosed {
		t.Fatal("client EOF on an idle connection did not close it")
	}
	h.s.Close()
	if got := gatherCounter(t, h.reg, "flax_downstream_connections_active", "", ""); got != 0 {
		t.Fatalf("active connections = %v after Close", got)
	}
}

func TestPipelinedRequests(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /a HTTP/1.1\r\nHost: example.com\r\n\r\nGET /b HTTP/1.1\r\nHost: example.com\r\n\r\nGET /c HTTP/1.1\r\nHost: exa")
	h.expectUpstream("GET /a HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
	// The second request was waiting in the buffer and goes out now.
	h.expectUpstream("GET /b HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
	h.expectUpstream("")
	h.client("mple.com\r\n\r\n")
	h.expectUpstream("GET /c HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC")
	if h.clientClosed || h.released != 3 {
		t.Fatalf("closed %v, released %d", h.clientClosed, h.released)
	}
}

func TestContentLengthBodiesStream(t *testing.T) {
	h := newHarness(t)
	h.client("POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\n0123")
	h.connect(false, nil)
	h.expectUpstream("POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n" + xff + "\r\n0123")
	if !h.s.WantClientData() || !h.s.WantUpstreamData() {
		t.Fatal("while the body streams both sides should be read")
	}
	h.client("45678")
	h.expectUpstream("45678")
	h.client("9GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectUpstream("9")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
	h.upstream("def")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef")
	h.connect(true, nil)
	h.expectUpstream("GET /next HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
}

func TestChunkedBothWays(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("POST /c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	h.expectUpstream("POST /c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n" + xff + "\r\n5\r\nhello\r\n")
	h.client("0\r\nTrailer: x\r\n\r\n")
	h.expectUpstream("0\r\nTrailer: x\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n")
	h.upstream("0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n")
	if h.released != 1 || h.clientClosed {
		t.Fatalf("released %d, client closed %v", h.released, h.clientClosed)
	}
}

func TestMalformedChunkedRequestBody(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("POST /c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	h.takeUpstream()
	h.client("zz\r\n")
	h.expectClient("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n")
	if h.closedUp != 1 || !h.clientClosed || !h.linger {
		t.Fatalf("closed upstream %d, client %v linger %v", h.closedUp, h.clientClosed, h.linger)
	}
}

func TestMalformedChunkedResponseClosesClient(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	h.upstream("x")
	h.expectClient("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	if h.closedUp != 1 || !h.clientClosed || h.linger {
		t.Fatalf("closed upstream %d, client %v linger %v", h.closedUp, h.clientClosed, h.linger)
	}
}

func TestNoBodyResponses(t *testing.T) {
	for _, tc := range []struct {
		name, req, resp, want string
	}{
		{
			"HEAD", "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
		},
		{
			"204", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n",
		},
		{
			"304", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.autoConnect = true
			h.client(tc.req)
			h.takeUpstream()
			h.upstream(tc.resp)
			h.expectClient(tc.want)
			if h.released != 1 || h.clientClosed || !h.s.Idle() {
				t.Fatalf("released %d, closed %v, idle %v", h.released, h.clientClosed, h.s.Idle())
			}
		})
	}
}

func TestExpectContinue(t *testing.T) {
	// The proxy answers 100 itself once an upstream took the request, and
	// does not forward the expectation: a backend that ignores Expect
	// cannot stall the client. A 100 the backend sends anyway is not
	// repeated to the client; other interim responses are.
	h := newHarness(t)
	h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	h.expectClient("")
	h.connect(false, nil)
	h.expectClient("HTTP/1.1 100 Continue\r\n\r\n")
	h.expectUpstream("PUT /f HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\n")
	if !h.s.WantClientData() || !h.s.WantUpstreamData() {
		t.Fatal("both sides should be read while the body comes")
	}
	h.client("data")
	h.expectUpstream("data")
	h.upstream("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	if h.released != 1 || h.clientClosed {
		t.Fatalf("released %d, closed %v", h.released, h.clientClosed)
	}
}

func TestExpectContinueRejected(t *testing.T) {
	// The upstream answers before the body came: the client never sent
	// it, so the connection cannot be reused.
	h := newHarness(t)
	h.autoConnect = true
	h.client("PUT /f HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if h.closedUp != 1 || !h.clientClosed || !h.linger {
		t.Fatalf("closed upstream %d, client %v linger %v", h.closedUp, h.clientClosed, h.linger)
	}
}

func TestCloseDelimitedResponse(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nsome ")
	h.upstream("bytes")
	h.s.UpstreamEOF()
	h.drain()
	h.expectClient("HTTP/1.1 200 OK\r\nServer: old\r\nConnection: close\r\n\r\nsome bytes")
	h.expectLog("Connect 10.0.0.1:80 fresh=false; SendUpstream; SendClient; SendClient; SendClient; CloseUpstream; CloseClient linger=false")
}

func TestHopByHopAndForwardedHeaders(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n" +
		"Proxy-Connection: keep-alive\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n")
	h.expectUpstream("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
}

func TestTrustForwarded(t *testing.T) {
	h := newHarnessOpts(t, Options{TrustedHops: 1}, 0)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n")
	h.expectUpstream("GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n" +
		"Forwarded: for=192.0.2.7;proto=http;host=example.com\r\n\r\n")
}

func TestWebSocketUpgrade(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\nearly")
	h.expectUpstream("GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n" + xff + "Connection: upgrade\r\n\r\n")
	h.upstream("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\nhi")
	h.expectClient("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\nConnection: upgrade\r\n\r\nhi")
	h.expectUpstream("early")
	if !h.tunnel || !h.s.Tunnel() {
		t.Fatal("no tunnel after 101")
	}
	if !h.s.WantClientData() || !h.s.WantUpstreamData() {
		t.Fatal("a tunnel reads both sides")
	}
	h.client("ping")
	h.expectUpstream("ping")
	h.upstream("pong")
	h.expectClient("pong")
	h.s.ClientEOF()
	h.drain()
	if !h.shutUp || h.clientClosed {
		t.Fatalf("client EOF: shutdown upstream %v, client closed %v", h.shutUp, h.clientClosed)
	}
	h.upstream("bye")
	h.expectClient("bye")
	h.s.UpstreamEOF()
	h.drain()
	if !h.clientClosed || h.closedUp != 1 {
		t.Fatalf("both EOF: client closed %v, upstream closed %d", h.clientClosed, h.closedUp)
	}
	if got := requestsCount(t, h.reg, "app", "1xx"); got != 1 {
		t.Fatalf("tunnel not counted as a 1xx request: %v", got)
	}
}

func TestUpgradeRefused(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
	if h.tunnel || h.clientClosed {
		t.Fatal("a refused upgrade must leave an HTTP connection")
	}
}

func TestUnrequested101(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
	h.expectClient("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n")
	if h.reasonCount(metrics.ReasonBadResponse) != 1 {
		t.Fatal("bad_response not counted")
	}
}

func TestHTTP10Clients(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
		h.expectUpstream("GET / HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
		h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		if !h.clientClosed || h.released != 1 {
			t.Fatalf("client closed %v, released %d", h.clientClosed, h.released)
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n")
		h.takeUpstream()
		h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
		if h.clientClosed {
			t.Fatal("keep-alive HTTP/1.0 client closed")
		}
	})
	t.Run("chunked response decoded", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n")
		h.takeUpstream()
		h.upstream("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
		h.upstream("4;x=y\r\ndefg\r\n0\r\n\r\n")
		h.expectClient("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcdefg")
		if !h.clientClosed || h.released != 1 {
			t.Fatalf("client closed %v, released %d", h.clientClosed, h.released)
		}
	})
	t.Run("no interim responses", func(t *testing.T) {
		h := newHarness(t)
		h.autoConnect = true
		h.client("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
		h.takeUpstream()
		h.upstream("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
}

func TestMalformedRequestsNeverReachBackend(t *testing.T) {
	long := strings.Repeat("a", 9000)
	for _, tc := range []struct {
		name, req string
		status    string
	}{
		{"smuggling CL+TE", "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request"},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", "400 Bad Request"},
		{"bare LF", "GET / HTTP/1.1\nHost: example.com\n\n", "400 Bad Request"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", "400 Bad Request"},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"uri too long", "GET /" + long + " HTTP/1.1\r\nHost: example.com\r\n\r\n", "414 URI Too Long"},
		{"header too large", "GET / HTTP/1.1\r\nHost: example.com\r\nX: " + strings.Repeat("b", 17000) + "\r\n\r\n", "431 Request Header Fields Too Large"},
		{"version", "GET / HTTP/2.0\r\nHost: example.com\r\n\r\n", "505 HTTP Version Not Supported"},
		{"transfer coding", "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501 Not Implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.client(tc.req)
			got := h.takeClient()
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+"\r\n") || !strings.Contains(got, "\r\nConnection: close\r\n") {
				t.Fatalf("reply %q, want %s with Connection: close", got, tc.status)
			}
			if len(h.connects) != 0 || h.toUpstream.Len() != 0 {
				t.Fatalf("malformed request reached a backend: %v", h.connects)
			}
			if !h.clientClosed || !h.linger {
				t.Fatalf("client closed %v linger %v", h.clientClosed, h.linger)
			}
			if h.reasonCount(metrics.ReasonBadRequest) != 1 {
				t.Fatal("bad_request not counted")
			}
		})
	}
}

func TestHeaderTimeout(t *testing.T) {
	h := newHarness(t)
	h.advance(5 * time.Second)
	h.client("GET / HTTP/1.1\r\nHost: exa")
	h.advance(4 * time.Second)
	if h.clientClosed {
		t.Fatal("closed before the header timeout")
	}
	h.advance(time.Second)
	h.expectClient("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\nConnection: close\r\n\r\nrequest header timeout\n")
	if !h.clientClosed || h.reasonCount(metrics.ReasonHeaderTimeout) != 1 {
		t.Fatalf("closed %v, header_timeout %v", h.clientClosed, h.reasonCount(metrics.ReasonHeaderTimeout))
	}
}

func TestIdleTimeouts(t *testing.T) {
	// A connection that never sends anything is closed quietly after the
	// header timeout; a keep-alive connection after the idle timeout.
	h := newHarness(t)
	h.advance(DefaultHeaderTimeout)
	if !h.clientClosed || h.toClient.Len() != 0 {
		t.Fatalf("silent connection: closed %v, sent %q", h.clientClosed, h.toClient.String())
	}
	h = newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()
	h.advance(DefaultHeaderTimeout)
	if h.clientClosed {
		t.Fatal("keep-alive connection closed by the header timeout")
	}
	h.advance(DefaultIdleTimeout)
	if !h.clientClosed || h.toClient.Len() != 0 {
		t.Fatalf("idle connection: closed %v, sent %q", h.clientClosed, h.toClient.String())
	}
}

func TestLocalReplies(t *testing.T) {
	for _, tc := range []struct {
		name, req, want string
		reason          metrics.Reason
	}{
		{
			"no route", "GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
			"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\nno route\n", metrics.ReasonNoRoute,
		},
		{
			"direct", "GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 418 \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\n\r\nteapot\n", metrics.ReasonDirectResponse,
		},
		{
			"direct HEAD", "HEAD /direct HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 418 \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\n\r\n", metrics.ReasonDirectResponse,
		},
		{
			"no backends", "GET /none HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\ninternal server error\n", metrics.ReasonDirectResponse,
		},
		{
			"no endpoint", "GET /empty HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\nno healthy upstream\n", metrics.ReasonNoEndpoint,
		},
		{
			"redirect", "GET /old/page?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"HTTP/1.1 301 Moved Permanently\r\nLocation: https://new.example.com/new/page?x=1\r\nContent-Length: 0\r\n\r\n", metrics.ReasonDirectResponse,
		},
		{
			"redirect listener port", "GET /port HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
			"HTTP/1.1 302 Found\r\nLocation: http://other.example.com:8080/port\r\nContent-Length: 0\r\n\r\n", metrics.ReasonDirectResponse,
		},
		{
			"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\n\r\nnot implemented\n", metrics.ReasonBadRequest,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.client(tc.req)
			h.expectClient(tc.want)
			if len(h.connects) != 0 || h.clientClosed {
				t.Fatalf("connects %v, closed %v", h.connects, h.clientClosed)
			}
			if h.reasonCount(tc.reason) != 1 {
				t.Fatalf("reason %v not counted", tc.reason)
			}
			// The connection stays usable.
			h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
			if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 418 ") {
				t.Fatalf("next request got %q", got)
			}
		})
	}
}

func TestLocalReplySkipsReceivedBody(t *testing.T) {
	h := newHarness(t)
	h.client("POST /direct HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabcGET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	got := h.takeClient()
	if strings.Count(got, "HTTP/1.1 418 ") != 2 || h.clientClosed {
		t.Fatalf("replies %q, closed %v", got, h.clientClosed)
	}
	// A body not received yet: reply, then close.
	h.client("POST /direct HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3000\r\n\r\nabc")
	got = h.takeClient()
	if !strings.Contains(got, "Connection: close\r\n") || !h.clientClosed || !h.linger {
		t.Fatalf("reply %q, closed %v, linger %v", got, h.clientClosed, h.linger)
	}
}

func TestHeaderModifiersAndRewrite(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /api/users?id=3 HTTP/1.1\r\nHost: example.com\r\nX-Debug: 1\r\nX-Env: dev\r\n\r\n")
	h.expectUpstream("GET /v2/users?id=3 HTTP/1.1\r\nHost: internal.svc\r\n" + xff + "X-Env: prod\r\nX-Added: 1\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nServer: up\r\nX-Served-By: other\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Served-By: flax\r\n\r\n")

	h.client("GET /api HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectUpstream("GET /v2 HTTP/1.1\r\nHost: internal.svc\r\n" + xff + "X-Env: prod\r\nX-Added: 1\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()

	h.client("GET /full/a/b?z HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectUpstream("GET /replaced?z HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
}

func TestPathNormalization(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	// "/x/../api/%75sers" is "/api/users": routed to the rewrite route and
	// forwarded normalized.
	h.client("GET /x/../api/%75sers/./me HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectUpstream("GET /v2/users/me HTTP/1.1\r\nHost: internal.svc\r\n" + xff + "X-Env: prod\r\nX-Added: 1\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()
	h.client("GET /a/./b/../../c%2Fd HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectUpstream("GET /c%2Fd HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
}

func TestConnectFailure(t *testing.T) {
	h := newHarness(t)
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(false, errors.New("connection refused"))
	h.expectClient("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n")
	if h.clientClosed {
		t.Fatal("a connect failure closed the client")
	}
	if h.reasonCount(metrics.ReasonConnectFailed) != 1 || gatherCounter(t, h.reg, "flax_upstream_connect_errors_total", "backend_group", "one") != 1 {
		t.Fatal("connect failure not counted")
	}
}

// A route without a retry policy gets the dataplane default: two retries, on
// endpoints not tried yet, when the connect fails.
func TestConnectFailureDefaultRetry(t *testing.T) {
	h := newHarness(t)
	h.client("POST /default-retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi")
	first := h.connects[0].Addr
	h.connect(false, errors.New("connection refused"))
	if h.timer == 0 || h.timer > h.now+int64(time.Millisecond) {
		t.Fatalf("default retry in +%v, want within a millisecond", time.Duration(h.timer-h.now))
	}
	h.advance(time.Millisecond)
	if len(h.connects) != 2 || h.connects[1].Addr == first {
		t.Fatalf("connects %v: want a second attempt on another endpoint", h.connects)
	}
	for range 2 {
		h.connect(false, errors.New("connection refused"))
		h.advance(time.Second)
	}
	if len(h.connects) != 3 {
		t.Fatalf("connects %v: the default policy retries twice", h.connects)
	}
	h.expectClient("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n")
	if got := gatherCounter(t, h.reg, "flax_upstream_connect_errors_total", "backend_group", "two"); got != 3 {
		t.Fatalf("connect errors = %v, want 3", got)
	}
}

func TestConnectFailureRetriedOnOtherEndpoint(t *testing.T) {
	h := newHarness(t)
	h.client("GET /retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
	first := h.connects[0].Addr
	h.connect(false, errors.New("connection refused"))
	if len(h.connects) != 1 {
		t.Fatal("retried without backoff")
	}
	if h.timer == 0 || h.timer > h.now+int64(20*time.Millisecond) || h.timer < h.now+int64(5*time.Millisecond) {
		t.Fatalf("backoff timer at +%v", time.Duration(h.timer-h.now))
	}
	h.advance(20 * time.Millisecond)
	if len(h.connects) != 2 || h.connects[1].Addr == first {
		t.Fatalf("retry connects %v", h.connects)
	}
	h.connect(false, nil)
	h.expectUpstream("GET /retry HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t)
	h.client("GET /retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
	for i := 0; i < 3; i++ {
		h.connect(false, errors.New("refused"))
		h.advance(time.Second)
	}
	if len(h.connects) != 3 {
		t.Fatalf("%d attempts, want 3", len(h.connects))
	}
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 502 ") {
		t.Fatalf("reply %q", got)
	}
}

func TestRetryOnStatus(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /retry HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.takeUpstream()
	h.upstream("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
	if h.toClient.Len() != 0 || h.closedUp != 1 {
		t.Fatalf("a retryable status was forwarded: %q", h.takeClient())
	}
	h.advance(time.Second)
	h.expectUpstream("GET /retry HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

func TestRetryReplaysBody(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("POST /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nbody")
	h.expectUpstream("POST /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\nbody")
	h.s.UpstreamEOF()
	h.drain()
	h.advance(time.Second)
	h.expectUpstream("POST /retry HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n" + xff + "\r\nbody")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
}

func TestUpstreamResetBeforeHead(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\nx")
	h.upstream("HTTP/1.1 200 O")
	h.s.UpstreamEOF()
	h.drain()
	h.expectClient("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n")
	if h.reasonCount(metrics.ReasonUpstreamReset) != 1 || h.closedUp != 1 {
		t.Fatal("upstream reset not handled")
	}
}

func TestMalformedResponse(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	h.expectClient("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nbad gateway\n")
	if h.reasonCount(metrics.ReasonBadResponse) != 1 || h.closedUp != 1 {
		t.Fatal("bad response not handled")
	}
}

func TestBackendTimeout(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.advance(1900 * time.Millisecond)
	if h.toClient.Len() != 0 {
		t.Fatal("timed out early")
	}
	h.advance(100 * time.Millisecond)
	h.expectClient("HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n\r\nupstream request timeout\n")
	if h.reasonCount(metrics.ReasonTimeout) != 1 || h.closedUp != 1 || h.clientClosed {
		t.Fatal("timeout not handled")
	}
}

func TestTimeoutAfterPartialResponseClosesClient(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
	h.advance(2 * time.Second)
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
	if !h.clientClosed || h.closedUp != 1 {
		t.Fatalf("client closed %v, upstream closed %d", h.clientClosed, h.closedUp)
	}
}

func TestUpstreamDiesMidResponse(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
	h.s.UpstreamEOF()
	h.drain()
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
	if !h.clientClosed || h.linger {
		t.Fatalf("client closed %v linger %v", h.clientClosed, h.linger)
	}
	if got := requestsCount(t, h.reg, "app", "2xx"); got != 1 {
		t.Fatalf("aborted request counted %v times", got)
	}
}

func TestStalePooledConnectionRetried(t *testing.T) {
	h := newHarness(t)
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(true, nil)
	h.takeUpstream()
	h.s.UpstreamEOF()
	h.drain()
	h.expectLog("Connect 10.0.0.1:80 fresh=false; SendUpstream; CloseUpstream; Connect 10.0.0.1:80 fresh=true")
	h.connect(false, nil)
	h.expectUpstream("GET / HTTP/1.1\r\nHost: example.com\r\n" + xff + "\r\n")
	if got := gatherCounter(t, h.reg, "flax_upstream_retries_total", "reason", "stale_connection", "backend_group", "one"); got != 1 {
		t.Fatalf("flax_upstream_retries_total{reason=stale_connection} = %v, want 1", got)
	}
	// A fresh connection failing the same way is not retried again.
	h.s.UpstreamEOF()
	h.drain()
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 502 ") {
		t.Fatalf("reply %q", got)
	}
}

func TestStaleRetryNotForPost(t *testing.T) {
	h := newHarness(t)
	h.client("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n")
	h.autoSend = false
	h.connect(true, nil)
	h.s.Sent(Upstream, 0, errors.New("broken pipe"))
	h.pendingU, h.copyU = nil, nil
	h.drain()
	if h.toClient.Len() != 0 || h.closedUp != 0 {
		t.Fatal("a failed write ended the attempt before the upstream was read")
	}
	if !h.s.WantUpstreamData() {
		t.Fatal("the upstream is not read after a failed write")
	}
	h.s.UpstreamEOF()
	h.drain()
	if len(h.connects) != 1 {
		t.Fatal("a POST was retried")
	}
	h.completeSends()
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 502 ") {
		t.Fatalf("reply %q", got)
	}
}

func TestClientGoneMidResponse(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.autoSend = false
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.completeSends()
	h.drain()
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
	h.pendingC = nil
	h.s.Sent(Client, 0, errors.New("connection reset"))
	h.drain()
	if !h.clientClosed || h.closedUp != 1 {
		t.Fatalf("client closed %v, upstream closed %d", h.clientClosed, h.closedUp)
	}
}

func TestDrain(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.s.Drain()
	h.drain()
	if h.clientClosed {
		t.Fatal("drain closed a busy connection")
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if !h.clientClosed || h.released != 1 {
		t.Fatalf("client closed %v, released %d", h.clientClosed, h.released)
	}
	// A keep-alive connection between requests is closed at once.
	h = newHarness(t)
	h.autoConnect = true
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.s.Drain()
	h.drain()
	if !h.clientClosed {
		t.Fatal("drain left an idle keep-alive connection open")
	}
	// A connection that has not sent its first request yet may still send
	// it (its client connected before the listener closed); it is answered
	// and closed.
	h = newHarness(t)
	h.autoConnect = true
	h.s.Drain()
	h.drain()
	if h.clientClosed {
		t.Fatal("drain closed a new connection before its first request could arrive")
	}
	h.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if !h.clientClosed {
		t.Fatal("the drained connection stayed open after its first response")
	}
	// One that sends nothing is closed once the grace has passed.
	h = newHarness(t)
	h.s.Drain()
	h.drain()
	h.advance(time.Duration(drainFreshGrace) - time.Millisecond)
	if h.clientClosed {
		t.Fatal("a new drained connection closed before the grace for its first request")
	}
	h.advance(2 * time.Millisecond)
	if !h.clientClosed {
		t.Fatal("a new drained connection sending nothing stayed open past the grace")
	}
}

func TestTCPListener(t *testing.T) {
	h := newHarnessOpts(t, Options{}, 1)
	h.expectLog("Connect 10.0.0.1:80 fresh=false")
	h.client("early")
	h.connect(false, nil)
	h.expectLog("StartTunnel; SendUpstream")
	h.expectUpstream("early")
	h.upstream("reply")
	h.expectClient("reply")
	h.s.UpstreamEOF()
	h.drain()
	h.s.ClientEOF()
	h.drain()
	if !h.shutCli || !h.clientClosed || h.closedUp != 1 {
		t.Fatalf("shutdown client %v, closed %v, upstream closed %d", h.shutCli, h.clientClosed, h.closedUp)
	}
}

func TestSessionAffinityCookie(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /sticky HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	got := h.takeClient()
	i := strings.Index(got, "Set-Cookie: flax-ep=")
	if i < 0 || !strings.Contains(got, "; Path=/; HttpOnly; Max-Age=60\r\n") {
		t.Fatalf("no affinity cookie in %q", got)
	}
	cookie := got[i+len("Set-Cookie: ") : i+len("Set-Cookie: flax-ep=")+16]
	first := h.connects[0].Addr
	for range 4 {
		h.client("GET /sticky HTTP/1.1\r\nHost: example.com\r\nCookie: a=b; " + cookie + "\r\n\r\n")
		h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		if got := h.takeClient(); strings.Contains(got, "Set-Cookie") {
			t.Fatalf("cookie handed out again: %q", got)
		}
		if last := h.connects[len(h.connects)-1].Addr; last != first {
			t.Fatalf("affinity lost: %v then %v", first, last)
		}
	}
}

func TestConsistentHashKey(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	seen := map[string]bool{}
	for range 5 {
		h.client("GET /hashed HTTP/1.1\r\nHost: example.com\r\nX-User: alice\r\n\r\n")
		h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		seen[h.connects[len(h.connects)-1].Addr.String()] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one hash key went to %v", seen)
	}
}

func TestConfigSwapAppliesToNextRequest(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 418 ") {
		t.Fatalf("reply %q", got)
	}
	cfg, _ := compileTest(t, strings.Replace(testSnapshot, `directResponse: {status: 418, body: "teapot\n"}`, `directResponse: {status: 200, body: "new"}`, 1))
	// A request in flight keeps the old route.
	h.client("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.slot.Store(cfg.Listeners[0])
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasSuffix(got, "\r\n\r\nnew") {
		t.Fatalf("reply after swap %q", got)
	}
}

func TestLargeDirectResponseStreamsThroughSessionMemory(t *testing.T) {
	big := strings.Repeat("0123456789", 5000) // 50 kB, more than a head buffer
	y := strings.Replace(testSnapshot, `directResponse: {status: 418, body: "teapot\n"}`, `directResponse: {status: 200, body: "`+big+`"}`, 1)
	cfg, reg := compileTest(t, y)
	h := newHarness(t)
	h.reg = reg
	h.slot.Store(cfg.Listeners[0])
	h.w = NewWorker(reg.Worker(0), NewPickers(0), nil, func() int64 { return h.now }, Options{})
	h.s.Open(h.w, &h.slot, h.s.remote, false)
	h.drain()
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	got := h.takeClient()
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 50000\r\n\r\n"
	if got != head+big {
		t.Fatalf("got %d bytes, want %d", len(got), len(head)+len(big))
	}
	buf := h.s.x
	if buf != nil {
		t.Fatal("exchange kept after the reply")
	}
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); got != head+big {
		t.Fatalf("second reply: %d bytes", len(got))
	}
}

func TestHalfClosedClientGetsAllResponses(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("GET /a HTTP/1.1\r\nHost: example.com\r\n\r\nGET /b HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.s.ClientEOF()
	h.drain()
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
	if h.clientClosed {
		t.Fatal("closed with a pipelined request unanswered")
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
	if !h.clientClosed || h.released != 2 {
		t.Fatalf("closed %v, released %d", h.clientClosed, h.released)
	}
}

func TestEarlyResponseAfterFailedWrite(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	h.client("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\nfirst")
	h.autoSend = false
	h.client("second")
	h.s.Sent(Upstream, 0, errors.New("connection reset"))
	h.pendingU, h.copyU = nil, nil
	h.drain()
	h.autoSend = true
	h.upstream("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
	h.s.UpstreamEOF()
	h.drain()
	h.completeSends()
	h.drain()
	h.expectClient("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if !h.clientClosed || !h.linger || h.closedUp != 1 {
		t.Fatalf("client closed %v linger %v, upstream closed %d", h.clientClosed, h.linger, h.closedUp)
	}
}

// TestUpstreamResponseTimeAndClientBytes checks the per-group upstream response
// time (request head sent to response head, interim responses aside) and the
// listener's byte counters.
func TestUpstreamResponseTimeAndClientBytes(t *testing.T) {
	h := newHarness(t)
	req := "POST /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
	h.client(req)
	h.connect(false, nil)
	h.advance(30 * time.Millisecond)
	h.upstream("HTTP/1.1 100 Continue\r\n\r\n")
	h.client("hi")
	h.advance(10 * time.Millisecond)
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	got := h.takeClient()
	if !strings.HasSuffix(got, "hello") {
		t.Fatalf("client got %q", got)
	}
	hist := gatherHistogram(t, h.reg, "flax_upstream_response_duration_seconds", "backend_group", "one")
	if hist == nil || hist.GetSampleCount() != 1 || hist.GetSampleSum() < 0.0399 || hist.GetSampleSum() > 0.0401 {
		t.Fatalf("upstream response time %v, want one sample of 40ms (the 100 Continue is not a response head)", hist)
	}
	for _, b := range hist.GetBucket() {
		if want := uint64(map[bool]int{true: 1}[b.GetUpperBound() >= 0.05]); b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if n := gatherCounter(t, h.reg, "flax_downstream_bytes_received_total", "listener", "web"); n != float64(len(req)+2) {
		t.Errorf("bytes received %v, want %d", n, len(req)+2)
	}
	if n := gatherCounter(t, h.reg, "flax_downstream_bytes_sent_total", "listener", "web"); n != float64(len(got)) {
		t.Errorf("bytes sent %v, want %d (what the client got)", n, len(got))
	}
}
