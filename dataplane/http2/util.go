package http2

import "unsafe"

// stringBytes returns the bytes of s without copying; callers never modify
// them.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
