package http2

import (
	"bytes"
	"errors"
	"testing"
)

func mustFrame(t *testing.T, b []byte) Frame {
	t.Helper()
	f, n, err := ReadFrame(b, MinMaxFrameSize)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if n != len(b) {
		t.Fatalf("ReadFrame consumed %d of %d", n, len(b))
	}
	return f
}

func TestFrameRoundTrip(t *testing.T) {
	prio := Priority{StreamDep: 3, Exclusive: true, Weight: 200}
	cases := []struct {
		name  string
		b     []byte
		check func(t *testing.T, f Frame)
	}{
		{"data", AppendData(nil, 1, true, []byte("hello")), func(t *testing.T, f Frame) {
			if f.Type != FrameData || f.StreamID != 1 || !f.Flags.Has(FlagEndStream) || string(f.Data) != "hello" || f.Length != 5 {
				t.Fatalf("%+v", f)
			}
		}},
		{"data padded", AppendDataPadded(nil, 5, false, []byte("abc"), 10), func(t *testing.T, f Frame) {
			if string(f.Data) != "abc" || f.Length != 14 || f.Flags.Has(FlagEndStream) {
				t.Fatalf("%+v", f)
			}
		}},
		{"headers prio padded", AppendHeaders(nil, 7, HeadersParams{EndHeaders: true, Pad: 3, HasPriority: true, Priority: prio}, []byte{0x82}), func(t *testing.T, f Frame) {
			if f.Type != FrameHeaders || f.Priority != prio || !bytes.Equal(f.Data, []byte{0x82}) || !f.Flags.Has(FlagEndHeaders) {
				t.Fatalf("%+v", f)
			}
		}},
		{"priority", AppendPriority(nil, 9, prio), func(t *testing.T, f Frame) {
			if f.Priority != prio {
				t.Fatalf("%+v", f)
			}
		}},
		{"rst", AppendRSTStream(nil, 3, ErrCodeCancel), func(t *testing.T, f Frame) {
			if f.Code != ErrCodeCancel || f.StreamID != 3 {
				t.Fatalf("%+v", f)
			}
		}},
		{"settings", AppendSettings(nil, []Setting{{SettingMaxFrameSize, 1 << 20}, {SettingEnablePush, 0}, {0x99, 7}}), func(t *testing.T, f Frame) {
			if f.NumSettings() != 3 || f.Setting(0) != (Setting{SettingMaxFrameSize, 1 << 20}) || f.Setting(2) != (Setting{0x99, 7}) {
				t.Fatalf("%+v", f)
			}
		}},
		{"settings ack", AppendSettingsAck(nil), func(t *testing.T, f Frame) {
			if !f.Flags.Has(FlagAck) || f.Length != 0 {
				t.Fatalf("%+v", f)
			}
		}},
		{"push promise", AppendPushPromise(nil, 1, 2, true, 4, []byte{0x82}), func(t *testing.T, f Frame) {
			if f.PromisedID != 2 || !bytes.Equal(f.Data, []byte{0x82}) {
				t.Fatalf("%+v", f)
			}
		}},
		{"ping", AppendPing(nil, true, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}), func(t *testing.T, f Frame) {
			if f.PingData() != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} || !f.Flags.Has(FlagAck) {
				t.Fatalf("%+v", f)
			}
		}},
		{"goaway", AppendGoAway(nil, 41, ErrCodeEnhanceYourCalm, []byte("bye")), func(t *testing.T, f Frame) {
			if f.LastStreamID != 41 || f.Code != ErrCodeEnhanceYourCalm || string(f.Data) != "bye" {
				t.Fatalf("%+v", f)
			}
		}},
		{"window update", AppendWindowUpdate(nil, 0, 1<<30), func(t *testing.T, f Frame) {
			if f.Increment != 1<<30 {
				t.Fatalf("%+v", f)
			}
		}},
		{"continuation", AppendContinuation(nil, 1, true, []byte("xyz")), func(t *testing.T, f Frame) {
			if string(f.Data) != "xyz" || !f.Flags.Has(FlagEndHeaders) {
				t.Fatalf("%+v", f)
			}
		}},
		{"unknown type", append(AppendFrameHeader(nil, 2, 0xfa, 0xff, 0), 'h', 'i'), func(t *testing.T, f Frame) {
			if f.Type != 0xfa || string(f.Data) != "hi" {
				t.Fatalf("%+v", f)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, mustFrame(t, c.b))
			for i := range len(c.b) {
				if _, n, err := ReadFrame(c.b[:i], MinMaxFrameSize); !errors.Is(err, ErrNeedMore) || n != 0 {
					t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
				}
			}
		})
	}
}

func TestFrameReservedBitIgnored(t *testing.T) {
	b := AppendData(nil, 1, false, nil)
	b[5] |= 0x80
	if f := mustFrame(t, b); f.StreamID != 1 {
		t.Fatalf("stream id %d", f.StreamID)
	}
}

