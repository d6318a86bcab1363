package translate

import (
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// tracingField is where the tracing settings sit in a GatewayClassParameters,
// for messages.
const tracingField = "spec.tracing"

// defaultSamplePerMillion is a class's sampling when spec.tracing sets none: 1%.
const defaultSamplePerMillion = 10_000

// classTracing is the dataplane form of a class's spec.tracing: the span
// exporter and the sampling of the listeners serving its Gateways.
type classTracing struct {
	class    string
	exporter *dataplanev1.Tracing
	listener *dataplanev1.ListenerTracing
}

// parseTracing converts spec.tracing, nil when unset, with the problems of
// every invalid field named by its path in the GatewayClassParameters.
func parseTracing(class string, tr *flaxv1alpha1.Tracing) (*classTracing, []string) {
	if tr == nil {
		return nil, nil
	}
	var fp fieldProblems
	out := &classTracing{
		class:    class,
		exporter: &dataplanev1.Tracing{OtlpEndpoint: tr.OTLPEndpoint, ServiceName: tr.ServiceName},
		listener: &dataplanev1.ListenerTracing{SamplePerMillion: defaultSamplePerMillion, IgnoreParent: tr.IgnoreParent},
	}
	if tr.SamplePerMillion != nil {
		out.listener.SamplePerMillion = nonNegative(&fp, tracingField+".samplePerMillion", tr.SamplePerMillion)
	}
	// The dataplane's validation of an HTTP listener with the settings.
	check := &dataplanev1.Snapshot{
		Tracing: out.exporter,
		Listeners: []*dataplanev1.Listener{{
			Name: "check", Port: 1, Protocol: dataplanev1.Listener_HTTP,
			VirtualHosts: []*dataplanev1.VirtualHost{{Name: "check"}}, Tracing: out.listener,
		}},
	}
	if err := dataplanev1.Validate(check); err != nil {
		for _, e := range unjoin(err) {
			var fe *dataplanev1.FieldError
			switch {
			case !errors.As(e, &fe):
				fp.add(tracingField, "%v", e)
			case strings.HasPrefix(fe.Field, "tracing."):
				fp.add(tracingField+"."+strings.TrimPrefix(fe.Field, "tracing."), "%s", fe.Detail)
			case strings.HasPrefix(fe.Field, "listeners[0].tracing."):
				fp.add(tracingField+"."+strings.TrimPrefix(fe.Field, "listeners[0].tracing."), "%s", fe.Detail)
			default:
				fp.add(tracingField, "%s: %s", fe.Field, fe.Detail)
			}
		}
	}
	if len(fp.msgs) > 0 {
		return nil, fp.msgs
	}
	return out, nil
}

// apply sets the listener's sampling on an HTTP or HTTPS dataplane listener.
func (c *classTracing) apply(l *dataplanev1.Listener) {
	if c == nil || (l.GetProtocol() != dataplanev1.Listener_HTTP && l.GetProtocol() != dataplanev1.Listener_HTTPS) {
		return
	}
	l.Tracing = proto.CloneOf(c.listener)
}
