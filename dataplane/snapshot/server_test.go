package snapshot

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/dataplanetest"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
)

// testServer is a Server serving on a unix socket in a temporary directory, and a
// client connected to it.
type testServer struct {
	srv     *Server
	applier *fakeApplier
	socket  string
	client  rpc.DataplaneClient
	logs    *logSink
}

// startServer starts a Server; it is stopped when the test ends.
func startServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{applier: &fakeApplier{}, logs: &logSink{}, socket: filepath.Join(t.TempDir(), "dataplane.sock")}
	ts.srv = NewServer(ts.applier, ServerOptions{NodeName: "node-a", Engine: "io_uring", BuildVersion: "test", Log: ts.logs.logger()})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ctx, ts.socket) }()
	eventually(t, "the socket exists", func() bool {
		fi, err := os.Lstat(ts.socket)
		return err == nil && fi.Mode().Type() == fs.ModeSocket
	})
	conn, err := grpc.NewClient("unix://"+ts.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	ts.client = rpc.NewDataplaneClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
		if _, err := os.Lstat(ts.socket); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket still exists after Serve returned: %v", err)
		}
	})
	return ts
}

// open opens a stream and returns it with the Hello it received.
func (ts *testServer) open(t *testing.T) (rpc.Dataplane_StreamClient, *rpc.Hello) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := ts.client.Stream(ctx)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatalf("receiving hello: %v", err)
	}
	hello := msg.GetHello()
	if hello == nil {
		t.Fatalf("first message is %v, want a Hello", msg)
	}
	return stream, hello
}

// send sends msg on stream and returns the reply.
func send(t *testing.T, stream rpc.Dataplane_StreamClient, msg *rpc.ControllerMessage) *rpc.DataplaneMessage {
	t.Helper()
	if err := stream.Send(msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return reply
}

// snapshotMsg wraps s in a ControllerMessage.
func snapshotMsg(s *dataplanev1.Snapshot) *rpc.ControllerMessage {
	return &rpc.ControllerMessage{Message: &rpc.ControllerMessage_Snapshot{Snapshot: s}}
}

// updateMsg wraps u in a ControllerMessage.
func updateMsg(u *dataplanev1.EndpointUpdate) *rpc.ControllerMessage {
	return &rpc.ControllerMessage{Message: &rpc.ControllerMessage_EndpointUpdate{EndpointUpdate: u}}
}

// wantAck fails unless reply is an Ack of version and returns it.
func wantAck(t *testing.T, reply *rpc.DataplaneMessage, version uint64) *rpc.Ack {
	t.Helper()
	ack := reply.GetAck()
	if ack == nil {
		t.Fatalf("reply = %v, want an Ack", reply)
	}
	if ack.GetVersion() != version {
		t.Fatalf("Ack version = %d, want %d", ack.GetVersion(), version)
	}
	return ack
}

// wantNack fails unless reply is a Nack of version with code whose reason holds
// every one of reasons, and returns it.
func wantNack(t *testing.T, reply *rpc.DataplaneMessage, version uint64, code rpc.Nack_Code, reasons ...string) *rpc.Nack {
	t.Helper()
	nack := reply.GetNack()
	if nack == nil {
		t.Fatalf("reply = %v, want a Nack", reply)
	}
	if nack.GetVersion() != version || nack.GetCode() != code {
		t.Fatalf("Nack = version %d code %v, want version %d code %v (reason %q)", nack.GetVersion(), nack.GetCode(), version, code, nack.GetReason())
	}
	for _, r := range reasons {
		if !strings.Contains(nack.GetReason(), r) {
			t.Errorf("Nack reason %q does not contain %q", nack.GetReason(), r)
		}
	}
	return nack
}

func TestServerSocketMode(t *testing.T) {
	ts := startServer(t)
	fi, err := os.Lstat(ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s is %v, want a socket", ts.socket, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %o, want 600", perm)
	}
	// No temporary directory is left behind.
	entries, err := os.ReadDir(filepath.Dir(ts.socket))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket", len(entries))
	}
}

