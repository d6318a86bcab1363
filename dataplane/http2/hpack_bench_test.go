package http2

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// requestBlock is a typical request block as x/net's client writes it (it
// indexes fields in its dynamic table, so the steady state references them).
func requestBlocks(b *testing.B) [][]byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	var blocks [][]byte
	for i := range 2 {
		buf.Reset()
		for _, f := range []hpack.HeaderField{
			{Name: ":method", Value: "POST"},
			{Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "backend.default.svc:8080"},
			{Name: ":path", Value: "/api/v1/items/12345?page=" + string(rune('0'+i))},
			{Name: "user-agent", Value: "Go-http-client/2.0"},
			{Name: "content-type", Value: "application/json"},
			{Name: "accept-encoding", Value: "gzip"},
			{Name: "x-request-id", Value: "8d3c0b9e-5f1a-4c2b-9a7e-2b1f6c3d4e5" + string(rune('0'+i))},
		} {
			if err := enc.WriteField(f); err != nil {
				b.Fatal(err)
			}
		}
		blocks = append(blocks, bytes.Clone(buf.Bytes()))
	}
	return blocks
}

// BenchmarkDecodeFlax decodes the steady-state block (indexed fields and
// new-valued literals) with this package's decoder.
func BenchmarkDecodeFlax(b *testing.B) {
	blocks := requestBlocks(b)
	d := NewDecoder(4096, 1<<16)
	var h HeaderList
	if err := d.Decode(blocks[0], &h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(blocks[1], &h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeXNet decodes the same block with x/net's decoder and an
// emit function that only counts fields: the allocations are the decoder's.
func BenchmarkDecodeXNet(b *testing.B) {
	blocks := requestBlocks(b)
	n := 0
	d := hpack.NewDecoder(4096, func(hpack.HeaderField) { n++ })
	if _, err := d.Write(blocks[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Write(blocks[1]); err != nil {
			b.Fatal(err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	var e Encoder
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = e.BeginBlock(dst[:0])
		dst = e.AppendFieldString(dst, ":status", "200")
		dst = e.AppendFieldString(dst, "content-type", "application/json")
		dst = e.AppendFieldString(dst, "content-length", "1234")
		dst = e.AppendFieldString(dst, "Server", "flax")
	}
}
