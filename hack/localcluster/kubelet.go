package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Container logs are kept as a kubelet keeps them: one file per container instance in
// the CRI logging format, one line per line of output,
//
//	2026-11-25T21:43:33.123456789Z stdout F the line
//
// (P instead of F marks a piece of a line longer than maxLogLine). The previous
// instance's file is kept beside it with a ".previous" suffix when a container restarts.
// The node agent serves them to the API server on the kubelet endpoint, so that
// `kubectl logs` (and anything else reading pods/log) works.

// maxLogLine is the longest piece of a line written as one log entry.
const maxLogLine = 16 << 10

// containerLog is one container instance's log file, shared by its two streams.
type containerLog struct {
	mu sync.Mutex
	f  *os.File
}

// logStream turns one output stream of a process into log entries.
type logStream struct {
	log     *containerLog
	name    string // "stdout" or "stderr"
	partial []byte
}

func (l *containerLog) stream(name string) *logStream { return &logStream{log: l, name: name} }

// Write emits every complete line of b and keeps the rest for the next call.
func (s *logStream) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.partial = append(s.partial, b...)
			for len(s.partial) >= maxLogLine {
				s.emit('P', s.partial[:maxLogLine])
				s.partial = append(s.partial[:0], s.partial[maxLogLine:]...)
			}
			break
		}
		line := b[:i]
		if len(s.partial) > 0 {
			s.partial = append(s.partial, line...)
			line = s.partial
		}
		for len(line) > maxLogLine {
			s.emit('P', line[:maxLogLine])
			line = line[maxLogLine:]
		}
		s.emit('F', line)
		s.partial = s.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

// flush writes an unterminated last line.
func (s *logStream) flush() {
	if len(s.partial) > 0 {
		s.emit('F', s.partial)
		s.partial = nil
	}
}

func (s *logStream) emit(tag byte, line []byte) {
	entry := make([]byte, 0, len(line)+64)
	entry = time.Now().UTC().AppendFormat(entry, time.RFC3339Nano)
	entry = append(entry, ' ')
	entry = append(entry, s.name...)
	entry = append(entry, ' ', tag, ' ')
	entry = append(entry, line...)
	entry = append(entry, '\n')
	s.log.mu.Lock()
	_, _ = s.log.f.Write(entry)
	s.log.mu.Unlock()
}

// logEntry is one parsed line of a container log file.
type logEntry struct {
	at      time.Time
	stamp   string // as written
	full    bool   // F: ends a line
	content string
}

// parseLogEntry parses one CRI log line (without its newline).
func parseLogEntry(line string) (logEntry, bool) {
	stamp, rest, ok1 := strings.Cut(line, " ")
	_, rest, ok2 := strings.Cut(rest, " ") // stream
	tag, content, ok3 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !ok3 || (tag != "F" && tag != "P") {
		return logEntry{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return logEntry{}, false
	}
	return logEntry{at: at, stamp: stamp, full: tag == "F", content: content}, true
}

// logQuery is the part of the kubelet's containerLogs query the node agent honours.
type logQuery struct {
	follow, previous, timestamps bool
	since                        time.Time // zero: from the start
	tailLines                    int       // negative: all
	limitBytes                   int64     // zero: no limit
}

func parseLogQuery(q map[string][]string, now time.Time) (logQuery, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	lq := logQuery{tailLines: -1}
	var err error
	for k, dst := range map[string]*bool{"follow": &lq.follow, "previous": &lq.previous, "timestamps": &lq.timestamps} {
		if v := get(k); v != "" {
			if *dst, err = strconv.ParseBool(v); err != nil {
				return lq, fmt.Errorf("%s=%q is not a boolean", k, v)
			}
		}
	}
	if v := get("sinceTime"); v != "" {
		if lq.since, err = time.Parse(time.RFC3339, v); err != nil {
			return lq, fmt.Errorf("sinceTime=%q is not an RFC 3339 time", v)
		}
	}
	if v := get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return lq, fmt.Errorf("sinceSeconds=%q is not a positive integer", v)
		}
		lq.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := get("tailLines"); v != "" {
		if lq.tailLines, err = strconv.Atoi(v); err != nil || lq.tailLines < 0 {
			return lq, fmt.Errorf("tailLines=%q is not a non-negative integer", v)
		}
	}
	if v := get("limitBytes"); v != "" {
		if lq.limitBytes, err = strconv.ParseInt(v, 10, 64); err != nil || lq.limitBytes <= 0 {
			return lq, fmt.Errorf("limitBytes=%q is not a positive integer", v)
		}
	}
	return lq, nil
}

// logWriter writes selected entries to the client, counting bytes against the limit.
type logWriter struct {
	w       io.Writer
	q       logQuery
	written int64
}

