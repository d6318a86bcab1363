package http1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var validChunked = []struct {
	name string
	in   string
	data string
}{
	{"last chunk only", "0\r\n\r\n", ""},
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
	{"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
	{"upper and lower hex", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij"},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"},
	{"extensions", "5;name=value\r\nhello\r\n1 ;a ; b=\"q s\"\t\r\n!\r\n0;last\r\n\r\n", "hello!"},
	{"trailers", "3\r\nabc\r\n0\r\nChecksum: 123\r\nX-Empty:\r\n\r\n", "abc"},
	{"data with crlf inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"},
	{"binary data", "3\r\n\x00\xff\n\r\n0\r\n\r\n", "\x00\xff\n"},
}

// feedAll passes pieces of in (split at cuts) through a fresh reader with
// Feed and returns the consumed count, done flag, error and, using Next on a
// second reader with the same pieces, the decoded payload.
func feedAll(in []byte, cuts []int, lim Limits) (n int, done bool, err error, data []byte, decErr error) {
	var fr, dr BodyReader
	fr.Reset(FramingChunked, -1, lim)
	dr.Reset(FramingChunked, -1, lim)
	prev := 0
	bounds := append(append([]int(nil), cuts...), len(in))
	for _, c := range bounds {
		if c < prev {
			continue
		}
		piece := in[prev:c]
		prev = c
		if !done && err == nil {
			m, d, e := fr.Feed(piece)
			n += m
			done, err = d, e
		}
		for len(piece) > 0 && decErr == nil && !dr.Done() {
			m, chunk, _, e := dr.Next(piece)
			data = append(data, chunk...)
			decErr = e
			piece = piece[m:]
		}
	}
	return n, done, err, data, decErr
}

func TestChunkedValid(t *testing.T) {
	const next = "GET / HTTP/1.1\r\n"
	for _, tt := range validChunked {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in + next)
			check := func(desc string, cuts []int) {
				t.Helper()
				n, done, err, data, decErr := feedAll(in, cuts, Limits{})
				if err != nil || decErr != nil || !done || n != len(tt.in) || string(data) != tt.data {
					t.Fatalf("%s %v: n=%d done=%v err=%v decErr=%v data=%q", desc, cuts, n, done, err, decErr, data)
				}
			}
			check("whole", nil)
			// One byte at a time.
			ones := make([]int, len(in))
			for i := range ones {
				ones[i] = i
			}
			check("bytewise", ones)
			// Every split into two and three pieces.
			for i := 0; i <= len(in); i++ {
				check("split2", []int{i})
				for j := i; j <= len(in); j++ {
					check("split3", []int{i, j})
				}
			}
		})
	}
}

func TestChunkedInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		code errCode
	}{
		{"empty size", "\r\n", Limits{}, errChunkSize},
		{"non-hex size", "x\r\n", Limits{}, errChunkSize},
		{"negative size", "-1\r\n", Limits{}, errChunkSize},
		{"0x prefix", "0x5\r\nhello\r\n", Limits{}, errChunkSize},
		{"leading space", " 5\r\nhello\r\n", Limits{}, errChunkSize},
		{"size with trailing garbage", "5g\r\n", Limits{}, errChunkSize},
		{"space without extension", "5 \r\nhello\r\n0\r\n\r\n", Limits{}, errChunkExt},
		{"too many digits", "00000000000000005\r\n", Limits{}, errChunkSizeOverflow},
		{"overflow", "FFFFFFFFFFFFFFFF\r\n", Limits{}, errChunkSizeOverflow},
		{"overflow 2^63", "8000000000000000\r\n", Limits{}, errChunkSizeOverflow},
		{"bare lf after size", "5\nhello\r\n", Limits{}, errBareLF},
		{"cr without lf after size", "5\rhello\r\n", Limits{}, errChunkLine},
		{"bare lf after extension", "5;a=b\nhello\r\n", Limits{}, errBareLF},
		{"control in extension", "5;a\x00\r\nhello\r\n", Limits{}, errChunkExt},
		{"extension too long", "5;" + strings.Repeat("a", 20) + "\r\nhello\r\n", Limits{MaxChunkExtBytes: 10}, errChunkExtTooLong},
		{"data too long", "5\r\nhelloX\r\n", Limits{}, errChunkDataCRLF},
		{"missing crlf after data", "5\r\nhello0\r\n\r\n", Limits{}, errChunkDataCRLF},
		{"bare lf after data", "5\r\nhello\n0\r\n\r\n", Limits{}, errChunkDataCRLF},
		{"cr without lf after data", "5\r\nhello\rX", Limits{}, errChunkDataCRLF},
		{"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", Limits{}, errTrailer},
		{"trailer without colon", "0\r\nAB\r\n\r\n", Limits{}, errTrailer},
		{"trailer space before colon", "0\r\nA : b\r\n\r\n", Limits{}, errTrailer},
		{"trailer bad value", "0\r\nA: \x01\r\n\r\n", Limits{}, errTrailer},
		{"trailer bare lf", "0\r\nA: b\n\r\n", Limits{}, errBareLF},
		{"final bare lf", "0\r\n\n", Limits{}, errBareLF},
		{"final cr without lf", "0\r\n\rX", Limits{}, errTrailer},
		{"trailer cr without lf", "0\r\nA: b\rX", Limits{}, errTrailer},
		{"trailers too large", "0\r\nA: " + strings.Repeat("b", 50) + "\r\n\r\n", Limits{MaxTrailerBytes: 32}, errTrailerTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			want := requestErrors[tt.code]
			for i := 0; i <= len(in); i++ {
				_, done, err, _, decErr := feedAll(in, []int{i}, tt.lim)
				if !errors.Is(err, want) || !errors.Is(decErr, want) || done {
					t.Fatalf("split %d: err=%v decErr=%v done=%v, want %v", i, err, decErr, done, want)
				}
			}
			// The error sticks.
			var b BodyReader
			b.Reset(FramingChunked, -1, tt.lim)
			_, _, err := b.Feed(in)
			if _, _, err2 := b.Feed([]byte("0\r\n\r\n")); !errors.Is(err2, err) {
				t.Fatalf("error did not stick: %v", err2)
			}
		})
	}
}

