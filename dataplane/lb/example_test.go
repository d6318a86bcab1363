package lb_test

import (
	"fmt"

	"github.com/flaxlb/flax/dataplane/lb"
)

// A reverse proxy on port 8080 over three backends, round robin: the snapshot an
// embedded daemon applies (daemon.Apply) or flax-dataplane serves from a file.
func ExampleHTTPProxy() {
	snap, err := lb.HTTPProxy("127.0.0.1:8080", "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")
	if err != nil {
		panic(err)
	}
	g := snap.GetBackendGroups()[0]
	fmt.Println(g.GetName(), g.GetLoadBalancing().GetPolicy(), len(g.GetEndpoints()), "endpoints")
	// Output: backends ROUND_ROBIN 3 endpoints
}
