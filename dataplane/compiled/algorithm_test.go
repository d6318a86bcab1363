package compiled

import (
	"strings"
	"testing"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/balancer"
	"github.com/flaxlb/flax/dataplane/metrics"
)

// keyedFirst is a registered algorithm with a Keyer: it picks the first
// eligible endpoint and keys requests by their x-tenant header.
type keyedFirst struct{}

func (keyedFirst) NewSelector(g *balancer.Group, _ uint64) balancer.Selector {
	return g.NewPicker(0) // any Selector will do here
}

func (keyedFirst) AppendKey(dst []byte, r balancer.Request) []byte {
	v, _ := r.Header("x-tenant")
	return append(dst, v...)
}

func init() { balancer.MustRegister("compiled-test-keyed", keyedFirst{}) }

func withAlgorithm(name string) string {
	return strings.Replace(snap, "loadBalancing: {policy: LEAST_REQUEST}", "loadBalancing: {algorithm: "+name+"}", 1)
}

func TestCompileAlgorithm(t *testing.T) {
	c, _ := compile(t, withAlgorithm("compiled-test-keyed"))
	g := c.Group("api")
	if _, ok := g.Algorithm.(keyedFirst); !ok || g.Keyer == nil {
		t.Fatalf("algorithm %T, keyer %v", g.Algorithm, g.Keyer)
	}
	sel, eps := NewPickerCache(1).Picker(g)
	if p, ok := sel.(*balancer.Picker); !ok || p.Group() != eps {
		t.Fatalf("selector %T not made by the registered algorithm over the group's endpoints", sel)
	}

	// A built-in policy named as an algorithm builds its tables.
	c, _ = compile(t, withAlgorithm("maglev"))
	if g := c.Group("api"); g.Endpoints().Policy() != balancer.Maglev || g.Keyer != nil {
		t.Errorf("algorithm maglev: policy %v", g.Endpoints().Policy())
	}
	// Without an algorithm the group's policy is its selector's algorithm.
	c, _ = compile(t, snap)
	if a := c.Group("api").Algorithm; a != balancer.Algorithm(balancer.LeastRequest) {
		t.Errorf("default algorithm %v", a)
	}
}

func TestCompileUnknownAlgorithm(t *testing.T) {
	s, err := dataplanev1.Parse([]byte(withAlgorithm("nope")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(s, metrics.NewRegistry(1))
	if err == nil || !strings.Contains(err.Error(), `no algorithm "nope" is registered`) ||
		!strings.Contains(err.Error(), "round_robin") {
		t.Fatalf("err = %v", err)
	}
}
