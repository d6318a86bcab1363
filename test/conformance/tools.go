//go:build tools

// Package conformance holds the Gateway API conformance run against Flax. It is a module
// of its own so that the suite's dependencies stay out of Flax's go.mod; it also pins
// echo-basic, the suite's backend, which `make tools` builds into bin/.
package conformance

import (
	_ "sigs.k8s.io/gateway-api/conformance/echo-basic"
)
