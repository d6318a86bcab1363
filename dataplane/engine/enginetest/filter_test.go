package enginetest

import (
	"bufio"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/filter"
)

// Filters of the engine suite, in the default registry that CompileYAML
// resolves names in.
func init() {
	filter.MustRegister("enginetest/tag", tagFilter{})
	filter.MustRegister("enginetest/tcp-guard", tcpGuard{})
}

// tagFilter tags requests and responses, and answers requests that ask it
// to itself.
type tagFilter struct{}

func (tagFilter) OnRequest(r filter.Request) {
	if _, ok := r.Header("x-answer-here"); ok {
		r.Respond(418, "answered by the filter\n")
		return
	}
	r.SetHeader("X-Tag", "route="+r.Route())
	r.RemoveHeader("X-Secret")
}

func (tagFilter) OnResponse(r filter.Response) {
	r.SetHeader("X-Filtered", strconv.Itoa(r.Status()))
}

// tcpGuard turns away connections from 127.0.0.3 and sends those from
// 127.0.0.2 to the backend group "other".
type tcpGuard struct{}

func (tcpGuard) OnConn(c filter.Conn) {
	switch c.Client().Addr() {
	case netip.MustParseAddr("127.0.0.3"):
		c.Reject()
	case netip.MustParseAddr("127.0.0.2"):
		c.UseBackendGroup("other")
	}
}

// An extension filter on a route edits the head the backend gets and the one
// the client gets, and answers locally, over real sockets on every engine; a
// TCP listener's connection filter rejects connections and chooses groups.
func TestExtensionFilters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Saw-Tag", r.Header.Get("X-Tag"))
			w.Header().Set("X-Saw-Secret", r.Header.Get("X-Secret"))
			io.WriteString(w, "app")
		}))
		other := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "other")
		}))
		port, tcpPort := FreePort(t), FreePort(t)
		y := HTTPSnapshot(port, []string{be.Addr()}, "", `    - name: filtered
      matches: [{path: {type: PATH_PREFIX, value: /filtered}}]
      extensionFilters: [enginetest/tag]
      backends: [{backendGroup: app, weight: 1}]
`, `- name: other
  endpoints:
  - {address: 127.0.0.1, port: `+strconv.Itoa(int(other.AddrPort().Port()))+`}
`)
		y = strings.Replace(y, "\nbackendGroups:", `
- name: tcp
  address: 127.0.0.1
  port: `+strconv.Itoa(tcpPort)+`
  protocol: TCP
  extensionFilters: [enginetest/tcp-guard]
  tcpRoute: {name: tcp, backends: [{backendGroup: app, weight: 1}]}
backendGroups:`, 1)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, y))

		c := Dial(t, port)
		br := bufio.NewReader(c)
		get := func(path, extra string) (*http.Response, string) {
			t.Helper()
			io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nX-Secret: s\r\n"+extra+"\r\n")
			return ReadResponse(t, br, "GET")
		}
		resp, body := get("/filtered", "")
		if resp.StatusCode != 200 || body != "app" || resp.Header.Get("X-Saw-Tag") != "route=filtered" ||
			resp.Header.Get("X-Saw-Secret") != "" || resp.Header.Get("X-Filtered") != "200" {
			t.Fatalf("filtered route: %d %q, headers %v", resp.StatusCode, body, resp.Header)
		}
		resp, body = get("/filtered", "X-Answer-Here: 1\r\n")
		if resp.StatusCode != 418 || body != "answered by the filter\n" || resp.Header.Get("X-Filtered") != "" {
			t.Fatalf("filter's answer: %d %q, headers %v", resp.StatusCode, body, resp.Header)
		}
		if _, reqs := be.Counts(); reqs != 1 {
			t.Fatalf("backend served %d requests, want 1 (the filter answered the second)", reqs)
		}
		// Routes without the filter are not touched, on the same connection.
		resp, _ = get("/plain", "")
		if resp.Header.Get("X-Saw-Tag") != "" || resp.Header.Get("X-Saw-Secret") != "s" || resp.Header.Get("X-Filtered") != "" {
			t.Fatalf("route without filters: headers %v", resp.Header)
		}

		tcpGet := func(from string) (string, error) {
			t.Helper()
			c := DialFrom(t, tcpPort, from)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		}
		if body, err := tcpGet("127.0.0.1"); err != nil || body != "app" {
			t.Fatalf("TCP from 127.0.0.1: %q, %v; want the route's group (app)", body, err)
		}
		if body, err := tcpGet("127.0.0.2"); err != nil || body != "other" {
			t.Fatalf("TCP from 127.0.0.2: %q, %v; want the filter's group (other)", body, err)
		}
		if body, err := tcpGet("127.0.0.3"); err == nil {
			t.Fatalf("TCP from 127.0.0.3 got %q; want the connection closed", body)
		}
	})
}
