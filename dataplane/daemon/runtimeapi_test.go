package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/dataplane/engine/enginetest"
	"github.com/flaxlb/flax/dataplane/lb"
)

// call sends method url to the admin server and returns the status and body.
func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRuntimeAPI drives the admin server's /backends routes over loopback and
// checks that traffic, /config_dump and /metrics follow.
func TestRuntimeAPI(t *testing.T) {
	a, b, x := named(t, "a"), named(t, "b"), named(t, "x")
	port := enginetest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	adminBase := fmt.Sprintf("http://127.0.0.1:%d", enginetest.FreePort(t))
	s, err := lb.HTTPProxy(fmt.Sprintf("127.0.0.1:%d", port), a, b)
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, Options{AdminAddr: strings.TrimPrefix(adminBase, "http://")}, s)
	api := adminBase + "/backends/" + lb.DefaultGroup
	enginetest.WaitFor(t, "the admin server", 5*time.Second, func() bool {
		resp, err := http.Get(adminBase + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	code, body := call(t, "GET", api)
	var st GroupStatus
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Group != lb.DefaultGroup || len(st.Backends) != 2 ||
		st.Backends[1] != (Backend{Address: b, Weight: 1, State: StateReady, Healthy: true}) {
		t.Fatalf("GET %s = %d %s", api, code, body)
	}
	code, body = call(t, "GET", adminBase+"/backends")
	var all []GroupStatus
	if code != 200 || json.Unmarshal([]byte(body), &all) != nil || len(all) != 1 || len(all[0].Backends) != 2 {
		t.Fatalf("GET /backends = %d %s", code, body)
	}

	if code, body := call(t, "POST", api+"?address="+x+"&weight=3"); code != 201 || !strings.Contains(body, `"address": "`+x+`"`) || !strings.Contains(body, `"weight": 3`) {
		t.Fatalf("add = %d %s", code, body)
	}
	if got := spread(t, url, 6); got["x"] != 2 {
		t.Errorf("after adding x: %v", got)
	}
	if code, body := call(t, "DELETE", api+"?address="+a); code != 200 || strings.Contains(body, a) {
		t.Fatalf("remove = %d %s", code, body)
	}
	if got := spread(t, url, 4); got["a"] != 0 || got["b"] != 2 || got["x"] != 2 {
		t.Errorf("after removing a: %v", got)
	}
	if code, body := call(t, "POST", api+"/drain?address="+b); code != 202 || !strings.Contains(body, `"state": "draining"`) {
		t.Fatalf("drain = %d %s", code, body)
	}
	enginetest.WaitFor(t, "the drained backend to leave", 5*time.Second, func() bool {
		_, body := call(t, "GET", api)
		return !strings.Contains(body, b)
	})
	if got := spread(t, url, 3); got["x"] != 3 {
		t.Errorf("after draining b: %v", got)
	}

	// Bad input gets a 4xx with a JSON error.
	for _, tc := range []struct {
		method, url string
		code        int
		want        string
	}{
		{"POST", api, 400, "address parameter"},
		{"POST", api + "?address=backend:80", 400, "want IP:port"},
		{"POST", api + "?address=127.0.0.1:9&weight=lots", 400, "weight"},
		{"POST", api + "?address=127.0.0.1:9&weight=2000000", 400, "weight must be at most"},
		{"POST", api + "?address=" + x, 409, "already in the group"},
		{"DELETE", api + "?address=" + a, 404, "not in the group"},
		{"POST", api + "/drain?address=127.0.0.1:1", 404, "not in the group"},
		{"POST", api + "/drain?address=" + x + "&timeout=soon", 400, `timeout \"soon\"`},
		{"POST", api + "/drain?address=" + x + "&timeout=-1s", 400, "positive duration"},
		{"GET", adminBase + "/backends/nope", 404, "backend group does not exist"},
		{"PUT", api, 405, ""},
	} {
		code, body := call(t, tc.method, tc.url)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s = %d %s, want %d %q", tc.method, tc.url, code, body, tc.code, tc.want)
		}
	}

	// /config_dump and /metrics show the changes.
	_, dump := call(t, "GET", adminBase+"/config_dump")
	var dumped dataplanev1.Snapshot
	if err := protojson.Unmarshal([]byte(dump), &dumped); err != nil {
		t.Fatalf("config dump: %v\n%s", err, dump)
	}
	if eps := dumped.GetBackendGroups()[0].GetEndpoints(); len(eps) != 1 || eps[0].GetWeight() != 3 || fmt.Sprintf("%s:%d", eps[0].GetAddress(), eps[0].GetPort()) != x {
		t.Errorf("config dump endpoints after the changes: %v", eps)
	}
	_, m := call(t, "GET", adminBase+"/metrics")
	for _, want := range []string{
		`flax_runtime_backend_changes_total{op="add"} 1`, `flax_runtime_backend_changes_total{op="remove"} 1`,
		`flax_runtime_backend_changes_total{op="drain"} 1`, `flax_runtime_backend_changes_total{op="drained"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRuntimeAPIAccess(t *testing.T) {
	d, err := New(Options{Engine: EngineNetpoll, Workers: 1, RuntimeAPI: "sometimes"})
	if err == nil || !strings.Contains(err.Error(), "runtime API") {
		t.Fatalf("bad RuntimeAPI: %v, %v", d, err)
	}
	for access, want := range map[string]int{"": 403, RuntimeAPILoopback: 403, RuntimeAPIAny: 503, RuntimeAPIOff: 404} {
		d, err := New(Options{Engine: EngineNetpoll, Workers: 1, AdminAddr: "127.0.0.1:0", RuntimeAPI: access})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/backends/x", nil)
		req.RemoteAddr = "10.0.0.1:4000"
		rec := httptest.NewRecorder()
		d.admin.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("runtime API %q from a remote client: %d %s, want %d", access, rec.Code, rec.Body, want)
		}
	}
}
