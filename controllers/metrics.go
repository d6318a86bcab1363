package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Label values of the metrics below.
const (
	pushFull      = "full"
	pushEndpoints = "endpoints"
)

// The controller's metrics, registered with controller-runtime's registry (served on
// --metrics-bind-address next to the controller-runtime and client-go metrics).
var (
	translateDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flax_controller_translate_duration_seconds",
		Help:    "Time spent listing the cached objects and translating them into a snapshot and statuses.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	snapshotPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flax_controller_snapshot_pushes_total",
		Help: "Messages sent to the dataplane, by kind: full (a whole snapshot) or endpoints (one EndpointUpdate).",
	}, []string{"kind"})
	snapshotRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flax_controller_snapshot_rejections_total",
		Help: "Messages the dataplane rejected (Nack), by kind and Nack code.",
	}, []string{"kind", "code"})
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flax_controller_status_writes_total",
		Help: "Status updates sent to the API server by the leader, by object kind and result (ok, conflict, error).",
	}, []string{"kind", "result"})
	queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flax_controller_queue_depth",
		Help: "Watch events received and not yet folded into a translation (they coalesce into one reconcile).",
	})
	endpointChangeToAck = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flax_controller_endpoint_change_to_ack_seconds",
		Help:    "Time from receiving an EndpointSlice event to the dataplane's Ack of the configuration that includes it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	dataplaneConnected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flax_controller_dataplane_connected",
		Help: "1 while a session with the local dataplane is open, else 0.",
	})
	dataplaneAppliedVersion = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flax_controller_dataplane_applied_version",
		Help: "Version of the configuration the local dataplane last acknowledged.",
	})
)

func init() {
	metrics.Registry.MustRegister(
		translateDuration,
		snapshotPushes,
		snapshotRejections,
		statusWrites,
		queueDepth,
		endpointChangeToAck,
		dataplaneConnected,
		dataplaneAppliedVersion,
	)
}
