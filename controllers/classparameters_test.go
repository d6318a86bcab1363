package controllers_test

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	flaxv1alpha1 "github.com/flaxlb/flax/api/v1alpha1"
)

// TestClassParametersCRD checks that the API server takes GatewayClassParameters
// with valid spec.clientTraffic settings and rejects, naming the field, the values
// the CRD's markers and CEL rules forbid.
func TestClassParametersCRD(t *testing.T) {
	env := controlPlane(t)
	c := env.Client
	ctx := t.Context()

	dur := func(s string) *metav1.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Duration{Duration: d}
	}
	params := func(name string, ct flaxv1alpha1.ClientTraffic) *flaxv1alpha1.GatewayClassParameters {
		return &flaxv1alpha1.GatewayClassParameters{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       flaxv1alpha1.GatewayClassParametersSpec{ClientTraffic: &ct},
		}
	}

	valid := params("client-traffic-valid", flaxv1alpha1.ClientTraffic{
		Timeouts: &flaxv1alpha1.ClientTimeouts{
			RequestHead: dur("1ms"), RequestBodyIdle: dur("30s"), SendStall: dur("1m30s"), KeepAliveIdle: dur("24h"),
		},
		TrustedHops: ptr.To[int32](16),
		HeadLimits: &flaxv1alpha1.HeadLimits{
			MaxRequestHeaderBytes: ptr.To[int32](1024), MaxRequestHeaders: ptr.To[int32](10000),
			MaxResponseHeaderBytes: ptr.To[int32](65535), MaxResponseHeaders: ptr.To[int32](1),
		},
	})
	if err := c.Create(ctx, valid); err != nil {
		t.Errorf("valid GatewayClassParameters: %v", err)
	}
	if err := c.Create(ctx, params("client-traffic-zero-hops", flaxv1alpha1.ClientTraffic{TrustedHops: ptr.To[int32](0)})); err != nil {
		t.Errorf("GatewayClassParameters with trustedHops 0: %v", err)
	}

	for _, tc := range []struct {
		name string
		ct   flaxv1alpha1.ClientTraffic
		want string
	}{
		{"request-head-long", flaxv1alpha1.ClientTraffic{Timeouts: &flaxv1alpha1.ClientTimeouts{RequestHead: dur("25h")}}, "requestHead must be between 1ms and 24h"},
		{"send-stall-zero", flaxv1alpha1.ClientTraffic{Timeouts: &flaxv1alpha1.ClientTimeouts{SendStall: dur("0s")}}, "sendStall must be between 1ms and 24h"},
		{"keep-alive-negative", flaxv1alpha1.ClientTraffic{Timeouts: &flaxv1alpha1.ClientTimeouts{KeepAliveIdle: dur("-1s")}}, "keepAliveIdle must be between 1ms and 24h"},
		{"hops", flaxv1alpha1.ClientTraffic{TrustedHops: ptr.To[int32](17)}, "spec.clientTraffic.trustedHops"},
		{"hops-negative", flaxv1alpha1.ClientTraffic{TrustedHops: ptr.To[int32](-1)}, "spec.clientTraffic.trustedHops"},
		{"request-bytes", flaxv1alpha1.ClientTraffic{HeadLimits: &flaxv1alpha1.HeadLimits{MaxRequestHeaderBytes: ptr.To[int32](1023)}}, "spec.clientTraffic.headLimits.maxRequestHeaderBytes"},
		{"response-fields", flaxv1alpha1.ClientTraffic{HeadLimits: &flaxv1alpha1.HeadLimits{MaxResponseHeaders: ptr.To[int32](10001)}}, "spec.clientTraffic.headLimits.maxResponseHeaders"},
	} {
		err := c.Create(ctx, params("client-traffic-"+tc.name, tc.ct))
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("GatewayClassParameters %s: got %v, want an Invalid error naming %q", tc.name, err, tc.want)
		}
	}
}
