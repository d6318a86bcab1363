package enginetest

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaxlb/flax/dataplane/metrics"
)

// authSeen is what the authorization service last received.
type authSeen struct {
	mu     sync.Mutex
	method string
	path   string
	host   string
	header http.Header
	body   string
	n      int
}

func (a *authSeen) get() authSeen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return authSeen{method: a.method, path: a.path, host: a.host, header: a.header, body: a.body, n: a.n}
}

// startAuthService runs a real HTTP authorization service: "Bearer good"
// is allowed (with X-User: alice), /auth/app/login redirects, /auth/app/slow
// answers after a second, anything else gets 401 with WWW-Authenticate.
// A body "secret" is allowed whatever the Authorization.
func startAuthService(t *testing.T) (*Backend, *authSeen) {
	seen := &authSeen{}
	be := StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen.mu.Lock()
		seen.method, seen.path, seen.host, seen.header, seen.body = r.Method, r.URL.RequestURI(), r.Host, r.Header.Clone(), string(body)
		seen.n++
		seen.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/auth/app/slow"):
			time.Sleep(time.Second)
		case strings.HasPrefix(r.URL.Path, "/auth/app/login"):
			w.Header().Set("Location", "https://login.example/start")
			w.WriteHeader(http.StatusFound)
			return
		}
		if r.Header.Get("Authorization") == "Bearer good" || string(body) == "secret" {
			w.Header().Set("X-User", "alice")
			w.Header().Set("X-Internal", "not-copied")
			io.WriteString(w, "allowed, ignored body")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="flax"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"unauthorized"}`)
	}))
	return be, seen
}

// appBackend echoes the user the request carries and its body.
func appBackend(t *testing.T) *Backend {
	return StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "app "+r.Method+" "+r.URL.Path+" user="+strings.Join(r.Header.Values("X-User"), ",")+
			" internal="+r.Header.Get("X-Internal")+" body="+string(body))
	}))
}

// extAuthSnapshot routes /app to the app through the auth service, and
// /down through an auth group whose endpoint refuses connections.
func extAuthSnapshot(t *testing.T, port int, app, auth string) string {
	down := FreePort(t) // nothing listens there
	return HTTPSnapshot(port, []string{app}, "", `    - name: authed
      matches: [{path: {type: PATH_PREFIX, value: /app}}]
      filters:
      - extAuth:
          backendGroup: auth
          pathPrefix: /auth/
          allowedRequestHeaders: [x-trace]
          allowedResponseHeaders: [x-user]
          timeout: 0.3s
          maxBodyBytes: 64
      backends: [{backendGroup: app, weight: 1}]
    - name: down
      matches: [{path: {type: PATH_PREFIX, value: /down}}]
      filters:
      - extAuth: {backendGroup: authdown}
      backends: [{backendGroup: app, weight: 1}]
`, `- name: auth
  endpoints:
  - {address: 127.0.0.1, port: `+strings.Split(auth, ":")[1]+`}
- name: authdown
  endpoints:
  - {address: 127.0.0.1, port: `+strconv.Itoa(down)+`}
