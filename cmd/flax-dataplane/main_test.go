package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
)

func TestProxySnapshot(t *testing.T) {
	s, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:8080", to: []string{"127.0.0.1:9001", "[::1]:9002"}, lb: "maglev", hashHeader: "x-user"})
	if err != nil {
		t.Fatal(err)
	}
	l := s.GetListeners()[0]
	if l.GetAddress() != "127.0.0.1" || l.GetPort() != 8080 || l.GetProtocol() != dataplanev1.Listener_HTTP {
		t.Errorf("listener = %v", l)
	}
	g := s.GetBackendGroups()[0]
	if len(g.GetEndpoints()) != 2 || g.GetEndpoints()[1].GetAddress() != "::1" || g.GetEndpoints()[1].GetPort() != 9002 {
		t.Errorf("endpoints = %v", g.GetEndpoints())
	}
	if g.GetLoadBalancing().GetPolicy() != dataplanev1.LoadBalancing_MAGLEV || g.GetLoadBalancing().GetHashOn().GetHeader() != "x-user" {
		t.Errorf("load balancing = %v", g.GetLoadBalancing())
	}
	tcp, err := proxySnapshot(proxyOptions{listen: "0.0.0.0:5432", to: []string{"10.0.0.1:5432"}, lb: "round-robin", tcp: true})
	if err != nil {
		t.Fatal(err)
	}
	if tcp.GetListeners()[0].GetProtocol() != dataplanev1.Listener_TCP {
		t.Errorf("--tcp gave protocol %v", tcp.GetListeners()[0].GetProtocol())
	}
}

// HTTP/2 is on unless --no-http2, which --tcp does not take.
func TestProxySnapshotHTTP2(t *testing.T) {
	on, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:8080", to: []string{"127.0.0.1:9001"}, lb: "round-robin"})
	if err != nil {
		t.Fatal(err)
	}
	if h := on.GetListeners()[0].GetHttp2(); h.GetDisabled() {
		t.Errorf("HTTP/2 off by default: %v", h)
	}
	off, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:8080", to: []string{"127.0.0.1:9001"}, lb: "round-robin", noHTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	if !off.GetListeners()[0].GetHttp2().GetDisabled() {
		t.Errorf("--no-http2: listener %v", off.GetListeners()[0])
	}
	if off.GetHash() == on.GetHash() {
		t.Error("--no-http2 left the snapshot hash unchanged")
	}
	if _, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:8080", to: []string{"127.0.0.1:9001"}, lb: "round-robin", noHTTP2: true, tcp: true}); err == nil {
		t.Error("--no-http2 with --tcp accepted")
	}
}

func TestProxySnapshotTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, []byte("CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:8443", to: []string{"127.0.0.1:1"}, lb: "round-robin", tlsCert: cert, tlsKey: key})
	if err == nil {
		t.Fatalf("a certificate that is not PEM was accepted: %v", s)
	}
	pc, pk := enginetest.SelfSigned(t, "proxy")
	if err := os.WriteFile(cert, pc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pk, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = proxySnapshot(proxyOptions{listen: "127.0.0.1:8443", to: []string{"127.0.0.1:1"}, lb: "round-robin", tlsCert: cert, tlsKey: key})
	if err != nil {
		t.Fatal(err)
	}
	l := s.GetListeners()[0]
	if l.GetProtocol() != dataplanev1.Listener_HTTPS || len(l.GetCertificates()) != 1 || !bytes.Equal(l.GetCertificates()[0].GetCertPem(), pc) {
		t.Errorf("listener = %v", l)
	}
}

