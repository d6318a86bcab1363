package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// NodeName is the name of this dataplane instance, reported in Hello.
	NodeName string
	// Engine is the I/O engine in use, e.g. "io_uring", reported in Hello.
	Engine string
	// BuildVersion is the version of the dataplane binary, reported in Hello.
	BuildVersion string
	// Log receives what the server does; the zero value discards it.
	Log logr.Logger
	// MaxMessageBytes is the largest message received; zero means
	// rpc.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Ready is the dataplane's readiness (nil: ready, else why not), reported by the
	// gRPC health service for ReadinessService. Nil means ready once a snapshot is
	// applied.
	Ready func() error
}

// Services of the standard gRPC health service (grpc.health.v1.Health) on the
// socket. Probes ask through the socket in the pod's own volume rather than through a
// TCP port, which a replacement pod on the same node may share.
const (
	// ReadinessService is SERVING while the dataplane serves traffic on its own (see
	// ServerOptions.Ready). The empty service name answers the same.
	ReadinessService = "readiness"
	// LivenessService is SERVING whenever the server answers.
	LivenessService = "liveness"
)

// Server serves the Dataplane gRPC service: it validates the snapshots the
// controller sends, hands them to an Applier and answers Ack or Nack. It keeps the
// last snapshot applied successfully ("last good"); a rejected snapshot or update
// never replaces it. Messages from all streams are processed one at a time.
type Server struct {
	rpc.UnimplementedDataplaneServer

	applier Applier
	opts    ServerOptions
	log     logr.Logger

	// mu serializes message handling and guards the fields below.
	mu sync.Mutex
	// current is the last good snapshot, with its Hash set; nil if none.
	current *dataplanev1.Snapshot
	// listeners are the listener statuses reported when current was applied.
	listeners []*rpc.ListenerStatus
}

// NewServer returns a Server that applies snapshots with applier.
func NewServer(applier Applier, opts ServerOptions) *Server {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = rpc.DefaultMaxMessageBytes
	}
	return &Server{applier: applier, opts: opts, log: opts.Log}
}

// Current returns the last good snapshot, or nil if none was applied yet. The
// snapshot must not be modified.
func (s *Server) Current() *dataplanev1.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Serve serves the Dataplane service on a unix socket at socketPath (see Listen)
// until ctx is done, then stops the server, closing open streams, removes the
// socket and returns nil. It returns an error if the socket cannot be created or
// serving fails.
func (s *Server) Serve(ctx context.Context, socketPath string) error {
	lis, err := rpc.Listen(socketPath)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(s.opts.MaxMessageBytes),
		// The controller may ping an idle stream to detect a dead dataplane.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	rpc.RegisterDataplaneServer(gs, s)
	healthpb.RegisterHealthServer(gs, healthServer{s: s})
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	s.log.Info("serving dataplane api", "socket", socketPath)
	select {
	case <-ctx.Done():
		gs.Stop()
		<-done
		return nil
	case err := <-done:
		_ = lis.Close()
		return fmt.Errorf("serving dataplane api on %s: %w", socketPath, err)
	}
}

// healthServer answers grpc.health.v1.Health checks for a Server.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	s *Server
}

// Check reports ReadinessService (or "") and LivenessService.
func (h healthServer) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case LivenessService:
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	case ReadinessService, "":
		if err := h.s.ready(); err != nil {
			return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
}

// ready returns nil when the dataplane is ready, else why not.
func (s *Server) ready() error {
	if s.opts.Ready != nil {
		return s.opts.Ready()
	}
	if s.Current() == nil {
		return errors.New("no snapshot applied yet")
	}
	return nil
}

// Stream serves one controller session: it sends Hello, then answers every
// ControllerMessage with Ack or Nack until the controller closes the stream.
func (s *Server) Stream(stream rpc.Dataplane_StreamServer) error {
	ctx := stream.Context()
	if err := stream.Send(s.hello()); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(s.Handle(ctx, msg)); err != nil {
			return fmt.Errorf("sending reply: %w", err)
		}
	}
}

// hello describes this dataplane and the snapshot in effect.
func (s *Server) hello() *rpc.DataplaneMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &rpc.DataplaneMessage{Message: &rpc.DataplaneMessage_Hello{Hello: &rpc.Hello{
		Node: &rpc.NodeInfo{
			NodeName:     s.opts.NodeName,
			Engine:       s.opts.Engine,
			BuildVersion: s.opts.BuildVersion,
		},
		LastAppliedVersion: s.current.GetVersion(),
		LastAppliedHash:    s.current.GetHash(),
	}}}
}

// Handle processes one ControllerMessage and returns the Ack or Nack answering it.
// Stream calls it for every message received; it is exported for dataplanes that
// receive messages some other way.
func (s *Server) Handle(ctx context.Context, msg *rpc.ControllerMessage) *rpc.DataplaneMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := msg.GetMessage().(type) {
	case *rpc.ControllerMessage_Snapshot:
		return s.applySnapshot(ctx, m.Snapshot)
	case *rpc.ControllerMessage_EndpointUpdate:
		return s.applyEndpoints(ctx, m.EndpointUpdate)
	default:
		return s.nack(0, rpc.Nack_INVALID, errors.New("message has neither snapshot nor endpointUpdate set"))
	}
}

