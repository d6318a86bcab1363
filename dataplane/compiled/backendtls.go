package compiled

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// compileBackendTLS builds the TLS client configuration of a backend group
// with TLS (nil when it has none) and its key: the same string for the same
// settings in any configuration, so that engines keep pooled upstream
// connections apart by it (a connection verified for one group's names must
// not serve a group that checks others, nor a plain one).
func compileBackendTLS(bt *dataplanev1.BackendTLS) (*tls.Config, string, error) {
	if bt == nil {
		return nil, "", nil
	}
	cfg := &tls.Config{ServerName: bt.GetServerName(), MinVersion: tls.VersionTLS12}
	h := sha256.New()
	fmt.Fprintf(h, "sni=%s\n", bt.GetServerName())
	if pem := bt.GetCaCertPem(); len(pem) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", errors.New("tls.caCertPem: holds no certificate that parses")
		}
		cfg.RootCAs = pool
		h.Write(pem)
	} else {
		// nil RootCAs: the host's system roots.
		h.Write([]byte("system roots\n"))
	}
	if c, k := bt.GetClientCertPem(), bt.GetClientKeyPem(); len(c) > 0 {
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			return nil, "", fmt.Errorf("tls.clientCertPem: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
		h.Write(c)
		h.Write(k)
	}
	var dnsNames, uris []string
	for _, san := range bt.GetSubjectAltNames() {
		switch n := san.GetName().(type) {
		case *dataplanev1.SubjectAltName_Hostname:
			dnsNames = append(dnsNames, n.Hostname)
		case *dataplanev1.SubjectAltName_Uri:
			uris = append(uris, n.Uri)
		}
	}
	fmt.Fprintf(h, "dns=%s\nuri=%s\n", strings.Join(dnsNames, ","), strings.Join(uris, ","))
	if len(dnsNames)+len(uris) > 0 {
		// The subject alternative names replace the server name in the name
		// check: verify the chain here, then the names.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyBackend(cs, roots, dnsNames, uris)
		}
	}
	return cfg, hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// verifyBackend checks a backend's certificate chain against roots (nil: the
// system's) and that its leaf carries one of dnsNames or uris.
func verifyBackend(cs tls.ConnectionState, roots *x509.CertPool, dnsNames, uris []string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("backend sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("backend certificate: %w", err)
	}
	for _, n := range dnsNames {
		// A name the certificate is valid for (its wildcards apply), or one
		// of its own names exactly (a wildcard asked for as such).
		if leaf.VerifyHostname(n) == nil || slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			return nil
		}
	}
	for _, u := range leaf.URIs {
		if slices.Contains(uris, u.String()) {
			return nil
		}
	}
	return fmt.Errorf("backend certificate carries none of the subject alternative names %s",
		strings.Join(append(slices.Clone(dnsNames), uris...), ", "))
}

// BackendTLSGroup returns the name of a backend group with TLS that the
// listener's routes (backends, mirrors and external authorization) may connect to, or "" when they
// reach none: engines that cannot originate TLS refuse such listeners.
func (l *Listener) BackendTLSGroup() string {
	uses := func(r *Route) string {
		if r == nil {
			return ""
		}
		for _, b := range r.Backends {
			if b.Group != nil && b.Group.TLS != nil {
				return b.Group.Name
			}
		}
		for _, m := range r.Mirrors {
			if m.Group != nil && m.Group.TLS != nil {
				return m.Group.Name
			}
		}
		if a := r.ExtAuth; a != nil && a.Group != nil && a.Group.TLS != nil {
			return a.Group.Name
		}
		return ""
	}
	if g := uses(l.TCP); g != "" {
		return g
	}
	for i := range l.TLSRoutes {
		if g := uses(l.TLSRoutes[i].Route); g != "" {
			return g
		}
	}
	for i := range l.matched {
		if g := uses(l.matched[i].Route); g != "" {
			return g
		}
	}
	return ""
}
