package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki holds the files of the control plane's credentials.
type pki struct {
	caCert, servingCert, servingKey string
	// kubeletClientCert and kubeletClientKey authenticate the API server to the node
	// agent's kubelet endpoint (pod logs).
	kubeletClientCert, kubeletClientKey string
	saKey, saPub                        string
	tokenFile, token                    string
	caPEM                               []byte
}

// writePKI generates a CA, an API server serving certificate signed by it (the node
// agent's kubelet endpoint serves with it too: it names the node address), the API
// server's client certificate for that endpoint, the service-account signing key pair
// and a static admin token.
func writePKI(dir string, nodeIP string) (*pki, error) {
	p := &pki{
		caCert:            filepath.Join(dir, "ca.crt"),
		servingCert:       filepath.Join(dir, "apiserver.crt"),
		servingKey:        filepath.Join(dir, "apiserver.key"),
		kubeletClientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKey:  filepath.Join(dir, "apiserver-kubelet-client.key"),
		saKey:             filepath.Join(dir, "sa.key"),
		saPub:             filepath.Join(dir, "sa.pub"),
		tokenFile:         filepath.Join(dir, "tokens.csv"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flax-localcluster-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the ca certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(nodeIP)},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the serving certificate: %w", err)
	}
	cliKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cliDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &cliKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the kubelet client certificate: %w", err)
	}
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	saPubDER, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	p.token = hex.EncodeToString(tok)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files := map[string][]byte{
		p.caCert:            p.caPEM,
		p.servingCert:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		p.servingKey:        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		p.kubeletClientCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}),
		p.kubeletClientKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: cliKeyDER}),
		p.saKey:             pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		p.saPub:             pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
		// token,user,uid,"group1,group2"
		p.tokenFile: []byte(p.token + ",admin,admin,\"system:masters\"\n"),
	}
	for f, b := range files {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// freePort returns a loopback TCP port that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startControlPlane starts etcd, kube-apiserver and kube-controller-manager and writes
// the admin kubeconfig.
func (c *cluster) startControlPlane(ctx context.Context) error {
	cfg := c.cfg
	p, err := writePKI(cfg.dir, c.net.nodeIP.String())
	if err != nil {
		return fmt.Errorf("writing certificates and keys: %w", err)
	}
	c.pki = p
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	etcdClient, etcdPeer, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	logDir := filepath.Join(cfg.dir, "logs")
	env := os.Environ()

	etcd, err := startProcess("etcd", cfg.dir, filepath.Join(logDir, "etcd.log"), "", env, []string{
		filepath.Join(cfg.binDir, "etcd"),
		"--name=localcluster",
		"--data-dir=" + filepath.Join(cfg.dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--initial-advertise-peer-urls=http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--initial-cluster=localcluster=http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--unsafe-no-fsync",
	})
	if err != nil {
		return err
	}
	c.hostProcs = append(c.hostProcs, etcd)
	logf("etcd started on %s (log %s)", etcdURL, filepath.Join(logDir, "etcd.log"))

	api, err := startProcess("kube-apiserver", cfg.dir, filepath.Join(logDir, "kube-apiserver.log"), "", env, []string{
		filepath.Join(cfg.binDir, "kube-apiserver"),
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(cfg.dir, "apiserver-certs"),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--token-auth-file=" + p.tokenFile,
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--allow-privileged=true",
		// Pod logs: the API server reaches the node agent's kubelet endpoint on the
		// node's InternalIP, verifying it with the cluster CA and presenting its client
		// certificate.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + p.caCert,
		"--kubelet-client-certificate=" + p.kubeletClientCert,
		"--kubelet-client-key=" + p.kubeletClientKey,
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	c.hostProcs = append(c.hostProcs, api)
	c.apiPort = apiPort
	c.apiURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	logf("kube-apiserver started on %s (log %s)", c.apiURL, filepath.Join(logDir, "kube-apiserver.log"))

	c.kubeconfig = filepath.Join(cfg.dir, "kubeconfig")
	if err := writeKubeconfig(c.kubeconfig, c.apiURL, p); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	c.rest = &rest.Config{Host: c.apiURL, BearerToken: p.token, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}, QPS: 50, Burst: 100}
	if c.client, err = kubernetes.NewForConfig(c.rest); err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, "kube-apiserver /readyz", func() error {
		if api.exited() {
			return errExited
		}
		_, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return err
	}
	logf("kube-apiserver ready; admin kubeconfig written to %s", c.kubeconfig)

	kcm, err := startProcess("kube-controller-manager", cfg.dir, filepath.Join(logDir, "kube-controller-manager.log"), "", env, []string{
		filepath.Join(cfg.binDir, "kube-controller-manager"),
		"--kubeconfig=" + c.kubeconfig,
		"--authentication-kubeconfig=" + c.kubeconfig,
		"--authorization-kubeconfig=" + c.kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--cert-dir=" + filepath.Join(cfg.dir, "kcm-certs"),
		"--leader-elect=false",
		"--controllers=deployment-controller,replicaset-controller,daemonset-controller,endpointslice-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,garbage-collector-controller",
		"--service-account-private-key-file=" + p.saKey,
		"--root-ca-file=" + p.caCert,
	})
	if err != nil {
		return err
	}
	c.hostProcs = append(c.hostProcs, kcm)
	logf("kube-controller-manager started (log %s)", filepath.Join(logDir, "kube-controller-manager.log"))
	return nil
}

// writeKubeconfig writes an admin kubeconfig using the static token.
func writeKubeconfig(path, server string, p *pki) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: p.token}
	kc.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "localcluster"
	return clientcmd.WriteToFile(*kc, path)
}

var errExited = fmt.Errorf("process exited")

// waitFor polls check until it succeeds, the timeout passes, or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if errors.Is(last, errExited) {
			return fmt.Errorf("waiting for %s: the process exited (see its log)", what)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after %s: %w", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