// applySnapshot validates and applies a full snapshot. s.mu is held.
func (s *Server) applySnapshot(ctx context.Context, snap *dataplanev1.Snapshot) *rpc.DataplaneMessage {
	if snap == nil {
		return s.nack(0, rpc.Nack_INVALID, errors.New("snapshot is empty"))
	}
	if err := dataplanev1.Validate(snap); err != nil {
		return s.nack(snap.GetVersion(), rpc.Nack_INVALID, fmt.Errorf("invalid snapshot: %w", err))
	}
	snap = dataplanev1.WithHash(snap, dataplanev1.Hash(snap))
	if s.current != nil && s.current.GetHash() == snap.GetHash() {
		// Same content, e.g. resent after a reconnect: nothing to recompile.
		s.current = snap
		s.log.V(1).Info("snapshot unchanged; not reapplied", "version", snap.GetVersion(), "hash", snap.GetHash())
		return s.ack()
	}
	listeners, err := s.applier.Apply(ctx, snap)
	if err != nil {
		return s.nack(snap.GetVersion(), rpc.Nack_APPLY_FAILED, fmt.Errorf("applying snapshot: %w", err))
	}
	s.current, s.listeners = snap, listeners
	s.log.Info("applied snapshot", "version", snap.GetVersion(), "hash", snap.GetHash(),
		"listeners", len(snap.GetListeners()), "backendGroups", len(snap.GetBackendGroups()))
	logListenerProblems(s.log, listeners)
	return s.ack()
}

// applyEndpoints applies an endpoint update on top of the last good snapshot. s.mu
// is held.
func (s *Server) applyEndpoints(ctx context.Context, upd *dataplanev1.EndpointUpdate) *rpc.DataplaneMessage {
	if s.current == nil {
		return s.nack(upd.GetVersion(), rpc.Nack_FULL_SNAPSHOT_REQUIRED,
			errors.New("no snapshot is applied yet; send a full snapshot"))
	}
	next, err := dataplanev1.ApplyEndpointUpdate(s.current, upd)
	switch {
	case errors.Is(err, dataplanev1.ErrBaseVersionMismatch), errors.Is(err, dataplanev1.ErrUnknownBackendGroup), errors.Is(err, dataplanev1.ErrHashMismatch):
		return s.nack(upd.GetVersion(), rpc.Nack_FULL_SNAPSHOT_REQUIRED, fmt.Errorf("%w; send a full snapshot", err))
	case err != nil:
		return s.nack(upd.GetVersion(), rpc.Nack_INVALID, err)
	}
	if err := s.applier.ApplyEndpoints(ctx, upd.GetBackendGroup(), next); err != nil {
		return s.nack(upd.GetVersion(), rpc.Nack_APPLY_FAILED,
			fmt.Errorf("applying endpoints of backend group %q: %w", upd.GetBackendGroup(), err))
	}
	s.current = next
	s.log.V(1).Info("applied endpoint update", "version", next.GetVersion(), "hash", next.GetHash(),
		"backendGroup", upd.GetBackendGroup(), "endpoints", len(upd.GetEndpoints()))
	return s.ack()
}

// ack acknowledges the snapshot in effect. s.mu is held.
func (s *Server) ack() *rpc.DataplaneMessage {
	return &rpc.DataplaneMessage{Message: &rpc.DataplaneMessage_Ack{Ack: &rpc.Ack{
		Version:   s.current.GetVersion(),
		Hash:      s.current.GetHash(),
		Listeners: s.listeners,
	}}}
}

// nack rejects a message of version version. s.mu is held.
func (s *Server) nack(version uint64, code rpc.Nack_Code, err error) *rpc.DataplaneMessage {
	if code == rpc.Nack_FULL_SNAPSHOT_REQUIRED {
		// Routine resynchronization, not a fault.
		s.log.Info("asking the controller for a full snapshot", "version", version,
			"appliedVersion", s.current.GetVersion(), "reason", err.Error())
	} else {
		s.log.Error(err, "rejected controller message; keeping the last good snapshot",
			"version", version, "code", code.String(), "appliedVersion", s.current.GetVersion())
	}
	return &rpc.DataplaneMessage{Message: &rpc.DataplaneMessage_Nack{Nack: &rpc.Nack{
		Version:        version,
		Reason:         err.Error(),
		Code:           code,
		AppliedVersion: s.current.GetVersion(),
	}}}
}

// logListenerProblems logs every listener that is not bound.
func logListenerProblems(log logr.Logger, listeners []*rpc.ListenerStatus) {
	for _, l := range listeners {
		if !l.GetBound() {
			log.Info("listener not bound", "listener", l.GetName(), "address", l.GetAddress(),
				"port", l.GetPort(), "error", l.GetError())
		}
	}
}
