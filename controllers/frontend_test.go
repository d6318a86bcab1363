package controllers_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestFrontendValidationConfigMaps checks the CA ConfigMap path of a
// Gateway's spec.tls.frontend: a ConfigMap created after the Gateway reaches
// the snapshot as the listener's client validation (through the
// Gateway→ConfigMap index and the metadata-only watch), an edit of the
// ConfigMap replaces the CA there, and its deletion makes the listener
// NoValidCACertificate.
func TestFrontendValidationConfigMaps(t *testing.T) {
	w := newWorld(t, "frontend", "10.14.0.2")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("frontend", w.controllerName)
	w.create(class)
	certPEM, keyPEM := selfSigned(t, "secure.example.com")
	w.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	})
	gw := gateway(w.name, "web", class.Name, 8080)
	gw.Spec.Listeners = []gatewayv1.Listener{httpsListener("https", 8443, "cert")}
	gw.Spec.TLS = &gatewayv1.GatewayTLSConfig{Frontend: &gatewayv1.FrontendTLSConfig{
		Default: gatewayv1.TLSConfig{Validation: &gatewayv1.FrontendTLSValidation{
			CACertificateRefs: []gatewayv1.ObjectReference{{Group: "", Kind: "ConfigMap", Name: "client-ca"}},
		}},
	}}
	w.create(gw)
	w.startController()

	listener := func(status metav1.ConditionStatus, reason string) func() error {
		return func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			l, err := listenerStatus(gw, "https")
			if err != nil {
				return err
			}
			return hasCondition(l.Conditions, "Accepted", status, reason)
		}
	}
	served := func(ca []byte) func() error {
		return func() error {
			for _, l := range dp.Running().GetListeners() {
				if l.GetPort() != 8443 {
					continue
				}
				if cv := l.GetClientValidation(); cv == nil || !bytes.Equal(bytes.TrimSpace(cv.GetCaCertPem()), bytes.TrimSpace(ca)) {
					return fmt.Errorf("listener %s client validation %v", l.GetName(), cv)
				}
				return nil
			}
			return fmt.Errorf("no listener on port 8443")
		}
	}
	eventually(t, 30*time.Second, "missing ConfigMap reported", listener(metav1.ConditionFalse, "NoValidCACertificate"))

	caA, _ := selfSigned(t, "ca-a")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "client-ca"}, Data: map[string]string{"ca.crt": string(caA)}}
	w.create(cm)
	eventually(t, 10*time.Second, "listener accepted", listener(metav1.ConditionTrue, "Accepted"))
	eventually(t, 10*time.Second, "dataplane checks clients against ca-a", served(caA))

	caB, _ := selfSigned(t, "ca-b")
	update(w, cm, func(cm *corev1.ConfigMap) { cm.Data["ca.crt"] = string(caB) })
	eventually(t, 10*time.Second, "dataplane checks clients against ca-b", served(caB))

	if err := w.c.Delete(w.ctx, cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "deleted ConfigMap reported", listener(metav1.ConditionFalse, "NoValidCACertificate"))
	eventually(t, 10*time.Second, "listener withdrawn", func() error {
		for _, l := range dp.Running().GetListeners() {
			if l.GetPort() == 8443 {
				return fmt.Errorf("listener %s still served", l.GetName())
			}
		}
		return nil
	})
}
