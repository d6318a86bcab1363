package http1

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// headWith returns a request or response head with n extra field lines
// ("Set-Cookie: c<i>=<value>") whose values are padded to make the whole
// head exactly size bytes long when size > 0.
func headWith(response bool, n, size int) string {
	start := "GET / HTTP/1.1\r\nHost: h\r\n"
	if response {
		start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	}
	var b strings.Builder
	b.WriteString(start)
	for i := range n {
		b.WriteString("Set-Cookie: c" + strconv.Itoa(i) + "=v\r\n")
	}
	if size > 0 {
		pad := size - b.Len() - len("X-Pad: \r\n\r\n")
		if pad < 0 {
			panic("head too small for padding")
		}
		b.WriteString("X-Pad: " + strings.Repeat("p", pad) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// Requests and responses have separate head limits: the response defaults
// are larger (a backend sending 150 Set-Cookie fields or a 40 KiB head is
// legitimate), the request defaults stay strict, and explicit limits apply
// to whichever parser they are given to.
func TestHeadLimitsRequestVsResponse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response bool
		fields   int // Set-Cookie lines, on top of the start's one field
		size     int // whole head size when > 0
		lim      Limits
		want     int // 0: accepted, else the error's status
	}{
		{"request 99+1 fields", false, 99, 0, Limits{}, 0},
		{"request 100+1 fields", false, 100, 0, Limits{}, 431},
		{"request 150 set-cookie", false, 150, 0, Limits{}, 431},
		{"request 16 KiB head", false, 0, DefaultMaxHeaderBytes, Limits{}, 0},
		{"request 16 KiB+1 head", false, 0, DefaultMaxHeaderBytes + 1, Limits{}, 431},
		{"request raised count", false, 300, 0, Limits{MaxHeaderCount: 301}, 0},
		{"request raised size", false, 0, 40 << 10, Limits{MaxHeaderBytes: 40 << 10}, 0},

		{"response 150 set-cookie", true, 150, 0, Limits{}, 0},
		{"response 499+1 fields", true, 499, 0, Limits{}, 0},
		{"response 500+1 fields", true, 500, 0, Limits{}, 502},
		{"response 40 KiB head", true, 0, 40 << 10, Limits{}, 0},
		{"response 64 KiB-1 head", true, 0, DefaultMaxResponseHeaderBytes, Limits{}, 0},
		{"response 64 KiB head", true, 0, DefaultMaxResponseHeaderBytes + 1, Limits{}, 502},
		{"response lowered count", true, 100, 0, Limits{MaxHeaderCount: 100}, 502},
		{"response lowered size", true, 0, 8 << 10, Limits{MaxHeaderBytes: 8<<10 - 1}, 502},
		{"response only count set", true, 0, 40 << 10, Limits{MaxHeaderCount: 10}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := headWith(tc.response, tc.fields, tc.size)
			if tc.size > 0 && len(head) != tc.size {
				t.Fatalf("test head is %d bytes, want %d", len(head), tc.size)
			}
			buf := []byte(head)
			var n int
			var err error
			if tc.response {
				var r Response
				n, err = ParseResponse(buf, &r, MethodGet, tc.lim)
			} else {
				var r Request
				n, err = ParseRequest(buf, &r, tc.lim)
			}
			if tc.want == 0 {
				if err != nil || n != len(buf) {
					t.Fatalf("n=%d err=%v, want the whole %d-byte head", n, err, len(buf))
				}
				return
			}
			if errors.Is(err, ErrNeedMore) || StatusOf(err) != tc.want {
				t.Fatalf("err=%v (status %d), want status %d", err, StatusOf(err), tc.want)
			}
		})
	}
}

// A response head that arrives in pieces is parsed to the response limits,
// not the request ones.
func TestResponseLimitsIncremental(t *testing.T) {
	head := []byte(headWith(true, 200, 30<<10))
	var r Response
	for end := 1000; end < len(head); end += 1000 {
		if _, err := ParseResponse(head[:end], &r, MethodGet, Limits{}); !errors.Is(err, ErrNeedMore) {
			t.Fatalf("at %d bytes: %v", end, err)
		}
	}
	n, err := ParseResponse(head, &r, MethodGet, Limits{})
	if err != nil || n != len(head) || len(r.Fields) != 202 {
		t.Fatalf("n=%d err=%v fields=%d", n, err, len(r.Fields))
	}
}

func TestDefaultResponseLimits(t *testing.T) {
	if DefaultResponseLimits() != (Limits{}).NormalizedResponse() {
		t.Error("DefaultResponseLimits differs from the zero Limits of a response")
	}
	l := DefaultResponseLimits()
	if l.MaxHeaderBytes != MaxHeaderBytesLimit || l.MaxHeaderCount != 500 || l.MaxChunkExtBytes != DefaultMaxChunkExtBytes {
		t.Errorf("DefaultResponseLimits = %+v", l)
	}
	if d := DefaultLimits(); d.MaxHeaderBytes != 16<<10 || d.MaxHeaderCount != 100 {
		t.Errorf("DefaultLimits = %+v", d)
	}
}
