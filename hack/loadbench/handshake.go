package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/flaxlb/flax/hack/internal/benchproc"
)

// useHandshakes is -handshakes: the load is handshakeLoad's, a full TLS handshake and one
// request per connection.
var useHandshakes bool

// handshakeConns is how many connections handshakeLoad keeps in progress at once: enough
// that the client, on its own core, stays busy even when a proxy takes tens of
// milliseconds per connection (nginx and HAProxy took about 40 ms at the median with 16
// connections, flax about 10 ms, which made the proxies' handshake rates, and so their
// CPU per handshake, not comparable).
const handshakeConns = 64

// handshakeStats is one run of handshakeLoad.
type handshakeStats struct {
	ok       int           // connections that completed a handshake and got a 200
	errs     int           // connections that failed
	firstErr error         // the first failure
	elapsed  time.Duration // how long the run took
	lat      []time.Duration
}

// clientTLS is the client side of every connection: TLS 1.3 only, X25519 only (no
// hybrid post-quantum share, so that every proxy does the same key exchange), and no
// session cache, so that every connection is a full handshake (ECDHE and a certificate
// signature), never a resumption. The certificate is self-signed: its chain is not
// checked, but its CertificateVerify signature is.
func clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		InsecureSkipVerify: true, //nolint:gosec // a self-signed certificate made for the run
		ServerName:         "localhost",
		ClientSessionCache: nil,
		NextProtos:         []string{"http/1.1"},
	}
}

// handshakeLoad opens connections to addr for d, handshakeConns at a time: each dials,
// completes a full TLS 1.3 handshake, sends one GET with Connection: close, reads the
// response and closes. It runs in this process, which -handshakes pins to the load
// CPU.
func handshakeLoad(addr string, d time.Duration) handshakeStats {
	cfg := clientTLS()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var st handshakeStats
	start := time.Now()
	var wg sync.WaitGroup
	for range handshakeConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReaderSize(nil, 4096)
			var lat []time.Duration
			ok, errs := 0, 0
			var firstErr error
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := oneHandshake(addr, cfg, br); err != nil {
					if ctx.Err() != nil {
						break // cut short by the end of the run
					}
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			st.ok += ok
			st.errs += errs
			if st.firstErr == nil {
				st.firstErr = firstErr
			}
			st.lat = append(st.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st
}

// oneHandshake is one connection of handshakeLoad.
func oneHandshake(addr string, cfg *tls.Config, br *bufio.Reader) error {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if s := c.ConnectionState(); s.Version != tls.VersionTLS13 || s.DidResume {
		return fmt.Errorf("not a full TLS 1.3 handshake (version %x, resumed %v)", s.Version, s.DidResume)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// fill sets r's figures from st: handshakes per second, latency of a whole connection
// (dial, handshake, request, response) at p50 and p99, failures.
func (st *handshakeStats) fill(r *result) {
	r.requests = float64(st.ok)
	if st.elapsed > 0 {
		r.rps = float64(st.ok) / st.elapsed.Seconds()
	}
	if len(st.lat) > 0 {
		slices.Sort(st.lat)
		r.p50 = st.lat[len(st.lat)/2]
		r.p99 = st.lat[len(st.lat)*99/100]
	}
	if st.errs > 0 {
		r.errors = fmt.Sprintf("%d failed connections, first: %v", st.errs, st.firstErr)
	}
}

// pinForHandshakes pins this process (the handshake client) to cpu, with one P: the
// client is load like wrk, on the load CPU beside the backend.
func pinForHandshakes(cpu int) error {
	runtime.GOMAXPROCS(1)
	if err := benchproc.PinSelf(cpu); err != nil {
		return errors.Join(errors.New("pin the handshake client"), err)
	}
	return nil
}
