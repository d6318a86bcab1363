package dataplanev1

import "time"

// MaxValidationErrors is the number of problems Validate reports at most; further
// problems are summarized in one last error.
const MaxValidationErrors = 50

// Limits enforced by Validate.
const (
	// MaxWeight is the largest backend or endpoint weight.
	MaxWeight = 1_000_000
	// MaxRetryAttempts is the largest RetryPolicy.attempts.
	MaxRetryAttempts = 10
	// MaxConcurrentStreams is the largest HTTP2Options.max_concurrent_streams.
	MaxConcurrentStreams = 1000
	// MaxGRPCHealthService is the longest GRPCHealthCheck.service.
	MaxGRPCHealthService = 256
	// MaxUDPFlows is the largest UDPRoute.max_flows.
	MaxUDPFlows = 1 << 20
	// MaxTrustedHops is the largest Listener.trusted_hops.
	MaxTrustedHops = 16
	// MinHeadBytes is the smallest byte limit of HeadLimits.
	MinHeadBytes = 1024
	// MaxHeadBytes is the largest byte limit of HeadLimits.
	MaxHeadBytes = 65535
	// MaxHeadFields is the largest field count of HeadLimits.
	MaxHeadFields = 10000
	// maxPathLength bounds path values and regular expressions.
	maxPathLength = 1024
	// maxHeaderValueLength bounds header values in matches and modifiers.
	maxHeaderValueLength = 4096
	// maxDirectResponseBody bounds DirectResponse.body.
	maxDirectResponseBody = 1 << 20
	// MinRateLimitInterval and MaxRateLimitInterval bound LocalRateLimit.interval.
	MinRateLimitInterval = time.Millisecond
	MaxRateLimitInterval = 24 * time.Hour
	// MinTimeout and MaxTimeout bound the timeouts of ListenerTimeouts and the
	// response timeouts of BackendGroup.
	MinTimeout = time.Millisecond
	MaxTimeout = 24 * time.Hour
)
