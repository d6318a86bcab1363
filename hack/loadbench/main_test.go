package main

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The ratio is taken within each round, so a round in a slow period (every proxy at
// half speed) does not move it, while the raw medians follow the machine.
func TestSummarizePairsRounds(t *testing.T) {
	round := func(scale float64) []result {
		return []result{
			{name: "nginx", rps: 100 * scale, cpuPerReq: time.Duration(10 / scale * 1000)},
			{name: "flax-uring", rps: 120 * scale, cpuPerReq: time.Duration(8 / scale * 1000)},
			{name: "haproxy", skipped: "not installed"},
		}
	}
	ss := summarize([][]result{round(1), round(0.5), round(1), round(0.4)}, []string{"flax-uring", "nginx", "haproxy"}, "nginx")
	if len(ss) != 3 {
		t.Fatalf("%d summaries", len(ss))
	}
	flax := ss[0]
	if math.Abs(flax.rpsX-1.2) > 1e-9 || len(flax.rpsRounds) != 4 {
		t.Fatalf("req/s ratio %v over rounds %v, want 1.2 in each of 4", flax.rpsX, flax.rpsRounds)
	}
	if math.Abs(flax.cpuX-0.8) > 1e-9 || math.Abs(flax.perCPUX-1.25) > 1e-9 {
		t.Fatalf("cpu ratio %v, per-cpu ratio %v; want 0.8 and 1.25", flax.cpuX, flax.perCPUX)
	}
	if flax.rps != (60+120)/2.0 {
		t.Fatalf("median req/s %v, want 90 (rounds 120, 60, 120, 48)", flax.rps)
	}
	if hp := ss[2]; hp.skippedRounds != 4 || hp.rps != 0 || hp.result.skipped != "not installed" {
		t.Fatalf("haproxy summary %+v, want skipped in all rounds", hp)
	}
}
