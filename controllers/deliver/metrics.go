package deliver

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Label values of snapshotPushes and snapshotRejections.
const (
	pushFull      = "full"
	pushEndpoints = "endpoints"
)

// The delivery's metrics, registered with controller-runtime's registry (served on
// --metrics-bind-address next to the controller-runtime and client-go metrics).
var (
	snapshotPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flax_controller_snapshot_pushes_total",
		Help: "Messages sent to the dataplane, by kind: full (a whole snapshot) or endpoints (one EndpointUpdate).",
	}, []string{"kind"})
	snapshotRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flax_controller_snapshot_rejections_total",
		Help: "Messages the dataplane rejected (Nack), by kind and Nack code.",
	}, []string{"kind", "code"})
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
		snapshotPushes,
		snapshotRejections,
		endpointChangeToAck,
		dataplaneConnected,
		dataplaneAppliedVersion,
	)
}