func TestProxySnapshotErrors(t *testing.T) {
	ok := proxyOptions{listen: "127.0.0.1:80", to: []string{"127.0.0.1:1"}, lb: "round-robin"}
	with := func(f func(o *proxyOptions)) proxyOptions {
		o := ok
		f(&o)
		return o
	}
	for _, tc := range []struct {
		o    proxyOptions
		want string
	}{
		{with(func(o *proxyOptions) { o.listen = "localhost:80" }), "--listen"},
		{with(func(o *proxyOptions) { o.to = nil }), "--to: at least one"},
		{with(func(o *proxyOptions) { o.to = []string{"backend:80"} }), `--to "backend:80"`},
		{with(func(o *proxyOptions) { o.lb = "fastest" }), `--lb "fastest": unknown policy`},
		{with(func(o *proxyOptions) { o.listen = "127.0.0.1:0" }), "port"},
		{with(func(o *proxyOptions) { o.rateLimit = "100" }), `--rate-limit "100": want REQUESTS/INTERVAL`},
		{with(func(o *proxyOptions) { o.rateLimit = "0/1s" }), `--rate-limit "0/1s"`},
		{with(func(o *proxyOptions) { o.rateLimit = "10/soon" }), `--rate-limit "10/soon": interval`},
		{with(func(o *proxyOptions) { o.rateLimit = "10/1ns" }), "interval"}, // below the 1ms the snapshot allows
		{with(func(o *proxyOptions) { o.rateLimit, o.tcp = "10/1s", true }), "not with --tcp"},
		{with(func(o *proxyOptions) { o.ratePerClient = true }), "need --rate-limit"},
		{with(func(o *proxyOptions) { o.sendStall = time.Microsecond }), "sendStall"},
		{with(func(o *proxyOptions) { o.responseHeader = 25 * time.Hour }), "responseHeaderTimeout"},
		{with(func(o *proxyOptions) { o.keepAliveIdle = -time.Second }), "keepAliveIdle"},
		{with(func(o *proxyOptions) { o.tlsCert = "cert.pem" }), "--tls-cert and --tls-key go together"},
		{with(func(o *proxyOptions) { o.tlsCert, o.tlsKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }), "--tls-cert"},
		{with(func(o *proxyOptions) { o.tlsCert, o.tlsKey, o.tcp = "c", "k", true }), "not with --tcp"},
	} {
		_, err := proxySnapshot(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("proxy %+v: err = %v, want it to mention %q", tc.o, err, tc.want)
		}
	}
}

func TestProxySnapshotRateLimit(t *testing.T) {
	s, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:80", to: []string{"127.0.0.1:1"}, lb: "round-robin", rateLimit: "100/1m", rateBurst: 20, ratePerClient: true})
	if err != nil {
		t.Fatal(err)
	}
	rl := s.GetListeners()[0].GetVirtualHosts()[0].GetRoutes()[0].GetRateLimit()
	if rl.GetRequests() != 100 || rl.GetInterval().AsDuration() != time.Minute || rl.GetBurst() != 20 || !rl.GetPerClientIp() || rl.GetBucket() == "" {
		t.Errorf("rate limit = %v", rl)
	}
}

