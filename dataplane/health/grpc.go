package health

import (
	"errors"
	"fmt"
	"net"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flaxlb/flax/dataplane/h2c"
)

// The gRPC health checking protocol (grpc.health.v1): the method a probe
// calls and the ServingStatus values of its reply. The two messages are tiny,
// so they are encoded and decoded here with protowire instead of linking
// grpc-go into the dataplane.
const (
	grpcHealthCheckMethod = "/grpc.health.v1.Health/Check"

	grpcHealthUnknown        = 0
	grpcHealthServing        = 1
	grpcHealthNotServing     = 2
	grpcHealthServiceUnknown = 3
)

// ErrNotServing is wrapped by Probe's error for a gRPC health check whose
// reply is a status other than SERVING.
var ErrNotServing = errors.New("not serving")

// probeGRPC calls grpc.health.v1.Health/Check for service on c (h2c, with
// host as :authority) and returns nil when the reply says SERVING.
func probeGRPC(c net.Conn, host, service string) error {
	reply, err := h2c.UnaryCall(c, host, grpcHealthCheckMethod, appendHealthCheckRequest(nil, service))
	if err != nil {
		return err
	}
	status, err := parseHealthCheckResponse(reply)
	if err != nil {
		return err
	}
	if status != grpcHealthServing {
		return fmt.Errorf("%w: %s", ErrNotServing, servingStatusName(status))
	}
	return nil
}

// appendHealthCheckRequest appends a HealthCheckRequest{service} to b.
func appendHealthCheckRequest(b []byte, service string) []byte {
	if service == "" {
		return b
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, service)
}

// parseHealthCheckResponse returns the status field of a HealthCheckResponse;
// unknown fields are skipped, as protobuf wants.
func parseHealthCheckResponse(b []byte) (uint64, error) {
	var status uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("health check response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, fmt.Errorf("health check response: status: %w", protowire.ParseError(n))
			}
			status, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, fmt.Errorf("health check response: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return status, nil
}

// servingStatusName names a grpc.health.v1 ServingStatus.
func servingStatusName(s uint64) string {
	switch s {
	case grpcHealthUnknown:
		return "UNKNOWN"
	case grpcHealthServing:
		return "SERVING"
	case grpcHealthNotServing:
		return "NOT_SERVING"
	case grpcHealthServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return fmt.Sprintf("status %d", s)
}
