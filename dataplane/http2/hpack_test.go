package http2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func listPairs(h *HeaderList) []string {
	var out []string
	for i := range h.Len() {
		n, v := h.Field(i)
		out = append(out, string(n)+": "+string(v))
	}
	return out
}

func TestHuffmanMatchesXNet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		s := make([]byte, r.IntN(40))
		for j := range s {
			if i%2 == 0 {
				s[j] = byte(r.IntN(256))
			} else {
				s[j] = "abcdefghijklmnopqrstuvwxyz0123456789/-_.:"[r.IntN(41)]
			}
		}
		want := hpack.AppendHuffmanString(nil, string(s))
		got := appendHuffman(nil, s)
		if !bytes.Equal(got, want) {
			t.Fatalf("encode %q: got %x want %x", s, got, want)
		}
		if huffmanEncodedLen(s) != len(want) {
			t.Fatalf("encoded len %d want %d", huffmanEncodedLen(s), len(want))
		}
		dec, ok := appendHuffmanDecoded(nil, want)
		if !ok || !bytes.Equal(dec, s) {
			t.Fatalf("decode %x: got %q ok=%v want %q", want, dec, ok, s)
		}
	}
}

func TestHuffmanRejects(t *testing.T) {
	eos := appendHuffman(nil, []byte("a")) // 5 bits + 3 padding ones
	for _, bad := range [][]byte{
		{0xff, 0xff, 0xff, 0xff}, // EOS (30 ones) in the string
		{0x1f, 0xff},             // 'a' then 11 bits of padding
		{eos[0] &^ 0x01},         // padding not all ones
		{0xfe},                   // 8 bits, no symbol and not padding
	} {
		if _, ok := appendHuffmanDecoded(nil, bad); ok {
			t.Errorf("%x accepted", bad)
		}
	}
}

// RFC 7541 Appendix C.3 and C.4: the same three requests without and with
// Huffman coding, on one connection (the dynamic table carries over).
func TestDecodeRFC7541Examples(t *testing.T) {
	for _, blocks := range [][]string{
		{
			"828684410f7777772e6578616d706c652e636f6d",
			"828684be58086e6f2d6361636865",
			"828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
		},
		{
			"828684418cf1e3c2e5f23a6ba0ab90f4ff",
			"828684be5886a8eb10649cbf",
			"828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
		},
	} {
		d := NewDecoder(4096, 1<<16)
		var h HeaderList
		want := [][]string{
			{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"},
			{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"},
			{":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com", "custom-key: custom-value"},
		}
		for i, bh := range blocks {
			b, _ := hex.DecodeString(bh)
			if err := d.Decode(b, &h); err != nil {
				t.Fatalf("block %d: %v", i, err)
			}
			if got := fmt.Sprint(listPairs(&h)); got != fmt.Sprint(want[i]) {
				t.Fatalf("block %d: %s", i, got)
			}
		}
		if d.TableSize() != 164 {
			t.Fatalf("table size %d, want 164", d.TableSize())
		}
	}
}

// TestDecodeXNetEncoder decodes blocks written by x/net's encoder, which
// indexes fields in its dynamic table, with a small table so that entries
// are evicted and the buffer is compacted.
func TestDecodeXNetEncoder(t *testing.T) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSizeLimit(256)
	enc.SetMaxDynamicTableSize(256)
	d := NewDecoder(256, 1<<16)
	var h HeaderList
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		buf.Reset()
		var want []string
		for j := range 1 + r.IntN(8) {
			f := hpack.HeaderField{Name: fmt.Sprintf("x-h%d", r.IntN(20)), Value: fmt.Sprintf("v%d-%d", i, j*r.IntN(3)), Sensitive: r.IntN(10) == 0}
			if r.IntN(4) == 0 {
				f = hpack.HeaderField{Name: staticTable[r.IntN(61)].name, Value: staticTable[r.IntN(61)].value}
			}
			if err := enc.WriteField(f); err != nil {
				t.Fatal(err)
			}
			want = append(want, f.Name+": "+f.Value)
		}
		if err := d.Decode(buf.Bytes(), &h); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if got := fmt.Sprint(listPairs(&h)); got != fmt.Sprint(want) {
			t.Fatalf("block %d: got %s want %s", i, got, want)
		}
	}
}

