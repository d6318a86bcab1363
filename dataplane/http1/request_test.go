package http1

import (
	"errors"
	"strings"
	"testing"
)

func parseReq(t *testing.T, s string, lim Limits) (*Request, []byte, int, error) {
	t.Helper()
	buf := []byte(s)
	var r Request
	n, err := ParseRequest(buf, &r, lim)
	return &r, buf, n, err
}

func span(buf []byte, s Span) string { return string(s.Bytes(buf)) }

func TestParseRequestValid(t *testing.T) {
	type want struct {
		method    Method
		methodStr string
		target    string
		form      TargetForm
		path      string
		query     string
		hasQuery  bool
		version   Version
		host      string
		authority string
		cl        int64
		chunked   bool
		keepAlive bool
		conn      ConnFlags
		upgrade   string
		expect    bool
		nfields   int
		framing   Framing
	}
	tests := []struct {
		name string
		in   string
		rest string // bytes after the head
		want want
	}{
		{
			name: "simple get",
			in:   "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: want{
				method: MethodGet, methodStr: "GET", target: "/index.html", path: "/index.html", version: HTTP11,
				host: "example.com", authority: "example.com", cl: -1, keepAlive: true, nfields: 1,
			},
		},
		{
			name: "query and body",
			in:   "POST /api/v1/items?x=1&y=2 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
			rest: "hello",
			want: want{
				method: MethodPost, methodStr: "POST", target: "/api/v1/items?x=1&y=2", path: "/api/v1/items", query: "x=1&y=2", hasQuery: true,
				version: HTTP11, host: "a.example:8080", authority: "a.example:8080", cl: 5, keepAlive: true, nfields: 3, framing: FramingLength,
			},
		},
		{
			name: "percent-encoding, opaque query",
			in:   "GET /a%20b%2F?x=%&y HTTP/1.1\r\nHost: h%41\r\n\r\n",
			want: want{
				method: MethodGet, methodStr: "GET", target: "/a%20b%2F?x=%&y", path: "/a%20b%2F", query: "x=%&y", hasQuery: true, version: HTTP11,
				host: "h%41", authority: "h%41", cl: -1, keepAlive: true, nfields: 1,
			},
		},
		{
			name: "empty query",
			in:   "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/p?", path: "/p", hasQuery: true, version: HTTP11, host: "h", authority: "h", cl: -1, keepAlive: true, nfields: 1},
		},
		{
			name: "connection close",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: -1, conn: ConnClose, nfields: 2},
		},
		{
			name: "connection list case-insensitive",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, ,  CLOSE\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: -1, conn: ConnClose | ConnKeepAlive, nfields: 2},
		},
		{
			name: "http/1.0 default close",
			in:   "GET / HTTP/1.0\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP10, cl: -1},
		},
		{
			name: "http/1.0 keep-alive",
			in:   "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP10, host: "h", authority: "h", cl: -1, keepAlive: true, conn: ConnKeepAlive, nfields: 2},
		},
		{
			name: "absolute form",
			in:   "GET http://Example.com:81/a/b?c HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
			want: want{
				method: MethodGet, methodStr: "GET", target: "http://Example.com:81/a/b?c", form: FormAbsolute, path: "/a/b", query: "c", hasQuery: true,
				version: HTTP11, host: "ignored.example", authority: "Example.com:81", cl: -1, keepAlive: true, nfields: 1,
			},
		},
		{
			name: "absolute form no path",
			in:   "GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: want{
				method: MethodGet, methodStr: "GET", target: "https://example.com", form: FormAbsolute, version: HTTP11,
				host: "example.com", authority: "example.com", cl: -1, keepAlive: true, nfields: 1,
			},
		},
		{
			name: "options asterisk",
			in:   "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			want: want{method: MethodOptions, methodStr: "OPTIONS", target: "*", form: FormAsterisk, version: HTTP11, host: "h", authority: "h", cl: -1, keepAlive: true, nfields: 1},
		},
		{
			name: "connect authority form",
			in:   "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			want: want{
				method: MethodConnect, methodStr: "CONNECT", target: "example.com:443", form: FormAuthority, version: HTTP11,
				host: "example.com:443", authority: "example.com:443", cl: -1, keepAlive: true, nfields: 1,
			},
		},
		{
			name: "chunked",
			in:   "PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
			rest: "0\r\n\r\n",
			want: want{method: MethodPut, methodStr: "PUT", target: "/up", path: "/up", version: HTTP11, host: "h", authority: "h", cl: -1, chunked: true, keepAlive: true, nfields: 2, framing: FramingChunked},
		},
		{
			name: "repeated identical content-length",
			in:   "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\ncontent-length: 003\r\n\r\n",
			rest: "abc",
			want: want{method: MethodPost, methodStr: "POST", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: 3, keepAlive: true, nfields: 3, framing: FramingLength},
		},
		{
			name: "content-length zero",
			in:   "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			want: want{method: MethodPost, methodStr: "POST", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: 0, keepAlive: true, nfields: 2},
		},
		{
			name: "upgrade websocket",
			in:   "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/ws", path: "/ws", version: HTTP11, host: "h", authority: "h", cl: -1, keepAlive: true, conn: ConnUpgrade, upgrade: "websocket", nfields: 4},
		},
		{
			name: "expect continue",
			in:   "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
			want: want{method: MethodPost, methodStr: "POST", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: 10, keepAlive: true, expect: true, nfields: 3, framing: FramingLength},
		},
		{
			name: "expect ignored in http/1.0",
			in:   "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
			want: want{method: MethodPost, methodStr: "POST", target: "/", path: "/", version: HTTP10, cl: 1, nfields: 2, framing: FramingLength},
		},
		{
			name: "leading empty lines ignored",
			in:   "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP11, host: "h", authority: "h", cl: -1, keepAlive: true, nfields: 1},
		},
		{
			name: "other method, ows and obs-text in value, empty value, empty host",
			in:   "PURGE /x HTTP/1.1\r\nHost:\r\nX-A:\t v\xe9 \t\r\nX-Empty:\r\n\r\n",
			want: want{method: MethodOther, methodStr: "PURGE", target: "/x", path: "/x", version: HTTP11, cl: -1, keepAlive: true, nfields: 3},
		},
		{
			name: "ipv6 host",
			in:   "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			want: want{method: MethodGet, methodStr: "GET", target: "/", path: "/", version: HTTP11, host: "[::1]:8080", authority: "[::1]:8080", cl: -1, keepAlive: true, nfields: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, buf, n, err := parseReq(t, tt.in+tt.rest, Limits{})
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if n != len(tt.in) {
				t.Fatalf("n = %d, want %d", n, len(tt.in))
			}
			w := tt.want
			got := want{
				method: r.Method, methodStr: span(buf, r.MethodSpan), target: span(buf, r.Target), form: r.Form,
				path: span(buf, r.Path), query: span(buf, r.Query), hasQuery: r.HasQuery, version: r.Version,
				host: span(buf, r.Host), authority: span(buf, r.Authority), cl: r.ContentLength, chunked: r.Chunked,
				keepAlive: r.KeepAlive, conn: r.Connection, upgrade: span(buf, r.Upgrade), expect: r.ExpectContinue,
				nfields: len(r.Fields), framing: r.Framing(),
			}
			if got != w {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if w.host != "" && !r.HasHost {
				t.Errorf("HasHost not set")
			}
			if (w.upgrade != "") != r.HasUpgrade {
				t.Errorf("HasUpgrade = %v", r.HasUpgrade)
			}
			checkSpans(t, buf, n, &r.Head)
			whole := parseResult{n: n, sum: summarizeRequest(buf, r)}
			compareSplits(t, "byte-by-byte", whole, parseSplitRequest(buf, Limits{}, nil))
			for i := 0; i <= len(buf); i++ {
				compareSplits(t, "split", whole, parseSplitRequest(buf, Limits{}, []int{i}))
			}
		})
	}
}