// write writes one entry; false once the byte limit is reached.
func (lw *logWriter) write(e logEntry) bool {
	var b strings.Builder
	if lw.q.timestamps {
		b.WriteString(e.stamp)
		b.WriteByte(' ')
	}
	b.WriteString(e.content)
	if e.full {
		b.WriteByte('\n')
	}
	out := b.String()
	if lw.q.limitBytes > 0 && lw.written+int64(len(out)) > lw.q.limitBytes {
		out = out[:lw.q.limitBytes-lw.written]
	}
	n, err := io.WriteString(lw.w, out)
	lw.written += int64(n)
	return err == nil && (lw.q.limitBytes == 0 || lw.written < lw.q.limitBytes)
}

// copyLogs writes the entries of the file at path selected by q. With follow, it keeps
// reading until running reports false (then drains what is left) or ctx ends.
func copyLogs(ctx context.Context, w io.Writer, path string, q logQuery, running func() bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	lw := &logWriter{w: w, q: q}
	r := bufio.NewReaderSize(f, 64<<10)
	var pending string // a line read before its newline was written
	readLine := func() (string, bool) {
		s, err := r.ReadString('\n')
		if err != nil { // no newline yet: keep it for the next read
			pending += s
			return "", false
		}
		s = pending + s
		pending = ""
		return strings.TrimSuffix(s, "\n"), true
	}
	selected := func(e logEntry) bool { return q.since.IsZero() || !e.at.Before(q.since) }

	// What the file holds now, with tailLines applied (a line split into pieces counts
	// once).
	var tail []logEntry
	lines := 0
	for {
		line, ok := readLine()
		if !ok {
			break
		}
		e, ok := parseLogEntry(line)
		if !ok || !selected(e) {
			continue
		}
		tail = append(tail, e)
		if e.full {
			lines++
		}
		for q.tailLines >= 0 && lines > q.tailLines {
			if tail[0].full {
				lines--
			}
			tail = tail[1:]
		}
	}
	for _, e := range tail {
		if !lw.write(e) {
			return nil
		}
	}
	if !q.follow {
		return nil
	}
	flusher, _ := w.(http.Flusher)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		alive := running()
		for {
			line, ok := readLine()
			if !ok {
				break
			}
			if e, ok := parseLogEntry(line); ok && selected(e) && !lw.write(e) {
				return nil
			}
		}
		if !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// kubeletServer serves the node agent's kubelet endpoint: container logs and port
// forwarding.
type kubeletServer struct {
	a   *nodeAgent
	srv *http.Server
	ln  net.Listener
}

// startKubeletServer listens on the node address (any free port), requiring a client
// certificate of the cluster CA (the API server's).
func (a *nodeAgent) startKubeletServer() (*kubeletServer, error) {
	p := a.c.pki
	cert, err := tls.LoadX509KeyPair(p.servingCert, p.servingKey)
	if err != nil {
		return nil, fmt.Errorf("kubelet endpoint: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	ln, err := net.Listen("tcp", net.JoinHostPort(a.c.net.nodeIP.String(), "0"))
	if err != nil {
		return nil, fmt.Errorf("kubelet endpoint: %w", err)
	}
	ks := &kubeletServer{a: a, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", ks.containerLogs)
	mux.HandleFunc("GET /portForward/{namespace}/{pod}", ks.portForward)
	mux.HandleFunc("POST /portForward/{namespace}/{pod}", ks.portForward)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	ks.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12},
	}
	go func() {
		if err := ks.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("kubelet endpoint stopped: %v", err)
		}
	}()
	return ks, nil
}

func (ks *kubeletServer) port() int { return ks.ln.Addr().(*net.TCPAddr).Port }

func (ks *kubeletServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = ks.srv.Shutdown(ctx)
}

func (ks *kubeletServer) containerLogs(w http.ResponseWriter, req *http.Request) {
	ns, name, container := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	q, err := parseLogQuery(req.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r := ks.a.podByName(ns, name)
	if r == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not running on node %s", ns, name, ks.a.name), http.StatusNotFound)
		return
	}
	path, running, err := r.logFile(container, q.previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if err := copyLogs(req.Context(), w, path, q, running); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
	}
}

// containerLogPath is the log file of a container's current instance.
func containerLogPath(podDir, container string) string {
	return filepath.Join(podDir, container+".log")
}

// podByName returns the runtime of a pod running on the node.
func (a *nodeAgent) podByName(ns, name string) *podRuntime {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.pods {
		if r.key == ns+"/"+name {
			return r
		}
	}
	return nil
}

// logFile returns the log file of a container (or of its previous instance) and a
// function that reports whether the instance still runs.
func (r *podRuntime) logFile(container string, previous bool) (string, func() bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cs *containerState
	for _, c := range r.containers { // init containers' logs are not served
		if c.spec.Name == container {
			cs = c
		}
	}
	if cs == nil {
		return "", nil, fmt.Errorf("container %q is not valid for pod %s", container, r.key)
	}
	path := containerLogPath(r.dir, container)
	if previous {
		path += ".previous"
		if _, err := os.Stat(path); err != nil {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %s not found", container, r.key)
		}
		return path, func() bool { return false }, nil
	}
	proc := cs.proc
	running := func() bool { return proc != nil && !proc.exited() }
	return path, running, nil
}