// TestEncodeXNetDecoder decodes our blocks with x/net's decoder, covering
// every static entry, lowercasing and never-indexed fields.
func TestEncodeXNetDecoder(t *testing.T) {
	var e Encoder
	xd := hpack.NewDecoder(4096, nil)
	var want, got []string
	var b []byte
	b = e.BeginBlock(b)
	for _, s := range staticTable {
		b = e.AppendFieldString(b, s.name, s.value)
		want = append(want, s.name+": "+s.value)
	}
	b = e.AppendFieldString(b, "X-Mixed-Case", "Value With Spaces")
	want = append(want, "x-mixed-case: Value With Spaces")
	b = e.AppendField(b, []byte("authorization"), []byte("secret"), true)
	want = append(want, "authorization: secret")
	b = e.AppendFieldString(b, ":status", "201")
	want = append(want, ":status: 201")
	fields, err := xd.DecodeFull(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		got = append(got, f.Name+": "+f.Value)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if !fields[len(fields)-2].Sensitive {
		t.Fatal("sensitive field not never-indexed")
	}
	// The first block announced the table size; a second block has no update.
	if n, _, err := readVarInt(b, 5); b[0]&0xe0 != 0x20 || err != nil || n != EncoderTableSize {
		t.Fatalf("first block starts with %x, want a size update to %d", b[:3], EncoderTableSize)
	}
	if b2 := e.BeginBlock(nil); len(b2) != 0 {
		t.Fatalf("second block starts with %x", b2)
	}
}

// decodeBoth decodes block i with x/net's decoder and ours, and checks that
// both give want (name: value lines).
func decodeBoth(t *testing.T, i int, xd *hpack.Decoder, d *Decoder, b []byte, want []string) {
	t.Helper()
	xf, err := xd.DecodeFull(b)
	if err != nil {
		t.Fatalf("block %d: x/net: %v", i, err)
	}
	var got []string
	for _, f := range xf {
		got = append(got, f.Name+": "+f.Value)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("block %d: x/net decoded %v\nwant %v", i, got, want)
	}
	var h HeaderList
	if err := d.Decode(b, &h); err != nil {
		t.Fatalf("block %d: %v", i, err)
	}
	if got := listPairs(&h); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("block %d: decoded %v\nwant %v", i, got, want)
	}
}

// TestEncoderIndexesRepeatedFields checks that a header list sent again
// costs an index per repeated field, while values that change per message
// stay literals out of the table; x/net's decoder and ours agree.
func TestEncoderIndexesRepeatedFields(t *testing.T) {
	var e Encoder
	xd := hpack.NewDecoder(4096, nil)
	d := NewDecoder(4096, 1<<16)
	fields := func(i int) [][2]string {
		return [][2]string{
			{":method", "POST"},
			{":scheme", "http"},
			{":authority", "backend.default.svc:50051"},
			{":path", "/grpc.health.v1.Health/Check"},
			{"content-type", "application/grpc"},
			{"te", "trailers"},
			{"user-agent", "grpc-go/1.85.0"},
			{"x-forwarded-for", "192.0.2.7"},
			{"content-length", fmt.Sprint(100 + i)},
			{"x-request-id", fmt.Sprintf("req-%d", i)},
		}
	}
	var sizes []int
	for i := range 3 {
		b := e.BeginBlock(nil)
		var want []string
		for _, f := range fields(i) {
			b = e.AppendFieldString(b, f[0], f[1])
			want = append(want, f[0]+": "+f[1])
		}
		sizes = append(sizes, len(b))
		decodeBoth(t, i, xd, d, b, want)
	}
	t.Logf("block sizes: %v bytes", sizes)
	// Second block: 7 one-byte indexes (method, scheme, authority,
	// content-type, te, user-agent, x-forwarded-for), :path and the two
	// changing values as literals with indexed names.
	if sizes[1] >= sizes[0]/2 || sizes[2] != sizes[1] {
		t.Fatalf("block sizes %v: want the repeats at less than half the first and steady", sizes)
	}
	if n := e.tab.n; n != 5 {
		t.Fatalf("%d entries in the table, want 5 (authority, content-type, te, user-agent, x-forwarded-for)", n)
	}
}

