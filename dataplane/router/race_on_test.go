//go:build race

package router

// raceEnabled is true under the race detector, which makes sync.Pool drop
// items at random (and so the regexp package allocate).
const raceEnabled = true
