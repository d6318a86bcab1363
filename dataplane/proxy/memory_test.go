package proxy

import (
	"strings"
	"testing"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// lent returns the buffers the harness's session holds from its pool.
func (h *harness) lent() int { return h.w.Buffers.(*BufferFreeList).Lent() }

func (h *harness) expectLent(what string, want int) {
	h.t.Helper()
	if got := h.lent(); got != want {
		h.t.Fatalf("%s: %d buffers lent, want %d", what, got, want)
	}
}

func TestBuffersFollowTraffic(t *testing.T) {
	// A connection takes each buffer when its traffic first needs it and
	// gives them all back when it is idle again.
	h := newHarness(t)
	h.expectLent("fresh connection", 0)
	h.client("G")
	h.expectLent("one byte of a head", 1)
	h.client("ET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectLent("request routed, not yet connected", 2) // + the upstream head
	h.connect(false, nil)
	h.takeUpstream()
	h.expectLent("request sent", 2)
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
	h.expectClient("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
	h.expectLent("idle after the response", 0)

	// A local reply takes the client buffers only.
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n")
	h.expectLent("partial head", 1)
	h.client("\r\n")
	h.takeClient()
	h.expectLent("idle after a local reply", 0)

	// A reply still being sent keeps its buffer until it is sent.
	h.autoSend = false
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.expectLent("local reply in flight", 2)
	h.completeSends()
	h.expectLent("local reply sent", 0)

	// Closing gives everything back.
	h.autoSend = true
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.connect(false, nil)
	h.expectLent("request in flight", 2)
	h.s.Close()
	h.expectLent("closed", 0)
}

func TestTCPListenerBuffers(t *testing.T) {
	h := newHarnessOpts(t, Options{}, 1)
	h.expectLent("TCP connection opened", 1)
	h.connect(false, nil)
	h.upstream("banner")
	h.expectClient("banner")
	h.expectLent("tunnel after upstream bytes", 2)
	h.s.Close()
	h.expectLent("closed", 0)
}

func TestOverloadLevels(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	mw := h.reg.Worker(0)
	// The budget counts 1000 bytes per connection; this one is open.
	setLevel := func(percent int64) { mw.SetMemoryBudget(1000*100/percent, 1000) }

	// 80%: the response says Connection: close, and the connection closes.
	setLevel(80)
	if p := mw.Pressure(); p != metrics.PressureCloseIdle {
		t.Fatalf("pressure %v at 80%%, want %v", p, metrics.PressureCloseIdle)
	}
	h.client("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 418 ") || !strings.Contains(got, "Connection: close\r\n") || !h.clientClosed {
		t.Fatalf("at 80%%: reply %q, closed %v; want 418 with Connection: close", got, h.clientClosed)
	}

	// 100%: new requests get 503, counted as overload.
	h = newHarness(t)
	mw = h.reg.Worker(0)
	setLevel = func(percent int64) { mw.SetMemoryBudget(1000*100/percent, 1000) }
	setLevel(100)
	if p := mw.Pressure(); p != metrics.PressureRejectRequests {
		t.Fatalf("pressure %v at 100%%, want %v", p, metrics.PressureRejectRequests)
	}
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := h.takeClient(); !strings.HasPrefix(got, "HTTP/1.1 503 ") || !strings.Contains(got, "Connection: close\r\n") {
		t.Fatalf("at 100%%: reply %q, want 503 with Connection: close", got)
	}
	if len(h.connects) != 0 {
		t.Fatalf("a rejected request connected upstream: %v", h.connects)
	}
	if h.reasonCount(metrics.ReasonOverload) != 1 || h.reg.OverloadActions(metrics.OverloadRejectRequest) != 1 {
		t.Fatalf("overload replies %v, reject_request actions %d; want 1 and 1",
			h.reasonCount(metrics.ReasonOverload), h.reg.OverloadActions(metrics.OverloadRejectRequest))
	}
}

// shed calls Session.Shed and performs its actions.
func (h *harness) shed() bool {
	ok := h.s.Shed()
	h.drain()
	return ok
}

func TestShedClosesOnlyIdleKeepAlive(t *testing.T) {
	h := newHarness(t)
	h.autoConnect = true
	if h.shed() || h.clientClosed {
		t.Fatal("Shed closed a connection that has not made a request")
	}
	h.client("GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if h.shed() || h.clientClosed {
		t.Fatal("Shed closed a connection with a request in flight")
	}
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()
	h.client("GE")
	if h.shed() || h.clientClosed {
		t.Fatal("Shed closed a connection with part of a request buffered")
	}
	h.client("T /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	h.upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	h.takeClient()
	if !h.shed() || !h.clientClosed || h.linger {
		t.Fatalf("Shed on an idle keep-alive connection: closed %v, linger %v", h.clientClosed, h.linger)
	}
}
