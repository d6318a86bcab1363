package h2c

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startServer serves h over h2c with prior knowledge only, on loopback.
func startServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	big := strings.Repeat("0123456789", 20000) // beyond the initial windows
	addr := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.ProtoMajor != 2 || r.Host != "svc.example" || r.Header.Get("Connection") != "":
			w.WriteHeader(400)
		case r.URL.RequestURI() == "/down?x=1":
			w.WriteHeader(503)
		case r.Method == "POST" && string(b) == "hello world":
			w.WriteHeader(201)
		case r.Method == "PUT" && string(b) == big:
			w.WriteHeader(202)
		case r.Method == "GET" && len(b) == 0:
			w.WriteHeader(200)
		default:
			w.WriteHeader(500)
		}
	})
	for _, c := range []struct {
		name, req string
		want      int
	}{
		{"get", "GET /healthz HTTP/1.1\r\nHost: svc.example\r\nConnection: close\r\n\r\n", 200},
		{"status", "GET /down?x=1 HTTP/1.1\r\nHost: svc.example\r\n\r\n", 503},
		{"absolute form", "GET http://svc.example/down?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", 503},
		{"chunked", "POST /p HTTP/1.1\r\nHost: svc.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", 201},
		{"sized, large", fmt.Sprintf("PUT /p HTTP/1.1\r\nHost: svc.example\r\nContent-Length: %d\r\n\r\n%s", len(big), big), 202},
	} {
		status, err := RoundTrip(dial(t, addr), []byte(c.req))
		if err != nil || status != c.want {
			t.Errorf("%s: status %d, %v; want %d", c.name, status, err, c.want)
		}
	}
}

func TestRoundTripErrors(t *testing.T) {
	if _, err := RoundTrip(nil, []byte("GET / HTTP/1.1\r\n")); err == nil {
		t.Error("an incomplete head was sent")
	}
	if _, err := RoundTrip(nil, []byte("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab")); err == nil {
		t.Error("a short body was sent")
	}
	// An HTTP/1.1 server does not speak h2c: the exchange fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if _, err := RoundTrip(dial(t, ln.Addr().String()), []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")); err == nil {
		t.Error("an HTTP/1.1-only server answered")
	}
}

// TestUnaryCall: a gRPC call over h2c sends the framed message with the
// gRPC head fields and reads the framed reply and the status from the
// trailers, or from the head of a trailers-only response.
func TestUnaryCall(t *testing.T) {
	addr := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Header.Get("Content-Type") != "application/grpc" || r.Header.Get("Te") != "trailers" || r.Method != "POST":
			w.WriteHeader(400)
		case r.URL.Path == "/t.S/Echo" && len(b) >= 5:
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			_, _ = w.Write(b) // the same framing back
			w.Header().Set("Grpc-Status", "0")
		case r.URL.Path == "/t.S/Fail":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "14")
			w.Header().Set("Grpc-Message", "down")
		case r.URL.Path == "/t.S/Big":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			_, _ = w.Write(make([]byte, MaxGRPCReply+100))
			w.Header().Set("Grpc-Status", "0")
		default:
			w.WriteHeader(404)
		}
	})
	reply, err := UnaryCall(dial(t, addr), "svc.example", "/t.S/Echo", []byte("ping"))
	if err != nil || string(reply) != "ping" {
		t.Fatalf("echo: %q, %v", reply, err)
	}
	var se *StatusError
	if _, err := UnaryCall(dial(t, addr), "svc.example", "/t.S/Fail", nil); !errors.As(err, &se) || se.Code != 14 || se.Message != "down" {
		t.Fatalf("trailers-only failure: %v", err)
	}
	if _, err := UnaryCall(dial(t, addr), "svc.example", "/t.S/Big", nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized reply: %v", err)
	}
	if _, err := UnaryCall(dial(t, addr), "svc.example", "/nope", nil); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("not a gRPC server: %v", err)
	}
}
