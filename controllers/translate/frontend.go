package translate

import (
	"bytes"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// caCertKey is the ConfigMap key a CA certificate reference reads.
const caCertKey = "ca.crt"

// frontendValidation returns the client certificate validation of a Gateway's
// spec.tls.frontend for port: its perPort entry, else its default; nil when
// neither asks for validation.
func frontendValidation(gw *gatewayv1.Gateway, port gatewayv1.PortNumber) (*gatewayv1.FrontendTLSValidation, string) {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil, ""
	}
	f := gw.Spec.TLS.Frontend
	for i := range f.PerPort {
		if f.PerPort[i].Port == port {
			return f.PerPort[i].TLS.Validation, fmt.Sprintf("spec.tls.frontend.perPort[%d].tls.validation", i)
		}
	}
	return f.Default.Validation, "spec.tls.frontend.default.validation"
}

// insecureFallback reports whether any validation of the Gateway's
// spec.tls.frontend is in mode AllowInsecureFallback.
func insecureFallback(gw *gatewayv1.Gateway) bool {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return false
	}
	f := gw.Spec.TLS.Frontend
	if v := f.Default.Validation; v != nil && v.Mode == gatewayv1.AllowInsecureFallback {
		return true
	}
	return slices.ContainsFunc(f.PerPort, func(p gatewayv1.TLSPortConfig) bool {
		return p.TLS.Validation != nil && p.TLS.Validation.Mode == gatewayv1.AllowInsecureFallback
	})
}

// listenerClientValidation resolves the client certificate validation that
// the Gateway's spec.tls.frontend gives listener l, when l terminates TLS:
// the CA certificates of its caCertificateRefs (ConfigMaps, key ca.crt).
// Each reference that cannot be used makes ResolvedRefs False; when none
// can, the listener is not accepted (NoValidCACertificate).
func (t *translator) listenerClientValidation(l *listenerInfo) {
	if !l.terminate {
		return
	}
	g := l.gateway
	v, where := frontendValidation(g.gw, l.spec.Port)
	if v == nil {
		return
	}
	gwNS := g.key.Namespace
	var bundle []byte
	for i, ref := range v.CACertificateRefs {
		at := fmt.Sprintf("%s.caCertificateRefs[%d]", where, i)
		group, kind := normalGroup(string(ref.Group)), string(ref.Kind)
		if (groupKind{group, kind}) != kindConfigMap {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCACertificateKind), fmt.Sprintf(
				"%s refers to a %s; Flax reads CA certificates only from core ConfigMaps (key %s): change the reference", at, describeKind(group, kind), caCertKey))
			continue
		}
		ns, name := gwNS, string(ref.Name)
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if !t.grants.allows(kindGateway, gwNS, kindConfigMap, ns, name) {
			l.refProblems.add(string(gatewayv1.ListenerReasonRefNotPermitted), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s in another namespace, and no ReferenceGrant in namespace %s allows Gateways of namespace %s to use it: create one there, or copy the ConfigMap to namespace %s",
				at, ns, name, ns, gwNS, gwNS))
			continue
		}
		cm, ok := t.configMaps[types.NamespacedName{Namespace: ns, Name: name}]
		if !ok {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, which does not exist: create it or fix the reference", at, ns, name))
			continue
		}
		ca := caData(cm)
		if len(ca) == 0 {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, which has no key %s: put the PEM CA certificates there", at, ns, name, caCertKey))
			continue
		}
		if err := dataplanev1.CheckCABundle(ca); err != nil {
			l.refProblems.add(string(gatewayv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf(
				"%s refers to ConfigMap %s/%s, whose %s %v; replace it with PEM CA certificates", at, ns, name, caCertKey, err))
			continue
		}
		bundle = append(bundle, bytes.TrimSpace(ca)...)
		bundle = append(bundle, '\n')
	}
	if len(bundle) == 0 {
		if l.unsupported == nil {
			l.unsupported = &problem{
				reason: string(gatewayv1.ListenerReasonNoValidCACertificate),
				message: fmt.Sprintf("%s has no usable CA certificate, so client certificates cannot be checked and the listener is not served; see the ResolvedRefs condition",
					where),
			}
		}
		return
	}
	l.clientValidation = &dataplanev1.ClientValidation{
		CaCertPem:             bundle,
		AllowInsecureFallback: v.Mode == gatewayv1.AllowInsecureFallback,
	}
}

// caData returns the CA certificates of ConfigMap cm's key ca.crt.
func caData(cm *corev1.ConfigMap) []byte {
	if s, ok := cm.Data[caCertKey]; ok {
		return []byte(s)
	}
	return cm.BinaryData[caCertKey]
}

// validationClash returns the member of b of another Gateway whose client
// certificate validation differs from that of terminating listener l, if any:
// one port's handshakes are checked one way.
func (b *bind) validationClash(l *listenerInfo) *listenerInfo {
	if !l.terminate {
		return nil
	}
	for _, m := range b.members {
		if m.gateway != l.gateway && m.terminate && !proto.Equal(m.clientValidation, l.clientValidation) {
			return m
		}
	}
	return nil
}

// clientValidation returns the client certificate validation of the
// terminating listeners among programmed (the same for all of them, see
// validationClash), or nil.
func clientValidation(programmed []*listenerInfo) *dataplanev1.ClientValidation {
	for _, l := range programmed {
		if l.terminate {
			return l.clientValidation
		}
	}
	return nil
}
