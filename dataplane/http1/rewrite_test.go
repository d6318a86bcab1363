package http1

import "testing"

func TestAppendRequestHead(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts *RewriteOptions
		want string
	}{
		{
			name: "hop-by-hop removed",
			in: "GET /a?b HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nX-Hop: 1\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
			want: "GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
		},
		{
			name: "trailer kept for an HTTP/2 upstream",
			in: "POST /a HTTP/1.1\r\nHost: example.com\r\nConnection: X-Hop\r\nTE: trailers\r\nTrailer: X-T\r\n" +
				"Transfer-Encoding: chunked\r\n\r\n",
			opts: &RewriteOptions{KeepTrailer: true},
			want: "POST /a HTTP/1.1\r\nHost: example.com\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n",
		},
		{
			name: "nil options keep unrelated fields in order",
			in:   "POST /x HTTP/1.1\r\nUser-Agent: t\r\nHost: h\r\nContent-Length: 0003\r\nX-B: 2\r\n\r\n",
			want: "POST /x HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\nX-B: 2\r\nContent-Length: 3\r\n\r\n",
		},
		{
			name: "chunked canonical",
			in:   "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
			want: "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		},
		{
			name: "drop framing",
			in:   "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			opts: &RewriteOptions{DropFraming: true, Add: []HeaderField{{[]byte("Content-Length"), []byte("12")}}},
			want: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n",
		},
		{
			name: "absolute form to origin form",
			in:   "GET http://Example.com:81 HTTP/1.1\r\nHost: other\r\n\r\n",
			want: "GET / HTTP/1.1\r\nHost: Example.com:81\r\n\r\n",
		},
		{
			name: "absolute form with path and query",
			in:   "GET https://e.com/p?q=1 HTTP/1.1\r\nHost: e.com\r\n\r\n",
			want: "GET /p?q=1 HTTP/1.1\r\nHost: e.com\r\n\r\n",
		},
		{
			name: "absolute form query only",
			in:   "GET http://e.com?q HTTP/1.1\r\nHost: e.com\r\n\r\n",
			want: "GET /?q HTTP/1.1\r\nHost: e.com\r\n\r\n",
		},
		{
			name: "target and host override, http/1.0 upgraded",
			in:   "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			opts: &RewriteOptions{Target: []byte("/new"), Host: []byte("backend.svc")},
			want: "GET /new HTTP/1.1\r\nHost: backend.svc\r\n\r\n",
		},
		{
			name: "upgrade kept",
			in:   "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
			opts: &RewriteOptions{KeepUpgrade: true},
			want: "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: upgrade\r\n\r\n",
		},
		{
			name: "upgrade dropped, close requested",
			in:   "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			opts: &RewriteOptions{Close: true},
			want: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		},
		{
			name: "x-forwarded replaces untrusted",
			in:   "GET / HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, ClientAddr: []byte("10.0.0.1"), Proto: []byte("http")},
			want: "GET / HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n" +
				"Forwarded: for=10.0.0.1;proto=http;host=h.example\r\n\r\n",
		},
		{
			name: "x-forwarded appends when trusted",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: 3.3.3.3\r\nX-Forwarded-Proto: https\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, TrustForwarded: true, ClientAddr: []byte("10.0.0.1"), Proto: []byte("http")},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: h\r\n" +
				"Forwarded: for=10.0.0.1;proto=http;host=h\r\n\r\n",
		},
		{
			name: "forwarded replaced when untrusted",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6;proto=https\r\nforwarded: for=7.7.7.7\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, ClientAddr: []byte("10.0.0.1"), Proto: []byte("http")},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n" +
				"Forwarded: for=10.0.0.1;proto=http;host=h\r\n\r\n",
		},
		{
			name: "forwarded appended when trusted, both lists",
			in: "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=192.0.2.1;proto=https, for=\"[2001:db8::1]\"\r\nX-Forwarded-For: 192.0.2.1, 2001:db8::1\r\n" +
				"Forwarded: for=198.51.100.2\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, TrustForwarded: true, ClientAddr: []byte("10.0.0.1"), Proto: []byte("http")},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1, 2001:db8::1, 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n" +
				"Forwarded: for=192.0.2.1;proto=https, for=\"[2001:db8::1]\", for=198.51.100.2, for=10.0.0.1;proto=http;host=h\r\n\r\n",
		},
		{
			name: "forwarded quotes ipv6 and a host with a port",
			in:   "GET / HTTP/1.1\r\nHost: h.example:8080\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, ClientAddr: []byte("2001:db8::7"), Proto: []byte("https")},
			want: "GET / HTTP/1.1\r\nHost: h.example:8080\r\nX-Forwarded-For: 2001:db8::7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: h.example:8080\r\n" +
				"Forwarded: for=\"[2001:db8::7]\";proto=https;host=\"h.example:8080\"\r\n\r\n",
		},
		{
			name: "hop-by-hop forwarded fields are not trusted",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: forwarded, x-forwarded-for\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true, TrustForwarded: true, ClientAddr: []byte("10.0.0.1")},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: h\r\nForwarded: for=10.0.0.1;host=h\r\n\r\n",
		},
		{
			name: "forwarded passed through when not adding",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=1.1.1.1\r\n\r\n",
			want: "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=1.1.1.1\r\n\r\n",
		},
		{
			name: "expect 100-continue stripped",
			in:   "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
			opts: &RewriteOptions{StripExpectContinue: true},
			want: "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n",
		},
		{
			name: "expect 100-continue kept unless stripped",
			in:   "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
			want: "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
		},
		{
			name: "other expectations are not stripped",
			in:   "PUT / HTTP/1.1\r\nHost: h\r\nExpect: x-other\r\nContent-Length: 1\r\n\r\n",
			opts: &RewriteOptions{StripExpectContinue: true},
			want: "PUT / HTTP/1.1\r\nHost: h\r\nExpect: x-other\r\nContent-Length: 1\r\n\r\n",
		},
		{
			name: "x-forwarded empty values omitted",
			in:   "GET / HTTP/1.0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
			opts: &RewriteOptions{XForwarded: true},
			want: "GET / HTTP/1.1\r\nHost: \r\n\r\n",
		},
		{
			name: "x-forwarded passed through when not adding",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
		},
		{
			name: "remove and add",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\nX-Keep: k\r\n\r\n",
			opts: &RewriteOptions{Remove: [][]byte{[]byte("cookie")}, Add: []HeaderField{{[]byte("X-Route"), []byte("r1")}}},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Keep: k\r\nX-Route: r1\r\n\r\n",
		},
		{
			name: "connection cannot remove framing or host",
			in:   "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: content-length, host\r\n\r\n",
			want: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, buf, _, err := parseReq(t, tt.in, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got := AppendRequestHead([]byte("prefix:"), buf, r, tt.opts)
			if string(got) != "prefix:"+tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, "prefix:"+tt.want)
			}
			// The rewritten head is itself a valid request.
			var again Request
			if n, err := ParseRequest(got[len("prefix:"):], &again, Limits{}); err != nil || n != len(tt.want) {
				t.Fatalf("reparse: n=%d err=%v", n, err)
			}
		})
	}
}

