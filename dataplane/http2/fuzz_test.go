package http2

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadFrame checks that ReadFrame never panics, consumes exactly the
// frame it reports, returns only *Error or ErrNeedMore, and that a frame it
// accepts re-encodes to the same payload semantics.
func FuzzReadFrame(f *testing.F) {
	seeds := [][]byte{
		AppendData(nil, 1, true, []byte("hello")),
		AppendDataPadded(nil, 3, false, []byte("x"), 7),
		AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, Pad: 2, HasPriority: true, Priority: Priority{StreamDep: 0, Weight: 15}}, []byte{0x82, 0x86, 0x84}),
		AppendPriority(nil, 3, Priority{StreamDep: 1}),
		AppendRSTStream(nil, 1, ErrCodeCancel),
		AppendSettings(nil, []Setting{{SettingInitialWindowSize, 1 << 20}, {SettingMaxFrameSize, 1 << 14}}),
		AppendSettingsAck(nil),
		AppendPushPromise(nil, 1, 2, true, 1, []byte{0x82}),
		AppendPing(nil, false, [8]byte{1}),
		AppendGoAway(nil, 5, ErrCodeNo, []byte("debug")),
		AppendWindowUpdate(nil, 1, 100),
		AppendContinuation(nil, 1, true, []byte{0x84}),
		append(AppendFrameHeader(nil, 1, 0x20, 0, 1), 0),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for off := 0; off < len(b); {
			fr, n, err := ReadFrame(b[off:], MinMaxFrameSize)
			if errors.Is(err, ErrNeedMore) {
				if n != 0 {
					t.Fatalf("n=%d with ErrNeedMore", n)
				}
				return
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Fatalf("unexpected error type %T", err)
			}
			if err != nil && !e.Stream {
				return
			}
			if n != FrameHeaderLen+int(fr.Length) || off+n > len(b) {
				t.Fatalf("n=%d length=%d", n, fr.Length)
			}
			if err == nil && len(fr.Data) > int(fr.Length) {
				t.Fatalf("data %d longer than payload %d", len(fr.Data), fr.Length)
			}
			if err == nil {
				checkReencode(t, fr)
			}
			off += n
		}
	})
}

// checkReencode writes the parsed frame again (without padding) and parses
// the result: the semantic fields must be equal.
func checkReencode(t *testing.T, fr Frame) {
	var b []byte
	switch fr.Type {
	case FrameData:
		b = AppendData(nil, fr.StreamID, fr.Flags.Has(FlagEndStream), fr.Data)
	case FrameHeaders:
		b = AppendHeaders(nil, fr.StreamID, HeadersParams{
			EndStream: fr.Flags.Has(FlagEndStream), EndHeaders: fr.Flags.Has(FlagEndHeaders),
			HasPriority: fr.Flags.Has(FlagPriority), Priority: fr.Priority,
		}, fr.Data)
	case FrameRSTStream:
		b = AppendRSTStream(nil, fr.StreamID, fr.Code)
	case FrameGoAway:
		b = AppendGoAway(nil, fr.LastStreamID, fr.Code, fr.Data)
	case FrameWindowUpdate:
		b = AppendWindowUpdate(nil, fr.StreamID, fr.Increment)
	case FramePing:
		b = AppendPing(nil, fr.Flags.Has(FlagAck), fr.PingData())
	default:
		return
	}
	g, n, err := ReadFrame(b, MinMaxFrameSize)
	if err != nil || n != len(b) {
		t.Fatalf("re-encoded %v frame: n=%d err=%v", fr.Type, n, err)
	}
	if g.StreamID != fr.StreamID || !bytes.Equal(g.Data, fr.Data) || g.Code != fr.Code ||
		g.Increment != fr.Increment || g.LastStreamID != fr.LastStreamID || g.Priority != fr.Priority {
		t.Fatalf("re-encoded %v frame differs: %+v vs %+v", fr.Type, g, fr)
	}
}
