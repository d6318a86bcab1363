//go:build linux && !race

package uring

const raceEnabled = false
