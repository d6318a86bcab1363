package http1

import (
	"errors"
	"strings"
	"testing"
)

func TestParseResponseValid(t *testing.T) {
	type want struct {
		status    int
		reason    string
		version   Version
		cl        int64
		chunked   bool
		framing   Framing
		keepAlive bool
		interim   bool
		nfields   int
	}
	tests := []struct {
		name   string
		method Method
		in     string
		rest   string
		want   want
	}{
		{
			"content-length", MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n", "hello",
			want{200, "OK", HTTP11, 5, false, FramingLength, true, false, 2},
		},
		{
			"chunked", MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n",
			want{200, "OK", HTTP11, -1, true, FramingChunked, true, false, 1},
		},
		{
			"gzip then chunked passes through", MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "",
			want{200, "OK", HTTP11, -1, true, FramingChunked, true, false, 1},
		},
		{
			"close delimited", MethodGet, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "stream...",
			want{200, "OK", HTTP11, -1, false, FramingClose, false, false, 1},
		},
		{
			"connection close", MethodGet, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "",
			want{404, "Not Found", HTTP11, 0, false, FramingNone, false, false, 2},
		},
		{
			"http/1.0 default close", MethodGet, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", "hi",
			want{200, "OK", HTTP10, 2, false, FramingLength, false, false, 1},
		},
		{
			"http/1.0 keep-alive", MethodGet, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", "hi",
			want{200, "OK", HTTP10, 2, false, FramingLength, true, false, 2},
		},
		{
			"head response has no body", MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "",
			want{200, "OK", HTTP11, 1234, false, FramingNone, true, false, 1},
		},
		{
			"head response chunked has no body", MethodHead, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "",
			want{200, "OK", HTTP11, -1, true, FramingNone, true, false, 1},
		},
		{
			"204", MethodDelete, "HTTP/1.1 204 No Content\r\n\r\n", "",
			want{204, "No Content", HTTP11, -1, false, FramingNone, true, false, 0},
		},
		{
			"304 with length", MethodGet, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n", "",
			want{304, "Not Modified", HTTP11, 99, false, FramingNone, true, false, 2},
		},
		{
			"100 continue", MethodPost, "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\n",
			want{100, "Continue", HTTP11, -1, false, FramingNone, true, true, 0},
		},
		{
			"103 early hints", MethodGet, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", "",
			want{103, "Early Hints", HTTP11, -1, false, FramingNone, true, true, 1},
		},
		{
			"101 switching protocols", MethodGet, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "\x81\x00",
			want{101, "Switching Protocols", HTTP11, -1, false, FramingNone, false, true, 2},
		},
		{
			"connect 200 tunnel", MethodConnect, "HTTP/1.1 200 Connection established\r\n\r\n", "",
			want{200, "Connection established", HTTP11, -1, false, FramingNone, false, false, 0},
		},
		{
			"empty reason", MethodGet, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "",
			want{200, "", HTTP11, 0, false, FramingNone, true, false, 1},
		},
		{
			"missing reason", MethodGet, "HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n", "",
			want{500, "", HTTP11, 0, false, FramingNone, true, false, 1},
		},
		{
			"reason with obs-text and tab", MethodGet, "HTTP/1.1 200 \xc3\xa9\tok\r\nContent-Length: 0\r\n\r\n", "",
			want{200, "\xc3\xa9\tok", HTTP11, 0, false, FramingNone, true, false, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.in + tt.rest)
			var r Response
			n, err := ParseResponse(buf, &r, tt.method, Limits{})
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if n != len(tt.in) {
				t.Fatalf("n = %d, want %d", n, len(tt.in))
			}
			got := want{r.Status, span(buf, r.Reason), r.Version, r.ContentLength, r.Chunked, r.Framing, r.KeepAlive, r.Interim(), len(r.Fields)}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			checkSpans(t, buf, n, &r.Head)
			if res := parseSplitResponse(buf, tt.method, Limits{}, nil); res.err != nil || res.n != n || res.sum != summarizeResponse(buf, &r) {
				t.Errorf("byte-by-byte differs: %+v", res)
			}
		})
	}
}

