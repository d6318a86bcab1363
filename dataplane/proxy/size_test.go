package proxy

import (
	"testing"
	"unsafe"
)

func TestSessionSize(t *testing.T) {
	t.Logf("Session %d bytes, Exchange %d bytes (plus buffers)", unsafe.Sizeof(Session{}), unsafe.Sizeof(Exchange{}))
	if n := unsafe.Sizeof(Session{}); n > 512 {
		t.Fatalf("Session is %d bytes, want at most 512 (idle connection budget)", n)
	}
}
