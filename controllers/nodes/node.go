package nodes

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Selected reports whether n runs a dataplane: whether selector (the DaemonSet's
// node selector) matches its labels. A nil selector selects every node.
func Selected(selector labels.Selector, n *corev1.Node) bool {
	return selector == nil || selector.Matches(labels.Set(n.Labels))
}

// Ready reports whether n's Ready condition is True.
func Ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Addresses returns the internal, then the external IP addresses of a node.
func Addresses(n *corev1.Node) []string {
	var out []string
	for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type == typ && !slices.Contains(out, a.Address) {
				out = append(out, a.Address)
			}
		}
	}
	return out
}
