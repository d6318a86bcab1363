package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flaxlb/flax/dataplane/snapshot"
)

// probeCmd asks the gRPC health service on a dataplane's socket about one service and
// succeeds only when it is SERVING. The chart's exec probes run it in the pod, so
// they judge that pod's dataplane even when another one shares its TCP ports.
func probeCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "probe --socket PATH [--service readiness|liveness] [--timeout D]", stderr)
	socket := fs.String("socket", "", "the dataplane's unix socket (run --socket)")
	service := fs.String("service", snapshot.ReadinessService, "health service: readiness (serving on its own, not draining) or liveness (answering)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		fs.Usage()
		return errors.New("probe needs --socket")
	}
	st, err := probe(*socket, *service, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", *service, st)
	if st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s is %s", *service, st)
	}
	return nil
}

// probe returns the status of service from the health service on socket.
func probe(socket, service string, timeout time.Duration) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("connecting to %s: %w", socket, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return 0, fmt.Errorf("health check of %s on %s: %w", service, socket, err)
	}
	return resp.GetStatus(), nil
}