func TestParseRequestFields(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: h\r\nX-Trim:  a b  \r\ncontent-LENGTH: 0\r\nUser-Agent: test\r\n\r\n"
	r, buf, _, err := parseReq(t, in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{{"Host", "h"}, {"X-Trim", "a b"}, {"content-LENGTH", "0"}, {"User-Agent", "test"}}
	if len(r.Fields) != len(want) {
		t.Fatalf("%d fields", len(r.Fields))
	}
	ids := []HeaderID{HeaderHost, HeaderOther, HeaderContentLength, HeaderOther}
	for i, f := range r.Fields {
		if span(buf, f.Name) != want[i][0] || span(buf, f.Value) != want[i][1] || f.ID != ids[i] {
			t.Errorf("field %d = %q: %q (%d)", i, span(buf, f.Name), span(buf, f.Value), f.ID)
		}
	}
	for _, tc := range []struct{ name, value string }{
		{"host", "h"}, {"x-trim", "a b"}, {"USER-AGENT", "test"}, {"Content-Length", "0"},
	} {
		v, ok := r.Lookup(buf, tc.name)
		if !ok || string(v) != tc.value {
			t.Errorf("Lookup(%q) = %q, %v", tc.name, v, ok)
		}
	}
	if _, ok := r.Lookup(buf, "x-missing"); ok {
		t.Error("Lookup found a missing field")
	}
}

func TestParseRequestPipelined(t *testing.T) {
	first := "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
	second := "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	buf := []byte(first + "body" + second)
	var r Request
	n, err := ParseRequest(buf, &r, Limits{})
	if err != nil || n != len(first) {
		t.Fatalf("first: n=%d err=%v", n, err)
	}
	if span(buf, r.Target) != "/a" || r.ContentLength != 4 || !r.KeepAlive {
		t.Fatalf("first: target %q cl %d", span(buf, r.Target), r.ContentLength)
	}
	var body BodyReader
	body.ForRequest(&r, Limits{})
	m, done, err := body.Feed(buf[n:])
	if err != nil || !done || m != 4 {
		t.Fatalf("body: m=%d done=%v err=%v", m, done, err)
	}
	rest := buf[n+m:]
	r.Reset()
	n2, err := ParseRequest(rest, &r, Limits{})
	if err != nil || n2 != len(second) {
		t.Fatalf("second: n=%d err=%v", n2, err)
	}
	if span(rest, r.Target) != "/b" || r.KeepAlive || r.ContentLength != -1 || len(r.Fields) != 2 {
		t.Fatalf("second: target %q keepalive %v cl %d", span(rest, r.Target), r.KeepAlive, r.ContentLength)
	}
}

func TestParseRequestIncremental(t *testing.T) {
	in := "GET /some/path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
	var whole Request
	wn, err := ParseRequest([]byte(in), &whole, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	for i := 0; i < len(in); i++ {
		n, err := ParseRequest([]byte(in[:i]), &r, Limits{})
		if !errors.Is(err, ErrNeedMore) || n != 0 {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
	}
	n, err := ParseRequest([]byte(in), &r, Limits{})
	if err != nil || n != wn {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if summarizeRequest([]byte(in), &r) != summarizeRequest([]byte(in), &whole) {
		t.Fatal("incremental result differs")
	}
	// The result sticks until Reset.
	if n, err := ParseRequest([]byte(in), &r, Limits{}); n != wn || err != nil {
		t.Fatalf("repeat: n=%d err=%v", n, err)
	}
}

// TestParseRequestReject covers every rejection rule with its status.
func TestParseRequestReject(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		name   string
		in     string
		lim    Limits
		status int
		code   errCode
	}{
		// Framing (request smuggling).
		{"cl and te", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 400, errContentLengthAndTE},
		{"te and cl", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Limits{}, 400, errContentLengthAndTE},
		{"differing cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Limits{}, 400, errContentLengthConflict},
		{"differing cl list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", Limits{}, 400, errContentLengthConflict},
		{"cl empty list element", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,,5\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl trailing comma", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl non-digit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl minus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", Limits{}, 400, errContentLength},
		{"cl huge", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", Limits{}, 400, errContentLength},
		{"te final not chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Limits{}, 400, errTENotChunked},
		{"te gzip only", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", Limits{}, 400, errTENotChunked},
		{"te identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", Limits{}, 400, errTENotChunked},
		{"te split lines final not chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", Limits{}, 400, errTENotChunked},
		{"te unknown coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Limits{}, 501, errTEUnsupported},
		{"te identity then chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 501, errTEUnsupported},
		{"te chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te chunked twice split", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te chunked, gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te empty element", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te chunked with parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te garbage", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chun ked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te quoted", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te in http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 400, errTransferEncoding},
		{"te with vertical tab", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", Limits{}, 400, errFieldValue},

		// Line syntax.
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", Limits{}, 400, errObsFold},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", Limits{}, 400, errObsFold},
		{"whitespace before first field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", Limits{}, 400, errObsFold},
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", Limits{}, 400, errSpaceBeforeColon},
		{"tab before colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", Limits{}, 400, errSpaceBeforeColon},
		{"empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", Limits{}, 400, errFieldName},
		{"invalid name byte", "GET / HTTP/1.1\r\nHost: h\r\nX(A): v\r\n\r\n", Limits{}, 400, errFieldName},
		{"name with nul", "GET / HTTP/1.1\r\nHost: h\r\nX\x00A: v\r\n\r\n", Limits{}, 400, errFieldName},
		{"name with obs-text", "GET / HTTP/1.1\r\nHost: h\r\nX\xe9: v\r\n\r\n", Limits{}, 400, errFieldName},
		{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nXA\r\n\r\n", Limits{}, 400, errFieldLine},
		{"value with nul", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", Limits{}, 400, errFieldValue},
		{"value with del", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n", Limits{}, 400, errFieldValue},
		{"value with cr", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", Limits{}, 400, errFieldValue},
		{"value with esc", "GET / HTTP/1.1\r\nHost: h\r\nX-A: \x1b\r\n\r\n", Limits{}, 400, errFieldValue},
		{"bare lf after request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", Limits{}, 400, errBareLF},
		{"bare lf after field", "GET / HTTP/1.1\r\nHost: h\n\r\n", Limits{}, 400, errBareLF},
		{"bare lf ending head", "GET / HTTP/1.1\r\nHost: h\r\n\n", Limits{}, 400, errBareLF},
		{"bare lf leading line", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errBareLF},
		{"bare cr line ending", "GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", Limits{}, 400, errFieldValue},

		// Request line.
		{"lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"missing version", "GET /\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"missing target", "GET HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errMethod},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"extra token", "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"version without minor", "GET / HTTP/1\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"version two digits", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", Limits{}, 400, errRequestLine},
		{"invalid method byte", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errMethod},
		{"invalid target byte", "GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"target obs-text", "GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"asterisk with get", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"connect origin form", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"connect without port", "CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"absolute with userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"absolute empty authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"bad percent in path", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"truncated percent in path", "GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"percent before query", "GET /a%?x HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"bad percent in authority", "GET http://h%/ HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"absolute other scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", Limits{}, 400, errTarget},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", Limits{}, 505, errVersion},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", Limits{}, 505, errVersion},
		{"http/0.9", "GET / HTTP/0.9\r\n\r\n", Limits{}, 505, errVersion},

		// Size limits.
		{"target too long", "GET /" + long + " HTTP/1.1\r\nHost: h\r\n\r\n", Limits{MaxURIBytes: 50}, 414, errURITooLong},
		{"target too long incomplete", "GET /" + long, Limits{MaxURIBytes: 50}, 414, errURITooLong},
		{"header section too large", "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + long + "\r\n\r\n", Limits{MaxHeaderBytes: 64}, 431, errHeaderTooLarge},
		{"header section too large incomplete", "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + long, Limits{MaxHeaderBytes: 64}, 431, errHeaderTooLarge},
		{"too many fields", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", Limits{MaxHeaderCount: 3}, 431, errTooManyFields},

		// Host.
		{"missing host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", Limits{}, 400, errMissingHost},
		{"missing host absolute form", "GET http://h/ HTTP/1.1\r\n\r\n", Limits{}, 400, errMissingHost},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Limits{}, 400, errDuplicateHost},
		{"two hosts different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", Limits{}, 400, errDuplicateHost},
		{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Limits{}, 400, errHost},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Limits{}, 400, errHost},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Limits{}, 400, errHost},
		{"host bad percent", "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", Limits{}, 400, errHost},
		{"host bad port", "GET / HTTP/1.1\r\nHost: a:x\r\n\r\n", Limits{}, 400, errHost},

		// Connection.
		{"connection bad option", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close;x\r\n\r\n", Limits{}, 400, errConnection},
		{"connection too many options", "GET / HTTP/1.1\r\nHost: h\r\nConnection: " + strings.Repeat("a,", 40) + "\r\n\r\n", Limits{}, 400, errConnection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, n, err := parseReq(t, tt.in, tt.lim)
			if n != 0 {
				t.Errorf("n = %d, want 0", n)
			}
			e := &Error{}
			ok := errors.As(err, &e)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Status != tt.status || e != requestErrors[tt.code] {
				t.Fatalf("err = %v (status %d), want %v (status %d)", e, e.Status, requestErrors[tt.code], tt.status)
			}
			if StatusOf(err) != tt.status {
				t.Fatalf("StatusOf = %d", StatusOf(err))
			}
			// The failure sticks: the request can never be used.
			if n, err2 := ParseRequest([]byte(tt.in), r, tt.lim); n != 0 || !errors.Is(err2, err) {
				t.Fatalf("second call: n=%d err=%v", n, err2)
			}
			// Any split of the input yields the same error.
			if got := parseSplitRequest([]byte(tt.in), tt.lim, nil); !errors.Is(got.err, err) {
				t.Fatalf("byte-by-byte: %v", got.err)
			}
		})
	}
}

func TestParseRequestLimitBoundaries(t *testing.T) {
	// A target of exactly MaxURIBytes is accepted.
	target := "/" + strings.Repeat("a", 49)
	_, _, _, err := parseReq(t, "GET "+target+" HTTP/1.1\r\nHost: h\r\n\r\n", Limits{MaxURIBytes: 50})
	if err != nil {
		t.Fatalf("target at limit: %v", err)
	}
	// A head of exactly MaxHeaderBytes is accepted, one byte more is not.
	head := "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	if _, _, _, err := parseReq(t, head+"extra body", Limits{MaxHeaderBytes: len(head)}); err != nil {
		t.Fatalf("head at limit: %v", err)
	}
	if _, _, _, err := parseReq(t, head, Limits{MaxHeaderBytes: len(head) - 1}); StatusOf(err) != 431 {
		t.Fatalf("head over limit: %v", err)
	}
	// Exactly MaxHeaderCount fields are accepted.
	if _, _, _, err := parseReq(t, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", Limits{MaxHeaderCount: 2}); err != nil {
		t.Fatalf("fields at limit: %v", err)
	}
	// The URI limit is detected before the end of the line, but only
	// once exceeded.
	var r Request
	if _, err := ParseRequest([]byte("GET /"+strings.Repeat("a", 49)), &r, Limits{MaxURIBytes: 50}); !errors.Is(err, ErrNeedMore) {
		t.Fatalf("target at limit, incomplete: %v", err)
	}
	if _, err := ParseRequest([]byte("GET /"+strings.Repeat("a", 50)), &r, Limits{MaxURIBytes: 50}); StatusOf(err) != 414 {
		t.Fatalf("target over limit, incomplete: %v", err)
	}
	// Limits above 64 KiB are clamped.
	if l := (Limits{MaxHeaderBytes: 1 << 20}).Normalized(); l.MaxHeaderBytes != MaxHeaderBytesLimit {
		t.Fatalf("clamp: %d", l.MaxHeaderBytes)
	}
}

func TestParseRequestConnListed(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: h\r\nX-Secret: s\r\nConnection: x-secret, keep-alive\r\nKeep-Alive: timeout=5\r\nX-Other: o\r\n\r\n"
	r, buf, _, err := parseReq(t, in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Fields {
		name := span(buf, f.Name)
		want := name == "X-Secret" || name == "Keep-Alive"
		if f.ConnListed != want {
			t.Errorf("%s: ConnListed = %v", span(buf, f.Name), f.ConnListed)
		}
	}
	if r.Connection != ConnKeepAlive|ConnOther {
		t.Errorf("Connection = %b", r.Connection)
	}
}

func TestParseRequestContractViolation(t *testing.T) {
	// A shorter buffer than last time restarts the parse.
	var r Request
	if _, err := ParseRequest([]byte("GET /aaaa HTTP/1.1\r\nHost: x\r\n"), &r, Limits{}); !errors.Is(err, ErrNeedMore) {
		t.Fatal(err)
	}
	buf := []byte("GET /b HTTP/1.1\r\nHost: y\r\n\r\n")
	n, err := ParseRequest(buf, &r, Limits{})
	if err != nil || n != len(buf) || span(buf, r.Target) != "/b" || span(buf, r.Host) != "y" || len(r.Fields) != 1 {
		t.Fatalf("n=%d err=%v target=%q", n, err, span(buf, r.Target))
	}
}

func TestMethodString(t *testing.T) {
	for m := MethodOther; m <= MethodPatch; m++ {
		if m != MethodOther && lookupMethod([]byte(m.String())) != m {
			t.Errorf("%v does not round-trip", m)
		}
	}
	if Method(200).String() != "OTHER" || HTTP10.String() != "HTTP/1.0" || HTTP11.String() != "HTTP/1.1" {
		t.Error("String")
	}
}

func TestErrorsAndDefaults(t *testing.T) {
	e := requestErrors[errContentLengthAndTE]
	if e.Error() != "http1: content-length with transfer-encoding" || e.Reason != "content-length with transfer-encoding" {
		t.Errorf("Error() = %q", e.Error())
	}
	if r := responseErrors[errObsFold]; r.Error() != "http1: upstream response: obsolete line folding" || r.Status != 502 {
		t.Errorf("response Error() = %q", r.Error())
	}
	for c := errCode(1); c < numErrCodes; c++ {
		if requestErrors[c].Reason == "" || requestErrors[c].Reason != strings.ToLower(requestErrors[c].Reason) {
			t.Errorf("code %d: reason %q", c, requestErrors[c].Reason)
		}
	}
	if StatusOf(nil) != 0 || StatusOf(ErrNeedMore) != 0 || StatusOf(errors.New("x")) != 0 {
		t.Error("StatusOf of a foreign error")
	}
	if DefaultLimits() != (Limits{}).Normalized() {
		t.Error("DefaultLimits differs from the zero Limits")
	}
}

func TestUpgradeRequested(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", false},
	} {
		r, _, _, err := parseReq(t, tc.in, Limits{})
		if err != nil || r.UpgradeRequested() != tc.want {
			t.Errorf("%q: %v %v", tc.in, r.UpgradeRequested(), err)
		}
	}
}
