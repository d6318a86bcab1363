package http2

import (
	"bytes"
	"errors"
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

// FuzzDiffReadFrame: for any single frame, ReadFrame and x/net's Framer
// agree on whether it is acceptable and, when both accept it, on its
// fields. CONTINUATION is left out (x/net checks frame order in its
// framer, this package in Conn), and so are extension frame types.
func FuzzDiffReadFrame(f *testing.F) {
	f.Add(AppendData(nil, 1, true, []byte("x")))
	f.Add(AppendDataPadded(nil, 1, false, []byte("abc"), 3))
	f.Add(AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, Pad: 2, HasPriority: true, Priority: Priority{StreamDep: 3, Weight: 1}}, []byte{0x82}))
	f.Add(AppendSettings(nil, []Setting{{SettingMaxFrameSize, 1 << 14}, {SettingEnablePush, 1}}))
	f.Add(AppendGoAway(nil, 3, ErrCodeCancel, []byte("d")))
	f.Add(AppendWindowUpdate(nil, 0, 1))
	f.Add(AppendPriority(nil, 1, Priority{StreamDep: 0}))
	f.Add(AppendPushPromise(nil, 1, 2, true, 1, []byte{0x82}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < FrameHeaderLen || FrameType(b[3]) >= FrameContinuation {
			// Extension types (x/net parses RFC 9218's PRIORITY_UPDATE,
			// which this package ignores as RFC 9113 section 5.5 allows).
			return
		}
		ours, n, err := ReadFrame(b, MinMaxFrameSize)
		if errors.Is(err, ErrNeedMore) {
			return
		}
		in := b
		if n > 0 {
			in = b[:n]
		}
		fr := http2.NewFramer(nil, bytes.NewReader(in))
		fr.SetMaxReadFrameSize(MinMaxFrameSize)
		theirs, xerr := fr.ReadFrame()
		if hf, ok := theirs.(*http2.HeadersFrame); ok && xerr == nil && hf.HasPriority() && hf.Priority.StreamDep == hf.StreamID {
			// x/net's server checks this, not its Framer.
			xerr = errors.New("stream depends on itself")
		}
		if pf, ok := theirs.(*http2.PriorityFrame); ok && xerr == nil && pf.StreamDep == pf.StreamID {
			xerr = errors.New("stream depends on itself")
		}
		if sf, ok := theirs.(*http2.SettingsFrame); ok && xerr == nil {
			// x/net's Framer leaves setting values to its server and
			// client; ReadFrame checks them (RFC 9113 section 6.5.2).
			xerr = sf.ForeachSetting(func(s http2.Setting) error { return s.Valid() })
		}
		if (err == nil) != (xerr == nil) {
			// x/net reports PRIORITY self-dependency and some stream-level
			// problems as errors on the frame; so do we (Stream errors).
			t.Fatalf("frame %x: ours %v, x/net %v", b[:min(len(b), 32)], err, xerr)
		}
		if err != nil {
			return
		}
		if theirs.Header().StreamID != ours.StreamID || theirs.Header().Length != ours.Length || uint8(theirs.Header().Type) != uint8(ours.Type) {
			t.Fatalf("headers differ: %+v vs %+v", theirs.Header(), ours.FrameHeader)
		}
		switch x := theirs.(type) {
		case *http2.DataFrame:
			if !bytes.Equal(x.Data(), ours.Data) {
				t.Fatal("DATA payload differs")
			}
		case *http2.HeadersFrame:
			if !bytes.Equal(x.HeaderBlockFragment(), ours.Data) || x.Priority.StreamDep != ours.Priority.StreamDep || x.Priority.Weight != ours.Priority.Weight {
				t.Fatal("HEADERS differ")
			}
		case *http2.GoAwayFrame:
			if x.LastStreamID != ours.LastStreamID || uint32(x.ErrCode) != uint32(ours.Code) || !bytes.Equal(x.DebugData(), ours.Data) {
				t.Fatal("GOAWAY differs")
			}
		case *http2.WindowUpdateFrame:
			if x.Increment != ours.Increment {
				t.Fatal("WINDOW_UPDATE differs")
			}
		case *http2.SettingsFrame:
			if x.NumSettings() != ours.NumSettings() {
				t.Fatal("SETTINGS differ")
			}
		}
	})
}
