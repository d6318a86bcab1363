package http2

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type serverReq struct {
	method, path, authority string
	header                  map[string]string
	body                    bytes.Buffer
	trailers                map[string]string
}

// echoServer answers every request on the connection with its body
// repeated echoRepeat times, the request's method and path in response
// fields, and trailers carrying the body length.
func echoServer(t testing.TB, nc net.Conn, cfg Config) error {
	reqs := map[uint32]*serverReq{}
	l := newLoop(t, nc, RoleServer, cfg, func(l *loop, ev Event) {
		switch ev.Kind {
		case EventHeaders:
			r := &serverReq{method: string(ev.Method), path: string(ev.Path), authority: string(ev.Authority), header: map[string]string{}}
			for i := range ev.Header.Len() {
				n, v := ev.Header.Field(i)
				r.header[string(n)] = string(v)
			}
			reqs[ev.StreamID] = r
		case EventData:
			reqs[ev.StreamID].body.Write(ev.Data)
			l.c.Consume(ev.StreamID, len(ev.Data))
		case EventTrailers:
			r := reqs[ev.StreamID]
			r.trailers = map[string]string{}
			for i := range ev.Header.Len() {
				n, v := ev.Header.Field(i)
				r.trailers[string(n)] = string(v)
			}
		case EventReset:
			delete(reqs, ev.StreamID)
			return
		}
		if !ev.EndStream {
			return
		}
		r := reqs[ev.StreamID]
		delete(reqs, ev.StreamID)
		repeat, _ := strconv.Atoi(r.header["x-repeat"])
		body := bytes.Repeat(r.body.Bytes(), max(repeat, 1))
		l.c.BeginHeaders()
		l.c.AddHeaderString(":status", "200")
		l.c.AddHeaderString("content-type", "application/octet-stream")
		l.c.AddHeaderString("X-Echo-Method", r.method)
		l.c.AddHeaderString("x-echo-path", r.path)
		l.c.AddHeaderString("x-echo-authority", r.authority)
		l.c.AddHeaderString("x-echo-trailer", r.trailers["x-client-trailer"])
		l.c.AddHeaderString("x-echo-big", strconv.Itoa(len(r.header["x-big"])))
		l.c.AddHeaderString("trailer", "x-body-length")
		var err error
		if l.out, err = l.c.WriteHeaders(l.out, ev.StreamID, false); err != nil {
			t.Errorf("WriteHeaders: %v", err)
		}
		l.send(ev.StreamID, body, [][2]string{{"x-body-length", strconv.Itoa(len(body))}})
	})
	return l.run(func() bool { return false })
}

// TestXNetClientToServerConn: the Go HTTP/2 client (x/net's, as bundled in
// net/http; h2c with prior knowledge)
// sends concurrent requests with bodies and trailers to a server Conn
// driven over a loopback TCP socket; responses carry bodies larger than
// the default windows (flow control both ways) and trailers.
func TestXNetClientToServerConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// net/http may dial more than one connection while its first is being
	// set up: serve every connection, each with its own Conn.
	srvErr := make(chan error, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				srvErr <- echoServer(t, nc, Config{InitialWindowSize: 65535, ConnWindowSize: 65535})
			}()
		}
	}()
	// net/http's HTTP/2 is x/net's implementation, bundled; x/net's own
	// Transport and Server types are deprecated in its favour.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "http://" + ln.Addr().String()

	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte(fmt.Sprintf("req%02d-", i)), 1000*(i+1)) // 7 KB .. 84 KB
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/echo/%d?q=1", url, i), bytes.NewReader(body))
			req.Header.Set("X-Repeat", "3")
			req.Trailer = http.Header{"X-Client-Trailer": {"t" + strconv.Itoa(i)}}
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Errorf("request %d body: %v", i, err)
				return
			}
			if !bytes.Equal(got, bytes.Repeat(body, 3)) {
				t.Errorf("request %d: body of %d bytes, want %d", i, len(got), 3*len(body))
			}
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("X-Echo-Method") != "POST" ||
				resp.Header.Get("X-Echo-Path") != fmt.Sprintf("/echo/%d?q=1", i) || resp.Header.Get("X-Echo-Authority") != ln.Addr().String() {
				t.Errorf("request %d: %d %v", i, resp.StatusCode, resp.Header)
			}
			if resp.Header.Get("X-Echo-Trailer") != "t"+strconv.Itoa(i) {
				t.Errorf("request %d: client trailer not seen: %v", i, resp.Header)
			}
			if resp.Trailer.Get("X-Body-Length") != strconv.Itoa(3*len(body)) {
				t.Errorf("request %d: trailers %v", i, resp.Trailer)
			}
		}()
	}
	wg.Wait()
	// A GET without a body whose 40 KB header block spans CONTINUATION
	// frames, then the client goes away.
	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 40000))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Echo-Method") != "GET" || resp.Header.Get("X-Echo-Big") != "40000" {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	tr.CloseIdleConnections()
	select {
	case err := <-srvErr:
		if err != nil {
			t.Fatalf("server loop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no server loop ended after the client closed its connections")
	}
}

