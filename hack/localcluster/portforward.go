package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// portForwardProtocol is the kubelet's port forwarding protocol over SPDY: every
// forwarded connection is an error stream and a data stream sharing a requestID.
const portForwardProtocol = "portforward.k8s.io"

// portForward serves the kubelet's /portForward/{namespace}/{pod}, which the API
// server's pods/portforward subresource (kubectl port-forward, flaxctl config
// dump) reaches. The kubelet dials the port inside the pod's network namespace; a
// hostNetwork pod's is the node's, so its port is dialled on 127.0.0.1 (from
// 127.0.0.1, as servers bound to loopback expect); another pod's on its address
// (not inside its namespace: a server bound to the pod's loopback alone is not
// reached).
func (ks *kubeletServer) portForward(w http.ResponseWriter, req *http.Request) {
	r := ks.a.podByName(req.PathValue("namespace"), req.PathValue("pod"))
	if r == nil {
		http.Error(w, "pod not found on this node", http.StatusNotFound)
		return
	}
	r.mu.Lock()
	host := r.ip.String()
	if r.pod.Spec.HostNetwork {
		host = "127.0.0.1"
	}
	r.mu.Unlock()
	serveForward(w, req, host)
}

// forwardStream is a stream the client opened, usable once replySent is closed.
type forwardStream struct {
	stream    httpstream.Stream
	replySent <-chan struct{}
}

// serveForward upgrades req to SPDY and joins every forwarded connection to
// host:<port> until the client goes away.
func serveForward(w http.ResponseWriter, req *http.Request, host string) {
	if _, err := httpstream.Handshake(req, w, []string{portForwardProtocol}); err != nil {
		return // Handshake has answered
	}
	streams, done := make(chan forwardStream), make(chan struct{})
	defer close(done)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case streams <- forwardStream{s, replySent}:
			return nil
		case <-done:
			return fmt.Errorf("port forwarding of %s ended", req.URL.Path)
		}
	})
	if conn == nil {
		return // the upgrade failed and was answered
	}
	defer conn.Close()
	conn.SetIdleTimeout(4 * time.Hour)
	type pair struct{ data, errs *forwardStream }
	pending := map[string]*pair{}
	for {
		select {
		case <-conn.CloseChan():
			return
		case s := <-streams:
			h := s.stream.Headers()
			id := h.Get("requestID")
			p := pending[id]
			if p == nil {
				p = &pair{}
				pending[id] = p
			}
			switch h.Get("streamType") {
			case "data":
				p.data = &s
			case "error":
				p.errs = &s
			default:
				_ = s.stream.Reset()
				continue
			}
			if p.data != nil && p.errs != nil {
				delete(pending, id)
				go forwardConnection(conn, host, h.Get("port"), p.data, p.errs)
			}
		}
	}
}

// forwardConnection joins one forwarded connection to host:port; a failure is
// written to the error stream, which is closed when the connection ends.
func forwardConnection(conn httpstream.Connection, host, port string, data, errs *forwardStream) {
	<-data.replySent
	<-errs.replySent
	defer conn.RemoveStreams(data.stream, errs.stream)
	defer errs.stream.Close()
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		fmt.Fprintf(errs.stream, "invalid port %q", port)
		_ = data.stream.Reset()
		return
	}
	target, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
	if err != nil {
		fmt.Fprintf(errs.stream, "dial %s: %v", net.JoinHostPort(host, port), err)
		_ = data.stream.Reset()
		return
	}
	defer target.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(target, data.stream)
		if tc, ok := target.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(data.stream, target)
	_ = data.stream.Close()
	wg.Wait()
}
