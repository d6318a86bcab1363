package enginetest

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

// A route's CORS policy over real sockets on every engine: the dataplane
// answers a preflight itself, and adds the CORS fields to the backend's
// response to an allowed origin only.
func TestCORS(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "app "+r.Method)
		}))
		port := FreePort(t)
		y := HTTPSnapshot(port, []string{be.Addr()}, "", `    - name: cors
      matches: [{path: {type: PATH_PREFIX, value: /cors}}]
      filters:
      - cors:
          allowOrigins: ["https://*.example.com"]
          allowMethods: [GET, PUT]
          allowHeaders: [x-token]
          exposeHeaders: [x-request-id]
          allowCredentials: true
          maxAgeSeconds: 600
      backends: [{backendGroup: app, weight: 1}]
`, "")
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, y))

		c := Dial(t, port)
		br := bufio.NewReader(c)
		send := func(method, origin, extra string) (*http.Response, string) {
			t.Helper()
			io.WriteString(c, method+" /cors HTTP/1.1\r\nHost: x\r\nOrigin: "+origin+"\r\n"+extra+"\r\n")
			return ReadResponse(t, br, method)
		}
		resp, body := send("OPTIONS", "https://app.example.com", "Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-token\r\n")
		want := map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "GET, PUT",
			"Access-Control-Allow-Headers":     "x-token",
			"Access-Control-Expose-Headers":    "x-request-id",
			"Access-Control-Max-Age":           "600",
			"Vary":                             "Origin",
		}
		if resp.StatusCode != 204 || body != "" {
			t.Fatalf("preflight: %d %q", resp.StatusCode, body)
		}
		for name, v := range want {
			if got := resp.Header.Get(name); got != v {
				t.Errorf("preflight %s = %q, want %q", name, got, v)
			}
		}
		if _, reqs := be.Counts(); reqs != 0 {
			t.Fatalf("the backend served %d requests; the preflight must not reach it", reqs)
		}

		resp, body = send("PUT", "https://app.example.com", "Content-Length: 0\r\n")
		if resp.StatusCode != 200 || body != "app PUT" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Expose-Headers") != "x-request-id" {
			t.Fatalf("allowed origin: %d %q, headers %v", resp.StatusCode, body, resp.Header)
		}
		resp, body = send("GET", "https://app.example.org", "")
		if resp.StatusCode != 200 || body != "app GET" || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("disallowed origin: %d %q, headers %v", resp.StatusCode, body, resp.Header)
		}
		if _, reqs := be.Counts(); reqs != 2 {
			t.Fatalf("the backend served %d requests, want 2", reqs)
		}
	})
}
