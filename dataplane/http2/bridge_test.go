package http2

import (
	"testing"

	"github.com/flaxlb/flax/dataplane/http1"
)

// TestRequestToHTTP1: a request read by a server Conn, rewritten as an
// HTTP/1.1 head, parses with dataplane/http1 into the same request.
func TestRequestToHTTP1(t *testing.T) {
	p := newServerPeer(t, Config{})
	evs := p.mustFeed(p.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "api.example.com:8443",
		":path", "/v1/items?id=7", "cookie", "a=1", "content-type", "application/json", "cookie", "b=2", "host", "api.example.com:8443"))
	if len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
	head := AppendRequestHTTP1(nil, &evs[0])
	want := "POST /v1/items?id=7 HTTP/1.1\r\nhost: api.example.com:8443\r\ncontent-type: application/json\r\ncookie: a=1; b=2\r\ntransfer-encoding: chunked\r\n\r\n"
	if string(head) != want {
		t.Fatalf("head:\n%q\nwant\n%q", head, want)
	}
	var req http1.Request
	req.Reset()
	n, err := http1.ParseRequest(head, &req, http1.Limits{})
	if err != nil || n != len(head) {
		t.Fatalf("http1 parse: n=%d err=%v", n, err)
	}
	if req.Method != http1.MethodPost || string(req.Path.Bytes(head)) != "/v1/items" || string(req.Query.Bytes(head)) != "id=7" ||
		string(req.Authority.Bytes(head)) != "api.example.com:8443" || req.Framing() != http1.FramingChunked {
		t.Fatalf("parsed %+v", req)
	}
	// A bodiless GET with a content-length-less END_STREAM has no framing.
	evs = p.mustFeed(p.headers(3, true, getReq...))
	head = AppendRequestHTTP1(nil, &evs[0])
	if string(head) != "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n" {
		t.Fatalf("%q", head)
	}
	// CONNECT uses the authority as its target.
	evs = p.mustFeed(p.headers(5, false, ":method", "CONNECT", ":authority", "db:5432"))
	head = AppendRequestHTTP1(nil, &evs[0])
	if string(head[:len("CONNECT db:5432 HTTP/1.1\r\n")]) != "CONNECT db:5432 HTTP/1.1\r\n" {
		t.Fatalf("%q", head)
	}
}

func TestAddStatus(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddStatus(503)
	out, err := p.c.WriteHeaders(nil, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	c := newClientPeer(t, Config{})
	c.c.BeginHeaders()
	c.c.AddHeaderString(":method", "GET")
	if _, _, err := c.c.WriteRequestHeaders(nil, true); err != nil {
		t.Fatal(err)
	}
	if evs := c.mustFeed(out); len(evs) != 1 || evs[0].Status != 503 {
		t.Fatalf("%+v", evs)
	}
}
