//go:build linux && race

package uring

// raceEnabled is true under the race detector, whose shadow memory and
// instrumented allocations make memory figures meaningless.
const raceEnabled = true
