package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The watch stage's metrics, registered with controller-runtime's registry (served
// on --metrics-bind-address next to the controller-runtime and client-go metrics).
// The delivery and the status writer register their own (packages deliver and
// status).
var (
	translateDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flax_controller_translate_duration_seconds",
		Help:    "Time spent listing the cached objects and translating them into a snapshot and statuses.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flax_controller_queue_depth",
		Help: "Watch events received and not yet folded into a translation (they coalesce into one reconcile).",
	})
)

func init() {
	metrics.Registry.MustRegister(translateDuration, queueDepth)
}
