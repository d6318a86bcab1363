package enginetest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestH2CMultiplexing sends 20 requests at once from 20 clients to an h2c
// backend that answers none until all 20 are in: io_uring carries them as
// streams of one upstream connection, netpoll opens one per request.
func TestH2CMultiplexing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		const n = 20
		var mu sync.Mutex
		arrived := 0
		all := make(chan struct{})
		b := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			arrived++
			if arrived == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(10 * time.Second):
			}
			fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
		}))
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.Addr())))
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := Dial(t, port)
				fmt.Fprintf(c, "GET /r%d HTTP/1.1\r\nHost: example.com\r\n\r\n", i)
				resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
				if want := fmt.Sprintf("HTTP/2.0 /r%d", i); resp.StatusCode != 200 || string(body) != want {
					errs <- fmt.Errorf("request %d: %d %q, want %q", i, resp.StatusCode, body, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		conns, reqs := b.Counts()
		if reqs != n {
			t.Fatalf("backend served %d requests, want %d", reqs, n)
		}
		if k.name == "uring" && conns > workers {
			t.Fatalf("backend accepted %d connections for %d requests in flight, want at most one per worker (%d)", conns, n, workers)
		}
		if k.name != "uring" && conns != n {
			t.Fatalf("backend accepted %d connections for %d requests in flight, want one each", conns, n)
		}
	})
}

// TestH2CLinkSlowClient stalls one client on a large response while
// other clients' requests go through the same upstream connection: a
// stream's window, not the connection, waits for its client.
func TestH2CLinkSlowClient(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		const size = 2 << 20
		b := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/big" {
				chunk := strings.Repeat("x", 64<<10)
				for range size / len(chunk) {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
				return
			}
			io.WriteString(w, "ok")
		}))
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.Addr())))

		slow := Dial(t, port)
		fmt.Fprintf(slow, "GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n")
		sbr := bufio.NewReader(slow)
		resp, err := http.ReadResponse(sbr, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		// The slow client reads nothing more for now: its stream's window
		// closes, the others go on.
		for i := range 2 * workers {
			c := Dial(t, port)
			br := bufio.NewReader(c)
			for j := range 5 {
				fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: example.com\r\n\r\n")
				r, body := ReadResponse(t, br, "GET")
				if r.StatusCode != 200 || body != "ok" {
					t.Fatalf("client %d request %d: %d %q", i, j, r.StatusCode, body)
				}
			}
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != size {
			t.Fatalf("slow client read %d bytes, %v; want %d", n, err, size)
		}
	})
}

// TestH2CLinkBackendCloses closes the backend's connections while idle, and
// while a request is in flight: that request fails alone (502), and the
// next requests get new connections.
func TestH2CLinkBackendCloses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		hang := make(chan struct{})
		b := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hang" {
				close(hang)
				<-r.Context().Done()
				return
			}
			io.WriteString(w, "ok")
		}))
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, b.Addr())))
		get := func(round int) {
			c := Dial(t, port)
			br := bufio.NewReader(c)
			for j := range 3 {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
				r, body := ReadResponse(t, br, "GET")
				if r.StatusCode != 200 || body != "ok" {
					t.Fatalf("round %d request %d: %d %q", round, j, r.StatusCode, body)
				}
			}
		}
		get(0)
		before, _ := b.Counts()
		b.CloseClientConns()
		time.Sleep(100 * time.Millisecond) // the engine sees the close
		get(1)
		after, _ := b.Counts()
		if after <= before {
			t.Fatalf("backend accepted %d connections before its close and %d after, want new ones", before, after)
		}

		// A POST in flight when the connection goes: not retried (it
		// reached the backend), answered 502.
		c := Dial(t, port)
		fmt.Fprintf(c, "POST /hang HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\nx")
		<-hang
		b.CloseClientConns()
		r, _ := ReadResponse(t, bufio.NewReader(c), "POST")
		if r.StatusCode != 502 {
			t.Fatalf("request in flight when the backend closed: %d, want 502", r.StatusCode)
		}
		get(2)
	})
}

// TestH2CQuietStreamPingAnswered has the backend PING while a stream is
// open and quiet (the request sent, no response yet), as a keepalive does:
// the proxy answers at once, not with its next frames.
func TestH2CQuietStreamPingAnswered(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		acked := make(chan time.Duration, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			fr := acceptH2(c)
			if fr == nil {
				return
			}
			var sent time.Time
			var id uint32
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if !f.IsAck() {
						_ = fr.WriteSettingsAck()
					}
				case *http2.MetaHeadersFrame:
					// The request is in: the stream stays quiet, a PING goes.
					id = f.StreamID
					sent = time.Now()
					_ = fr.WritePing(false, [8]byte{'k', 'a'})
				case *http2.PingFrame:
					if f.IsAck() {
						acked <- time.Since(sent)
						var hbuf bytes.Buffer
						enc := hpack.NewEncoder(&hbuf)
						_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "204"})
						_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
					}
				}
			}
		}()
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, ln.Addr().String())))
		c := Dial(t, port)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		select {
		case d := <-acked:
			t.Logf("PING answered after %v", d)
		case <-time.After(5 * time.Second):
			t.Fatal("the PING on a quiet stream's connection was not answered")
		}
		r, _ := ReadResponse(t, bufio.NewReader(c), "GET")
		if r.StatusCode != 204 {
			t.Fatalf("got %d, want the backend's 204", r.StatusCode)
		}
	})
}

// TestH2CGoAwayDrainsConnection has the backend send GOAWAY naming the
// stream it is answering: that stream completes, and the next request goes
// to a new connection.
func TestH2CGoAwayDrainsConnection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		var conns atomic.Int32
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				n := conns.Add(1)
				go func() {
					defer c.Close()
					fr := acceptH2(c)
					if fr == nil {
						return
					}
					var hbuf bytes.Buffer
					enc := hpack.NewEncoder(&hbuf)
					for {
						f, err := fr.ReadFrame()
						if err != nil {
							return
						}
						switch f := f.(type) {
						case *http2.SettingsFrame:
							if !f.IsAck() {
								_ = fr.WriteSettingsAck()
							}
						case *http2.MetaHeadersFrame:
							if n == 1 {
								// The first connection goes away after this stream.
								_ = fr.WriteGoAway(f.StreamID, http2.ErrCodeNo, nil)
							}
							hbuf.Reset()
							_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
							_ = enc.WriteField(hpack.HeaderField{Name: "x-conn", Value: strconv.Itoa(int(n))})
							_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "0"})
							_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
						}
					}
				}()
			}
		}()
		te := startEngine(t, k)
		port := FreePort(t)
		te.apply(CompileYAML(t, te.reg, h2cSnapshot(port, ln.Addr().String())))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		var seen []string
		for range 2 {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			r, _ := ReadResponse(t, br, "GET")
			if r.StatusCode != 200 {
				t.Fatalf("got %d, want 200", r.StatusCode)
			}
			seen = append(seen, r.Header.Get("X-Conn"))
		}
		if seen[0] != "1" || seen[1] == "1" {
			t.Fatalf("requests answered on connections %v: want the second on a new one after the GOAWAY", seen)
		}
	})
}

// acceptH2 reads the client preface on c and sends this end's SETTINGS, the
// start of a backend written with a raw framer; nil when the preface is
// wrong.
func acceptH2(c net.Conn) *http2.Framer {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return nil
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return nil
	}
	return fr
}
