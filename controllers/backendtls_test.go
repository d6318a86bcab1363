package controllers_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestBackendTLSPolicy checks BackendTLSPolicy end to end on a real API server:
// a policy whose CA ConfigMap does not exist yet is not accepted
// (NoValidCACertificate, ResolvedRefs InvalidCACertificateRef) and the route's
// reference fails; creating the ConfigMap (through the policy→ConfigMap index
// and the metadata-only watch) gives the backend group TLS with its CA; an
// edit of the ConfigMap's data replaces the CA, emptying it withdraws the TLS
// again; a spec change bumps observedGeneration; a Gateway's
// spec.tls.backend client certificate makes a group of its own that presents
// the certificate, and a deleted Secret turns the Gateway's ResolvedRefs False.
func TestBackendTLSPolicy(t *testing.T) {
	w := newWorld(t, "backendtls", "10.31.0.2")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("backendtls", w.controllerName)
	w.create(class)
	w.create(gateway(w.name, "web", class.Name, 8080))
	w.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "secure"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "btls", Port: 443, TargetPort: intstr.FromInt32(8443), Protocol: corev1.ProtocolTCP,
		}}},
	})
	w.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: w.name, Name: "secure-x", Labels: map[string]string{discoveryv1.LabelServiceName: "secure"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("btls"), Port: ptr.To(int32(8443)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   readyEndpoints("10.31.1.1"),
	})
	w.create(httpRoute(w.name, "app", "web", "secure", 443))
	policy := &gatewayv1.BackendTLSPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "secure"},
		Spec: gatewayv1.BackendTLSPolicySpec{
			TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{{
				LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "secure"},
				SectionName:                ptr.To(gatewayv1.SectionName("btls")),
			}},
			Validation: gatewayv1.BackendTLSPolicyValidation{
				CACertificateRefs: []gatewayv1.LocalObjectReference{{Group: "", Kind: "ConfigMap", Name: "backend-ca"}},
				Hostname:          "secure.example.com",
			},
		},
	}
	w.create(policy)
	w.startController()

	group := w.name + "/secure:443"
	policyConditions := func(accepted, resolved metav1.ConditionStatus, acceptedReason, resolvedReason string) func() error {
		return func() error {
			var p gatewayv1.BackendTLSPolicy
			if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "secure"}, &p); err != nil {
				return err
			}
			for _, a := range p.Status.Ancestors {
				if string(a.ControllerName) != w.controllerName || a.AncestorRef.Name != "web" || ptr.Deref(a.AncestorRef.Kind, "") != "Gateway" {
					continue
				}
				for _, c := range a.Conditions {
					if c.ObservedGeneration != p.Generation {
						return fmt.Errorf("condition %s has observedGeneration %d, generation is %d", c.Type, c.ObservedGeneration, p.Generation)
					}
				}
				if err := hasCondition(a.Conditions, "Accepted", accepted, acceptedReason); err != nil {
					return err
				}
				return hasCondition(a.Conditions, "ResolvedRefs", resolved, resolvedReason)
			}
			return fmt.Errorf("no ancestor entry for Gateway web: %+v", p.Status.Ancestors)
		}
	}
	tlsCA := func(name string, ca []byte) func() error {
		return func() error {
			g, err := backendGroup(dp.Running(), name)
			if err != nil {
				return err
			}
			tls := g.GetTls()
			if tls == nil || tls.GetServerName() != "secure.example.com" || !bytes.Equal(bytes.TrimSpace(tls.GetCaCertPem()), bytes.TrimSpace(ca)) {
				return fmt.Errorf("group %s tls %v", name, tls)
			}
			return nil
		}
	}
	groupGone := func() error {
		if g, err := backendGroup(dp.Running(), group); err == nil {
			return fmt.Errorf("group %s still served: %v", group, g)
		}
		return nil
	}

	eventually(t, 30*time.Second, "missing ConfigMap reported", policyConditions(metav1.ConditionFalse, metav1.ConditionFalse, "NoValidCACertificate", "InvalidCACertificateRef"))
	eventually(t, 10*time.Second, "no cleartext group for the policy's port", groupGone)
	eventually(t, 10*time.Second, "route's reference refused", func() error {
		var r gatewayv1.HTTPRoute
		if err := w.c.Get(w.ctx, types.NamespacedName{Namespace: w.name, Name: "app"}, &r); err != nil {
			return err
		}
		p, err := routeParent(&r, "web", w.controllerName)
		if err != nil {
			return err
		}
		return hasCondition(p.Conditions, "ResolvedRefs", metav1.ConditionFalse, "InvalidBackendTLSPolicy")
	})

	caA, _ := selfSigned(t, "ca-a")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "backend-ca"}, Data: map[string]string{"ca.crt": string(caA)}}
	w.create(cm)
	eventually(t, 10*time.Second, "policy accepted", policyConditions(metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
	eventually(t, 10*time.Second, "group speaks TLS with ca-a", tlsCA(group, caA))

	caB, _ := selfSigned(t, "ca-b")
	update(w, cm, func(cm *corev1.ConfigMap) { cm.Data["ca.crt"] = string(caB) })
	eventually(t, 10*time.Second, "group speaks TLS with ca-b", tlsCA(group, caB))

	update(w, cm, func(cm *corev1.ConfigMap) { cm.Data["ca.crt"] = "" })
	eventually(t, 10*time.Second, "emptied ConfigMap reported", policyConditions(metav1.ConditionFalse, metav1.ConditionFalse, "NoValidCACertificate", "InvalidCACertificateRef"))
	eventually(t, 10*time.Second, "TLS withdrawn", groupGone)
	update(w, cm, func(cm *corev1.ConfigMap) { cm.Data["ca.crt"] = string(caA) })
	eventually(t, 10*time.Second, "group speaks TLS with ca-a again", tlsCA(group, caA))

	update(w, policy, func(p *gatewayv1.BackendTLSPolicy) { p.Spec.Validation.Hostname = "other.example.com" })
	eventually(t, 10*time.Second, "observedGeneration bumped", policyConditions(metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
	update(w, policy, func(p *gatewayv1.BackendTLSPolicy) { p.Spec.Validation.Hostname = "secure.example.com" })

	// The Gateway's client certificate for backends.
	clientCert, clientKey := selfSigned(t, "flax-client")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "client-cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: clientCert, corev1.TLSPrivateKeyKey: clientKey},
	}
	w.create(secret)
	gw := &gatewayv1.Gateway{}
	gw.Namespace, gw.Name = w.name, "web"
	update(w, gw, func(gw *gatewayv1.Gateway) {
		gw.Spec.TLS = &gatewayv1.GatewayTLSConfig{Backend: &gatewayv1.GatewayBackendTLS{
			ClientCertificateRef: &gatewayv1.SecretObjectReference{Name: "client-cert"},
		}}
	})
	gatewayResolved := func(status metav1.ConditionStatus, reason string) func() error {
		return func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			if err := hasCondition(gw.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted"); err != nil {
				return err
			}
			return hasCondition(gw.Status.Conditions, "ResolvedRefs", status, reason)
		}
	}
	clientGroup := group + "/client/" + w.name + "/client-cert"
	eventually(t, 10*time.Second, "Gateway's client certificate resolved", gatewayResolved(metav1.ConditionTrue, "ResolvedRefs"))
	eventually(t, 10*time.Second, "group presents the client certificate", func() error {
		if err := tlsCA(clientGroup, caA)(); err != nil {
			return err
		}
		g, _ := backendGroup(dp.Running(), clientGroup)
		if !bytes.Equal(g.GetTls().GetClientCertPem(), clientCert) || !bytes.Equal(g.GetTls().GetClientKeyPem(), clientKey) {
			return fmt.Errorf("group %s presents another certificate", clientGroup)
		}
		return groupGone() // the Gateway's only route uses the variant
	})

	if err := w.c.Delete(w.ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "deleted Secret reported", gatewayResolved(metav1.ConditionFalse, "InvalidClientCertificateRef"))
	eventually(t, 10*time.Second, "back to the group without a client certificate", tlsCA(group, caA))
}