func TestAppendResponseHead(t *testing.T) {
	tests := []struct {
		name   string
		method Method
		in     string
		opts   *ResponseRewriteOptions
		want   string
	}{
		{
			name: "hop-by-hop removed, length canonical",
			in:   "HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nContent-Length: 05\r\nServer: s\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\n\r\n",
		},
		{
			name: "transfer-encoding kept as received",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nTrailer: X-Sum\r\n\r\n",
			opts: &ResponseRewriteOptions{Close: true},
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
		},
		{
			name: "switching protocols",
			in:   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
			want: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n",
		},
		{
			name: "204 loses framing fields",
			in:   "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
			want: "HTTP/1.1 204 No Content\r\n\r\n",
		},
		{
			name:   "head keeps content-length",
			method: MethodHead,
			in:     "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
			want:   "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
		},
		{
			name: "remove and add, empty reason",
			in:   "HTTP/1.1 500\r\nServer: s\r\nContent-Length: 0\r\n\r\n",
			opts: &ResponseRewriteOptions{Remove: [][]byte{[]byte("SERVER")}, Add: []HeaderField{{[]byte("Via"), []byte("1.1 flax")}}},
			want: "HTTP/1.1 500 \r\nContent-Length: 0\r\nVia: 1.1 flax\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.in)
			var r Response
			if _, err := ParseResponse(buf, &r, tt.method, Limits{}); err != nil {
				t.Fatal(err)
			}
			got := AppendResponseHead(nil, buf, &r, tt.opts)
			if string(got) != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestXForwardedFor(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1 , ,2001:db8::1\r\nX-Other: 1\r\nx-forwarded-for: 198.51.100.2,\t203.0.113.3\r\n" +
		"X-Forwarded-For:\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n"
	r, buf, _, err := parseReq(t, in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range []string{0: "", 1: "203.0.113.3", 2: "198.51.100.2", 3: "2001:db8::1", 4: "192.0.2.1", 5: ""} {
		got, ok := r.XForwardedFor(buf, n)
		if string(got) != want || ok != (want != "") {
			t.Errorf("XForwardedFor(%d) = %q, %v; want %q", n, got, ok, want)
		}
	}
	// A list named by Connection is hop-by-hop: it is not consulted.
	r, buf, _, err = parseReq(t, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1\r\nConnection: X-Forwarded-For\r\n\r\n", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.XForwardedFor(buf, 1); ok {
		t.Errorf("connection-listed X-Forwarded-For used: %q", got)
	}
}
