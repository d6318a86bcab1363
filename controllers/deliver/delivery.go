package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/internal/clip"
)

// Delivery defaults.
const (
	// DefaultMaxSendBytes is the largest message sent to the dataplane; the
	// dataplane's snapshot server accepts up to the same size.
	DefaultMaxSendBytes = rpc.DefaultMaxMessageBytes
	// defaultMinBackoff and defaultMaxBackoff bound the wait between two attempts to
	// reach the dataplane; the wait doubles after each failed attempt.
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	// defaultReplyTimeout bounds the wait for the Ack or Nack of one message; a
	// large snapshot with many TLS keys takes a while to validate and compile.
	defaultReplyTimeout = 2 * time.Minute
	// helloTimeout bounds the wait for the dataplane's Hello.
	helloTimeout = 10 * time.Second
)

// Options configure a Delivery.
type Options struct {
	// Socket is the path of the dataplane's unix socket.
	Socket string
	// NodeName names this node in results, logs and conditions.
	NodeName string
	// Log receives what the delivery does.
	Log logr.Logger
	// OnResult, if set, is called (without locks held) whenever Result changes,
	// except for a new AppliedVersion of the content the dataplane already ran.
	OnResult func()
	// MinBackoff and MaxBackoff bound the capped exponential wait between attempts
	// to reach the dataplane; zero means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// ReplyTimeout bounds the wait for the answer to one message; zero means 2m.
	ReplyTimeout time.Duration
}

// Delivery streams snapshots to the local dataplane over its unix socket: a full
// snapshot whenever a session starts, then, for every new snapshot, EndpointUpdates
// when only endpoints changed and a full snapshot otherwise. It waits for the Ack or
// Nack of every message before sending the next, reconnects with capped exponential
// backoff, and records what the dataplane reported in a Result. It runs on
// every node, leader or not.
type Delivery struct {
	opts Options
	log  logr.Logger
	wake chan struct{}

	mu sync.Mutex
	// desired is the latest snapshot to run, with version 0 and its hash set.
	desired *dataplanev1.Snapshot
	// endpointsChangedAt is the receipt time of the earliest EndpointSlice event
	// folded into desired (or an earlier snapshot) that no Ack has covered yet.
	endpointsChangedAt time.Time
	// lastVersion is the last version allocated or seen. Versions start from the
	// wall clock in microseconds, so that they keep increasing across controller
	// restarts (every message waits for its answer, so a process never allocates
	// one per microsecond) and stay exact in float64 metrics and JSON.
	lastVersion uint64
	result      Result
}

// New returns a Delivery; run it with Start.
func New(opts Options) *Delivery {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = defaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(defaultMaxBackoff, opts.MinBackoff)
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = defaultReplyTimeout
	}
	return &Delivery{
		opts:        opts,
		log:         opts.Log,
		wake:        make(chan struct{}, 1),
		lastVersion: uint64(time.Now().UnixMicro()),
		result:      Result{Node: opts.NodeName},
	}
}

// NeedLeaderElection returns false: every node delivers to its own dataplane.
func (d *Delivery) NeedLeaderElection() bool { return false }

// Publish makes snap the configuration to deliver. snap must not be modified
// afterwards; its version is ignored and its hash is computed if empty.
// endpointsChangedAt, if not zero, is when the earliest EndpointSlice event that
// snap reflects was received; the time until the dataplane acknowledges snap is
// reported in flax_controller_endpoint_change_to_ack_seconds.
func (d *Delivery) Publish(snap *dataplanev1.Snapshot, endpointsChangedAt time.Time) {
	if snap == nil {
		snap = &dataplanev1.Snapshot{}
	}
	if snap.GetHash() == "" {
		snap = dataplanev1.ShallowCopy(snap)
		snap.Hash = dataplanev1.Hash(snap)
	}
	d.mu.Lock()
	if d.desired != nil && d.desired.GetHash() == snap.GetHash() && d.result.AppliedHash == snap.GetHash() {
		// Nothing to deliver: the events changed nothing the dataplane runs.
		d.mu.Unlock()
		return
	}
	d.desired = snap
	cleared := false
	if d.result.AppliedHash == snap.GetHash() {
		// The dataplane already runs it, e.g. a rejected change was reverted: the
		// rejection no longer concerns the configuration, and no Ack will come.
		cleared = d.result.Rejection != nil
		d.result.Rejection = nil
		d.result.InSync = true
		d.endpointsChangedAt = time.Time{}
	} else {
		d.result.InSync = false
		d.endpointsChangedAt = clip.Earliest(d.endpointsChangedAt, endpointsChangedAt)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if cleared {
		d.notify()
	}
}

// Result returns what the dataplane reported last.
func (d *Delivery) Result() Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.result
	r.Listeners = slices.Clone(r.Listeners)
	if r.Rejection != nil {
		rej := *r.Rejection
		r.Rejection = &rej
	}
	return r
}

