package status

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// statusWrites counts the status writer's updates, on controller-runtime's
// registry (served on --metrics-bind-address).
var statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "flax_controller_status_writes_total",
	Help: "Status updates sent to the API server by the leader, by object kind and result (ok, conflict, error).",
}, []string{"kind", "result"})

func init() {
	metrics.Registry.MustRegister(statusWrites)
}
