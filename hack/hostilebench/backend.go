package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
)

// serveBackends serves the backend every proxy forwards to on addr, and on silent a
// backend that accepts connections, reads what they send and never answers. The
// backend has no timeouts of its own, so whatever closes an attacker's connection is the
// proxy. GET / answers 100 bytes (after reading the whole request body), GET
// /large?n=BYTES answers BYTES bytes.
func serveBackends(addr, silent string) error {
	sl, err := net.Listen("tcp", silent)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // held until the proxy closes it
		}
	}()
	body := make([]byte, 100)
	for i := range body {
		body[i] = 'x'
	}
	chunk := make([]byte, 64<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "want n=BYTES", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	return http.ListenAndServe(addr, mux)
}
