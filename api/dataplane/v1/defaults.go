package dataplanev1

import "time"

// Defaults the dataplane applies to fields a snapshot leaves unset. The controller
// uses them where a Flax policy sets part of a message that the snapshot can only
// carry whole.
const (
	// DefaultConnectTimeout bounds an upstream connect (BackendGroup.connect_timeout).
	DefaultConnectTimeout = 2 * time.Second
	// DefaultIdleTimeout closes pooled upstream connections idle this long
	// (BackendGroup.idle_timeout).
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxIdlePerEndpoint is how many idle upstream connections a worker keeps
	// per endpoint.
	DefaultMaxIdlePerEndpoint = 64

	// Active health checks (HealthCheck).
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 3
	DefaultHealthCheckPath    = "/"

	// Outlier detection (OutlierDetection).
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionTime    = 300 * time.Second
	DefaultMaxEjectionPercent = 10

	// DefaultMaxMirrorBody is the largest request body copied to a mirror.
	DefaultMaxMirrorBody = 64 << 10

	// The retry budget of a group that sets none (RetryBudget): retries in flight may
	// be this percentage of the group's requests in flight, and at least this many.
	DefaultRetryBudgetPercent        = 20
	DefaultRetryBudgetMinConcurrency = 3
)
