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

// FuzzDecodeHPACK checks that the decoder never panics, stays within its
// list bound, and that what it decodes re-encodes and decodes the same.
func FuzzDecodeHPACK(f *testing.F) {
	for _, s := range []string{
		"828684410f7777772e6578616d706c652e636f6d",
		"828684be58086e6f2d6361636865",
		"828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
		"3fe11f", "20", "7f00", "0081ff",
	} {
		b, _ := hexDecode(s)
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, b1, b2 []byte) {
		d := NewDecoder(512, 2048)
		var h HeaderList
		for _, b := range [][]byte{b1, b2} {
			err := d.Decode(b, &h)
			if h.Len() > 0 && h.Size() > 2048 && err == nil {
				t.Fatalf("list of %d accepted", h.Size())
			}
			if d.TableSize() > 512 {
				t.Fatalf("table size %d", d.TableSize())
			}
			if err != nil {
				return
			}
			var e Encoder
			blk := e.BeginBlock(nil)
			for i := range h.Len() {
				n, v := h.Field(i)
				if bytes.ContainsAny(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
					return // the encoder lowercases; not a round trip
				}
				blk = e.AppendField(blk, n, v, h.Sensitive(i))
			}
			var d2 Decoder
			d2.Init(4096, 1<<20)
			var h2 HeaderList
			if err := d2.Decode(blk, &h2); err != nil || h2.Len() != h.Len() {
				t.Fatalf("re-encoded block: %v, %d vs %d fields", err, h2.Len(), h.Len())
			}
			for i := range h.Len() {
				n1, v1 := h.Field(i)
				n2, v2 := h2.Field(i)
				if !bytes.Equal(n1, n2) || !bytes.Equal(v1, v2) {
					t.Fatalf("field %d: %q=%q vs %q=%q", i, n1, v1, n2, v2)
				}
			}
		}
	})
}

func hexDecode(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			}
		}
		b[i] = v
	}
	return b, nil
}

// FuzzConn feeds arbitrary frames to a server and a client Conn (after a
// valid start) in chunks of arbitrary size: no panic, streams within the
// limit, every error a connection error after which Next refuses to go on.
func FuzzConn(f *testing.F) {
	var enc Encoder
	req := enc.BeginBlock(nil)
	req = append(req, 0x82, 0x86, 0x84, 0x41, 0x01, 'a')
	seeds := [][]byte{
		AppendHeaders(nil, 1, HeadersParams{EndHeaders: true}, req),
		append(AppendHeaders(nil, 1, HeadersParams{}, req[:2]), AppendContinuation(nil, 1, true, req[2:])...),
		append(AppendHeaders(nil, 1, HeadersParams{EndHeaders: true}, req), AppendData(nil, 1, true, []byte("body"))...),
		append(AppendHeaders(nil, 3, HeadersParams{EndHeaders: true, EndStream: true}, req), AppendRSTStream(nil, 3, ErrCodeCancel)...),
		AppendSettings(nil, []Setting{{SettingInitialWindowSize, 10}, {SettingMaxFrameSize, 20000}}),
		AppendPing(nil, false, [8]byte{}),
		AppendWindowUpdate(AppendWindowUpdate(nil, 0, 100), 1, 100),
		AppendGoAway(nil, 0, ErrCodeNo, nil),
		AppendHeaders(nil, 1, HeadersParams{EndHeaders: true, EndStream: true}, []byte{0x88}),
	}
	for i, s := range seeds {
		f.Add(s, uint8(i), false)
		f.Add(s, uint8(i), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8, client bool) {
		role := RoleServer
		if client {
			role = RoleClient
		}
		c := NewConn(role, Config{MaxConcurrentStreams: 4, MaxControlBytes: 256, ResetBudget: 8, MaxHeaderListSize: 1024})
		c.Start(nil)
		start := AppendSettingsAck(AppendSettings(nil, nil))
		if !client {
			start = append([]byte(ClientPreface), start...)
		}
		if client {
			for range 3 {
				c.BeginHeaders()
				c.AddHeaderString(":method", "GET")
				c.AddHeaderString(":scheme", "http")
				c.AddHeaderString(":path", "/")
				if _, _, err := c.WriteRequestHeaders(nil, chunk%2 == 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		in := append(start, b...)
		step := int(chunk%64) + 1
		var buf []byte
		for off := 0; off < len(in); {
			end := min(off+step, len(in))
			buf = append(buf, in[off:end]...)
			off = end
			for {
				ev, n, err := c.Next(buf)
				if err != nil {
					if _, _, err2 := c.Next(buf); err2 == nil {
						t.Fatal("Next went on after a connection error")
					}
					return
				}
				if n == 0 {
					break
				}
				buf = buf[n:]
				if ev.Kind == EventData {
					c.Consume(ev.StreamID, len(ev.Data))
				}
				if ev.Kind == EventHeaders && !client {
					c.BeginHeaders()
					c.AddHeaderString(":status", "200")
					_, _ = c.WriteHeaders(nil, ev.StreamID, ev.EndStream)
				}
				if c.ActiveStreams() > 4 {
					t.Fatalf("%d streams open", c.ActiveStreams())
				}
				c.AppendPending(nil)
			}
		}
	})
}