// Results returns the local result as a one-element list (a status.ResultSource).
func (d *Delivery) Results() []Result { return []Result{d.Result()} }

// ReadyCheck is a healthz.Checker that fails until the dataplane has acknowledged a
// configuration from this controller.
func (d *Delivery) ReadyCheck(_ *http.Request) error {
	if r := d.Result(); !r.Synced {
		return fmt.Errorf("dataplane at %s has not acknowledged a configuration yet", d.opts.Socket)
	}
	return nil
}

// Start delivers until ctx is done, reconnecting with capped exponential backoff.
// It returns nil when ctx is done.
func (d *Delivery) Start(ctx context.Context) error {
	wait := d.opts.MinBackoff
	failures := 0
	for {
		acked, err := d.session(ctx)
		d.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if acked {
			wait, failures = d.opts.MinBackoff, 0
		}
		failures++
		log := d.log
		if failures > 1 {
			log = log.V(1)
		}
		log.Info("dataplane session ended; reconnecting", "socket", d.opts.Socket, "error", errString(err), "after", wait)
		// Full jitter in [wait/2, wait) so that restarts do not synchronize.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, d.opts.MaxBackoff)
	}
}

// session runs one stream: Hello, a full snapshot, then changes. It reports
// whether the dataplane acknowledged anything, and why the session ended (nil when
// ctx is done).
func (d *Delivery) session(ctx context.Context) (acked bool, err error) {
	conn, err := grpc.NewClient("unix:"+d.opts.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(DefaultMaxSendBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: d.opts.MinBackoff, Multiplier: 2, Jitter: 0.2, MaxDelay: d.opts.MaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
		// A dataplane that hangs without closing the socket is noticed by pings.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return false, fmt.Errorf("creating client for dataplane socket %s: %w", d.opts.Socket, err)
	}
	defer conn.Close()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpc.NewDataplaneClient(conn).Stream(sctx)
	if err != nil {
		return false, fmt.Errorf("opening stream to dataplane socket %s: %w", d.opts.Socket, err)
	}
	replies := make(chan *rpc.DataplaneMessage, 1)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case replies <- m:
			case <-sctx.Done():
				return
			}
		}
	}()

	first, err := await(sctx, replies, recvErr, helloTimeout)
	if err != nil {
		return false, fmt.Errorf("waiting for hello: %w", err)
	}
	hello := first.GetHello()
	if hello == nil {
		return false, fmt.Errorf("dataplane sent %T before hello", first.GetMessage())
	}
	d.connected(hello)

	// applied is the content this session knows the dataplane runs, at
	// appliedVersion; nil forces a full snapshot. The first message of a session is
	// always a full snapshot: it returns the listener states, and the dataplane
	// skips recompiling when the hash is the one it runs.
	var (
		applied        *dataplanev1.Snapshot
		appliedVersion uint64
		rejectedHash   string
	)
	for {
		d.mu.Lock()
		desired := d.desired
		if desired == nil || desired.GetHash() == applied.GetHash() || desired.GetHash() == rejectedHash {
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case err := <-recvErr:
				return acked, fmt.Errorf("receiving from dataplane: %w", err)
			case m := <-replies:
				return acked, fmt.Errorf("dataplane sent an unsolicited %T", m.GetMessage())
			case <-ctx.Done():
				_ = stream.CloseSend()
				return acked, nil
			}
		}
		changedAt := d.endpointsChangedAt
		d.endpointsChangedAt = time.Time{}
		d.mu.Unlock()
		msgs := planMessages(applied, appliedVersion, desired, d.nextVersion)

		delivered, err := d.send(sctx, stream, replies, recvErr, msgs, desired, changedAt)
		if err != nil {
			return acked, err
		}
		switch delivered.outcome {
		case outcomeApplied:
			acked = true
			applied, appliedVersion, rejectedHash = desired, delivered.version, ""
		case outcomeRejected:
			acked = true
			rejectedHash = desired.GetHash()
		case outcomeResync:
			acked = true
			applied, appliedVersion = nil, 0
		}
	}
}

