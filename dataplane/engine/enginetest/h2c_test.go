package enginetest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// startH2CBackend serves h over cleartext HTTP/2 with prior knowledge only
// (net/http's h2c), counting connections and requests.
func startH2CBackend(t *testing.T, h http.Handler) *Backend {
	t.Helper()
	return StartBackendWith(t, h, func(s *http.Server) {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		s.Protocols = p
	})
}

// h2cSnapshot is HTTPSnapshot with the group "app" speaking h2c.
func h2cSnapshot(port int, addrs ...string) string {
	return HTTPSnapshot(port, addrs, "  protocol: H2C\n", "", "")
}

func TestH2CBackend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/download" {
				// Larger than every window: the proxy must give credit back.
				chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
				for range 64 {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("X-Proto", r.Proto)
			w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Checksum"))
			w.Header().Set("X-Host", r.Host)
			var sum byte
			for _, c := range body {
				sum += c
			}
			fmt.Fprintf(w, "%s %s n=%d", r.Method, r.URL.RequestURI(), len(body))
			w.Header().Set("X-Sum", strconv.Itoa(int(sum)))
		}))
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.Addr())))
		c := Dial(t, port)
		br := bufio.NewReader(c)

		// Requests without a body, one connection: the upstream
		// connection is reused.
		for i := range 3 {
			fmt.Fprintf(c, "GET /get?i=%d HTTP/1.1\r\nHost: example.com\r\n\r\n", i)
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != 200 || body != fmt.Sprintf("GET /get?i=%d n=0", i) {
				t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
			}
			if resp.Header.Get("X-Proto") != "HTTP/2.0" || resp.Header.Get("X-Host") != "example.com" {
				t.Fatalf("backend saw proto %q host %q", resp.Header.Get("X-Proto"), resp.Header.Get("X-Host"))
			}
			if resp.Trailer.Get("X-Sum") != "0" {
				t.Fatalf("response trailers %v, want X-Sum (header %v, te %v, len %d)", resp.Trailer, resp.Header, resp.TransferEncoding, resp.ContentLength)
			}
		}
		if conns, reqs := b.Counts(); conns != 1 || reqs != 3 {
			t.Fatalf("backend accepted %d connections for %d requests, want 1", conns, reqs)
		}

		// A body larger than the initial windows, sized.
		big := bytes.Repeat([]byte("0123456789abcdef"), 20000)
		var sum byte
		for _, ch := range big {
			sum += ch
		}
		fmt.Fprintf(c, "POST /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", len(big))
		go c.Write(big)
		resp, body := ReadResponse(t, br, "POST")
		if resp.StatusCode != 200 || body != fmt.Sprintf("POST /big n=%d", len(big)) || resp.Trailer.Get("X-Sum") != strconv.Itoa(int(sum)) {
			t.Fatalf("sized body: %d %q, trailers %v", resp.StatusCode, body, resp.Trailer)
		}

		// A chunked body with a trailer section.
		fmt.Fprintf(c, "PUT /chunked HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: X-Checksum\r\n\r\n"+
			"3\r\nabc\r\n5\r\ndefgh\r\n0\r\nX-Checksum: c0ffee\r\n\r\n")
		resp, body = ReadResponse(t, br, "PUT")
		if resp.StatusCode != 200 || body != "PUT /chunked n=8" || resp.Header.Get("X-Req-Trailer") != "c0ffee" {
			t.Fatalf("chunked body: %d %q, request trailer seen %q", resp.StatusCode, body, resp.Header.Get("X-Req-Trailer"))
		}

		// A 4 MiB response of unknown length, read slowly at first.
		fmt.Fprintf(c, "GET /download HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSlowly(io.LimitReader(resp.Body, 256<<10), 16<<10, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		rest, err := io.Copy(io.Discard, resp.Body)
		if err != nil || rest+256<<10 != 4<<20 {
			t.Fatalf("download: %d more bytes after 256 KiB, %v", rest, err)
		}
		resp.Body.Close()

		// Control frames the backend sent while the connection was pooled
		// (window updates for the bodies) did not cost it.
		if conns, reqs := b.Counts(); conns != 1 || reqs != 6 {
			t.Fatalf("backend accepted %d connections for %d requests, want 1", conns, reqs)
		}
	})
}

// grpcFrame returns m as a gRPC length-prefixed message.
func grpcFrame(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(f[1:], uint32(len(b)))
	return append(f, b...)
}

