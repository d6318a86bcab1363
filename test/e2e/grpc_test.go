//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flaxlb/flax/test/poll"
)

// grpcEchoService is the gRPC service of the conformance echo server in gRPC mode.
const grpcEchoService = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"

// grpcGatewayYAML is a Gateway of its own for the gRPC test: on Gateway demo,
// HTTPRoute echo takes every host, and a GRPCRoute whose hostnames meet an
// older HTTPRoute's on a listener is not accepted there.
const grpcGatewayYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: e2e-grpc
  namespace: demo
spec:
  gatewayClassName: flax
  listeners:
  - name: http
    protocol: HTTP
    port: 8093
`

// grpcRouteYAML routes the echo service's calls for grpc.example.com on Gateway
// e2e-grpc to Service grpc-echo (an h2c port), adding a header the echo reports.
const grpcRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: e2e-grpc-echo
  namespace: demo
spec:
  parentRefs:
  - name: e2e-grpc
  hostnames:
  - grpc.example.com
  rules:
  - matches:
    - method:
        service: ` + grpcEchoService + `
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: x-routed-by
          value: flax-e2e
    backendRefs:
    - name: grpc-echo
      port: 3000
  - matches:
    - method:
        service: grpc.reflection.v1.ServerReflection
    backendRefs:
    - name: grpc-echo
      port: 3000
`

// podNamePattern finds the echo's pod names in its replies.
var podNamePattern = regexp.MustCompile(`grpc-echo-[a-z0-9]+-[a-z0-9]+`)

// TestGRPCRoute deploys the gRPC sample's echo server (config/samples/grpc) in
// namespace demo behind a GRPCRoute on a Gateway of its own and calls it with grpc-go
// over cleartext HTTP/2 through the Gateway, as a gRPC client of a real cluster
// does: unary calls reach both pods with the route's header added, a
// bidirectional stream (server reflection) works end to end, and once the route
// is deleted Flax answers the call itself with UNIMPLEMENTED.
func TestGRPCRoute(t *testing.T) {
	kubectl(t, "", "apply", "-n", "demo", "-f", filepath.Join("..", "..", "config", "samples", "grpc", "grpc-echo.yaml"))
	kubectl(t, grpcGatewayYAML+"---\n"+grpcRouteYAML, "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = kubectlErr("", "delete", "-n", "demo", "--ignore-not-found", "grpcroute/e2e-grpc-echo",
			"gateway/e2e-grpc", "deployment/grpc-echo", "service/grpc-echo")
	})

	var addr string
	poll.Eventually(t, time.Minute, 500*time.Millisecond, "Gateway e2e-grpc has an address", func() error {
		out, err := kubectlErr("", "get", "-n", "demo", "gateway/e2e-grpc", "-o", "jsonpath={.status.addresses[0].value}")
		if err != nil || out == "" {
			return fmt.Errorf("no address yet: %w", err)
		}
		addr = net.JoinHostPort(strings.TrimSpace(out), "8093")
		return nil
	})
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var reply emptypb.Empty // the EchoResponse's fields stay unknown fields
		if err := conn.Invoke(ctx, "/"+grpcEchoService+"/Echo", &emptypb.Empty{}, &reply); err != nil {
			return nil, err
		}
		return reply.ProtoReflect().GetUnknown(), nil
	}

	pods := map[string]int{}
	poll.Eventually(t, 3*time.Minute, 500*time.Millisecond, "Echo calls reach both grpc-echo pods", func() error {
		raw, err := echo()
		if err != nil {
			return err
		}
		if !bytes.Contains(raw, []byte("flax-e2e")) {
			return fmt.Errorf("the echo does not show the route's x-routed-by header: %q", raw)
		}
		pod := podNamePattern.Find(raw)
		if pod == nil {
			return fmt.Errorf("no pod name in the echo: %q", raw)
		}
		pods[string(pod)]++
		if len(pods) < 2 {
			return fmt.Errorf("calls reached %v so far", pods)
		}
		return nil
	})
	t.Logf("Echo calls per pod: %v", pods)

	// A bidirectional stream through the Gateway: list the backend's services.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // two requests on the one stream
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			Host:           "grpc.example.com",
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
		}); err != nil {
			t.Fatalf("reflection send: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("reflection receive: %v", err)
		}
		found := false
		for _, s := range resp.GetListServicesResponse().GetService() {
			found = found || s.GetName() == grpcEchoService
		}
		if !found {
			t.Fatalf("reflection through the Gateway lists %v, want %s", proto.Clone(resp), grpcEchoService)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}

	// Without the route nothing matches the host: Flax's own 404, as gRPC.
	kubectl(t, "", "delete", "-n", "demo", "grpcroute/e2e-grpc-echo")
	poll.Eventually(t, 20*time.Second, 200*time.Millisecond, "a call without its route is UNIMPLEMENTED", func() error {
		_, err := echo()
		if status.Code(err) != codes.Unimplemented {
			return errors.Join(fmt.Errorf("status %v", status.Code(err)), err)
		}
		return nil
	})
}
