package enginetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// h2cClient is an HTTP/2 client with prior knowledge over cleartext.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &p}}
}

// h2TLSClient is an HTTP/2 client over TLS (ALPN h2).
func h2TLSClient() *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		Protocols: &p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

// echoBackend answers with the request's method, path, body length and a
// digest of the body, and streams a body of ?size= bytes back.
func echoBackend(t *testing.T) *Backend {
	return StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Body-Len", strconv.Itoa(len(body)))
		w.Header().Set("X-Body-Sum", fmt.Sprint(sum(body)))
		if n, _ := strconv.Atoi(r.URL.Query().Get("size")); n > 0 {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(pattern(n))
			return
		}
		io.WriteString(w, r.Method+" "+r.URL.Path)
	}))
}

func sum(b []byte) uint64 {
	var s uint64
	for i, c := range b {
		s += uint64(c) * uint64(i+1)
	}
	return s
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// HTTP/2 with prior knowledge on an HTTP listener: requests with bodies
// both ways (known length and streamed), served through the usual route.
func TestH2CRequestResponse(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := echoBackend(t)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		cl := h2cClient()
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		checkH2Exchanges(t, cl, base)
	})
}

func checkH2Exchanges(t *testing.T, cl *http.Client, base string) {
	t.Helper()
	resp, err := cl.Get(base + "/hello")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "GET /hello" {
		t.Fatalf("GET: %s %d %q", resp.Proto, resp.StatusCode, b)
	}
	// A large download spans many windows.
	resp, err = cl.Get(base + "/big?size=1000000")
	if err != nil {
		t.Fatalf("GET big: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, pattern(1000000)) {
		t.Fatalf("GET big: %d bytes, not the pattern", len(b))
	}
	// Uploads: known length, then streamed (no content-length: chunked
	// upstream).
	up := pattern(300000)
	resp, err = cl.Post(base+"/up", "application/octet-stream", bytes.NewReader(up))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Body-Len") != "300000" || resp.Header.Get("X-Body-Sum") != fmt.Sprint(sum(up)) {
		t.Fatalf("POST: backend got %s bytes (sum %s)", resp.Header.Get("X-Body-Len"), resp.Header.Get("X-Body-Sum"))
	}
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(up); i += 7000 {
			pw.Write(up[i:min(i+7000, len(up))])
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, base+"/stream", pr)
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Body-Len") != "300000" || resp.Header.Get("X-Body-Sum") != fmt.Sprint(sum(up)) {
		t.Fatalf("PUT streamed: %d: backend got %s bytes (sum %s)", resp.StatusCode, resp.Header.Get("X-Body-Len"), resp.Header.Get("X-Body-Sum"))
	}
}

// HTTP/2 over TLS, negotiated with ALPN.
func TestH2OverTLS(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := echoBackend(t)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, httpsSnapshot(port, be.Addr(), "", newTLSCert(t, "example.com"))))
		checkH2Exchanges(t, h2TLSClient(), "https://127.0.0.1:"+strconv.Itoa(port))
		// An HTTP/1.1 client still gets HTTP/1.1.
		tc := dialTLS(t, port, "example.com", 0)
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" {
			t.Fatalf("ALPN without an offer: %q", p)
		}
	})
}

// Many concurrent streams on one connection reach the backend in parallel.
func TestH2ConcurrentStreams(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		const n = 50
		var mu sync.Mutex
		inFlight, peak := 0, 0
		release := make(chan struct{})
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			if inFlight == n {
				close(release)
			}
			mu.Unlock()
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			io.WriteString(w, r.URL.Path)
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		cl := h2cClient()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := "/s" + strconv.Itoa(i)
				resp, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(port) + p)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != p {
					errs <- fmt.Errorf("%s: got %q", p, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if peak != n {
			t.Fatalf("at most %d of %d streams at the backend at once", peak, n)
		}
		if conns, _ := be.Counts(); conns < n {
			t.Fatalf("%d backend connections for %d concurrent streams", conns, n)
		}
	})
}