func TestH2CGRPCBackend(t *testing.T) {
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
		c := Dial(t, port)
		br := bufio.NewReader(c)
		req := grpcFrame(t, &healthpb.HealthCheckRequest{Service: "flax.test"})
		for _, framing := range []string{"sized", "chunked"} {
			head := "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: grpc.example\r\nContent-Type: application/grpc\r\nTE: trailers\r\n"
			if framing == "sized" {
				fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(req), req)
			} else {
				fmt.Fprintf(c, "%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", head, len(req), req)
			}
			resp, body := ReadResponse(t, br, "POST")
			if resp.StatusCode != 200 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("%s: status %d, transfer-encoding %v", framing, resp.StatusCode, resp.TransferEncoding)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
				t.Fatalf("%s: grpc-status trailer %q (trailers %v, header %v)", framing, got, resp.Trailer, resp.Header)
			}
			if len(body) < 5 {
				t.Fatalf("%s: body %q", framing, body)
			}
			var hr healthpb.HealthCheckResponse
			if err := proto.Unmarshal([]byte(body[5:]), &hr); err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("%s: health response %v, %v", framing, &hr, err)
			}
		}

		// A server-streaming call (Watch): each message reaches the client
		// when the backend sends it, as a chunk.
		req = grpcFrame(t, &healthpb.HealthCheckRequest{Service: "flax.test"})
		fmt.Fprintf(c, "POST /grpc.health.v1.Health/Watch HTTP/1.1\r\nHost: grpc.example\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: %d\r\n\r\n%s", len(req), req)
		resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("watch: %v %v", resp, err)
		}
		readStatus := func() healthpb.HealthCheckResponse_ServingStatus {
			t.Helper()
			var pre [5]byte
			if _, err := io.ReadFull(resp.Body, pre[:]); err != nil {
				t.Fatalf("watch: read message: %v", err)
			}
			msg := make([]byte, binary.BigEndian.Uint32(pre[1:]))
			if _, err := io.ReadFull(resp.Body, msg); err != nil {
				t.Fatalf("watch: read message: %v", err)
			}
			var hr healthpb.HealthCheckResponse
			if err := proto.Unmarshal(msg, &hr); err != nil {
				t.Fatal(err)
			}
			return hr.GetStatus()
		}
		if st := readStatus(); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("watch: first status %v", st)
		}
		hs.SetServingStatus("flax.test", healthpb.HealthCheckResponse_NOT_SERVING)
		if st := readStatus(); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch: second status %v", st)
		}
		hs.SetServingStatus("flax.test", healthpb.HealthCheckResponse_SERVING)
		c.Close()
		c = Dial(t, port)
		br = bufio.NewReader(c)

		// An unknown service: a trailers-only response, its status in the head.
		req = grpcFrame(t, &healthpb.HealthCheckRequest{Service: "nope"})
		fmt.Fprintf(c, "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: grpc.example\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: %d\r\n\r\n%s", len(req), req)
		resp, _ = ReadResponse(t, br, "POST")
		if got := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"); got != "5" {
			t.Fatalf("unknown service: grpc-status %q, want 5 (NOT_FOUND)", got)
		}
	})
}

// framerH2Backend is an HTTP/2 backend written with x/net's framer that
// answers every stream with 200 "ok". With refuse set it refuses the first
// stream it gets (REFUSED_STREAM); with ping set it sends a PING and a
// SETTINGS frame after each response, while the proxy has pooled the
// connection.
type framerH2Backend struct {
	ln       net.Listener
	refuse   bool
	ping     bool
	conns    atomic.Int32
	answered atomic.Int32
	refused  atomic.Bool
	pingAcks atomic.Int32
}

func startFramerH2Backend(t *testing.T, refuse, ping bool) *framerH2Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &framerH2Backend{ln: ln, refuse: refuse, ping: ping}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go b.serve(c)
		}
	}()
	return b
}

func (b *framerH2Backend) serve(c net.Conn) {
	defer c.Close()
	fr := acceptH2(c)
	if fr == nil {
		return
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	var wmu sync.Mutex // the PING goroutine writes too
	respond := func(id uint32) {
		b.answered.Add(1) // before the client can see the answer
		wmu.Lock()
		defer wmu.Unlock()
		hbuf.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "2"})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
		_ = fr.WriteData(id, true, []byte("ok"))
		if b.ping {
			go func() {
				// Once the proxy has pooled the connection.
				time.Sleep(20 * time.Millisecond)
				wmu.Lock()
				defer wmu.Unlock()
				_ = fr.WritePing(false, [8]byte{'p', 'o', 'o', 'l', 'e', 'd'})
				_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 50})
			}()
		}
	}
	refused := map[uint32]bool{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				wmu.Lock()
				_ = fr.WriteSettingsAck()
				wmu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				wmu.Lock()
				_ = fr.WritePing(true, f.Data)
				wmu.Unlock()
			} else {
				b.pingAcks.Add(1)
			}
		case *http2.MetaHeadersFrame:
			if b.refuse && b.refused.CompareAndSwap(false, true) {
				refused[f.StreamID] = true
				wmu.Lock()
				_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
				wmu.Unlock()
				continue
			}
			if f.StreamEnded() {
				respond(f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() && !refused[f.StreamID] {
				respond(f.StreamID)
			}
		}
	}
}