// outcome is how the delivery of one snapshot ended.
type outcome int

const (
	// outcomeApplied: the dataplane runs the snapshot.
	outcomeApplied outcome = iota
	// outcomeRejected: the dataplane refused the snapshot and runs the previous one.
	outcomeRejected
	// outcomeResync: an EndpointUpdate did not fit; send a full snapshot.
	outcomeResync
)

// delivery is the result of send.
type delivery struct {
	outcome outcome
	// version is the version the dataplane runs after outcomeApplied.
	version uint64
}

// send sends msgs, which move the dataplane to desired, one at a time, each after
// the answer to the previous one, and records the answers. An error means the
// session is broken.
func (d *Delivery) send(ctx context.Context, stream rpc.Dataplane_StreamClient, replies <-chan *rpc.DataplaneMessage,
	recvErr <-chan error, msgs []*rpc.ControllerMessage, desired *dataplanev1.Snapshot, changedAt time.Time,
) (delivery, error) {
	for i, msg := range msgs {
		kind, version := pushFull, msg.GetSnapshot().GetVersion()
		if upd := msg.GetEndpointUpdate(); upd != nil {
			kind, version = pushEndpoints, upd.GetVersion()
		}
		snapshotPushes.WithLabelValues(kind).Inc()
		if err := stream.Send(msg); err != nil {
			d.restoreChangedAt(changedAt)
			return delivery{}, fmt.Errorf("sending version %d to dataplane: %w", version, err)
		}
		reply, err := await(ctx, replies, recvErr, d.opts.ReplyTimeout)
		if err != nil {
			d.restoreChangedAt(changedAt)
			return delivery{}, fmt.Errorf("waiting for the answer to version %d: %w", version, err)
		}
		switch r := reply.GetMessage().(type) {
		case *rpc.DataplaneMessage_Ack:
			ack := r.Ack
			if ack.GetVersion() != version {
				d.restoreChangedAt(changedAt)
				return delivery{}, fmt.Errorf("dataplane acknowledged version %d, want %d", ack.GetVersion(), version)
			}
			if i < len(msgs)-1 {
				continue
			}
			if ack.GetHash() != desired.GetHash() {
				d.log.Info("dataplane reports another hash for the acknowledged snapshot",
					"version", version, "hash", ack.GetHash(), "want", desired.GetHash())
			}
			d.recordAck(ack, desired.GetHash(), changedAt)
			return delivery{outcome: outcomeApplied, version: version}, nil
		case *rpc.DataplaneMessage_Nack:
			nack := r.Nack
			snapshotRejections.WithLabelValues(kind, nack.GetCode().String()).Inc()
			d.restoreChangedAt(changedAt)
			if kind == pushEndpoints {
				// FULL_SNAPSHOT_REQUIRED is routine (the dataplane restarted or
				// lost track); any other refusal of endpoints is settled by a full
				// snapshot too, whose verdict is the one recorded.
				d.log.V(1).Info("dataplane refused an endpoint update; sending a full snapshot",
					"version", version, "code", nack.GetCode().String(), "reason", nack.GetReason())
				return delivery{outcome: outcomeResync}, nil
			}
			d.recordNack(nack, desired.GetHash())
			return delivery{outcome: outcomeRejected}, nil
		default:
			d.restoreChangedAt(changedAt)
			return delivery{}, fmt.Errorf("dataplane answered version %d with %T", version, reply.GetMessage())
		}
	}
	return delivery{}, errors.New("no message to send")
}

