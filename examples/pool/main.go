// Command pool balances over three backends, then adds, removes and lists them live.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"

	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/lb"
)

func main() { run(context.Background(), os.Stdout, "127.0.0.1:8080") }

func run(ctx context.Context, out io.Writer, listen string) {
	var addrs []string
	for _, name := range "abcd" { // loopback backends that answer their name
		addrs = append(addrs, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "%c", name) })).Listener.Addr().String())
	}
	d := must(daemon.New(daemon.Options{}))
	must(d.Apply(ctx, must(lb.HTTPProxy(listen, addrs[:3]...)))) // round robin over a, b, c
	go d.Run(ctx)
	pool := must(d.Pool(lb.DefaultGroup))
	traffic := func(change error) { // who answers six requests after a change
		must(0, change)
		var got []string
		for range 6 {
			got = append(got, string(must(io.ReadAll(must(http.Get("http://"+listen)).Body))))
		}
		fmt.Fprintln(out, "answered by", slices.Compact(slices.Sorted(slices.Values(got))))
	}
	traffic(nil)
	traffic(pool.Add(addrs[3]))    // d joins
	traffic(pool.Remove(addrs[1])) // b leaves
	for _, b := range must(pool.List()) {
		fmt.Fprintln(out, string("abcd"[slices.Index(addrs, b.Address)]), b.State)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
