// Package h2c sends single requests over new cleartext HTTP/2 connections
// (prior knowledge), for the dataplane's senders off the request path whose
// backend groups speak h2c (BackendGroup.protocol H2C): active health checks
// (dataplane/health) and request mirrors (dataplane/engine/netpoll's
// MirrorSender). The request is given as HTTP/1.1 bytes, as those senders
// build it, and only the response status is read; UnaryCall makes one unary
// gRPC call instead (gRPC health checks). The proxy's own upstream
// streams are in dataplane/proxy (upstream_h2.go). It uses dataplane/http1
// and dataplane/http2 and allocates freely: it is not on the hot path.
package h2c

import (
	"errors"
	"fmt"
	"net"

	"github.com/flaxlb/flax/dataplane/http1"
	"github.com/flaxlb/flax/dataplane/http2"
)

// RoundTrip sends the HTTP/1.1 request req (its head and its whole body,
// delimited by Content-Length or chunked) on c as the first stream of a new
// HTTP/2 connection, and returns the status of the response once its head
// arrives; the body is not read. The head's connection-specific fields are
// dropped, Host becomes :authority, a chunked body is decoded (its trailers
// are dropped). c's deadline bounds the exchange. The caller closes c.
func RoundTrip(c net.Conn, req []byte) (int, error) {
	var r http1.Request
	r.Reset()
	n, err := http1.ParseRequest(req, &r, http1.Limits{MaxHeaderBytes: len(req), MaxHeaderCount: len(req), MaxURIBytes: len(req)})
	if err != nil {
		return 0, fmt.Errorf("h2c: request head: %w", err)
	}
	body, err := decodeBody(&r, req[n:])
	if err != nil {
		return 0, err
	}
	conn := http2.NewConn(http2.RoleClient, http2.Config{MaxConcurrentStreams: 1})
	conn.BeginHeaders()
	addHeaders(conn, &r, req)
	status := 0
	err = exchange(c, conn, body, func(ev *http2.Event) (bool, error) {
		if ev.Kind == http2.EventHeaders && ev.Status >= 200 {
			status = ev.Status
			return true, nil
		}
		return false, nil
	})
	return status, err
}

// exchange opens the one stream of conn on c with the head built since
// BeginHeaders and the request body body, sends it within the windows and
// passes every event of the stream (headers, data, trailers) to on, until on
// says it is done or the stream ends; a reset or a GOAWAY cutting off the
// stream is an error. DATA credit is given back after on. Once done, the
// connection is closed with GOAWAY (the caller closes c).
func exchange(c net.Conn, conn *http2.Conn, body []byte, on func(*http2.Event) (done bool, err error)) error {
	out := conn.Start(nil)
	id, out, err := conn.WriteRequestHeaders(out, len(body) == 0)
	if err != nil {
		return fmt.Errorf("h2c: %w", err)
	}
	// The buffer holds a whole frame of the size this end advertises.
	buf := make([]byte, http2.FrameHeaderLen+http2.MinMaxFrameSize)
	rd, wr := 0, 0
	for {
		if len(body) > 0 {
			var k int
			if out, k, err = conn.WriteData(out, id, body, true); err != nil {
				return fmt.Errorf("h2c: %w", err)
			}
			body = body[k:]
		}
		out = conn.AppendPending(out)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return fmt.Errorf("h2c: write: %w", err)
			}
			out = out[:0]
		}
		if wr == len(buf) {
			wr = copy(buf, buf[rd:wr])
			rd = 0
		}
		k, err := c.Read(buf[wr:])
		if err != nil {
			return fmt.Errorf("h2c: read response: %w", err)
		}
		wr += k
		for {
			ev, k, err := conn.Next(buf[rd:wr])
			if err != nil {
				return fmt.Errorf("h2c: %w", err)
			}
			if k == 0 {
				break
			}
			rd += k
			switch {
			case ev.Kind == http2.EventReset && ev.StreamID == id:
				return fmt.Errorf("h2c: stream reset: %v", ev.Code)
			case ev.Kind == http2.EventGoAway && ev.LastStreamID < id:
				return fmt.Errorf("h2c: GOAWAY: %v", ev.Code)
			case ev.StreamID != id || (ev.Kind != http2.EventHeaders && ev.Kind != http2.EventData && ev.Kind != http2.EventTrailers):
				if ev.Kind == http2.EventData {
					conn.Consume(ev.StreamID, len(ev.Data))
				}
				continue
			}
			done, err := on(&ev)
			if ev.Kind == http2.EventData {
				conn.Consume(ev.StreamID, len(ev.Data))
			}
			if err != nil {
				return err
			}
			if done || ev.EndStream {
				_, _ = c.Write(conn.GoAway(conn.AppendPending(out), http2.ErrCodeNo, nil))
				return nil
			}
		}
		if rd == wr {
			rd, wr = 0, 0
		}
	}
}

// addHeaders adds the request's pseudo-header fields and fields.
func addHeaders(conn *http2.Conn, r *http1.Request, b []byte) {
	conn.AddHeader([]byte(":method"), r.MethodSpan.Bytes(b))
	conn.AddHeaderString(":scheme", "http")
	conn.AddHeader([]byte(":authority"), r.Authority.Bytes(b))
	path := r.Target.Bytes(b)
	if r.Form == http1.FormAbsolute {
		path = r.Path.Bytes(b)
		if r.HasQuery {
			path = b[r.Path.Off:r.Query.End()]
		}
		if len(path) == 0 {
			path = []byte("/")
		}
	}
	conn.AddHeader([]byte(":path"), path)
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.ID == http1.HeaderHost || f.ConnListed {
			continue
		}
		conn.AddHeader(f.Name.Bytes(b), f.Value.Bytes(b))
	}
}

var errShortBody = errors.New("h2c: request body shorter than its framing")

// decodeBody returns the payload of the request body in p.
func decodeBody(r *http1.Request, p []byte) ([]byte, error) {
	var br http1.BodyReader
	br.ForRequest(r, http1.Limits{})
	var out []byte
	for !br.Done() {
		n, data, _, err := br.Next(p)
		if err != nil {
			return nil, fmt.Errorf("h2c: request body: %w", err)
		}
		out = append(out, data...)
		p = p[n:]
		if n == 0 && !br.Done() {
			return nil, errShortBody
		}
	}
	return out, nil
}