// await returns the next message from the dataplane.
func await(ctx context.Context, replies <-chan *rpc.DataplaneMessage, recvErr <-chan error, timeout time.Duration) (*rpc.DataplaneMessage, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-replies:
		return m, nil
	case err := <-recvErr:
		return nil, fmt.Errorf("receiving from dataplane: %w", err)
	case <-t.C:
		return nil, fmt.Errorf("dataplane did not answer within %s", timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// nextVersion allocates a version.
func (d *Delivery) nextVersion() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastVersion++
	return d.lastVersion
}

// connected records a new session.
func (d *Delivery) connected(hello *rpc.Hello) {
	d.mu.Lock()
	// Never reuse a version the dataplane has seen, even if the clock went back.
	d.lastVersion = max(d.lastVersion, hello.GetLastAppliedVersion())
	d.result.Connected = true
	d.mu.Unlock()
	dataplaneConnected.Set(1)
	d.log.Info("connected to dataplane", "socket", d.opts.Socket, "dataplaneNode", hello.GetNode().GetNodeName(),
		"engine", hello.GetNode().GetEngine(), "appliedVersion", hello.GetLastAppliedVersion(), "appliedHash", hello.GetLastAppliedHash())
	d.notify()
}

// setConnected records the end of a session.
func (d *Delivery) setConnected(connected bool) {
	d.mu.Lock()
	changed := d.result.Connected != connected
	d.result.Connected = connected
	d.mu.Unlock()
	if !connected {
		dataplaneConnected.Set(0)
	}
	if changed {
		d.notify()
	}
}

// restoreChangedAt puts back the time of an endpoint change whose delivery did not
// complete, so that the next delivery accounts for it.
func (d *Delivery) restoreChangedAt(t time.Time) {
	if t.IsZero() {
		return
	}
	d.mu.Lock()
	d.endpointsChangedAt = clip.Earliest(d.endpointsChangedAt, t)
	d.mu.Unlock()
}

// recordAck records that the dataplane runs the snapshot of hash hash.
func (d *Delivery) recordAck(ack *rpc.Ack, hash string, changedAt time.Time) {
	listeners := make([]ListenerResult, 0, len(ack.GetListeners()))
	for _, l := range ack.GetListeners() {
		listeners = append(listeners, ListenerResult{
			Name: l.GetName(), Address: l.GetAddress(), Port: l.GetPort(), Bound: l.GetBound(), Error: l.GetError(),
		})
	}
	d.mu.Lock()
	prev := d.result
	d.result.Synced = true
	d.result.AppliedVersion = ack.GetVersion()
	d.result.AppliedHash = hash
	d.result.InSync = d.desired.GetHash() == hash
	d.result.Rejection = nil
	d.result.Listeners = listeners
	d.lastVersion = max(d.lastVersion, ack.GetVersion())
	d.mu.Unlock()

	dataplaneAppliedVersion.Set(float64(ack.GetVersion()))
	if !changedAt.IsZero() {
		endpointChangeToAck.Observe(time.Since(changedAt).Seconds())
	}
	d.log.V(1).Info("dataplane applied configuration", "version", ack.GetVersion(), "hash", hash)
	if !prev.Synced || prev.Rejection != nil || prev.AppliedHash != hash || !slices.Equal(prev.Listeners, listeners) {
		d.notify()
	}
}

// recordNack records that the dataplane refused the snapshot of hash hash.
func (d *Delivery) recordNack(nack *rpc.Nack, hash string) {
	rej := &Rejection{Version: nack.GetVersion(), Code: nack.GetCode(), Reason: nack.GetReason(), Hash: hash}
	d.mu.Lock()
	d.result.Rejection = rej
	d.result.InSync = false
	d.mu.Unlock()
	d.log.Info("dataplane rejected configuration; it keeps running the last one it accepted",
		"version", nack.GetVersion(), "code", nack.GetCode().String(), "reason", nack.GetReason(),
		"appliedVersion", nack.GetAppliedVersion())
	d.notify()
}

// notify calls OnResult.
func (d *Delivery) notify() {
	if d.opts.OnResult != nil {
		d.opts.OnResult()
	}
}

// errString returns err's text, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
