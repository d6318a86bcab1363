package main

import (
	"bytes"
	"context"
	"net"
	"testing"
)

// TestRun runs the example against its loopback backends and checks that traffic
// follows the pool: a, b, c; then d joins; then b leaves.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	run(ctx, &out, listen)
	want := "answered by [a b c]\nanswered by [a b c d]\nanswered by [a c d]\na ready\nc ready\nd ready\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	t.Log("\n" + out.String())
}
