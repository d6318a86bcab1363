package http1

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 3\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\n\r\nabc",
	"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n0\r\n\r\n",
	"GET http://e.com/p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
	"CONNECT e.com:443 HTTP/1.1\r\nHost: e.com:443\r\n\r\n",
	"OPTIONS * HTTP/1.0\r\n\r\n",
	"\r\nGET / HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\nGET / HTTP/1.1\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\nHost: h\n\n",
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close, x\r\nX: y\r\n\r\n",
	"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 5, 5\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
}

// fuzzLimits picks default limits or small ones that the fuzzer can hit.
func fuzzLimits(sel uint8) Limits {
	if sel&1 == 0 {
		return Limits{}
	}
	return Limits{
		MaxHeaderBytes:   32 + int(sel),
		MaxHeaderCount:   1 + int(sel>>1)%8,
		MaxURIBytes:      1 + int(sel>>2)%40,
		MaxChunkExtBytes: 1 + int(sel>>1)%16,
		MaxTrailerBytes:  1 + int(sel>>2)%64,
	}
}

var bigLimits = Limits{MaxHeaderBytes: MaxHeaderBytesLimit, MaxHeaderCount: 10000, MaxURIBytes: MaxHeaderBytesLimit}

func checkResult(t *testing.T, what string, n int, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ErrNeedMore) {
		if errors.Is(err, ErrNeedMore) && n != 0 {
			t.Fatalf("%s: n=%d with ErrNeedMore", what, n)
		}
		return
	}
	e := &Error{}
	ok := errors.As(err, &e)
	if !ok || n != 0 || e.Status < 400 || e.Status > 599 || e.Reason == "" {
		t.Fatalf("%s: n=%d err=%#v", what, n, err)
	}
}

func compareSplits(t *testing.T, what string, whole, split parseResult) {
	t.Helper()
	if whole.n != split.n || !errors.Is(whole.err, split.err) || whole.sum != split.sum {
		t.Fatalf("%s differs from whole parse:\nwhole: %d %v %s\nsplit: %d %v %s",
			what, whole.n, whole.err, whole.sum, split.n, split.err, split.sum)
	}
}

func FuzzParseRequest(f *testing.F) {
	for i, s := range requestSeeds {
		f.Add([]byte(s), uint64(i), uint8(0))
		f.Add([]byte(s), uint64(i), uint8(2*i+1))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limSel uint8) {
		lim := fuzzLimits(limSel)
		var r Request
		n, err := ParseRequest(data, &r, lim)
		checkResult(t, "whole", n, err)
		whole := parseResult{n: n, err: err}
		if err == nil {
			whole.sum = summarizeRequest(data, &r)
			if err := checkSpansErr(n, &r.Head, requestSpans(&r)...); err != nil {
				t.Fatal(err)
			}
			if n > len(data) || n > lim.Normalized().MaxHeaderBytes {
				t.Fatalf("n=%d beyond input or limit", n)
			}
			// What goes upstream parses back to the same request.
			out := AppendRequestHead(nil, data, &r, nil)
			var up Request
			un, uerr := ParseRequest(out, &up, bigLimits)
			if uerr != nil || un != len(out) {
				t.Fatalf("rewritten head does not parse: %v\n%q", uerr, out)
			}
			if up.Method != r.Method || up.Chunked != r.Chunked || up.ContentLength != r.ContentLength ||
				!bytes.Equal(up.MethodSpan.Bytes(out), r.MethodSpan.Bytes(data)) {
				t.Fatalf("rewritten head changed the request:\n%q\n%q", data[:n], out)
			}
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(data))))
		compareSplits(t, "random split", whole, parseSplitRequest(data, lim, randomCuts(rng, len(data), 4)))
		if len(data) <= 512 {
			compareSplits(t, "byte-by-byte", whole, parseSplitRequest(data, lim, nil))
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for i, s := range responseSeeds {
		f.Add([]byte(s), uint64(i), uint8(0), uint8(MethodGet))
		f.Add([]byte(s), uint64(i), uint8(2*i+1), uint8(i%10))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limSel, method uint8) {
		lim := fuzzLimits(limSel)
		m := Method(method % 10)
		var r Response
		n, err := ParseResponse(data, &r, m, lim)
		checkResult(t, "whole", n, err)
		if err != nil && !errors.Is(err, ErrNeedMore) && StatusOf(err) != StatusBadGateway {
			t.Fatalf("response error with status %d", StatusOf(err))
		}
		whole := parseResult{n: n, err: err}
		if err == nil {
			whole.sum = summarizeResponse(data, &r)
			if err := checkSpansErr(n, &r.Head, r.Reason); err != nil {
				t.Fatal(err)
			}
			if r.Status < 100 || r.Status > 599 {
				t.Fatalf("status %d", r.Status)
			}
			out := AppendResponseHead(nil, data, &r, nil)
			var down Response
			dn, derr := ParseResponse(out, &down, m, bigLimits)
			if derr != nil || dn != len(out) {
				t.Fatalf("rewritten head does not parse: %v\n%q", derr, out)
			}
			if down.Status != r.Status || down.Framing != r.Framing ||
				(r.Framing == FramingLength && down.ContentLength != r.ContentLength) {
				t.Fatalf("rewritten head changed the response:\n%q\n%q", data[:n], out)
			}
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(data))))
		compareSplits(t, "random split", whole, parseSplitResponse(data, m, lim, randomCuts(rng, len(data), 4)))
		if len(data) <= 512 {
			compareSplits(t, "byte-by-byte", whole, parseSplitResponse(data, m, lim, nil))
		}
	})
}

func FuzzChunked(f *testing.F) {
	for i, v := range validChunked {
		f.Add([]byte(v.in+"NEXT"), uint64(i), uint8(0))
	}
	f.Add([]byte("5\r\nhello0\r\n\r\n"), uint64(1), uint8(1))
	f.Add([]byte("1;"+string(make([]byte, 40))+"\r\n"), uint64(2), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limSel uint8) {
		lim := fuzzLimits(limSel)
		n, done, err, dec, decErr := feedAll(data, nil, lim)
		if !errors.Is(err, decErr) {
			t.Fatalf("Feed error %v, Next error %v", err, decErr)
		}
		if n < 0 || n > len(data) || len(dec) > n {
			t.Fatalf("n=%d data=%d len=%d", n, len(dec), len(data))
		}
		if err == nil && !done && n != len(data) {
			t.Fatalf("not done but consumed %d of %d", n, len(data))
		}
		if err != nil {
			if StatusOf(err) != StatusBadRequest {
				t.Fatalf("err %v", err)
			}
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(data))))
		cuts := randomCuts(rng, len(data), 6)
		n2, done2, err2, dec2, decErr2 := feedAll(data, cuts, lim)
		if n2 != n || done2 != done || !errors.Is(err2, err) || !errors.Is(decErr2, decErr) || !bytes.Equal(dec, dec2) {
			t.Fatalf("split %v: n=%d/%d done=%v/%v err=%v/%v data=%q/%q", cuts, n, n2, done, done2, err, err2, dec, dec2)
		}
		if len(data) <= 256 {
			ones := make([]int, len(data))
			for i := range ones {
				ones[i] = i
			}
			n3, done3, err3, dec3, _ := feedAll(data, ones, lim)
			if n3 != n || done3 != done || !errors.Is(err3, err) || !bytes.Equal(dec, dec3) {
				t.Fatalf("bytewise: n=%d/%d done=%v/%v err=%v/%v", n, n3, done, done3, err, err3)
			}
		}
	})
}
