package translate

import (
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// clientTrafficField is where the client traffic settings sit in a
// GatewayClassParameters, for messages.
const clientTrafficField = "spec.clientTraffic"

// clientTraffic is the dataplane form of a class's spec.clientTraffic, set on
// every dataplane listener serving the class's Gateways.
type clientTraffic struct {
	timeouts    *dataplanev1.ListenerTimeouts
	trustedHops *uint32
	headLimits  *dataplanev1.HeadLimits
}

// parseClientTraffic converts spec.clientTraffic. It returns nil when ct sets
// nothing, and the problems of every invalid field, named by their path in the
// GatewayClassParameters. What the CRD's schema does not check (or what slipped
// past it) is checked by the dataplane's own validation.
func parseClientTraffic(ct *flaxv1alpha1.ClientTraffic) (*clientTraffic, []string) {
	if ct == nil {
		return nil, nil
	}
	var fp fieldProblems
	out := &clientTraffic{}
	if t := ct.Timeouts; t != nil {
		out.timeouts = &dataplanev1.ListenerTimeouts{
			RequestHead:     listenerTimeout(t.RequestHead),
			RequestBodyIdle: listenerTimeout(t.RequestBodyIdle),
			SendStall:       listenerTimeout(t.SendStall),
			KeepAliveIdle:   listenerTimeout(t.KeepAliveIdle),
			TunnelIdle:      listenerTimeout(t.TunnelIdle),
		}
	}
	if ct.TrustedHops != nil {
		hops := nonNegative(&fp, clientTrafficField+".trustedHops", ct.TrustedHops)
		out.trustedHops = &hops
	}
	if hl := ct.HeadLimits; hl != nil {
		const p = clientTrafficField + ".headLimits."
		out.headLimits = &dataplanev1.HeadLimits{
			MaxRequestHeaderBytes:  nonNegative(&fp, p+"maxRequestHeaderBytes", hl.MaxRequestHeaderBytes),
			MaxRequestHeaders:      nonNegative(&fp, p+"maxRequestHeaders", hl.MaxRequestHeaders),
			MaxResponseHeaderBytes: nonNegative(&fp, p+"maxResponseHeaderBytes", hl.MaxResponseHeaderBytes),
			MaxResponseHeaders:     nonNegative(&fp, p+"maxResponseHeaders", hl.MaxResponseHeaders),
		}
	}

	// The dataplane's validation of an HTTP listener with the settings.
	check := &dataplanev1.Listener{
		Name: "check", Port: 1, Protocol: dataplanev1.Listener_HTTP,
		VirtualHosts: []*dataplanev1.VirtualHost{{Name: "check"}},
	}
	out.apply(check)
	const prefix = "listeners[0]."
	if err := dataplanev1.Validate(&dataplanev1.Snapshot{Listeners: []*dataplanev1.Listener{check}}); err != nil {
		for _, e := range unjoin(err) {
			var fe *dataplanev1.FieldError
			if !errors.As(e, &fe) || !strings.HasPrefix(fe.Field, prefix) {
				fp.add(clientTrafficField, "%v", e)
				continue
			}
			fp.add(clientTrafficField+"."+strings.TrimPrefix(fe.Field, prefix), "%s", fe.Detail)
		}
	}
	if len(fp.msgs) > 0 {
		return nil, fp.msgs
	}
	if out.timeouts == nil && out.trustedHops == nil && out.headLimits == nil {
		return nil, nil
	}
	return out, nil
}

// listenerTimeout converts an optional duration; a negative one is kept for the
// dataplane's validation to report.
func listenerTimeout(d *metav1.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(d.Duration)
}

// nonNegative returns *v (0 when nil), reporting a negative value.
func nonNegative(fp *fieldProblems, field string, v *int32) uint32 {
	if v == nil {
		return 0
	}
	if *v < 0 {
		fp.add(field, "must not be negative, got %d", *v)
		return 0
	}
	return uint32(*v)
}

// apply sets the settings on dataplane listener l: all of them on HTTP and
// HTTPS listeners, only the timeouts on TCP and TLS listeners, which read no
// heads.
func (c *clientTraffic) apply(l *dataplanev1.Listener) {
	if c == nil {
		return
	}
	if c.timeouts != nil {
		l.Timeouts = proto.CloneOf(c.timeouts)
	}
	if l.GetProtocol() == dataplanev1.Listener_TCP || l.GetProtocol() == dataplanev1.Listener_TLS {
		return
	}
	if c.trustedHops != nil {
		l.TrustedHops = proto.Uint32(*c.trustedHops)
	}
	if c.headLimits != nil {
		l.HeadLimits = proto.CloneOf(c.headLimits)
	}
}
