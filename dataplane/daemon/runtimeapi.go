package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flaxlb/flax/dataplane/admin"
)

// Access to the runtime API on the admin server (Options.RuntimeAPI).
const (
	// RuntimeAPILoopback serves it to loopback clients only (the default).
	RuntimeAPILoopback = "loopback"
	// RuntimeAPIAny serves it to every client that reaches the admin address.
	RuntimeAPIAny = "any"
	// RuntimeAPIOff does not serve it.
	RuntimeAPIOff = "off"
)

// GroupStatus is what the runtime API answers about a backend group.
type GroupStatus struct {
	// Group is the backend group's name.
	Group string `json:"group"`
	// InFlight is the requests in flight to the group, over all its endpoints.
	InFlight int64 `json:"inFlight"`
	// Backends are its endpoints in config order.
	Backends []Backend `json:"backends"`
}

// runtimeRoutes returns the runtime API's admin routes: list, add, remove and drain
// the endpoints of a backend group through its Pool.
//
//	GET    /backends                             every group
//	GET    /backends/{group}                     one group
//	POST   /backends/{group}?address=IP:PORT[&weight=N]   add (201)
//	DELETE /backends/{group}?address=IP:PORT     remove at once
//	POST   /backends/{group}/drain?address=IP:PORT[&timeout=D]   drain (202)
//
// Answers are JSON: the group's GroupStatus after the change, or {"error": "..."}
// with 400 (bad address or weight), 404 (no such group or backend), 409 (backend
// already there) or 503 (no config yet).
func (d *Daemon) runtimeRoutes(loopbackOnly bool) []admin.Route {
	h := d.RuntimeHandler()
	var out []admin.Route
	for _, p := range []string{"GET /backends", "GET /backends/{group}", "POST /backends/{group}", "DELETE /backends/{group}", "POST /backends/{group}/drain"} {
		out = append(out, admin.Route{Pattern: p, Handler: h, LoopbackOnly: loopbackOnly})
	}
	return out
}

// RuntimeHandler returns the runtime API (see the admin server's /backends routes)
// as one handler, for a program that serves it on its own server.
func (d *Daemon) RuntimeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backends", d.listGroups)
	mux.HandleFunc("GET /backends/{group}", d.withPool(func(p *Pool, _ *http.Request) (int, error) { return http.StatusOK, nil }))
	mux.HandleFunc("POST /backends/{group}", d.withPool(func(p *Pool, r *http.Request) (int, error) {
		addr, err := addressParam(r)
		if err != nil {
			return 0, err
		}
		var weight uint64
		if w := r.FormValue("weight"); w != "" {
			if weight, err = strconv.ParseUint(w, 10, 32); err != nil {
				return http.StatusBadRequest, errors.New("weight: want a whole number from 1 to 1000000")
			}
		}
		return http.StatusCreated, p.AddWeighted(addr, uint32(weight))
	}))
	mux.HandleFunc("DELETE /backends/{group}", d.withPool(func(p *Pool, r *http.Request) (int, error) {
		addr, err := addressParam(r)
		if err != nil {
			return 0, err
		}
		return http.StatusOK, p.Remove(addr)
	}))
	mux.HandleFunc("POST /backends/{group}/drain", d.withPool(func(p *Pool, r *http.Request) (int, error) {
		addr, err := addressParam(r)
		if err != nil {
			return 0, err
		}
		var timeout time.Duration
		if t := r.FormValue("timeout"); t != "" {
			if timeout, err = time.ParseDuration(t); err != nil || timeout <= 0 {
				return 0, fmt.Errorf("timeout %q: want a positive duration such as 10s", t)
			}
		}
		return http.StatusAccepted, p.DrainWithin(addr, timeout)
	}))
	return mux
}

// addressParam returns the address parameter of a request.
func addressParam(r *http.Request) (string, error) {
	a := r.FormValue("address")
	if a == "" {
		return "", errors.New("the address parameter (IP:port) is required")
	}
	return a, nil
}

// withPool serves one group: do changes it (or not) and returns the status to
// answer with; the answer is the group's state after it.
func (d *Daemon) withPool(do func(*Pool, *http.Request) (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := d.Pool(r.PathValue("group"))
		if err != nil {
			writeError(w, err)
			return
		}
		code, err := do(p, r)
		if err != nil {
			writeError(w, err)
			return
		}
		st, err := p.status()
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, code, st)
	}
}

// status returns the pool's GroupStatus.
func (p *Pool) status() (GroupStatus, error) {
	list, err := p.List()
	if err != nil {
		return GroupStatus{}, err
	}
	return GroupStatus{Group: p.group, InFlight: p.InFlight(), Backends: list}, nil
}

func (d *Daemon) listGroups(w http.ResponseWriter, _ *http.Request) {
	cur := d.Current()
	if cur == nil {
		writeError(w, ErrNoConfig)
		return
	}
	out := []GroupStatus{}
	for _, g := range cur.GetBackendGroups() {
		p, err := d.Pool(g.GetName())
		if err != nil {
			continue // gone in a config applied meanwhile
		}
		if st, err := p.status(); err == nil {
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// writeError answers err as JSON with the status its kind calls for.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrUnknownGroup), errors.Is(err, ErrBackendNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBackendExists):
		code = http.StatusConflict
	case errors.Is(err, ErrNoConfig):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