func TestChunkedLargestSize(t *testing.T) {
	var b BodyReader
	b.Reset(FramingChunked, -1, Limits{})
	n, done, err := b.Feed([]byte("7FFFFFFFFFFFFFFF\r\nabc"))
	if err != nil || done || n != 21 {
		t.Fatalf("n=%d done=%v err=%v", n, done, err)
	}
}

func TestChunkedResponseErrorsAre502(t *testing.T) {
	var r Response
	buf := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	n, err := ParseResponse(buf, &r, MethodGet, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var b BodyReader
	b.ForResponse(&r, Limits{})
	if b.Framing() != FramingChunked {
		t.Fatalf("framing %d", b.Framing())
	}
	_, _, err = b.Feed(buf[n:])
	if StatusOf(err) != StatusBadGateway {
		t.Fatalf("err=%v", err)
	}
}

func TestContentLengthBody(t *testing.T) {
	var b BodyReader
	b.Reset(FramingLength, 10, Limits{})
	if b.Done() || b.Remaining() != 10 {
		t.Fatal("fresh reader")
	}
	n, done, err := b.Feed([]byte("abc"))
	if n != 3 || done || err != nil || b.Remaining() != 7 {
		t.Fatalf("n=%d done=%v err=%v", n, done, err)
	}
	n, data, done, err := b.Next([]byte("defghijNEXT"))
	if n != 7 || !done || err != nil || string(data) != "defghij" {
		t.Fatalf("n=%d done=%v err=%v data=%q", n, done, err, data)
	}
	if n, done, _ := b.Feed([]byte("more")); n != 0 || !done {
		t.Fatalf("after done: n=%d done=%v", n, done)
	}

	b.Reset(FramingLength, 0, Limits{})
	if !b.Done() {
		t.Fatal("zero length not done")
	}
}

func TestNoneAndCloseBodies(t *testing.T) {
	var zero BodyReader
	if n, done, err := zero.Feed([]byte("x")); n != 0 || !done || err != nil {
		t.Fatalf("zero reader: n=%d done=%v err=%v", n, done, err)
	}
	var b BodyReader
	b.Reset(FramingNone, -1, Limits{})
	if n, done, err := b.Feed([]byte("next")); n != 0 || !done || err != nil {
		t.Fatalf("none: n=%d done=%v err=%v", n, done, err)
	}
	b.Reset(FramingClose, -1, Limits{})
	for i := 0; i < 3; i++ {
		n, data, done, err := b.Next([]byte("stream"))
		if n != 6 || done || err != nil || string(data) != "stream" {
			t.Fatalf("close: n=%d done=%v err=%v", n, done, err)
		}
	}
	if b.Remaining() != 0 {
		t.Fatal("remaining")
	}
}

func TestRequestBodyFraming(t *testing.T) {
	buf := []byte("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET")
	var r Request
	n, err := ParseRequest(buf, &r, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var b BodyReader
	b.ForRequest(&r, Limits{})
	var data []byte
	rest := buf[n:]
	for !b.Done() {
		m, d, _, err := b.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d...)
		rest = rest[m:]
	}
	if string(data) != "abc" || !bytes.Equal(rest, []byte("GET")) {
		t.Fatalf("data=%q rest=%q", data, rest)
	}
}
