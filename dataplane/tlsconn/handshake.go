package tlsconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Handshake limits a Server applies when its Options leave them zero.
const (
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultMaxHandshakeInput = 64 << 10
)

// Options tune a Server.
type Options struct {
	// HandshakeTimeout bounds a handshake from its first byte; zero means
	// DefaultHandshakeTimeout. The worker may also end one earlier with Abort.
	HandshakeTimeout time.Duration
	// MaxHandshakeInput bounds the client bytes a handshake may hold queued for
	// crypto/tls; zero means DefaultMaxHandshakeInput.
	MaxHandshakeInput int
	// Notify is called from the handshake goroutine when the handshake has
	// bytes to send or has finished; the worker then calls Output and Done
	// from its own loop. It must not block.
	Notify func(*Conn)
	// CryptoTLSOnly keeps every connection on crypto/tls after the handshake
	// (the path TLS 1.2 always takes), for comparison and as a switch.
	CryptoTLSOnly bool
	// RekeyAfter is the number of records sealed under one key after which
	// Seal sends a KeyUpdate first; zero means DefaultRekeyAfter.
	RekeyAfter uint64
}

// DefaultRekeyAfter keeps every key under the AES-GCM limit of RFC 8446 §5.5
// (2^24.5 full-size records).
const DefaultRekeyAfter = 1 << 24

// Server makes server-side connections for one listener configuration. A new
// certificate set is a new Server (or a GetCertificate/GetConfigForClient
// that returns it); connections already established are not affected.
type Server struct {
	user *tls.Config
	wrap *tls.Config
	opts Options
}

// withDefaults returns o with its zero limits set to the package defaults.
func (o Options) withDefaults() Options {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxHandshakeInput <= 0 {
		o.MaxHandshakeInput = DefaultMaxHandshakeInput
	}
	if o.RekeyAfter == 0 {
		o.RekeyAfter = DefaultRekeyAfter
	}
	return o
}

// NewServer returns a Server that handshakes with cfg. cfg's certificate
// selection (Certificates, GetCertificate, GetConfigForClient for SNI) is used
// as is; its KeyLogWriter is replaced per handshake by the capture of the
// traffic secrets, which never leave memory.
func NewServer(cfg *tls.Config, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{user: cfg, opts: opts}
	wrap := cfg.Clone()
	wrap.KeyLogWriter = nil
	wrap.GetConfigForClient = s.configForClient
	s.wrap = wrap
	return s
}

// configForClient resolves the user's configuration for this hello and gives
// the handshake its own copy whose KeyLogWriter captures the secrets.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	cfg := s.user
	if s.user.GetConfigForClient != nil {
		c, err := s.user.GetConfigForClient(hello)
		if err != nil {
			return nil, err
		}
		if c != nil {
			cfg = c
		}
	}
	h, ok := hello.Conn.(*handshake)
	if !ok {
		return nil, errors.New("tlsconn: handshake not driven by tlsconn")
	}
	cfg = cfg.Clone()
	cfg.GetConfigForClient = nil
	cfg.KeyLogWriter = (*keyLog)(h)
	return cfg, nil
}

// Client makes client-side connections with one configuration: a worker
// originating TLS to its backends. Its connections stay on crypto/tls after
// the handshake until crypto/tls has read the server's first session ticket
// into the cache the next handshakes resume from, then TLS 1.3 connections
// move to the record layer (see the package documentation).
type Client struct {
	cfg   *tls.Config
	cache tls.ClientSessionCache
	srv   *Server // carries the options of the connections
}

// NewClient returns a Client that handshakes with cfg (server name, roots,
// verification, client certificates as crypto/tls uses them). With cache
// set, every connection stores its session tickets there under its peer's
// name (NewConn) and offers them again on the next connection to the same
// peer; cfg's own ClientSessionCache is never used. Options.CryptoTLSOnly
// keeps the connections on crypto/tls.
func NewClient(cfg *tls.Config, cache tls.ClientSessionCache, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{cfg: cfg, cache: cache, srv: &Server{opts: opts}}
}

