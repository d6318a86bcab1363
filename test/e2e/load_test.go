//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoReply is the part of echo-basic's JSON reply the tests read.
type echoReply struct {
	Path      string              `json:"path"`
	Host      string              `json:"host"`
	Headers   map[string][]string `json:"headers"`
	Namespace string              `json:"namespace"`
	Pod       string              `json:"pod"`
}

// result is one request of a load run.
type result struct {
	start, end time.Time
	status     int    // 0 on a transport error
	pod        string // echo-basic's pod name on a 2xx
	err        string // transport error, or the body of a non-2xx reply
}

func (r result) ok() bool { return r.status >= 200 && r.status < 300 && r.err == "" }

// load is a bounded load loop: workers GET a URL through the Gateway, each on its own
// keep-alive connection (or a new connection per request), until stop is called or
// maxDuration passes.
type load struct {
	url  string
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	results []result
}

// startLoad starts workers that GET url on keep-alive connections (with a pause of 5 ms
// between requests, so that a 2-core machine shared with the cluster is not saturated).
// The loop stops by itself after maxDuration.
func startLoad(t testing.TB, url string, workers int, maxDuration time.Duration) *load {
	return startLoadConns(t, url, workers, maxDuration, true)
}

// startLoadConns is startLoad with a choice: keepAlive false opens a new connection for
// every request (and so, through the Gateway, a new upstream connection too).
func startLoadConns(t testing.TB, url string, workers int, maxDuration time.Duration, keepAlive bool) *load {
	l := &load{url: url, stop: make(chan struct{})}
	deadline := time.Now().Add(maxDuration)
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true, DisableKeepAlives: !keepAlive}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				r := get(c, url, nil)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the loop and waits for the workers.
func (l *load) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// since returns the results of the requests that started at or after t.
func (l *load) since(t time.Time) []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []result
	for _, r := range l.results {
		if !r.start.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// all returns every result so far.
func (l *load) all() []result { return l.since(time.Time{}) }

// get performs one GET and classifies the outcome.
func get(c *http.Client, url string, header http.Header) result {
	r := result{start: time.Now()}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		r.err = err.Error()
		r.end = time.Now()
		return r
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		r.end = time.Now()
		r.err = err.Error()
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	r.status = resp.StatusCode
	if err != nil {
		r.err = "reading body: " + err.Error()
		return r
	}
	if !r.ok() {
		r.err = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(body)))
		return r
	}
	var e echoReply
	if json.Unmarshal(body, &e) == nil {
		r.pod = e.Pod
	}
	return r
}

// getEcho performs one GET with a fresh connection and decodes echo-basic's reply.
func getEcho(url string, header http.Header) (int, echoReply, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, echoReply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, echoReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, echoReply{}, err
	}
	var e echoReply
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, &e); err != nil {
			return resp.StatusCode, e, fmt.Errorf("decoding %q: %w", body, err)
		}
	}
	return resp.StatusCode, e, nil
}

// summary counts outcomes: total, failures (non-2xx and transport errors), failures by
// kind, and the pods that answered.
type summary struct {
	total, failed int
	kinds         map[string]int
	pods          map[string]int
	firstFail     time.Time
	lastFail      time.Time
}

func summarize(rs []result) summary {
	s := summary{kinds: map[string]int{}, pods: map[string]int{}}
	for _, r := range rs {
		s.total++
		if r.ok() {
			s.pods[r.pod]++
			continue
		}
		s.failed++
		k := r.err
		if r.status == 0 {
			k = "transport: " + shortErr(r.err)
		}
		s.kinds[k]++
		if s.firstFail.IsZero() || r.start.Before(s.firstFail) {
			s.firstFail = r.start
		}
		if r.end.After(s.lastFail) {
			s.lastFail = r.end
		}
	}
	return s
}

// shortErr keeps the last part of a net/http error ("read: connection reset by peer").
func shortErr(e string) string {
	if i := strings.LastIndex(e, ": "); i >= 0 && i+2 < len(e) {
		// keep the operation too, e.g. "dial tcp ...: connect: connection refused"
		if j := strings.LastIndex(e[:i], ": "); j >= 0 {
			return e[j+2:]
		}
		return e[i+2:]
	}
	return e
}

func (s summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d failed", s.total, s.failed)
	if s.failed > 0 {
		keys := make([]string, 0, len(s.kinds))
		for k := range s.kinds {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return s.kinds[keys[i]] > s.kinds[keys[j]] })
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%d× %s", s.kinds[k], k)
		}
		b.WriteString(")")
	}
	return b.String()
}

// podSet returns the sorted names of the pods that answered.
func (s summary) podSet() []string {
	out := make([]string, 0, len(s.pods))
	for p := range s.pods {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