// TestClientConnToXNetServer: a client Conn sends concurrent requests with
// bodies and trailers to the Go HTTP/2 server (x/net's, as bundled in
// net/http; h2c prior knowledge) over loopback TCP.
func TestClientConnToXNetServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Trailer", "X-Body-Length")
		w.Header().Set("X-Echo-Path", r.URL.RequestURI())
		w.Header().Set("X-Echo-Trailer", r.Trailer.Get("X-Client-Trailer"))
		w.Header().Set("X-Echo-Host", r.Host)
		for range 2 {
			w.Write(body)
		}
		w.Header().Set("X-Body-Length", strconv.Itoa(2*len(body)))
	})
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge only
	go srv.Serve(ln)
	defer srv.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))

	type resp struct {
		status   int
		header   map[string]string
		body     bytes.Buffer
		trailers map[string]string
		done     bool
	}
	resps := map[uint32]*resp{}
	bodies := map[uint32][]byte{}
	doneCount := 0
	const n = 10
	l := newLoop(t, nc, RoleClient, Config{InitialWindowSize: 65535}, func(l *loop, ev Event) {
		r := resps[ev.StreamID]
		switch ev.Kind {
		case EventHeaders:
			r.status = ev.Status
			for i := range ev.Header.Len() {
				k, v := ev.Header.Field(i)
				r.header[string(k)] = string(v)
			}
		case EventData:
			r.body.Write(ev.Data)
			l.c.Consume(ev.StreamID, len(ev.Data))
		case EventTrailers:
			for i := range ev.Header.Len() {
				k, v := ev.Header.Field(i)
				r.trailers[string(k)] = string(v)
			}
		case EventReset, EventGoAway:
			t.Errorf("unexpected %+v", ev)
		}
		if r != nil && ev.EndStream {
			r.done = true
			doneCount++
		}
	})
	for i := range n {
		l.c.BeginHeaders()
		l.c.AddHeaderString(":method", "POST")
		l.c.AddHeaderString(":scheme", "http")
		l.c.AddHeaderString(":authority", "backend.test")
		l.c.AddHeaderString(":path", fmt.Sprintf("/up/%d", i))
		l.c.AddHeaderString("Content-Type", "text/plain")
		l.c.AddHeaderString("Trailer", "X-Client-Trailer")
		l.c.AddHeaderString("Connection", "keep-alive") // dropped: connection-specific
		id, out, err := l.c.WriteRequestHeaders(l.out, false)
		if err != nil {
			t.Fatal(err)
		}
		l.out = out
		resps[id] = &resp{header: map[string]string{}, trailers: map[string]string{}}
		bodies[id] = bytes.Repeat([]byte(strconv.Itoa(i)), 5000*(i+1))
		l.send(id, bodies[id], [][2]string{{"x-client-trailer", "ct" + strconv.Itoa(i)}})
	}
	if err := l.run(func() bool { return doneCount == n }); err != nil {
		t.Fatal(err)
	}
	if doneCount != n {
		t.Fatalf("%d of %d responses complete", doneCount, n)
	}
	for id, r := range resps {
		want := bytes.Repeat(bodies[id], 2)
		i := (id - 1) / 2
		if r.status != 200 || !bytes.Equal(r.body.Bytes(), want) {
			t.Errorf("stream %d: status %d, %d body bytes, want %d", id, r.status, r.body.Len(), len(want))
		}
		if r.header["x-echo-path"] != fmt.Sprintf("/up/%d", i) || r.header["x-echo-host"] != "backend.test" ||
			r.header["x-echo-trailer"] != "ct"+strconv.Itoa(int(i)) {
			t.Errorf("stream %d: header %v", id, r.header)
		}
		if r.trailers["x-body-length"] != strconv.Itoa(len(want)) {
			t.Errorf("stream %d: trailers %v", id, r.trailers)
		}
	}
	if l.c.ActiveStreams() != 0 {
		t.Fatalf("%d streams still open", l.c.ActiveStreams())
	}
	// Graceful close: GOAWAY from us; the connection is then done.
	l.out = l.c.GoAway(l.out, ErrCodeNo, nil)
	if err := l.flush(); err != nil {
		t.Fatal(err)
	}
	if !l.c.Done() {
		t.Fatal("not done after GOAWAY with no streams")
	}
}