// NewConn returns a client connection to peer (an address, which keys its
// session tickets in the Client's cache: endpoints behind one server name do
// not share tickets). Nothing runs until Start.
func (cl *Client) NewConn(peer string) *Conn {
	c := cl.srv.NewConn()
	cfg := cl.cfg.Clone()
	cfg.KeyLogWriter = (*keyLog)(c.hs)
	if cl.cache != nil {
		cfg.ClientSessionCache = peerCache{cache: cl.cache, peer: peer, h: c.hs}
	} else {
		cfg.ClientSessionCache = nil
	}
	c.client = cfg
	return c
}

// PeerSessionCache returns a view of cache that keys sessions by peer (an
// address) as well as by crypto/tls's key (the server name, shared by every
// endpoint of a backend group), for a tls.Config that dials peer: a ticket
// is offered only to the endpoint that issued it.
func PeerSessionCache(cache tls.ClientSessionCache, peer string) tls.ClientSessionCache {
	return peerCache{cache: cache, peer: peer}
}

// peerCache keys a shared session cache by the peer's address as well as
// crypto/tls's key (the server name).
type peerCache struct {
	cache tls.ClientSessionCache
	peer  string
	h     *handshake // a Client's connection, told of the tickets it stores
}

func (p peerCache) Get(key string) (*tls.ClientSessionState, bool) {
	return p.cache.Get(p.peer + "|" + key)
}

func (p peerCache) Put(key string, cs *tls.ClientSessionState) {
	p.cache.Put(p.peer+"|"+key, cs)
	if p.h != nil && cs != nil {
		p.h.mu.Lock()
		p.h.ticket = true
		p.h.mu.Unlock()
	}
}

// NewConn returns a connection in its handshake. Nothing runs until the first
// Feed.
func (s *Server) NewConn() *Conn {
	c := &Conn{srv: s, rekeyAfter: s.opts.RekeyAfter}
	c.hs = &handshake{conn: c, max: s.opts.MaxHandshakeInput}
	c.hs.cond.L = &c.hs.mu
	return c
}

// handshake is the in-memory net.Conn crypto/tls runs over: Read blocks
// until the worker feeds bytes, Write appends to an outbox the worker drains.
// It lives only as long as the handshake, and on for connections that stay
// on crypto/tls.
type handshake struct {
	conn *Conn
	max  int

	mu        sync.Mutex
	cond      sync.Cond
	in        []byte
	inOff     int
	recRemain int // bytes of the record being delivered still to deliver
	out       []byte
	started   bool
	eof       bool
	aborted   bool
	done      bool
	err       error
	nonBlock  bool // after the handshake, for connections kept on crypto/tls

	// After the handshake, on crypto/tls: the records it has read whole
	// (Read gives it one record at a time) and written. A client connection
	// waiting to move to the record layer (Conn.takeOverClient) also keeps
	// the last record written, and learns of the session tickets stored.
	readRecs  uint64
	wroteRecs uint64
	waiting   bool
	lastOut   []byte
	wrSplit   bool // a write held a partial record: no move
	ticket    bool

	// Written by the handshake goroutine only, read by the worker after done.
	clientSecret []byte
	serverSecret []byte
	afterSecret  []byte // bytes written after the server's traffic secret was logged
	tc           *tls.Conn
	state        tls.ConnectionState
	record       bool // the record layer takes over
	rd, wr       direction
	suite        *suite
}

// wouldBlock tells crypto/tls there is no input yet; being temporary, it does
// not poison the tls.Conn (used only after the handshake).
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsconn: no input" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errAborted = errors.New("tlsconn: handshake aborted")