func TestServerStream(t *testing.T) {
	ts := startServer(t)
	stream, hello := ts.open(t)
	if hello.GetLastAppliedVersion() != 0 || hello.GetLastAppliedHash() != "" {
		t.Errorf("Hello before any snapshot = %v, want version 0 and no hash", hello)
	}
	if n := hello.GetNode(); n.GetNodeName() != "node-a" || n.GetEngine() != "io_uring" || n.GetBuildVersion() != "test" {
		t.Errorf("Hello node = %v", n)
	}

	// A good snapshot is applied and acknowledged with its listeners' status.
	good := dataplanetest.ValidSnapshot(t)
	ack := wantAck(t, send(t, stream, snapshotMsg(good)), 7)
	if ack.GetHash() != dataplanev1.Hash(good) {
		t.Errorf("Ack hash = %s, want %s", ack.GetHash(), dataplanev1.Hash(good))
	}
	if len(ack.GetListeners()) != 3 || ack.GetListeners()[0].GetName() != "default/gw/http" || !ack.GetListeners()[0].GetBound() {
		t.Errorf("Ack listeners = %v", ack.GetListeners())
	}
	if ts.applier.count() != 1 || ts.applier.last().GetHash() != dataplanev1.Hash(good) {
		t.Errorf("applier got %d snapshots, last hash %s", ts.applier.count(), ts.applier.last().GetHash())
	}

	// A bad snapshot is rejected with the field at fault; the good one stays.
	bad := dataplanetest.ValidSnapshot(t)
	bad.Version = 8
	bad.Listeners[0].VirtualHosts[0].Routes[1].Matches[0].Path.Value = "api"
	bad.Listeners[2].Port = 0
	nack := wantNack(t, send(t, stream, snapshotMsg(bad)), 8, rpc.Nack_INVALID,
		`listeners[0].virtualHosts[0].routes[1].matches[0].path.value: must start with "/"`,
		"listeners[2].port: must be between 1 and 65535")
	if nack.GetAppliedVersion() != 7 {
		t.Errorf("Nack applied version = %d, want 7", nack.GetAppliedVersion())
	}
	if ts.applier.count() != 1 {
		t.Errorf("applier called for a bad snapshot")
	}
	if cur := ts.srv.Current(); cur.GetVersion() != 7 || cur.GetHash() != dataplanev1.Hash(good) {
		t.Errorf("current = version %d hash %s, want the good snapshot", cur.GetVersion(), cur.GetHash())
	}
	if ts.logs.count("rejected controller message", "listeners[2].port") != 1 {
		t.Errorf("rejection not logged:\n%s", ts.logs)
	}

	// A snapshot whose hash does not match its content is rejected.
	wrongHash := dataplanetest.ValidSnapshot(t)
	wrongHash.Version, wrongHash.Hash = 9, strings.Repeat("a", 64)
	wantNack(t, send(t, stream, snapshotMsg(wrongHash)), 9, rpc.Nack_INVALID, "hash: does not match")

	// An endpoint update on top of the applied version is applied.
	upd := &dataplanev1.EndpointUpdate{
		BaseVersion: 7, Version: 10, BackendGroup: "web",
		Endpoints: []*dataplanev1.Endpoint{{Address: "10.0.0.9", Port: 8080}},
	}
	ack = wantAck(t, send(t, stream, updateMsg(upd)), 10)
	if ack.GetHash() == dataplanev1.Hash(good) || ack.GetHash() != ts.srv.Current().GetHash() {
		t.Errorf("Ack hash after update = %s, want the new snapshot's", ack.GetHash())
	}
	if len(ack.GetListeners()) != 3 {
		t.Errorf("Ack after update has %d listener statuses, want the 3 of the snapshot", len(ack.GetListeners()))
	}
	if g := ts.applier.endpointGroups; len(g) != 1 || g[0] != "web" {
		t.Errorf("ApplyEndpoints groups = %v, want [web]", g)
	}
	if eps := ts.srv.Current().GetBackendGroups()[0].GetEndpoints(); len(eps) != 1 || eps[0].GetAddress() != "10.0.0.9" {
		t.Errorf("current endpoints of web = %v", eps)
	}

	// An update on top of another version asks for a full snapshot.
	stale := &dataplanev1.EndpointUpdate{BaseVersion: 7, Version: 11, BackendGroup: "web"}
	wantNack(t, send(t, stream, updateMsg(stale)), 11, rpc.Nack_FULL_SNAPSHOT_REQUIRED,
		"version 7", "send a full snapshot")
	unknown := &dataplanev1.EndpointUpdate{BaseVersion: 10, Version: 11, BackendGroup: "nope"}
	wantNack(t, send(t, stream, updateMsg(unknown)), 11, rpc.Nack_FULL_SNAPSHOT_REQUIRED, `"nope"`)
	invalid := &dataplanev1.EndpointUpdate{
		BaseVersion: 10, Version: 11, BackendGroup: "web",
		Endpoints: []*dataplanev1.Endpoint{{Address: "10.0.0.9"}},
	}
	wantNack(t, send(t, stream, updateMsg(invalid)), 11, rpc.Nack_INVALID, "backendGroups[0].endpoints[0].port")
	if ts.srv.Current().GetVersion() != 10 {
		t.Errorf("current version = %d after rejected updates, want 10", ts.srv.Current().GetVersion())
	}

	// A new stream (a reconnecting controller) is told what is applied.
	_, hello = ts.open(t)
	if hello.GetLastAppliedVersion() != 10 || hello.GetLastAppliedHash() != ts.srv.Current().GetHash() {
		t.Errorf("Hello = %v, want version 10 and the current hash", hello)
	}

	// Resending content that is already applied does not reapply it.
	applied := ts.applier.count()
	same := clone(ts.srv.Current())
	same.Version, same.Hash = 12, ""
	ack = wantAck(t, send(t, stream, snapshotMsg(same)), 12)
	if ts.applier.count() != applied {
		t.Errorf("unchanged snapshot was reapplied")
	}
	if ack.GetHash() != dataplanev1.Hash(same) || len(ack.GetListeners()) != 3 {
		t.Errorf("Ack for unchanged snapshot = %v", ack)
	}

	// A message with nothing in it is rejected.
	wantNack(t, send(t, stream, &rpc.ControllerMessage{}), 0, rpc.Nack_INVALID, "neither")
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestServerApplierFailures(t *testing.T) {
	ts := startServer(t)
	stream, _ := ts.open(t)

	// Nothing applied yet: an endpoint update needs a full snapshot first.
	wantNack(t, send(t, stream, updateMsg(&dataplanev1.EndpointUpdate{Version: 1, BackendGroup: "web"})), 1,
		rpc.Nack_FULL_SNAPSHOT_REQUIRED, "no snapshot is applied yet")

	ts.applier.setErrors(errors.New("compile failed"), nil)
	wantNack(t, send(t, stream, snapshotMsg(dataplanetest.ValidSnapshot(t))), 7, rpc.Nack_APPLY_FAILED, "compile failed")
	if ts.srv.Current() != nil {
		t.Fatal("a snapshot the applier rejected became current")
	}

	ts.applier.setErrors(nil, nil)
	wantAck(t, send(t, stream, snapshotMsg(dataplanetest.ValidSnapshot(t))), 7)

	ts.applier.setErrors(nil, errors.New("pool busy"))
	wantNack(t, send(t, stream, updateMsg(&dataplanev1.EndpointUpdate{BaseVersion: 7, Version: 8, BackendGroup: "web"})), 8,
		rpc.Nack_APPLY_FAILED, `backend group "web"`, "pool busy")
	if v := ts.srv.Current().GetVersion(); v != 7 {
		t.Errorf("current version = %d, want 7", v)
	}

	// A listener that cannot be bound is reported in the Ack, not as a failure.
	ts.applier.setErrors(nil, nil)
	s := dataplanetest.ValidSnapshot(t)
	s.Version = 9
	s.Listeners[0].Port = 1
	ack := wantAck(t, send(t, stream, snapshotMsg(s)), 9)
	if st := ack.GetListeners()[0]; st.GetBound() || st.GetError() == "" || st.GetPort() != 1 {
		t.Errorf("status of the unbindable listener = %v", st)
	}
	if ts.logs.count("listener not bound", "permission denied") != 1 {
		t.Errorf("unbound listener not logged:\n%s", ts.logs)
	}
}

func TestServerHealth(t *testing.T) {
	ts := startServer(t)
	conn, err := grpc.NewClient("unix://"+ts.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		return resp.GetStatus()
	}
	if got := check(ReadinessService); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("readiness before any snapshot = %v, want NOT_SERVING", got)
	}
	if got := check(LivenessService); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness = %v, want SERVING", got)
	}
	stream, _ := ts.open(t)
	wantAck(t, send(t, stream, snapshotMsg(dataplanetest.ValidSnapshot(t))), 7)
	for _, svc := range []string{ReadinessService, ""} {
		if got := check(svc); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) after a snapshot = %v, want SERVING", svc, got)
		}
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v, want NotFound", err)
	}

	// With Ready set, it alone decides.
	var draining atomic.Bool
	draining.Store(true)
	srv := NewServer(&fakeApplier{}, ServerOptions{Ready: func() error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	}})
	socket := filepath.Join(t.TempDir(), "ready.sock")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, socket) }()
	defer func() { cancel(); <-served }()
	conn2, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	hc = healthpb.NewHealthClient(conn2)
	eventually(t, "the second server answers", func() bool {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: LivenessService})
		return err == nil
	})
	if got := check(ReadinessService); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("readiness while Ready fails = %v, want NOT_SERVING", got)
	}
	draining.Store(false)
	if got := check(ReadinessService); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("readiness once Ready passes = %v, want SERVING (no snapshot needed: Ready decides)", got)
	}
}