// A backend's HTTP/1.1 chunked trailers reach the HTTP/2 client as a
// trailing HEADERS frame (gRPC's grpc-status travels so).
func TestH2Trailers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			w.Header().Set("Content-Type", "application/grpc")
			w.WriteHeader(200)
			io.WriteString(w, "payload")
			w.(http.Flusher).Flush()
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set("Grpc-Message", "fine")
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		resp, err := h2cClient().Get("http://127.0.0.1:" + strconv.Itoa(port) + "/svc/M")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "payload" || resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "fine" {
			t.Fatalf("body %q trailers %v", b, resp.Trailer)
		}
	})
}

// The dataplane's own replies to gRPC requests are trailers-only
// responses carrying the gRPC status mapped from the HTTP status.
func TestH2GRPCLocalReply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port := FreePort(t)
		te := startEngine(t, k)
		// No route for /nowhere: 404, gRPC UNIMPLEMENTED (12); a group
		// without endpoints: 503, UNAVAILABLE (14).
		y := strings.Replace(HTTPSnapshot(port, nil, "", "", ""), "    - name: default\n", "    - name: default\n      matches: [{path: {type: PATH_PREFIX, value: /svc}}]\n", 1)
		te.apply(CompileYAML(t, te.reg, y))
		cl := h2cClient()
		for path, want := range map[string]string{"/nowhere": "12", "/svc/M": "14"} {
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+path, strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Trailers-only: the status is in the head, there is no body.
			if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Grpc-Status") != want || resp.Header.Get("Content-Type") != "application/grpc" {
				t.Fatalf("%s: %d %q grpc-status %q content-type %q", path, resp.StatusCode, b, resp.Header.Get("Grpc-Status"), resp.Header.Get("Content-Type"))
			}
		}
	})
}

// With http2.disabled the listener is HTTP/1.1 only: the preface is not
// taken, ALPN offers no h2.
func TestH2Disabled(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := echoBackend(t)
		port := FreePort(t)
		te := startEngine(t, k)
		y := strings.Replace(HTTPSnapshot(port, []string{be.Addr()}, "", "", ""), "  protocol: HTTP\n", "  protocol: HTTP\n  http2: {disabled: true}\n", 1)
		te.apply(CompileYAML(t, te.reg, y))
		if _, err := h2cClient().Get("http://127.0.0.1:" + strconv.Itoa(port) + "/"); err == nil {
			t.Fatal("HTTP/2 request served with http2 disabled")
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("HTTP/1.1 status %d", resp.StatusCode)
		}
	})
}

// A real gRPC client reads the dataplane's own replies as gRPC statuses:
// UNIMPLEMENTED where no route matches, UNAVAILABLE where the route's
// group has no endpoint.
func TestH2GRPCClientStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		port := FreePort(t)
		te := startEngine(t, k)
		y := strings.Replace(HTTPSnapshot(port, nil, "", "", ""), "    - name: default\n", "    - name: default\n      matches: [{path: {type: PATH_PREFIX, value: /svc.Known}}]\n", 1)
		te.apply(CompileYAML(t, te.reg, y))
		cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		for method, want := range map[string]codes.Code{"/svc.Unknown/M": codes.Unimplemented, "/svc.Known/M": codes.Unavailable} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cc.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
			cancel()
			if got := status.Code(err); got != want {
				t.Fatalf("%s: %v (%v), want %v", method, got, err, want)
			}
		}
	})
}

// gRPC end to end: a gRPC client over HTTP/2 to the dataplane, a gRPC
// server behind it on an h2c backend group; unary calls, a status in
// trailers, and a server stream whose messages arrive as sent.
func TestH2GRPCEndToEnd(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		hs := health.NewServer()
		hs.SetServingStatus("flax.test", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(srv, hs)
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(srv.Stop)
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, ln.Addr().String())))

		cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		hc := healthpb.NewHealthClient(cc)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for range 20 {
			r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "flax.test"})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check: %v, %v", r, err)
			}
		}
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
			t.Fatalf("Check of an unknown service: %v, want NotFound", err)
		}
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "flax.test"})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch: %v, %v", r, err)
		}
		hs.SetServingStatus("flax.test", healthpb.HealthCheckResponse_NOT_SERVING)
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("Watch, second message: %v, %v", r, err)
		}
	})
}