// TestEncoderFollowsPeerTableSize changes the peer's
// SETTINGS_HEADER_TABLE_SIZE between blocks: the encoder announces the
// smallest size first, then the one it uses, and never indexes more than
// the peer allows; x/net's decoder, told the same settings, decodes every
// block.
func TestEncoderFollowsPeerTableSize(t *testing.T) {
	var e Encoder
	xd := hpack.NewDecoder(4096, nil)
	d := NewDecoder(4096, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		if rng.IntN(10) == 0 {
			// A SETTINGS frame, maybe two before the next block.
			for range 1 + rng.IntN(2) {
				n := []uint32{0, 64, 100, 1024, 4096, 65536}[rng.IntN(6)]
				e.SetPeerTableSize(n)
				xd.SetAllowedMaxDynamicTableSize(n)
				d.SetAllowedTableSize(n)
			}
		}
		b := e.BeginBlock(nil)
		var want []string
		for range 1 + rng.IntN(8) {
			name := fmt.Sprintf("x-f%d", rng.IntN(20))
			value := strings.Repeat("v", rng.IntN(300))
			b = e.AppendFieldString(b, name, value)
			want = append(want, name+": "+value)
		}
		decodeBoth(t, i, xd, d, b, want)
		if e.tab.size > e.size {
			t.Fatalf("block %d: table holds %d bytes over its size %d", i, e.tab.size, e.size)
		}
	}
	// The peer forbids a table: nothing is indexed any more.
	e.SetPeerTableSize(0)
	b := e.BeginBlock(nil)
	if !bytes.Equal(b, []byte{0x20}) {
		t.Fatalf("block starts with %x, want the size update to 0", b)
	}
	e.AppendFieldString(b, "x-f1", "v")
	if e.tab.n != 0 {
		t.Fatal("a field entered a table of size 0")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		block string
		err   *Error
	}{
		{"index 0", "80", errHpackIndex},
		{"index past table", "be", errHpackIndex},
		{"literal name index past table", "7f00", errHpackIndex},
		{"truncated integer", "ff", errHpackTruncated},
		{"integer overflow", "ffffffffffff7f", errHpackInteger},
		{"string too long", "4005", errHpackStringLarge},
		{"bad huffman", "0081ff8100", errHpackHuffman},
		{"size update above limit", "3fe21f", errHpackSizeUpdate},
		{"size update after field", "8220", errHpackLateUpdate},
		{"truncated literal", "00", errHpackTruncated},
	} {
		b, _ := hex.DecodeString(c.block)
		d := NewDecoder(4096, 1<<16)
		var h HeaderList
		if err := d.Decode(b, &h); !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
	}
}

// TestHPACKBomb: a block that adds one 4 KB entry and references it many
// times decodes to far more than the list limit; the decoder stores at most
// the limit and reports a stream error.
func TestHPACKBomb(t *testing.T) {
	var block []byte
	block = append(block, 0x40) // literal with incremental indexing, new name
	block = appendVarInt(block, 7, 0, 1)
	block = append(block, 'x')
	big := bytes.Repeat([]byte("a"), 4000)
	block = appendVarInt(block, 7, 0, uint64(len(big)))
	block = append(block, big...)
	for range 10000 {
		block = append(block, 0xbe) // index 62: the entry just added
	}
	d := NewDecoder(4096, 16<<10)
	var h HeaderList
	err := d.Decode(block, &h)
	if !errors.Is(err, errHeaderListTooLarge) {
		t.Fatalf("err %v", err)
	}
	if cap(h.buf) > 32<<10 {
		t.Fatalf("decoded buffer grew to %d bytes", cap(h.buf))
	}
	if h.Size() < 40_000_000 {
		t.Fatalf("list size %d not counted", h.Size())
	}
	// The table stays usable: the next block references the entry.
	if err := d.Decode([]byte{0xbe}, &h); err != nil || h.Len() != 1 {
		t.Fatalf("next block: %v, %d fields", err, h.Len())
	}
}

func TestDecoderTableSizeUpdate(t *testing.T) {
	d := NewDecoder(4096, 1<<16)
	var h HeaderList
	b, _ := hex.DecodeString("400a637573746f6d2d6b65790c637573746f6d2d76616c7565")
	if err := d.Decode(b, &h); err != nil || d.TableSize() != 54 {
		t.Fatalf("err %v size %d", err, d.TableSize())
	}
	if err := d.Decode([]byte{0x20}, &h); err != nil || d.TableSize() != 0 {
		t.Fatalf("size update to 0: err %v size %d", err, d.TableSize())
	}
	if err := d.Decode([]byte{0xbe}, &h); !errors.Is(err, errHpackIndex) {
		t.Fatalf("evicted entry still indexed: %v", err)
	}
	d.SetAllowedTableSize(100)
	if err := d.Decode([]byte{0x3f, 0x46}, &h); !errors.Is(err, errHpackSizeUpdate) { // 31+70 = 101
		t.Fatalf("size update past new limit: %v", err)
	}
}

func TestDecodeNoAllocs(t *testing.T) {
	var e Encoder
	b := e.BeginBlock(nil)
	b = e.AppendFieldString(b, ":method", "POST")
	b = e.AppendFieldString(b, ":scheme", "https")
	b = e.AppendFieldString(b, ":path", "/api/v1/items/12345?x=y")
	b = e.AppendFieldString(b, ":authority", "example.com")
	b = e.AppendFieldString(b, "user-agent", "flax-bench/1.0")
	b = e.AppendFieldString(b, "content-type", "application/json")
	d := NewDecoder(4096, 1<<16)
	var h HeaderList
	if err := d.Decode(b, &h); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Decode(b, &h); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per block", allocs)
	}
}
