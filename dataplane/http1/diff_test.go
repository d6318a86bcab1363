package http1

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"
)

// FuzzDifferentialRequest checks that a request this package accepts is
// also accepted by net/http with the same method, target and body framing.
func FuzzDifferentialRequest(f *testing.F) {
	for i, s := range requestSeeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, limSel uint8) {
		var r Request
		n, err := ParseRequest(data, &r, fuzzLimits(limSel))
		if err != nil {
			return
		}
		// A known, deliberate difference: net/http rejects Content-Length
		// lists of identical values, valid per RFC 9110 (and forwarded
		// upstream as one canonical Content-Length).
		for _, f := range r.Fields {
			if f.ID == HeaderContentLength && bytes.IndexByte(f.Value.Bytes(data), ',') >= 0 {
				return
			}
		}
		// net/http's server skips leading empty lines before ReadRequest.
		head := data[r.MethodSpan.Off:n]
		hr, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if herr != nil {
			t.Fatalf("net/http rejects what we accept: %v\n%q", herr, head)
		}
		if hr.Method != string(r.MethodSpan.Bytes(data)) || hr.RequestURI != string(r.Target.Bytes(data)) {
			t.Fatalf("method/target differ: %q %q", hr.Method, hr.RequestURI)
		}
		chunked := len(hr.TransferEncoding) > 0
		if chunked != r.Chunked {
			t.Fatalf("chunked differs: %v %v", hr.TransferEncoding, r.Chunked)
		}
		want := r.ContentLength
		if want < 0 {
			want = 0
		}
		if r.Chunked {
			want = -1
		}
		if hr.ContentLength != want {
			t.Fatalf("content length differs: %d %d\n%q", hr.ContentLength, r.ContentLength, head)
		}
		if hr.Close == r.KeepAlive {
			t.Fatalf("keep-alive differs: close=%v keepalive=%v\n%q", hr.Close, r.KeepAlive, head)
		}
	})
}

// FuzzDifferentialResponse checks that a response this package accepts is
// also accepted by net/http with the same status and body framing.
func FuzzDifferentialResponse(f *testing.F) {
	for i, s := range responseSeeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, method uint8) {
		m := Method(method % 10)
		if m == MethodOther || m == MethodConnect {
			return // net/http needs a real method name; CONNECT is tunnelled
		}
		var r Response
		n, err := ParseResponse(data, &r, m, Limits{})
		if err != nil {
			return
		}
		// Known, deliberate differences: net/http rejects Content-Length
		// lists of identical values and transfer codings before chunked,
		// both valid per RFC 9110/9112.
		for _, f := range r.Fields {
			v := f.Value.Bytes(data)
			if (f.ID == HeaderContentLength && bytes.IndexByte(v, ',') >= 0) ||
				(f.ID == HeaderTransferEncoding && !equalFold(v, "chunked")) {
				return
			}
		}
		hr, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data[:n])), &http.Request{Method: m.String()})
		if herr != nil {
			t.Fatalf("net/http rejects what we accept: %v\n%q", herr, data[:n])
		}
		if hr.StatusCode != r.Status {
			t.Fatalf("status differs: %d %d", hr.StatusCode, r.Status)
		}
		switch r.Framing {
		case FramingChunked:
			if len(hr.TransferEncoding) == 0 || hr.TransferEncoding[len(hr.TransferEncoding)-1] != "chunked" {
				t.Fatalf("chunked differs: %v\n%q", hr.TransferEncoding, data[:n])
			}
		case FramingLength:
			if hr.ContentLength != r.ContentLength {
				t.Fatalf("length differs: %d %d\n%q", hr.ContentLength, r.ContentLength, data[:n])
			}
		case FramingClose:
			if hr.ContentLength != -1 || !hr.Close {
				t.Fatalf("close-delimited differs: cl=%d close=%v\n%q", hr.ContentLength, hr.Close, data[:n])
			}
		}
	})
}