// Read gives crypto/tls the fed bytes, never past the end of the record it is
// reading, so no byte after the peer's Finished is consumed by it, and
// afterwards it holds at most the record it is reading.
func (h *handshake) Read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		if h.aborted {
			return 0, errAborted
		}
		avail := len(h.in) - h.inOff
		if h.recRemain == 0 && avail >= recordHeaderLen {
			h.recRemain = recordHeaderLen + (int(h.in[h.inOff+3])<<8 | int(h.in[h.inOff+4]))
		}
		if avail > 0 && h.recRemain > 0 {
			n := min(len(p), avail, h.recRemain)
			h.recRemain -= n
			if h.recRemain == 0 && h.nonBlock {
				h.readRecs++
			}
			copy(p, h.in[h.inOff:h.inOff+n])
			h.inOff += n
			if h.inOff == len(h.in) {
				h.in, h.inOff = h.in[:0], 0
			}
			return n, nil
		}
		if h.eof {
			return 0, io.EOF
		}
		if h.nonBlock {
			return 0, wouldBlock{}
		}
		h.cond.Wait()
	}
}

// Write queues bytes for the worker to send.
func (h *handshake) Write(p []byte) (int, error) {
	h.mu.Lock()
	if h.aborted {
		h.mu.Unlock()
		return 0, errAborted
	}
	h.out = append(h.out, p...)
	if h.serverSecret != nil && !h.nonBlock {
		h.afterSecret = append(h.afterSecret, p...)
	}
	if h.nonBlock {
		h.countWritten(p)
	}
	nonBlock := h.nonBlock
	h.mu.Unlock()
	if !nonBlock && h.conn.srv.opts.Notify != nil {
		h.conn.srv.opts.Notify(h.conn)
	}
	return len(p), nil
}

// countWritten counts the records crypto/tls wrote after the handshake (one
// whole record per write) and, while the connection waits to move to the
// record layer, keeps the last one.
func (h *handshake) countWritten(p []byte) {
	for len(p) > 0 {
		if len(p) < recordHeaderLen {
			h.wrSplit = true
			return
		}
		n := recordHeaderLen + (int(p[3])<<8 | int(p[4]))
		if n > len(p) {
			h.wrSplit = true
			return
		}
		h.wroteRecs++
		if h.waiting {
			h.lastOut = append(h.lastOut[:0], p[:n]...)
		}
		p = p[n:]
	}
}

// Close is how crypto/tls ends a handshake whose context expired.
func (h *handshake) Close() error {
	h.mu.Lock()
	h.aborted = true
	h.cond.Broadcast()
	h.mu.Unlock()
	return nil
}

type addr struct{}

func (addr) Network() string { return "tlsconn" }
func (addr) String() string  { return "tlsconn" }

func (h *handshake) LocalAddr() net.Addr              { return addr{} }
func (h *handshake) RemoteAddr() net.Addr             { return addr{} }
func (h *handshake) SetDeadline(time.Time) error      { return nil }
func (h *handshake) SetReadDeadline(time.Time) error  { return nil }
func (h *handshake) SetWriteDeadline(time.Time) error { return nil }
func (h *handshake) feed(p []byte) (start bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.in)-h.inOff+len(p) > h.max && !h.nonBlock {
		return false, errHandshakeTooLarge
	}
	if h.inOff > 0 && len(h.in)+len(p) > cap(h.in) {
		h.in = h.in[:copy(h.in, h.in[h.inOff:])]
		h.inOff = 0
	}
	h.in = append(h.in, p...)
	start = !h.started
	h.started = true
	h.cond.Signal()
	return start, nil
}

var errHandshakeTooLarge = errors.New("tlsconn: handshake input over its limit")

// The key log labels of the application traffic secrets, with the space
// that ends them.
var (
	clientTrafficLabel = []byte("CLIENT_TRAFFIC_SECRET_0 ")
	serverTrafficLabel = []byte("SERVER_TRAFFIC_SECRET_0 ")
)

