package controllers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flaxlb/flax/controllers/internal/fakedataplane"
)

// TestListenerSecrets checks the Secret path: the cache holds only TLS Secrets, a
// listener's Secret created after its Gateway reaches the snapshot through the
// Gateway→Secret index, and a referenced Secret of the wrong type is reported as
// such (read past the cache) rather than as missing.
func TestListenerSecrets(t *testing.T) {
	w := newWorld(t, "secrets", "10.14.0.1")
	dp := &fakedataplane.Dataplane{}
	w.startDataplane(dp)

	class := gatewayClass("secrets", w.controllerName)
	w.create(class)
	gw := gateway(w.name, "web", class.Name, 8080)
	gw.Spec.Listeners = []gatewayv1.Listener{
		httpsListener("https", 8443, "cert"),
		httpsListener("opaque", 9443, "opaque-cert"),
	}
	w.create(gw)
	w.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "opaque-cert"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")},
	})
	w.startController()

	listenerRefs := func(name string, status metav1.ConditionStatus, reason, contains string) func() error {
		return func() error {
			gw, err := w.getGateway("web")
			if err != nil {
				return err
			}
			l, err := listenerStatus(gw, name)
			if err != nil {
				return err
			}
			if err := hasCondition(l.Conditions, "ResolvedRefs", status, reason); err != nil {
				return fmt.Errorf("listener %s: %w", name, err)
			}
			if msg := findMessage(l.Conditions, "ResolvedRefs"); !strings.Contains(msg, contains) {
				return fmt.Errorf("listener %s: message %q lacks %q", name, msg, contains)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "missing Secret reported", listenerRefs("https", metav1.ConditionFalse, "InvalidCertificateRef", "does not exist"))
	eventually(t, 10*time.Second, "Opaque Secret reported by type", listenerRefs("opaque", metav1.ConditionFalse, "InvalidCertificateRef", `of type "Opaque"`))

	certPEM, keyPEM := selfSigned(t, "secure.example.com")
	w.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.name, Name: "cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	})
	eventually(t, 10*time.Second, "Secret resolved", listenerRefs("https", metav1.ConditionTrue, "ResolvedRefs", ""))
	eventually(t, 10*time.Second, "dataplane serves the certificate", func() error {
		for _, l := range dp.Running().GetListeners() {
			if l.GetPort() == 8443 {
				if len(l.GetCertificates()) != 1 || string(l.GetCertificates()[0].GetCertPem()) != string(certPEM) {
					return fmt.Errorf("listener %s has %d certificates", l.GetName(), len(l.GetCertificates()))
				}
				return nil
			}
		}
		return fmt.Errorf("no listener on port 8443")
	})
}

// httpsListener returns an HTTPS listener terminating TLS with the Secret secret.
func httpsListener(name string, port int32, secret string) gatewayv1.Listener {
	return gatewayv1.Listener{
		Name: gatewayv1.SectionName(name), Port: gatewayv1.PortNumber(port), Protocol: gatewayv1.HTTPSProtocolType,
		TLS: &gatewayv1.ListenerTLSConfig{CertificateRefs: []gatewayv1.SecretObjectReference{{Name: gatewayv1.ObjectName(secret)}}},
	}
}

// selfSigned returns a PEM certificate for host and its PEM key.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
