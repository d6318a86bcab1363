package http2

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// TestDiffFramesFromXNet parses frames written by golang.org/x/net/http2's
// Framer with ReadFrame.
func TestDiffFramesFromXNet(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fr.WriteData(1, true, []byte("body")))
	must(fr.WriteDataPadded(3, false, []byte("padded"), make([]byte, 17)))
	must(fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: 5, BlockFragment: []byte{0x82, 0x86}, EndStream: true, EndHeaders: true, PadLength: 4,
		Priority: http2.PriorityParam{StreamDep: 1, Exclusive: true, Weight: 99},
	}))
	must(fr.WritePriority(7, http2.PriorityParam{StreamDep: 5, Weight: 3}))
	must(fr.WriteRSTStream(9, http2.ErrCodeStreamClosed))
	must(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1000}))
	must(fr.WriteSettingsAck())
	must(fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: []byte{0x84}, EndHeaders: true, PadLength: 2}))
	must(fr.WritePing(true, [8]byte{9, 8, 7, 6, 5, 4, 3, 2}))
	must(fr.WriteGoAway(11, http2.ErrCodeEnhanceYourCalm, []byte("calm")))
	must(fr.WriteWindowUpdate(0, 12345))
	must(fr.WriteContinuation(5, true, []byte{0x87}))
	must(fr.WriteRawFrame(0x42, 0x3, 0, []byte("ext")))

	b := buf.Bytes()
	var got []Frame
	for off := 0; off < len(b); {
		f, n, err := ReadFrame(b[off:], MinMaxFrameSize)
		if err != nil {
			t.Fatalf("frame %d: %v", len(got), err)
		}
		got = append(got, f)
		off += n
	}
	if len(got) != 13 {
		t.Fatalf("%d frames", len(got))
	}
	check := func(i int, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("frame %d (%v) differs: %+v", i, got[i].Type, got[i])
		}
	}
	check(0, got[0].Type == FrameData && got[0].StreamID == 1 && got[0].Flags.Has(FlagEndStream) && string(got[0].Data) == "body")
	check(1, string(got[1].Data) == "padded" && got[1].Length == 1+6+17)
	check(2, got[2].Priority == Priority{StreamDep: 1, Exclusive: true, Weight: 99} && bytes.Equal(got[2].Data, []byte{0x82, 0x86}) && got[2].Flags.Has(FlagEndStream|FlagEndHeaders))
	check(3, got[3].Priority == Priority{StreamDep: 5, Weight: 3})
	check(4, got[4].Code == ErrCodeStreamClosed && got[4].StreamID == 9)
	check(5, got[5].NumSettings() == 2 && got[5].Setting(1) == Setting{SettingMaxHeaderListSize, 1000})
	check(6, got[6].Type == FrameSettings && got[6].Flags.Has(FlagAck))
	check(7, got[7].PromisedID == 2 && bytes.Equal(got[7].Data, []byte{0x84}))
	check(8, got[8].PingData() == [8]byte{9, 8, 7, 6, 5, 4, 3, 2} && got[8].Flags.Has(FlagAck))
	check(9, got[9].LastStreamID == 11 && got[9].Code == ErrCodeEnhanceYourCalm && string(got[9].Data) == "calm")
	check(10, got[10].StreamID == 0 && got[10].Increment == 12345)
	check(11, got[11].Type == FrameContinuation && got[11].Flags.Has(FlagEndHeaders))
	check(12, got[12].Type == 0x42 && string(got[12].Data) == "ext")
}

// TestDiffFramesToXNet parses frames written by this package with x/net's
// Framer.
func TestDiffFramesToXNet(t *testing.T) {
	var b []byte
	b = AppendData(b, 1, true, []byte("body"))
	b = AppendDataPadded(b, 3, false, []byte("padded"), 17)
	b = AppendHeaders(b, 5, HeadersParams{EndStream: true, EndHeaders: true, Pad: 4, HasPriority: true, Priority: Priority{StreamDep: 1, Exclusive: true, Weight: 99}}, []byte{0x82, 0x86})
	b = AppendPriority(b, 7, Priority{StreamDep: 5, Weight: 3})
	b = AppendRSTStream(b, 9, ErrCodeStreamClosed)
	b = AppendSettings(b, []Setting{{SettingInitialWindowSize, 1 << 20}, {SettingMaxHeaderListSize, 1000}})
	b = AppendSettingsAck(b)
	b = AppendPing(b, true, [8]byte{9, 8, 7, 6, 5, 4, 3, 2})
	b = AppendGoAway(b, 11, ErrCodeEnhanceYourCalm, []byte("calm"))
	b = AppendWindowUpdate(b, 0, 12345)
	b = AppendHeaders(b, 13, HeadersParams{}, []byte{0x82})
	b = AppendContinuation(b, 13, true, []byte{0x87})

	fr := http2.NewFramer(nil, bytes.NewReader(b))
	next := func() http2.Frame {
		t.Helper()
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := next().(*http2.DataFrame); f.StreamID != 1 || !f.StreamEnded() || string(f.Data()) != "body" {
		t.Errorf("data: %v", f)
	}
	if f := next().(*http2.DataFrame); string(f.Data()) != "padded" || f.Length != 24 {
		t.Errorf("padded data: %v", f)
	}
	if f := next().(*http2.HeadersFrame); f.Priority != (http2.PriorityParam{StreamDep: 1, Exclusive: true, Weight: 99}) || !f.StreamEnded() || !bytes.Equal(f.HeaderBlockFragment(), []byte{0x82, 0x86}) {
		t.Errorf("headers: %v", f)
	}
	if f := next().(*http2.PriorityFrame); f.PriorityParam != (http2.PriorityParam{StreamDep: 5, Weight: 3}) {
		t.Errorf("priority: %v", f)
	}
	if f := next().(*http2.RSTStreamFrame); f.ErrCode != http2.ErrCodeStreamClosed || f.StreamID != 9 {
		t.Errorf("rst: %v", f)
	}
	if f := next().(*http2.SettingsFrame); f.NumSettings() != 2 || f.Setting(0) != (http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}) {
		t.Errorf("settings: %v", f)
	}
	if f := next().(*http2.SettingsFrame); !f.IsAck() {
		t.Errorf("settings ack: %v", f)
	}
	if f := next().(*http2.PingFrame); f.Data != [8]byte{9, 8, 7, 6, 5, 4, 3, 2} || !f.IsAck() {
		t.Errorf("ping: %v", f)
	}
	if f := next().(*http2.GoAwayFrame); f.LastStreamID != 11 || f.ErrCode != http2.ErrCodeEnhanceYourCalm || string(f.DebugData()) != "calm" {
		t.Errorf("goaway: %v", f)
	}
	if f := next().(*http2.WindowUpdateFrame); f.Increment != 12345 {
		t.Errorf("window update: %v", f)
	}
	if f := next().(*http2.HeadersFrame); f.HeadersEnded() {
		t.Errorf("headers without END_HEADERS: %v", f)
	}
	if f := next().(*http2.ContinuationFrame); !f.HeadersEnded() || !bytes.Equal(f.HeaderBlockFragment(), []byte{0x87}) {
		t.Errorf("continuation: %v", f)
	}
}