// keyLog is the handshake's KeyLogWriter: it keeps the TLS 1.3 application
// traffic secrets (crypto/tls writes one line per secret, NSS key log format).
type keyLog handshake

func (k *keyLog) Write(line []byte) (int, error) {
	h := (*handshake)(k)
	// Only two of the handshake's five lines matter: the others are
	// skipped before being split.
	var dst *[]byte
	switch {
	case bytes.HasPrefix(line, clientTrafficLabel):
		dst = &h.clientSecret
	case bytes.HasPrefix(line, serverTrafficLabel):
		dst = &h.serverSecret
	default:
		return len(line), nil
	}
	fields := bytes.Fields(line)
	if len(fields) != 3 {
		return len(line), nil
	}
	secret := make([]byte, hex.DecodedLen(len(fields[2])))
	if _, err := hex.Decode(secret, fields[2]); err != nil {
		return 0, err
	}
	h.mu.Lock()
	*dst = secret
	h.mu.Unlock()
	return len(line), nil
}

// run is the handshake goroutine.
func (h *handshake) run() {
	ctx, cancel := context.WithTimeout(context.Background(), h.conn.srv.opts.HandshakeTimeout)
	var tc *tls.Conn
	if h.conn.client != nil {
		tc = tls.Client(h, h.conn.client)
	} else {
		tc = tls.Server(h, h.conn.srv.wrap)
	}
	err := tc.HandshakeContext(ctx)
	cancel()
	if err == nil {
		err = h.takeOver(tc)
	}
	h.mu.Lock()
	h.done, h.err = true, err
	h.mu.Unlock()
	if h.conn.srv.opts.Notify != nil {
		h.conn.srv.opts.Notify(h.conn)
	}
}

// takeOver decides who protects records from now on. A TLS 1.3 connection
// with a suite the record layer implements gets its keys from the captured
// secrets; the records crypto/tls already sent under the server's
// application key (NewSessionTicket) are opened again to learn the write
// sequence number, which also checks the derived key against crypto/tls.
// Anything else stays on the tls.Conn.
func (h *handshake) takeOver(tc *tls.Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = tc.ConnectionState()
	h.suite = suiteByID(h.state.CipherSuite)
	if h.state.Version != tls.VersionTLS13 || h.suite == nil || h.conn.srv.opts.CryptoTLSOnly || h.conn.client != nil {
		h.tc, h.nonBlock = tc, true
		h.afterSecret = nil
		return nil
	}
	if h.clientSecret == nil || h.serverSecret == nil {
		return errors.New("tlsconn: traffic secrets were not logged")
	}
	if err := h.rd.setSecret(h.suite, h.clientSecret); err != nil {
		return err
	}
	if err := h.wr.setSecret(h.suite, h.serverSecret); err != nil {
		return err
	}
	sent := h.afterSecret
	h.afterSecret = nil
	for len(sent) > 0 {
		if len(sent) < recordHeaderLen {
			return errors.New("tlsconn: partial record in the handshake output")
		}
		n := recordHeaderLen + (int(sent[3])<<8 | int(sent[4]))
		if n > len(sent) {
			return errors.New("tlsconn: partial record in the handshake output")
		}
		rec := append([]byte(nil), sent[:n]...)
		sent = sent[n:]
		if rec[0] != recordTypeApplicationData || n < recordHeaderLen+tagLen+1 {
			if h.wr.seq > 0 {
				return errors.New("tlsconn: unexpected record after the application keys")
			}
			continue
		}
		_, err := h.wr.aead.Open(rec[recordHeaderLen:recordHeaderLen], h.wr.makeNonce(), rec[recordHeaderLen:], rec[:recordHeaderLen])
		if err != nil {
			if h.wr.seq > 0 {
				return errors.New("tlsconn: derived server key does not match crypto/tls")
			}
			continue // the server's Finished, under the handshake key
		}
		h.wr.seq++
	}
	h.record = true
	return nil
}
