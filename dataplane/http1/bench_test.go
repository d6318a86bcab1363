package http1

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalRequest)))
	for b.Loop() {
		r.Reset()
		if _, err := ParseRequest(typicalRequest, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestMinimal(b *testing.B) {
	buf := []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Reset()
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	var r Response
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalResponse)))
	for b.Loop() {
		r.Reset()
		if _, err := ParseResponse(typicalResponse, &r, MethodGet, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewriteRequestHead(b *testing.B) {
	var r Request
	if _, err := ParseRequest(typicalRequest, &r, Limits{}); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalRequest)))
	for b.Loop() {
		dst = AppendRequestHead(dst[:0], typicalRequest, &r, &typicalRewrite)
	}
}

func BenchmarkChunked(b *testing.B) {
	var br BodyReader
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalChunked)))
	for b.Loop() {
		br.Reset(FramingChunked, -1, Limits{})
		n, done, err := br.Feed(typicalChunked)
		if err != nil || !done || n != len(typicalChunked) {
			b.Fatal(n, done, err)
		}
	}
}

func BenchmarkChunkedDecode(b *testing.B) {
	var br BodyReader
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalChunked)))
	for b.Loop() {
		br.Reset(FramingChunked, -1, Limits{})
		p := typicalChunked
		for !br.Done() {
			n, _, _, err := br.Next(p)
			if err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
	}
}