func TestFrameErrors(t *testing.T) {
	big := AppendFrameHeader(nil, MinMaxFrameSize+1, FrameData, 0, 1)
	cases := []struct {
		name   string
		b      []byte
		code   ErrCode
		stream bool
	}{
		{"too large", big, ErrCodeFrameSize, false},
		{"data stream 0", AppendData(nil, 0, false, nil), ErrCodeProtocol, false},
		{"data pad too long", append(AppendFrameHeader(nil, 3, FrameData, FlagPadded, 1), 3, 0, 0), ErrCodeProtocol, false},
		{"data pad empty", AppendFrameHeader(nil, 0, FrameData, FlagPadded, 1), ErrCodeProtocol, false},
		{"headers stream 0", AppendHeaders(nil, 0, HeadersParams{}, nil), ErrCodeProtocol, false},
		{"headers self dep", AppendHeaders(nil, 3, HeadersParams{HasPriority: true, Priority: Priority{StreamDep: 3}}, nil), ErrCodeProtocol, false},
		{"headers prio short", append(AppendFrameHeader(nil, 2, FrameHeaders, FlagPriority, 1), 0, 0), ErrCodeFrameSize, false},
		{"priority size", append(AppendFrameHeader(nil, 4, FramePriority, 0, 1), 0, 0, 0, 0), ErrCodeFrameSize, true},
		{"priority stream 0", AppendPriority(nil, 0, Priority{}), ErrCodeProtocol, false},
		{"priority self", AppendPriority(nil, 5, Priority{StreamDep: 5}), ErrCodeProtocol, true},
		{"rst size", append(AppendFrameHeader(nil, 3, FrameRSTStream, 0, 1), 0, 0, 0), ErrCodeFrameSize, false},
		{"rst stream 0", AppendRSTStream(nil, 0, 0), ErrCodeProtocol, false},
		{"settings on stream", AppendFrameHeader(nil, 0, FrameSettings, 0, 1), ErrCodeProtocol, false},
		{"settings ack payload", append(AppendFrameHeader(nil, 6, FrameSettings, FlagAck, 0), 0, 1, 0, 0, 0, 0), ErrCodeFrameSize, false},
		{"settings size", append(AppendFrameHeader(nil, 5, FrameSettings, 0, 0), 0, 1, 0, 0, 0), ErrCodeFrameSize, false},
		{"settings push 2", AppendSettings(nil, []Setting{{SettingEnablePush, 2}}), ErrCodeProtocol, false},
		{"settings window", AppendSettings(nil, []Setting{{SettingInitialWindowSize, 1 << 31}}), ErrCodeFlowControl, false},
		{"settings frame small", AppendSettings(nil, []Setting{{SettingMaxFrameSize, 16383}}), ErrCodeProtocol, false},
		{"settings frame big", AppendSettings(nil, []Setting{{SettingMaxFrameSize, 1 << 24}}), ErrCodeProtocol, false},
		{"settings connect", AppendSettings(nil, []Setting{{SettingEnableConnectProtocol, 2}}), ErrCodeProtocol, false},
		{"push promise short", append(AppendFrameHeader(nil, 3, FramePushPromise, 0, 1), 0, 0, 0), ErrCodeFrameSize, false},
		{"ping size", append(AppendFrameHeader(nil, 7, FramePing, 0, 0), make([]byte, 7)...), ErrCodeFrameSize, false},
		{"ping stream", AppendFrameHeader(AppendFrameHeader(nil, 8, FramePing, 0, 1), 0, 0, 0, 0)[:17], ErrCodeProtocol, false},
		{"goaway short", append(AppendFrameHeader(nil, 7, FrameGoAway, 0, 0), make([]byte, 7)...), ErrCodeFrameSize, false},
		{"goaway stream", append(AppendFrameHeader(nil, 8, FrameGoAway, 0, 1), make([]byte, 8)...), ErrCodeProtocol, false},
		{"window size", append(AppendFrameHeader(nil, 5, FrameWindowUpdate, 0, 0), make([]byte, 5)...), ErrCodeFrameSize, false},
		{"window zero conn", AppendWindowUpdate(nil, 0, 0), ErrCodeProtocol, false},
		{"window zero stream", AppendWindowUpdate(nil, 1, 0), ErrCodeProtocol, true},
		{"continuation stream 0", AppendContinuation(nil, 0, true, nil), ErrCodeProtocol, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReadFrame(c.b, MinMaxFrameSize)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Code != c.code || e.Stream != c.stream {
				t.Fatalf("got %v (stream %v), want %v (stream %v)", e.Code, e.Stream, c.code, c.stream)
			}
		})
	}
}

func TestFrameSizeLimitFollowsSetting(t *testing.T) {
	b := AppendData(nil, 1, false, make([]byte, 20000))
	if _, _, err := ReadFrame(b, MinMaxFrameSize); err == nil {
		t.Fatal("20000-byte frame accepted with a 16384 limit")
	}
	if _, n, err := ReadFrame(b, 1<<15); err != nil || n != len(b) {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestMatchPreface(t *testing.T) {
	for _, c := range []struct {
		in   string
		want PrefaceMatch
	}{
		{"", PrefaceNeedMore},
		{"PRI * HT", PrefaceNeedMore},
		{ClientPreface, PrefaceYes},
		{ClientPreface + "\x00\x00", PrefaceYes},
		{"GET / HTTP/1.1\r\n", PrefaceNo},
		{"PRI * HTTP/1.1\r\n", PrefaceNo},
		{"P", PrefaceNeedMore},
		{"X", PrefaceNo},
	} {
		if got := MatchPreface([]byte(c.in)); got != c.want {
			t.Errorf("MatchPreface(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestReadFrameNoAllocs(t *testing.T) {
	b := AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, Pad: 2}, []byte{0x82, 0x86})
	b = AppendSettings(b, []Setting{{SettingMaxFrameSize, 1 << 15}})
	b = AppendData(b, 1, true, []byte("x"))
	allocs := testing.AllocsPerRun(100, func() {
		for off := 0; off < len(b); {
			_, n, err := ReadFrame(b[off:], MinMaxFrameSize)
			if err != nil {
				panic(err)
			}
			off += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per run", allocs)
	}
}
