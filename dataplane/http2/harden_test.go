package http2

import (
	"bytes"
	"testing"
)

// TestRapidReset (CVE-2023-44487): a client that opens streams and resets
// them at once exhausts the reset budget and gets ENHANCE_YOUR_CALM.
func TestRapidReset(t *testing.T) {
	p := newServerPeer(t, Config{ResetBudget: 50})
	var b []byte
	for i := range 100 {
		id := uint32(2*i + 1)
		b = append(b, p.headers(id, false, getReq...)...)
		b = AppendRSTStream(b, id, ErrCodeCancel)
	}
	evs := p.feed(b)
	p.expectConnError(ErrCodeEnhanceYourCalm)
	if len(evs) > 2*51 {
		t.Fatalf("%d events before the connection ended", len(evs))
	}
}

// TestResetsBalancedByCompletedStreams: a client that cancels some streams
// but completes others keeps its connection.
func TestResetsBalancedByCompletedStreams(t *testing.T) {
	p := newServerPeer(t, Config{ResetBudget: 10})
	for i := range 200 {
		id := uint32(2*i + 1)
		p.mustFeed(p.headers(id, true, getReq...))
		if i%2 == 0 {
			p.mustFeed(AppendRSTStream(nil, id, ErrCodeCancel))
			continue
		}
		p.c.BeginHeaders()
		p.c.AddHeaderString(":status", "200")
		if _, err := p.c.WriteHeaders(nil, id, true); err != nil {
			t.Fatal(err)
		}
	}
	p.frames()
}

// TestMadeYouReset (CVE-2025-8671): stream errors the client provokes on
// purpose cost the same budget as its own resets.
func TestMadeYouReset(t *testing.T) {
	p := newServerPeer(t, Config{ResetBudget: 20})
	var b []byte
	for i := range 50 {
		id := uint32(2*i + 1)
		b = append(b, p.headers(id, false, getReq...)...)
		b = AppendWindowUpdate(b, id, 0) // stream error PROTOCOL_ERROR
	}
	p.feed(b)
	p.expectConnError(ErrCodeEnhanceYourCalm)
}

// TestContinuationFlood (CVE-2024-27316): endless CONTINUATION frames, or a
// header block past the byte bound, end the connection before it buffers
// more than the bound.
func TestContinuationFlood(t *testing.T) {
	p := newServerPeer(t, Config{MaxContinuations: 8})
	b := AppendHeaders(nil, 1, HeadersParams{}, []byte{0x82})
	for range 100 {
		b = AppendContinuation(b, 1, false, nil)
	}
	p.feed(b)
	p.expectConnError(ErrCodeEnhanceYourCalm)

	p = newServerPeer(t, Config{MaxHeaderBlockBytes: 20000, MaxContinuations: 1000})
	b = AppendHeaders(nil, 1, HeadersParams{}, bytes.Repeat([]byte{0x40}, 10000))
	for range 10 {
		b = AppendContinuation(b, 1, false, bytes.Repeat([]byte{0x40}, 10000))
	}
	p.feed(b)
	p.expectConnError(ErrCodeEnhanceYourCalm)
	if cap(p.c.hbBuf) > 40000 {
		t.Fatalf("header assembly buffer grew to %d", cap(p.c.hbBuf))
	}
}

// TestHPACKBombConn: a block whose decoded list exceeds
// MaxHeaderListSize resets that stream only; the HPACK state stays in step
// and the next request on the connection works.
func TestHPACKBombConn(t *testing.T) {
	p := newServerPeer(t, Config{MaxHeaderListSize: 8 << 10})
	blk := []byte{0x82, 0x87, 0x84} // GET https /
	blk = append(blk, 0x40)         // literal with incremental indexing
	blk = appendString(blk, []byte("x-bomb"))
	blk = appendString(blk, bytes.Repeat([]byte("z"), 3000))
	for range 1000 {
		blk = append(blk, 0xbe) // the entry just added: 3 KB each
	}
	p.feed(AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, EndStream: true}, blk))
	p.expectReset(1, ErrCodeProtocol)
	if cap(p.c.hdrs.buf) > 32<<10 {
		t.Fatalf("decoded buffer grew to %d", cap(p.c.hdrs.buf))
	}
	// The table entry the bomb added is still indexed (index 62).
	evs := p.mustFeed(AppendHeaders(nil, 3, HeadersParams{EndHeaders: true, EndStream: true}, []byte{0x82, 0x87, 0x84, 0xbe}))
	if len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
	if v, _ := evs[0].Header.Get("x-bomb"); len(v) != 3000 {
		t.Fatalf("x-bomb of %d bytes", len(v))
	}
}