`)
}

// The ExternalAuth filter over HTTP/1.1 on every engine, with a real
// authorization service: an allowed request reaches the app with the
// allowed response header (replacing the client's), a denied one gets the
// service's 401 with WWW-Authenticate and body, a redirect is passed on, a
// slow service and an unreachable one fail closed with 403, and a body is
// forwarded to the check. One client connection carries all of it.
func TestExtAuthHTTP1(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		auth, seen := startAuthService(t)
		app := appBackend(t)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, extAuthSnapshot(t, port, app.Addr(), auth.Addr())))

		c := Dial(t, port)
		br := bufio.NewReader(c)
		send := func(req string) (*http.Response, string) {
			t.Helper()
			io.WriteString(c, req)
			method, _, _ := strings.Cut(req, " ")
			return ReadResponse(t, br, method)
		}

		// Allowed: the check carries what the filter says, the app gets the
		// allowed header only, the client's X-User replaced.
		resp, body := send("GET /app/x?q=1 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer good\r\nX-Trace: t1\r\nX-Secret: s\r\nX-User: mallory\r\n\r\n")
		if resp.StatusCode != 200 || body != "app GET /app/x user=alice internal= body=" {
			t.Fatalf("allowed: %d %q", resp.StatusCode, body)
		}
		got := seen.get()
		if got.method != "GET" || got.path != "/auth/app/x?q=1" || got.host != "shop" ||
			got.header.Get("Authorization") != "Bearer good" || got.header.Get("X-Trace") != "t1" ||
			got.header.Get("X-Secret") != "" || got.header.Get("X-User") != "" ||
			got.header.Get("X-Forwarded-For") != "127.0.0.1" || got.header.Get("X-Forwarded-Proto") != "http" {
			t.Fatalf("check request: %s %s host %q headers %v", got.method, got.path, got.host, got.header)
		}

		// Denied: the service's answer goes to the client as it is.
		resp, body = send("GET /app/x HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer bad\r\n\r\n")
		if resp.StatusCode != 401 || body != `{"error":"unauthorized"}` ||
			resp.Header.Get("WWW-Authenticate") != `Bearer realm="flax"` || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("denied: %d %q %v", resp.StatusCode, body, resp.Header)
		}

		// A redirect to a login page.
		resp, _ = send("GET /app/login HTTP/1.1\r\nHost: shop\r\n\r\n")
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://login.example/start" {
			t.Fatalf("redirect: %d %v", resp.StatusCode, resp.Header)
		}

		// The body goes to the check (and then to the app).
		resp, body = send("POST /app/form HTTP/1.1\r\nHost: shop\r\nContent-Length: 6\r\n\r\nsecret")
		if resp.StatusCode != 200 || body != "app POST /app/form user=alice internal= body=secret" {
			t.Fatalf("body allowed: %d %q", resp.StatusCode, body)
		}
		if got := seen.get(); got.body != "secret" || got.header.Get("Content-Length") != "6" {
			t.Fatalf("check body %q, Content-Length %q", got.body, got.header.Get("Content-Length"))
		}
		// Over maxBodyBytes: 413 without a check.
		before := seen.get().n
		resp, _ = send("POST /app/form HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
		if resp.StatusCode != 413 || seen.get().n != before {
			t.Fatalf("large body: %d, checks %d -> %d", resp.StatusCode, before, seen.get().n)
		}
		c.Close()

		c = Dial(t, port)
		br = bufio.NewReader(c)
		// Too slow (the filter's timeout is 0.3s): 403.
		start := time.Now()
		resp, body = send("GET /app/slow HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer good\r\n\r\n")
		if resp.StatusCode != 403 || body != "external authorization failed\n" || time.Since(start) > 900*time.Millisecond {
			t.Fatalf("slow service: %d %q after %v", resp.StatusCode, body, time.Since(start))
		}
		// Unreachable: 403, and the connection still serves.
		resp, _ = send("GET /down/x HTTP/1.1\r\nHost: shop\r\n\r\n")
		if resp.StatusCode != 403 {
			t.Fatalf("service down: %d", resp.StatusCode)
		}
		resp, body = send("GET /app/again HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer good\r\n\r\n")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "app GET /app/again user=alice") {
			t.Fatalf("after failures: %d %q", resp.StatusCode, body)
		}
		_, reqs := app.Counts()
		if reqs != 3 {
			t.Fatalf("the app served %d requests, want 3 (the allowed ones)", reqs)
		}
		if conns, _ := auth.Counts(); conns > 3 {
			t.Errorf("the auth service saw %d connections; the checks should reuse pooled ones", conns)
		}
		if n := te.reg.LocalReplies(metrics.ReasonExtAuthDenied); n != 2 {
			t.Errorf("ext_auth_denied replies = %d, want 2", n)
		}
		if n := te.reg.LocalReplies(metrics.ReasonExtAuthError); n != 2 {
			t.Errorf("ext_auth_error replies = %d, want 2", n)
		}
	})
}

// The ExternalAuth filter for HTTP/2 clients: each stream's session takes
// the same check.
func TestExtAuthHTTP2(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		auth, seen := startAuthService(t)
		app := appBackend(t)
		port := FreePort(t)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, extAuthSnapshot(t, port, app.Addr(), auth.Addr())))
		cl := h2cClient()
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		do := func(method, path, authz, body string) (*http.Response, string) {
			t.Helper()
			req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
			if body == "" {
				req.Body = nil
			}
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			req.Header.Set("X-User", "mallory")
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("%s %s: answered over %s", method, path, resp.Proto)
			}
			return resp, string(b)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := "/app/c" + strconv.Itoa(i)
				resp, body := do("GET", p, "Bearer good", "")
				if resp.StatusCode != 200 || body != "app GET "+p+" user=alice internal= body=" {
					t.Errorf("allowed stream: %d %q", resp.StatusCode, body)
				}
			}()
		}
		wg.Wait()
		resp, body := do("GET", "/app/x", "", "")
		if resp.StatusCode != 401 || body != `{"error":"unauthorized"}` || resp.Header.Get("WWW-Authenticate") != `Bearer realm="flax"` {
			t.Fatalf("denied: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		resp, _ = do("GET", "/app/login", "", "")
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://login.example/start" {
			t.Fatalf("redirect: %d %v", resp.StatusCode, resp.Header)
		}
		resp, body = do("POST", "/app/form", "", "secret")
		if resp.StatusCode != 200 || body != "app POST /app/form user=alice internal= body=secret" || seen.get().body != "secret" {
			t.Fatalf("body: %d %q (check saw %q)", resp.StatusCode, body, seen.get().body)
		}
		// A streamed body (no Content-Length) reaches the check too.
		req, _ := http.NewRequest("POST", base+"/app/stream", io.MultiReader(strings.NewReader("sec"), strings.NewReader("ret")))
		sresp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("streamed POST: %v", err)
		}
		sb, _ := io.ReadAll(sresp.Body)
		sresp.Body.Close()
		if sresp.StatusCode != 200 || string(sb) != "app POST /app/stream user=alice internal= body=secret" || seen.get().body != "secret" {
			t.Fatalf("streamed body: %d %q (check saw %q)", sresp.StatusCode, sb, seen.get().body)
		}
		resp, _ = do("GET", "/app/slow", "Bearer good", "")
		if resp.StatusCode != 403 {
			t.Fatalf("slow service: %d", resp.StatusCode)
		}
		resp, _ = do("GET", "/down/x", "Bearer good", "")
		if resp.StatusCode != 403 {
			t.Fatalf("service down: %d", resp.StatusCode)
		}
		if _, reqs := app.Counts(); reqs != 10 {
			t.Fatalf("the app served %d requests, want 10", reqs)
		}
	})
}

// The check in front of an H2C backend group: the request the check allowed
// reaches the backend over HTTP/2 with the allowed header set.
func TestExtAuthH2CBackend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k kind) {
		auth, _ := startAuthService(t)
		app := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto+" user="+strings.Join(r.Header.Values("X-User"), ","))
		}))
		port := FreePort(t)
		y := strings.Replace(extAuthSnapshot(t, port, app.Addr(), auth.Addr()), "- name: app\n", "- name: app\n  protocol: H2C\n", 1)
		te := startEngine(t, k)
		te.apply(CompileYAML(t, te.reg, y))
		c := Dial(t, port)
		br := bufio.NewReader(c)
		for range 2 {
			io.WriteString(c, "GET /app/x HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer good\r\nX-User: mallory\r\n\r\n")
			resp, body := ReadResponse(t, br, "GET")
			if resp.StatusCode != 200 || body != "HTTP/2.0 user=alice" {
				t.Fatalf("allowed: %d %q", resp.StatusCode, body)
			}
		}
		io.WriteString(c, "GET /app/x HTTP/1.1\r\nHost: shop\r\n\r\n")
		if resp, _ := ReadResponse(t, br, "GET"); resp.StatusCode != 401 {
			t.Fatalf("denied: %d", resp.StatusCode)
		}
	})
}