func TestParseResponseInterimThenFinal(t *testing.T) {
	buf := []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
	var r Response
	n, err := ParseResponse(buf, &r, MethodPost, Limits{})
	if err != nil || !r.Interim() || r.Status != 100 {
		t.Fatalf("interim: n=%d err=%v status=%d", n, err, r.Status)
	}
	r.Reset()
	rest := buf[n:]
	n2, err := ParseResponse(rest, &r, MethodPost, Limits{})
	if err != nil || r.Interim() || r.Status != 201 || r.Framing != FramingLength || string(rest[n2:]) != "ok" {
		t.Fatalf("final: n=%d err=%v status=%d", n2, err, r.Status)
	}
}

func TestParseResponseReject(t *testing.T) {
	long := strings.Repeat("v", 100)
	tests := []struct {
		name string
		in   string
		lim  Limits
		code errCode
	}{
		{"cl and te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, errContentLengthAndTE},
		{"differing cl", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", Limits{}, errContentLengthConflict},
		{"differing cl list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 7\r\n\r\n", Limits{}, errContentLengthConflict},
		{"bad cl", "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n", Limits{}, errContentLength},
		{"negative cl", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", Limits{}, errContentLength},
		{"cl overflow", "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n", Limits{}, errContentLength},
		{"te not chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Limits{}, errTENotChunked},
		{"te chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, errTransferEncoding},
		{"te in http/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, errTransferEncoding},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\n\r\n", Limits{}, errObsFold},
		{"bare lf status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", Limits{}, errBareLF},
		{"bare lf field", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", Limits{}, errBareLF},
		{"bare lf end", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", Limits{}, errBareLF},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", Limits{}, errSpaceBeforeColon},
		{"invalid value", "HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n", Limits{}, errFieldValue},
		{"invalid name", "HTTP/1.1 200 OK\r\nX A: b\r\n\r\n", Limits{}, errSpaceBeforeColon},
		{"http/2", "HTTP/2.0 200 OK\r\n\r\n", Limits{}, errVersion},
		{"lowercase proto", "http/1.1 200 OK\r\n\r\n", Limits{}, errStatusLine},
		{"two digit status", "HTTP/1.1 20 OK\r\n\r\n", Limits{}, errStatusLine},
		{"four digit status", "HTTP/1.1 2000 OK\r\n\r\n", Limits{}, errStatusLine},
		{"status below 100", "HTTP/1.1 099 Odd\r\n\r\n", Limits{}, errStatusCode},
		{"status above 599", "HTTP/1.1 600 Odd\r\n\r\n", Limits{}, errStatusCode},
		{"reason with control", "HTTP/1.1 200 O\x01K\r\n\r\n", Limits{}, errStatusLine},
		{"leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", Limits{}, errStatusLine},
		{"too large", "HTTP/1.1 200 OK\r\nX-A: " + long + "\r\n\r\n", Limits{MaxHeaderBytes: 64}, errHeaderTooLarge},
		{"too large incomplete", "HTTP/1.1 200 OK\r\nX-A: " + long, Limits{MaxHeaderBytes: 64}, errHeaderTooLarge},
		{"too many fields", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", Limits{MaxHeaderCount: 1}, errTooManyFields},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.in)
			var r Response
			n, err := ParseResponse(buf, &r, MethodGet, tt.lim)
			if n != 0 || !errors.Is(err, responseErrors[tt.code]) {
				t.Fatalf("n=%d err=%v, want %v", n, err, responseErrors[tt.code])
			}
			if StatusOf(err) != StatusBadGateway {
				t.Fatalf("status %d", StatusOf(err))
			}
			if res := parseSplitResponse(buf, MethodGet, tt.lim, nil); !errors.Is(res.err, err) {
				t.Fatalf("byte-by-byte: %v", res.err)
			}
		})
	}
}

func TestParseResponseNeedMore(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
	var r Response
	for i := 0; i < len(in); i++ {
		if n, err := ParseResponse([]byte(in[:i]), &r, MethodGet, Limits{}); n != 0 || !errors.Is(err, ErrNeedMore) {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
	}
	if n, err := ParseResponse([]byte(in), &r, MethodGet, Limits{}); n != len(in) || err != nil {
		t.Fatalf("n=%d err=%v", n, err)
	}
}