// TestControlFrameFlood: SETTINGS and PING frames whose acknowledgements
// the peer does not read (the caller cannot flush) end the connection with
// ENHANCE_YOUR_CALM once the queue bound is reached; a peer whose answers
// are flushed as they come is fine.
func TestControlFrameFlood(t *testing.T) {
	for _, frame := range [][]byte{AppendPing(nil, false, [8]byte{}), AppendSettings(nil, nil)} {
		p := newServerPeer(t, Config{MaxControlBytes: 1024})
		p.feed(bytes.Repeat(frame, 1000))
		p.expectConnError(ErrCodeEnhanceYourCalm)

		p = newServerPeer(t, Config{MaxControlBytes: 1024})
		for range 1000 {
			p.mustFeed(frame)
			p.c.AppendPending(nil)
		}
	}
}

// TestEmptyDataFlood: empty DATA frames cost CPU and carry nothing.
func TestEmptyDataFlood(t *testing.T) {
	p := newServerPeer(t, Config{EmptyFrameBudget: 10})
	b := p.headers(1, false, getReq...)
	for range 50 {
		b = AppendData(b, 1, false, nil)
	}
	p.feed(b)
	p.expectConnError(ErrCodeEnhanceYourCalm)
}

// TestZeroWindowStallExposed: a peer that never opens its window leaves
// data unsent; SendWindow says so, which is what an engine times.
func TestZeroWindowStallExposed(t *testing.T) {
	p := newServerPeer(t, Config{})
	p.mustFeed(AppendSettings(nil, []Setting{{SettingInitialWindowSize, 0}}))
	p.mustFeed(p.headers(1, true, getReq...))
	p.c.BeginHeaders()
	p.c.AddHeaderString(":status", "200")
	out, _ := p.c.WriteHeaders(nil, 1, false)
	_, n, err := p.c.WriteData(out, 1, []byte("data"), true)
	if err != nil || n != 0 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if conn, st, ok := p.c.SendWindow(1); !ok || st != 0 || conn != 65535 {
		t.Fatalf("windows %d %d %v", conn, st, ok)
	}
	// The engine gives up on the stalled stream: reset frees it.
	p.c.WriteReset(nil, 1, ErrCodeCancel)
	if p.c.ActiveStreams() != 0 {
		t.Fatal("stream kept after reset")
	}
}

// TestMemoryBoundedAndReturned: many streams through one connection keep
// the stream slab within MaxConcurrentStreams and the buffers within their
// bounds; ReleaseMemory drops them once idle.
func TestMemoryBoundedAndReturned(t *testing.T) {
	p := newServerPeer(t, Config{MaxConcurrentStreams: 10})
	for round := range 50 {
		for i := range 10 {
			id := uint32(2*(round*10+i) + 1)
			p.mustFeed(p.headers(id, false, append(getReq, "x-r", string(rune('a'+i)))...))
			p.mustFeed(AppendData(nil, id, true, []byte("body")))
			p.c.Consume(id, 4)
		}
		for i := range 10 {
			id := uint32(2*(round*10+i) + 1)
			p.c.BeginHeaders()
			p.c.AddHeaderString(":status", "200")
			if _, err := p.c.WriteHeaders(nil, id, true); err != nil {
				t.Fatal(err)
			}
		}
		p.frames()
	}
	if cap(p.c.streams) > 16 {
		t.Fatalf("stream slab capacity %d for 10 concurrent streams", cap(p.c.streams))
	}
	if p.c.ActiveStreams() != 0 {
		t.Fatalf("%d streams open", p.c.ActiveStreams())
	}
	p.c.ReleaseMemory()
	if p.c.streams != nil || p.c.hdrs.buf != nil || p.c.blk != nil {
		t.Fatal("idle connection kept its buffers")
	}
	// It still works afterwards.
	if evs := p.mustFeed(p.headers(1001, true, getReq...)); len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
}
