package status

import (
	"context"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/internal/clip"
	"github.com/flaxlb/flax/controllers/translate"
)

// EventReporter emits a Warning Event on a Gateway for every problem a dataplane
// reports against it (ConfigurationRejected, ListenerNotBound), once per new
// problem. It runs on every node with the local dataplane's results, so that each
// node reports its own dataplane's problems; no leader is involved.
type EventReporter struct {
	reader   client.Reader
	recorder events.EventRecorder
	results  ResultSource

	mu sync.Mutex
	// latest is the translation whose Gateways are reported on.
	latest *translate.Output

	// reportMu serializes Report, which runs after translations and after results.
	reportMu sync.Mutex
	// reported are the problems already announced by Events, per Gateway.
	reported map[types.NamespacedName][]gatewayProblem
}

// NewEventReporter returns an EventReporter that reads Gateways with reader, emits
// Events with recorder and reports the problems of results.
func NewEventReporter(reader client.Reader, recorder events.EventRecorder, results ResultSource) *EventReporter {
	return &EventReporter{reader: reader, recorder: recorder, results: results, reported: map[types.NamespacedName][]gatewayProblem{}}
}

// Update makes out the translation whose Gateways Report looks at.
func (r *EventReporter) Update(out *translate.Output) {
	r.mu.Lock()
	r.latest = out
	r.mu.Unlock()
}

// Report emits a Warning Event on a Gateway of the latest translation for every
// dataplane problem that was not reported already.
func (r *EventReporter) Report(ctx context.Context) {
	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	r.mu.Lock()
	out := r.latest
	r.mu.Unlock()
	if out == nil {
		return
	}
	results := r.results.Results()
	gateways := map[types.NamespacedName]*gatewayv1.Gateway{}
	current := map[types.NamespacedName][]gatewayProblem{}
	for _, gs := range out.Gateways {
		if !anyProblem(results) {
			break // the common case: no Gateway to look at
		}
		var gw gatewayv1.Gateway
		if err := r.reader.Get(ctx, gs.NamespacedName, &gw); err != nil {
			continue
		}
		if ps := problemsOf(&gw, gs.BindAddresses, results); len(ps) > 0 {
			current[gs.NamespacedName] = ps
			gateways[gs.NamespacedName] = &gw
		}
	}
	previous := r.reported
	r.reported = current
	for key, ps := range current {
		for _, p := range ps {
			if p.addressNotUsable || slices.Contains(previous[key], p) {
				continue // an unusable address has its listeners' bind Events
			}
			action := "Apply"
			if p.reason == eventReasonNotBound {
				action = "Bind"
			}
			// events.k8s.io notes are limited to 1 kB.
			r.recorder.Eventf(gateways[key], nil, corev1.EventTypeWarning, p.reason, action, "%s", clip.Truncate(p.message, 1000))
		}
	}
}

// anyProblem reports whether a result holds a rejection or an unbound listener.
func anyProblem(results []deliver.Result) bool {
	for _, r := range results {
		if r.Rejection != nil {
			return true
		}
		for _, l := range r.Listeners {
			if !l.Bound {
				return true
			}
		}
	}
	return false
}
