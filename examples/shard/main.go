// Command shard is a load balancer with a selection algorithm and a filter of its
// own, on the io_uring engine where the kernel allows it: each request goes to the
// backend its X-Shard header numbers, health checks move a failing backend's shard
// on to the next healthy one, and a filter tags what it forwards.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/filter"
	"github.com/flaxlb/flax/dataplane/lb"
)

// shard keys each request by its X-Shard header and picks that eligible endpoint.
type shard struct{}

func (shard) AppendKey(dst []byte, r balancer.Request) []byte {
	v, _ := r.Header("x-shard")
	return append(dst, v...)
}

func (shard) NewSelector(g *balancer.Group, _ uint64) balancer.Selector { return selector{g} }

type selector struct{ g *balancer.Group }

func (s selector) Pick(key []byte, unhealthy balancer.Bitset) (int, bool) {
	skip, usable := s.g.Usable(unhealthy) // health checks, outlier ejection, failed attempts
	if usable == 0 {
		return -1, false
	}
	n, k := s.g.NumEligible(), 0
	for _, c := range key {
		if c >= '0' && c <= '9' {
			k = (k*10 + int(c-'0')) % n
		}
	}
	for i := range n {
		if idx := s.g.EligibleEndpoint((k + i) % n); !skip.Has(idx) {
			return idx, true
		}
	}
	return -1, false
}

func (selector) Done(int) {}

// via tags every request sent to a backend.
type via struct{}

func (via) OnUpstreamRequest(r filter.Request) { r.SetHeader("Via", "1.1 flax-shard") }

func init() { // snapshots name them: loadBalancing.algorithm, extensionFilters
	balancer.MustRegister("shard", shard{})
	filter.MustRegister("via", via{})
}

func main() {
	if err := run(context.Background(), os.Stdout, "127.0.0.1:8080"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, listen string) error {
	var backends []string
	for _, name := range []string{"a", "b", "c"} { // c fails its health checks
		backends = append(backends, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && name == "c" {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintf(w, "%s (%s)", name, r.Header.Get("Via"))
		})).Listener.Addr().String())
	}
	snap, err := lb.Proxy{
		Listen: listen, Backends: backends, Algorithm: "shard", Filters: []string{"via"},
		HealthCheck: &dataplanev1.HealthCheck{
			Path: "/healthz", Interval: durationpb.New(50 * time.Millisecond),
			Timeout: durationpb.New(50 * time.Millisecond), UnhealthyThreshold: 1,
		},
	}.Snapshot()
	if err != nil {
		return err
	}
	d, err := daemon.New(daemon.Options{})
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, snap); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go d.Run(ctx)
	pool, _ := d.Pool(lb.DefaultGroup)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) { // until health checks take c out
		if list, _ := pool.List(); !list[2].Healthy {
			break
		} else if time.Since(start) > 5*time.Second {
			return fmt.Errorf("health checks did not take c out: %v", list)
		}
	}
	fmt.Fprintln(out, "engine", d.EngineName())
	for _, key := range []string{"0", "1", "2", "4"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/", nil)
		req.Header.Set("X-Shard", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(out, "shard %s -> %s\n", key, body)
	}
	return nil
}
