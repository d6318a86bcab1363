package http1

import (
	"errors"
	"testing"
)

// typicalRequest is a browser-like request with 8 header fields.
var typicalRequest = []byte("GET /api/v1/users/42?expand=profile HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Request-Id: 9f1c2b7e-7d1a-4b0a-9d1e-3f7e2a6c1b55\r\n" +
	"\r\n")

var typicalResponse = []byte("HTTP/1.1 200 OK\r\n" +
	"Date: Mon, 01 Jan 2026 00:00:00 GMT\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Content-Length: 1024\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Connection: keep-alive\r\n" +
	"Server: backend\r\n" +
	"\r\n")

var typicalChunked = []byte("400\r\n" + string(make([]byte, 1024)) + "\r\n" +
	"100;ext=1\r\n" + string(make([]byte, 256)) + "\r\n" +
	"0\r\nX-Checksum: abc\r\n\r\n")

var typicalRewrite = RewriteOptions{
	XForwarded: true,
	ClientAddr: []byte("203.0.113.7"),
	Proto:      []byte("https"),
	Remove:     [][]byte{[]byte("cookie")},
	Add:        []HeaderField{{Name: []byte("X-Route"), Value: []byte("default/api")}},
}

func TestAllocsParseRequest(t *testing.T) {
	var r Request
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset()
		if _, err := ParseRequest(typicalRequest, &r, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseRequest: %v allocs/op", allocs)
	}
	if len(r.Fields) != 8 {
		t.Fatalf("%d fields", len(r.Fields))
	}
}

func TestAllocsParseRequestIncremental(t *testing.T) {
	var r Request
	allocs := testing.AllocsPerRun(200, func() {
		r.Reset()
		for i := 1; i < len(typicalRequest); i += 37 {
			if _, err := ParseRequest(typicalRequest[:i], &r, Limits{}); !errors.Is(err, ErrNeedMore) {
				t.Fatal(err)
			}
		}
		if _, err := ParseRequest(typicalRequest, &r, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("incremental ParseRequest: %v allocs/op", allocs)
	}
}

func TestAllocsRejectRequest(t *testing.T) {
	bad := []byte("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	var r Request
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset()
		if _, err := ParseRequest(bad, &r, Limits{}); StatusOf(err) != 400 {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("rejecting: %v allocs/op", allocs)
	}
}

func TestAllocsParseResponse(t *testing.T) {
	var r Response
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset()
		if _, err := ParseResponse(typicalResponse, &r, MethodGet, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseResponse: %v allocs/op", allocs)
	}
}

func TestAllocsRewrite(t *testing.T) {
	var r Request
	if _, err := ParseRequest(typicalRequest, &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if _, err := ParseResponse(typicalResponse, &resp, MethodGet, Limits{}); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		dst = AppendRequestHead(dst[:0], typicalRequest, &r, &typicalRewrite)
		dst = AppendResponseHead(dst[:0], typicalResponse, &resp, &ResponseRewriteOptions{Close: true})
	})
	if allocs != 0 {
		t.Fatalf("rewrite: %v allocs/op", allocs)
	}
}

func TestAllocsChunked(t *testing.T) {
	var b BodyReader
	allocs := testing.AllocsPerRun(1000, func() {
		b.Reset(FramingChunked, -1, Limits{})
		p := typicalChunked
		for len(p) > 0 {
			n, _, done, err := b.Next(p)
			if err != nil {
				t.Fatal(err)
			}
			p = p[n:]
			if done {
				break
			}
		}
		if !b.Done() {
			t.Fatal("not done")
		}
	})
	if allocs != 0 {
		t.Fatalf("chunked: %v allocs/op", allocs)
	}
}