func TestH2CRefusedStreamRetried(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startFramerH2Backend(t, true, false)
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.ln.Addr().String())))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		// A POST: the refused stream was not processed, so even a request
		// that is not idempotent is replayed (the default policy retries
		// what never reached the backend).
		fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nbody")
		resp, body := ReadResponse(t, br, "POST")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q, want the retry's 200", resp.StatusCode, body)
		}
		if n := b.answered.Load(); n != 1 {
			t.Fatalf("backend answered %d streams, want 1", n)
		}
		// netpoll gives each exchange a connection of its own and closes
		// the one that refused; io_uring multiplexes, and a refused
		// stream says nothing against the connection (RFC 9113 §8.7):
		// the retry is another stream on it.
		want := int32(2)
		if k.name == "uring" {
			want = 1
		}
		if n := b.conns.Load(); n != want {
			t.Fatalf("backend accepted %d connections, want %d", n, want)
		}
	})
}

func TestH2CPooledConnectionControlFrames(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		b := startFramerH2Backend(t, false, true)
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.ln.Addr().String())))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		for i := range 3 {
			fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: example.com\r\n\r\n", i)
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
			// The backend's PING and SETTINGS arrive while the
			// connection is pooled.
			time.Sleep(60 * time.Millisecond)
		}
		if n := b.conns.Load(); n != 1 {
			t.Fatalf("backend accepted %d connections for 3 requests, want 1", n)
		}
		// The PINGs received while pooled were answered with the requests
		// that followed.
		if n := b.pingAcks.Load(); n < 2 {
			t.Fatalf("backend got %d PING acknowledgements, want at least 2", n)
		}
	})
}

func TestH2CMirror(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		primary := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}))
		var mu sync.Mutex
		var seen []string
		shadow := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen = append(seen, r.Proto+" "+r.Method+" "+r.URL.Path+" "+string(b))
			mu.Unlock()
		}))
		port := FreePort(t)
		route := `    - name: mirrored
      matches: [{path: {type: PATH_PREFIX, value: /m}}]
      backends: [{backendGroup: app, weight: 1}]
      filters:
      - requestMirror: {backendGroup: shadow}
`
		groups := `- name: shadow
  protocol: H2C
  endpoints:
  - {address: 127.0.0.1, port: ` + strconv.Itoa(int(shadow.AddrPort().Port())) + `}
`
		startResilient(t, k, HTTPSnapshot(port, []string{primary.Addr()}, "  protocol: H2C\n", route, groups))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "POST /m/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
		if resp, body := ReadResponse(t, br, "POST"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("primary: %d %q", resp.StatusCode, body)
		}
		WaitFor(t, "the mirrored request", 5*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == 1
		})
		mu.Lock()
		defer mu.Unlock()
		if seen[0] != "HTTP/2.0 POST /m/1 hello" {
			t.Fatalf("shadow saw %q", seen[0])
		}
	})
}

// TestH2CGRPCHealthCheck: an H2C group with a gRPC health check
// (grpc.health.v1.Health/Check against grpc-go's health server) takes an
// endpoint out of rotation while it reports NOT_SERVING and back once it
// reports SERVING, on either engine.
func TestH2CGRPCHealthCheck(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var servers [2]*health.Server
		var eps []string
		for i, name := range []string{"a", "b"} {
			gs := grpc.NewServer()
			hs := health.NewServer()
			hs.SetServingStatus("flax.test", healthpb.HealthCheckResponse_SERVING)
			healthpb.RegisterHealthServer(gs, hs)
			servers[i] = hs
			// One h2c server: gRPC for the probes, /who for the requests.
			b := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/who" {
					_, _ = io.WriteString(w, name)
					return
				}
				gs.ServeHTTP(w, r)
			}))
			eps = append(eps, b.Addr())
		}
		port := FreePort(t)
		group := "  protocol: H2C\n" +
			"  healthCheck: {grpc: {service: flax.test}, interval: 0.05s, timeout: 0.05s, healthyThreshold: 1, unhealthyThreshold: 1}\n"
		_, cfg := startResilient(t, k, HTTPSnapshot(port, eps, group, "", ""))
		g := cfg.Group("app")
		cl := &http.Client{Timeout: 5 * time.Second}
		who := func() map[string]int {
			seen := map[string]int{}
			for range 8 {
				resp, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/who")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[fmt.Sprintf("%d %s", resp.StatusCode, body)]++
			}
			return seen
		}
		if seen := who(); seen["200 a"] == 0 || seen["200 b"] == 0 || len(seen) != 2 {
			t.Fatalf("both serving: %v", seen)
		}
		servers[1].SetServingStatus("flax.test", healthpb.HealthCheckResponse_NOT_SERVING)
		WaitFor(t, "b out of rotation", 5*time.Second, func() bool { return g.Unhealthy(g.Endpoints()).Has(1) })
		if seen := who(); seen["200 a"] != 8 {
			t.Fatalf("b NOT_SERVING: %v, want every request on a", seen)
		}
		servers[1].SetServingStatus("flax.test", healthpb.HealthCheckResponse_SERVING)
		WaitFor(t, "b back in rotation", 5*time.Second, func() bool { return !g.Unhealthy(g.Endpoints()).Has(1) })
		if seen := who(); seen["200 a"] == 0 || seen["200 b"] == 0 {
			t.Fatalf("b SERVING again: %v", seen)
		}
	})
}
