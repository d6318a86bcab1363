package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/filter"
)

type answerFilter struct{}

func (answerFilter) OnRequest(r filter.Request) { r.Respond(200, "from the filter") }

// Options.Filters is where snapshot names are resolved: a snapshot naming a
// filter the registry lacks is rejected and the last good one keeps serving.
func TestApplyResolvesFiltersInOptions(t *testing.T) {
	ip, bport := backend(t, "backend")
	port := uint32(enginetest.FreePort(t))
	reg := &filter.Registry{}
	reg.MustRegister("answer", answerFilter{})
	d, err := New(Options{Workers: 1, Engine: EngineNetpoll, Filters: reg, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	withFilters := func(version uint64, names ...string) *dataplanev1.Snapshot {
		s := snap(version, port, &dataplanev1.Endpoint{Address: ip, Port: bport})
		s.Listeners[0].VirtualHosts[0].Routes[0].ExtensionFilters = names
		s.Hash = dataplanev1.Hash(s)
		return s
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if _, err := d.Apply(ctx, withFilters(1)); err != nil {
		t.Fatal(err)
	}
	if got := get(t, url); got != "200 backend" {
		t.Fatalf("without filters: %s", got)
	}
	_, err = d.Apply(ctx, withFilters(2, "missing"))
	if err == nil || !strings.Contains(err.Error(), `unknown extension filter "missing"`) {
		t.Fatalf("Apply with an unregistered filter = %v, want it rejected", err)
	}
	if got := get(t, url); got != "200 backend" {
		t.Fatalf("after a rejected snapshot: %s, want the last good one serving", got)
	}
	if _, err := d.Apply(ctx, withFilters(3, "answer")); err != nil {
		t.Fatal(err)
	}
	if got := get(t, url); got != "200 from the filter" {
		t.Fatalf("with the filter: %s", got)
	}
}
