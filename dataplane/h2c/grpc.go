package h2c

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/flaxlb/flax/dataplane/http2"
)

// MaxGRPCReply is the largest reply message UnaryCall reads.
const MaxGRPCReply = 64 << 10

// StatusError is a gRPC call's non-OK status (grpc-status and grpc-message).
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("h2c: grpc-status %d", e.Code)
	}
	return fmt.Sprintf("h2c: grpc-status %d: %s", e.Code, e.Message)
}

var (
	errNoGRPCStatus = errors.New("h2c: gRPC response without grpc-status")
	errGRPCFraming  = errors.New("h2c: malformed gRPC message framing")
)

// UnaryCall makes the unary gRPC call method (a path such as
// "/grpc.health.v1.Health/Check") with the serialized request message msg as
// the first stream of a new HTTP/2 connection on c, with authority as
// :authority, and returns the serialized reply message. A grpc-status other
// than 0 is a *StatusError, a reply larger than MaxGRPCReply or compressed an
// error. c's deadline bounds the call; the caller closes c.
func UnaryCall(c net.Conn, authority, method string, msg []byte) ([]byte, error) {
	conn := http2.NewConn(http2.RoleClient, http2.Config{MaxConcurrentStreams: 1})
	conn.BeginHeaders()
	conn.AddHeaderString(":method", "POST")
	conn.AddHeaderString(":scheme", "http")
	conn.AddHeaderString(":authority", authority)
	conn.AddHeaderString(":path", method)
	conn.AddHeaderString("content-type", "application/grpc")
	conn.AddHeaderString("te", "trailers")
	conn.AddHeaderString("user-agent", "flax-health-check")
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)

	var reply []byte
	status, message, gotStatus := 0, "", false
	err := exchange(c, conn, body, func(ev *http2.Event) (bool, error) {
		switch ev.Kind {
		case http2.EventHeaders:
			if ev.Status < 200 {
				return false, nil
			}
			if ev.Status != 200 {
				return false, fmt.Errorf("h2c: gRPC response status %d", ev.Status)
			}
			if ct, _ := ev.Header.Get("content-type"); !bytes.HasPrefix(ct, []byte("application/grpc")) {
				return false, fmt.Errorf("h2c: gRPC response content-type %q", ct)
			}
			// A trailers-only response carries the status in its head.
			status, message, gotStatus = grpcStatus(ev.Header)
		case http2.EventData:
			if len(reply)+len(ev.Data) > 5+MaxGRPCReply {
				return false, fmt.Errorf("h2c: gRPC reply larger than %d bytes", MaxGRPCReply)
			}
			reply = append(reply, ev.Data...)
		case http2.EventTrailers:
			status, message, gotStatus = grpcStatus(ev.Header)
		}
		return false, nil
	})
	switch {
	case err != nil:
		return nil, err
	case !gotStatus:
		return nil, errNoGRPCStatus
	case status != 0:
		return nil, &StatusError{Code: status, Message: message}
	case len(reply) < 5 || int(binary.BigEndian.Uint32(reply[1:5])) != len(reply)-5:
		return nil, errGRPCFraming
	case reply[0] != 0:
		return nil, errors.New("h2c: compressed gRPC reply")
	}
	return reply[5:], nil
}

// grpcStatus returns the grpc-status and grpc-message fields of h, and
// whether grpc-status is there and well-formed.
func grpcStatus(h *http2.HeaderList) (int, string, bool) {
	v, ok := h.Get("grpc-status")
	if !ok {
		return 0, "", false
	}
	code, err := strconv.Atoi(string(v))
	if err != nil || code < 0 {
		return 0, "", false
	}
	m, _ := h.Get("grpc-message")
	return code, string(m), true
}