func TestProxySnapshotTimeouts(t *testing.T) {
	s, err := proxySnapshot(proxyOptions{listen: "127.0.0.1:80", to: []string{"127.0.0.1:1"}, lb: "round-robin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetListeners()[0].GetTimeouts() != nil || s.GetBackendGroups()[0].GetResponseHeaderTimeout() != nil || s.GetBackendGroups()[0].GetResponseBodyIdleTimeout() != nil {
		t.Errorf("timeouts set without flags: %v", s)
	}
	s, err = proxySnapshot(proxyOptions{
		listen: "127.0.0.1:80", to: []string{"127.0.0.1:1"}, lb: "round-robin",
		requestHead: time.Second, requestBodyIdle: 2 * time.Second, sendStall: 3 * time.Second, keepAliveIdle: 4 * time.Second,
		responseHeader: 5 * time.Second, responseBodyIdle: 6 * time.Second, tunnelIdle: 7 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	lt, g := s.GetListeners()[0].GetTimeouts(), s.GetBackendGroups()[0]
	got := []time.Duration{
		lt.GetRequestHead().AsDuration(), lt.GetRequestBodyIdle().AsDuration(), lt.GetSendStall().AsDuration(), lt.GetKeepAliveIdle().AsDuration(),
		g.GetResponseHeaderTimeout().AsDuration(), g.GetResponseBodyIdleTimeout().AsDuration(), lt.GetTunnelIdle().AsDuration(),
	}
	for i, d := range got {
		if want := time.Duration(i+1) * time.Second; d != want {
			t.Errorf("timeout %d = %v, want %v", i, d, want)
		}
	}
	// A flag not given stays unset.
	s, err = proxySnapshot(proxyOptions{listen: "127.0.0.1:80", to: []string{"127.0.0.1:1"}, lb: "round-robin", sendStall: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if lt := s.GetListeners()[0].GetTimeouts(); lt.GetSendStall().AsDuration() != time.Second || lt.GetRequestHead() != nil || lt.GetKeepAliveIdle() != nil {
		t.Errorf("listener timeouts = %v", lt)
	}
}

func TestValidateCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"validate", "--config", "../../examples/standalone.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("validate example: %v", err)
	}
	if !strings.Contains(out.String(), "valid (1 listeners, 2 backend groups)") {
		t.Errorf("output = %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listeners:\n- name: x\n  port: 70000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"validate", "--config", bad}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "listeners[0].port") {
		t.Errorf("validate bad file: err = %v, want it to name listeners[0].port", err)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "flax-dataplane proxy --listen") {
		t.Errorf("--help: %v %q", err, out.String())
	}
	if err := run([]string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := run([]string{"run"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "exactly one of --config and --socket") {
		t.Errorf("run without source: %v", err)
	}
}

func TestAccessLogFlag(t *testing.T) {
	for _, cmd := range []string{"run", "proxy"} {
		var out, errOut bytes.Buffer
		_ = run([]string{cmd, "--help"}, &out, &errOut)
		if !strings.Contains(errOut.String(), "-access-log") || !strings.Contains(errOut.String(), "SIGHUP") {
			t.Errorf("%s --help does not document --access-log:\n%s", cmd, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if err := run([]string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "--access-log") {
		t.Errorf("--help does not mention --access-log: %v", err)
	}
}

func TestLimitAndTrustFlags(t *testing.T) {
	var c common
	fs := newFlagSet("proxy", "proxy", io.Discard)
	c.bind(fs)
	if err := fs.Parse([]string{"--trusted-hops", "2", "--max-request-header-bytes", "32768", "--max-response-headers", "1000"}); err != nil {
		t.Fatal(err)
	}
	po, err := c.proxyOptions()
	if err != nil {
		t.Fatal(err)
	}
	if po.TrustedHops != 2 || po.Limits.MaxHeaderBytes != 32768 || po.Limits.MaxHeaderCount != 100 ||
		po.ResponseLimits.MaxHeaderBytes != 65535 || po.ResponseLimits.MaxHeaderCount != 1000 {
		t.Fatalf("options %+v", po)
	}
	for _, args := range [][]string{
		{"--trusted-hops", "17"},
		{"--trusted-hops", "-1"},
		{"--max-response-header-bytes", "65536"},
		{"--max-request-headers", "0"},
	} {
		var c common
		fs := newFlagSet("proxy", "proxy", io.Discard)
		c.bind(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if _, err := c.proxyOptions(); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}
	var out, errOut bytes.Buffer
	err = run([]string{"proxy", "--trusted-hops", "99", "--to", "127.0.0.1:1", "--admin-address", ""}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--trusted-hops") {
		t.Errorf("proxy --trusted-hops 99: %v", err)
	}
}

func TestLogFormatFlag(t *testing.T) {
	for format, want := range map[string]string{
		"json": `"msg":"config applied","version":7}`,
		"text": `"msg"="config applied" "version"=7`,
	} {
		var c common
		fs := newFlagSet("run", "run", io.Discard)
		c.bind(fs)
		if err := fs.Parse([]string{"--log-format", format}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		log, err := c.logger(&out)
		if err != nil {
			t.Fatalf("--log-format %s: %v", format, err)
		}
		log.Info("config applied", "version", 7)
		if line := out.String(); !strings.Contains(line, want) || strings.Count(line, "\n") != 1 {
			t.Errorf("--log-format %s wrote %q, want one line containing %q", format, line, want)
		}
	}
	var out, errOut bytes.Buffer
	err := run([]string{"proxy", "--to", "127.0.0.1:1", "--admin-address", "", "--log-format", "xml"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `--log-format "xml": must be json or text`) {
		t.Errorf("--log-format xml: %v", err)
	}
}

func TestRuntimeAPIFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"proxy", "--to", "127.0.0.1:1", "--engine", "netpoll", "--admin-address", "127.0.0.1:0", "--runtime-api", "sometimes"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `runtime API access "sometimes"`) {
		t.Errorf("--runtime-api sometimes: %v", err)
	}
	if err := run([]string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "/backends/backends/drain?address=") {
		t.Errorf("--help does not show the runtime API: %v", err)
	}
}
