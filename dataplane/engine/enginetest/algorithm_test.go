package enginetest

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/balancer"
)

// shardAlgorithm sends a request to the eligible endpoint its X-Shard header
// numbers (modulo their count), moving on past endpoints to avoid.
type shardAlgorithm struct{}

func (shardAlgorithm) AppendKey(dst []byte, r balancer.Request) []byte {
	v, _ := r.Header("x-shard")
	return append(dst, v...)
}

func (shardAlgorithm) NewSelector(g *balancer.Group, _ uint64) balancer.Selector {
	return shardSelector{g}
}

type shardSelector struct{ g *balancer.Group }

func (s shardSelector) Pick(key []byte, unhealthy balancer.Bitset) (int, bool) {
	skip, usable := s.g.Usable(unhealthy)
	if usable == 0 {
		return -1, false
	}
	n := s.g.NumEligible()
	k, err := strconv.Atoi(string(key)) // no allocation: the conversion does not escape
	if err != nil || k < 0 {
		k = 0
	}
	for i := range n {
		if idx := s.g.EligibleEndpoint((k + i) % n); !skip.Has(idx) {
			return idx, true
		}
	}
	return -1, false
}

func (shardSelector) Done(int) {}

func init() { balancer.MustRegister("enginetest-shard", shardAlgorithm{}) }

// A registered algorithm runs inside each engine with active health checks
// on: it routes by what it read of the request, and an endpoint failing its
// checks is skipped.
func TestRegisteredAlgorithm(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		var eps []string
		for i, name := range []string{"a", "b", "c"} {
			down := i == 2
			b := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/healthz" && down {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, name)
			}))
			eps = append(eps, b.Addr())
		}
		port := FreePort(t)
		group := "  loadBalancing: {algorithm: enginetest-shard}\n" +
			"  healthCheck: {path: /healthz, interval: 0.05s, timeout: 0.05s, healthyThreshold: 1, unhealthyThreshold: 1}\n"
		_, cfg := startResilient(t, k, HTTPSnapshot(port, eps, group, "", ""))
		g := cfg.Group("app")
		WaitFor(t, "endpoint c marked unhealthy", 5*time.Second, func() bool {
			return g.Unhealthy(g.Endpoints()).Has(2)
		})
		cl := &http.Client{Timeout: 5 * time.Second}
		for shard, want := range map[string]string{"0": "a", "1": "b", "2": "a", "4": "b", "": "a"} {
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/x", nil)
			if shard != "" {
				req.Header.Set("X-Shard", shard)
			}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatalf("shard %q: %v", shard, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != want {
				t.Errorf("shard %q: %d %q, want %q", shard, resp.StatusCode, body, want)
			}
		}
	})
}