// Request trailers of an HTTP/2 client reach the backend: an HTTP/1.1 one
// as the trailer section of a chunked body, an h2c one as a trailing
// HEADERS frame. Each backend reads the body, then the trailer, and
// answers with what it got.
func TestH2RequestTrailers(t *testing.T) {
	trailerEcho := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("X-Got", fmt.Sprintf("%s %d %s", r.Proto, len(body), r.Trailer.Get("X-Checksum")))
		w.WriteHeader(200)
	})
	for _, tc := range []struct {
		name  string
		start func(*testing.T, http.Handler) *Backend
		group string
		proto string
	}{
		{"http1", func(t *testing.T, h http.Handler) *Backend { return StartBackend(t, h) }, "", "HTTP/1.1"},
		{"h2c", startH2CBackend, "  protocol: H2C\n", "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, k kind) {
				be := tc.start(t, trailerEcho)
				port := FreePort(t)
				te := startEngine(t, k)
				te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, tc.group, "", "")))
				r := dialH2(t, port)
				body := pattern(100_000) // more than a stream window's worth before SETTINGS
				if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("POST", "/up", "trailer", "x-checksum", "te", "trailers"), EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
				go func() {
					// The windows allow all of it once the server gave credit;
					// the reads below acknowledge its SETTINGS.
					w := r.writer()
					for off := 0; off < len(body); off += 16384 {
						w.WriteData(1, false, body[off:min(off+16384, len(body))])
					}
					r.hbuf.Reset()
					r.enc.WriteField(hpack.HeaderField{Name: "x-checksum", Value: "sum-42"})
					w.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Clone(r.hbuf.Bytes()), EndStream: true, EndHeaders: true})
				}()
				var got string
				fr, err := r.until(func(f http2.Frame) bool {
					if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
						got = h.PseudoValue("status") + " " + firstField(h, "x-got")
						return true
					}
					if rs, ok := f.(*http2.RSTStreamFrame); ok && rs.StreamID == 1 {
						t.Fatalf("stream reset: %v", rs.ErrCode)
					}
					return false
				})
				if err != nil || fr == nil {
					t.Fatalf("no response: %v", err)
				}
				if want := "200 " + tc.proto + " 100000 sum-42"; got != want {
					t.Fatalf("response %q, want %q", got, want)
				}
			})
		})
	}
}

func firstField(h *http2.MetaHeadersFrame, name string) string {
	for _, f := range h.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// HTTP/2 clients put many requests in flight at once, each on an HTTP/1.1
// upstream connection of its own: the keep-alive pool keeps as many as
// were busy, so a second burst like the first opens no new connection
// (the default pool of 64 per endpoint closed, on release, most of those
// the next streams opened again).
func TestH2BurstReusesUpstreamConnections(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(300 * time.Millisecond) // all of a burst in flight at once
			io.WriteString(w, "ok")
		}))
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, HTTPSnapshot(port, []string{be.Addr()}, "", "", "")))
		cl := h2cClient()
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/burst"
		const n = 150
		burst := func() {
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := cl.Get(url)
					if err != nil {
						errs <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != "ok" {
						errs <- fmt.Errorf("status %d body %q", resp.StatusCode, b)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		}
		burst()
		first, _ := be.Counts()
		burst()
		conns, reqs := be.Counts()
		if reqs != 2*n {
			t.Fatalf("%d requests reached the backend, want %d", reqs, 2*n)
		}
		// A few more may open where the second burst's peak is higher.
		if opened := conns - first; opened > 15 {
			t.Fatalf("the second burst opened %d upstream connections (the first %d)", opened, first)
		}
	})
}
