package translate

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/consts"
)

// GatewayAPIVersion is the Gateway API release Flax is built for (the version of
// the sigs.k8s.io/gateway-api module). Flax supports the CRD bundles of its
// major and minor version: patch releases keep the API.
const GatewayAPIVersion = consts.BundleVersion

// BundleVersionAnnotation is the annotation of Gateway API CRDs that holds their
// bundle version.
const BundleVersionAnnotation = consts.BundleVersionAnnotation

// ChannelAnnotation is the annotation of Gateway API CRDs that holds their release
// channel, "standard" or "experimental".
const ChannelAnnotation = consts.ChannelAnnotation

// GatewayAPIGroups are the API groups of the Gateway API CRDs: the standard one
// and the experimental channel's x-k8s.io one.
var GatewayAPIGroups = []string{gatewayv1.GroupName, "gateway.networking.x-k8s.io"}

// IsGatewayAPICRD reports whether the CRD named name ("<plural>.<group>") serves a
// Gateway API group.
func IsGatewayAPICRD(name string) bool {
	_, group, _ := strings.Cut(name, ".")
	return slices.Contains(GatewayAPIGroups, group)
}

// supportedVersion returns a class's SupportedVersion condition for the installed
// Gateway API CRDs: True when every one has a bundle version of Flax's major and
// minor version, else False/UnsupportedVersion naming the CRDs of other versions,
// or without one, and the version Flax supports. The class stays Accepted either
// way: Flax serves what it understands (best effort, as the Gateway API allows).
func supportedVersion(crds []CRD, gen int64) metav1.Condition {
	want := minorVersion(GatewayAPIVersion)
	byVersion := map[string][]string{}
	var versions []string
	for _, c := range crds {
		if c.BundleVersion != "" && minorVersion(c.BundleVersion) == want {
			continue
		}
		if _, ok := byVersion[c.BundleVersion]; !ok {
			versions = append(versions, c.BundleVersion)
		}
		byVersion[c.BundleVersion] = append(byVersion[c.BundleVersion], c.Name)
	}
	supports := fmt.Sprintf("Flax is built for Gateway API %s and supports the CRDs of bundle versions %s.x", GatewayAPIVersion, want)
	if len(crds) == 0 {
		return condition(gatewayv1.GatewayClassConditionStatusSupportedVersion, false, gatewayv1.GatewayClassReasonUnsupportedVersion,
			"No Gateway API CRDs are installed; "+supports, gen)
	}
	if len(versions) == 0 {
		installed := make([]string, 0, len(crds))
		for _, c := range crds {
			installed = append(installed, c.BundleVersion)
		}
		slices.Sort(installed)
		return condition(gatewayv1.GatewayClassConditionStatusSupportedVersion, true, gatewayv1.GatewayClassReasonSupportedVersion,
			fmt.Sprintf("The installed Gateway API CRDs have bundle version %s; %s", strings.Join(slices.Compact(installed), ", "), supports), gen)
	}
	slices.Sort(versions)
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		names := byVersion[v]
		slices.Sort(names)
		what := "bundle version " + v
		if v == "" {
			what = "no " + BundleVersionAnnotation + " annotation"
		}
		parts = append(parts, fmt.Sprintf("%s: %s", what, strings.Join(names, ", ")))
	}
	return condition(gatewayv1.GatewayClassConditionStatusSupportedVersion, false, gatewayv1.GatewayClassReasonUnsupportedVersion,
		fmt.Sprintf("Installed Gateway API CRDs of an unsupported version (%s); %s, and serves these on a best-effort basis: install the %s CRDs",
			strings.Join(parts, "; "), supports, GatewayAPIVersion), gen)
}

// minorVersion returns the major and minor part of a version such as "v1.6.3"
// ("v1.6"), or the whole string when it has no such form.
func minorVersion(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "v") {
		return v
	}
	return parts[0] + "." + parts[1]
}
