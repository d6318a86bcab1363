package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// NeedLeaderElection returns false: every node publishes its own result.
func (l *Leases) NeedLeaderElection() bool { return false }

// ResultChanged is called when the local dataplane's result changed. It reports
// whether what this node's Lease says changed other than in the applied version and
// hash (a change of endpoints alone changes only those) and, if so, has the Lease
// rewritten.
func (l *Leases) ResultChanged() bool {
	rep := reportOf(l.local())
	rep.Version, rep.Hash = 0, ""
	raw, _ := json.Marshal(rep) // plain strings, numbers and maps: cannot fail
	l.mu.Lock()
	changed := string(raw) != l.lastReport
	l.lastReport = string(raw)
	l.mu.Unlock()
	if changed {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return changed
}

// Start writes this node's Lease now, on every change and every renew interval,
// until ctx is done.
func (l *Leases) Start(ctx context.Context) error {
	t := time.NewTicker(l.opts.RenewInterval)
	defer t.Stop()
	for {
		if err := l.write(ctx); err != nil && ctx.Err() == nil {
			l.opts.Log.V(1).Info("writing node lease failed; retrying", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.wake:
		}
	}
}

// write creates or renews this node's Lease with the current result.
func (l *Leases) write(ctx context.Context) error {
	raw, err := json.Marshal(reportOf(l.local()))
	if err != nil {
		return err
	}
	now := metav1.NowMicro()
	key := types.NamespacedName{Namespace: l.opts.Namespace, Name: leaseName(l.opts.Node)}
	var lease coordinationv1.Lease
	err = l.opts.APIReader.Get(ctx, key, &lease)
	if apierrors.IsNotFound(err) {
		lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		l.fill(&lease, string(raw), now)
		lease.Spec.AcquireTime = &now
		err = l.opts.Client.Create(ctx, &lease)
	} else if err == nil {
		l.fill(&lease, string(raw), now)
		err = l.opts.Client.Update(ctx, &lease)
	}
	if err != nil {
		return fmt.Errorf("writing lease %s: %w", key, err)
	}
	return nil
}

// fill sets the holder, duration, renew time and result of lease.
func (l *Leases) fill(lease *coordinationv1.Lease, report string, now metav1.MicroTime) {
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[ResultAnnotation] = report
	lease.Spec.HolderIdentity = ptr.To(l.opts.Node)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, l.opts.LeaseDuration.Round(time.Second)/time.Second)))
	lease.Spec.RenewTime = &now
}
