package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
)

// TestRun runs the example: shards 0 and 1 reach a and b, shard 2's backend c
// fails its health checks so its requests go on to a, shard 4 is 1 modulo 3;
// every request carries the filter's Via field.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	var out bytes.Buffer
	if err := run(context.Background(), &out, listen); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	engine, rest, _ := strings.Cut(got, "\n")
	want := "shard 0 -> a (1.1 flax-shard)\nshard 1 -> b (1.1 flax-shard)\nshard 2 -> a (1.1 flax-shard)\nshard 4 -> b (1.1 flax-shard)\n"
	if rest != want {
		t.Errorf("output:\n%s\nwant:\n%s", rest, want)
	}
	if os.Getenv("FLAX_REQUIRE_IOURING") == "1" && engine != "engine io_uring" {
		t.Errorf("%s, want the io_uring engine", engine)
	}
	t.Log("\n" + got)
}
