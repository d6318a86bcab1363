package tlsconn

import (
	"crypto/tls"
	"errors"
	"io"
)

// Record layer sizes (RFC 8446 §5.1, §5.2).
const (
	recordHeaderLen = 5
	tagLen          = 16
	// MaxPlaintext is the most application data one record carries.
	MaxPlaintext  = 1 << 14
	maxCiphertext = MaxPlaintext + 256
	// MaxRecordLen is the longest record a peer may send: Open needs at most
	// this many bytes buffered to make progress.
	MaxRecordLen = recordHeaderLen + maxCiphertext
	// RecordOverhead is what the record layer adds to each record Seal makes:
	// header, inner content type and AEAD tag.
	RecordOverhead = recordHeaderLen + 1 + tagLen
	// keyUpdateRecordLen is one sealed KeyUpdate.
	keyUpdateRecordLen = RecordOverhead + 5
)

const (
	recordTypeChangeCipherSpec = 20
	recordTypeAlert            = 21
	recordTypeHandshake        = 22
	recordTypeApplicationData  = 23

	typeNewSessionTicket = 4
	typeKeyUpdate        = 24
)

// maxUseless bounds consecutive records that deliver no application data
// (empty records, KeyUpdates), as crypto/tls does.
const maxUseless = 16

type mode uint8

const (
	modeHandshake mode = iota
	modeRecord         // this package protects records
	modeCryptoTLS      // the tls.Conn does, over the in-memory conn
	modeFailed
)

// Conn is one TLS connection driven by its worker, server side (Server) or
// client side (Client). It is not safe for concurrent use: only the worker
// calls its methods (the handshake goroutine reaches the worker through
// Options.Notify).
type Conn struct {
	srv    *Server
	client *tls.Config // the client side's configuration; nil on the server side
	mode   mode
	hs     *handshake

	state tls.ConnectionState
	suite *suite
	rd    direction
	wr    direction
	tc    *tls.Conn // modeCryptoTLS
	plain []byte    // modeCryptoTLS: what tls.Conn.Read decrypts into
	sbuf  []byte    // modeCryptoTLS: head and body joined for one Write
	// modeCryptoTLS: the framing of the records fed, so that tls.Conn.Read
	// is called only when a whole record waits (each call that finds
	// nothing costs crypto/tls an allocation): fedRecs counts the whole
	// records fed (handshake.readRecs those it has read); hdr and recLeft
	// follow the record being fed. A client connection waiting to move to
	// the record layer (takeOverClient) keeps the last record fed in lastIn.
	fedRecs uint64
	hdr     [recordHeaderLen]byte
	hdrLen  int
	recLeft int
	waiting bool
	lastIn  []byte
	// A post-handshake NewSessionTicket (client side, record layer) still
	// to skip, in bytes.
	skip int

	err        error // sticky: the first error ends the connection
	rekeyAfter uint64
	useless    int
	// A post-handshake handshake message split across records; only KeyUpdate
	// (5 bytes with its header) is accepted, so it fits.
	hsMsg    [8]byte
	hsMsgLen int
	// Records sealed outside Seal (our KeyUpdate) that go out before the next
	// records Seal makes.
	pending    [2 * keyUpdateRecordLen]byte
	pendingLen int
}

// Start starts a client connection's handshake goroutine, which writes the
// ClientHello (Notify, then Output). A server connection starts with its
// first Feed; on one already started Start does nothing.
func (c *Conn) Start() {
	if c.mode != modeHandshake {
		return
	}
	h := c.hs
	h.mu.Lock()
	start := !h.started
	h.started = true
	h.mu.Unlock()
	if start {
		startHandshake(h)
	}
}

// Feed hands bytes received during the handshake to crypto/tls (copied). The
// first call starts the handshake goroutine, unless Start did.
func (c *Conn) Feed(p []byte) error {
	if c.mode != modeHandshake {
		return errors.New("tlsconn: Feed after the handshake")
	}
	start, err := c.hs.feed(p)
	if err != nil {
		c.Abort()
		return err
	}
	if start {
		startHandshake(c.hs)
	}
	return nil
}

// CloseRead tells the handshake the peer closed its side.
func (c *Conn) CloseRead() {
	if c.hs != nil {
		c.hs.mu.Lock()
		c.hs.eof = true
		c.hs.cond.Broadcast()
		c.hs.mu.Unlock()
	}
}

// Abort ends a handshake in progress (timeout, shedding, the worker closing the
// connection); its goroutine returns as soon as it next reads or writes.
func (c *Conn) Abort() {
	if c.mode == modeHandshake && c.hs != nil {
		_ = c.hs.Close()
	}
}

// Output appends to dst the handshake bytes waiting to be sent and returns it.
func (c *Conn) Output(dst []byte) []byte {
	if c.hs == nil {
		return dst
	}
	c.hs.mu.Lock()
	dst = append(dst, c.hs.out...)
	c.hs.out = c.hs.out[:0]
	c.hs.mu.Unlock()
	return dst
}

// Done reports whether the handshake has finished, and its error. Once it
// returns true without error, the worker sends what Output still holds, takes
// Leftover back into its receive buffer and moves to Open and Seal.
func (c *Conn) Done() (bool, error) {
	switch c.mode {
	case modeRecord, modeCryptoTLS:
		return true, nil
	case modeFailed:
		return true, c.err
	}
	h := c.hs
	h.mu.Lock()
	done, err := h.done, h.err
	h.mu.Unlock()
	if !done {
		return false, nil
	}
	if err != nil {
		c.mode, c.err = modeFailed, err
		return true, err
	}
	c.state, c.suite = h.state, h.suite
	if h.record {
		c.mode, c.rd, c.wr = modeRecord, h.rd, h.wr
	} else {
		c.mode, c.tc = modeCryptoTLS, h.tc
		if c.client != nil && c.state.Version == tls.VersionTLS13 && c.suite != nil && !c.srv.opts.CryptoTLSOnly {
			h.mu.Lock()
			if h.clientSecret != nil && h.serverSecret != nil {
				h.waiting, c.waiting = true, true
				c.lastIn = make([]byte, 0, MaxRecordLen)
			}
			h.mu.Unlock()
		}
	}
	return true, nil
}

// Leftover appends to dst the bytes the peer sent after its Finished, which
// crypto/tls never read, and returns it; the worker passes them to Open first.
// Call it once, after Done.
func (c *Conn) Leftover(dst []byte) []byte {
	h := c.hs
	if h == nil || c.mode == modeHandshake {
		return dst
	}
	h.mu.Lock()
	dst = append(dst, h.in[h.inOff:]...)
	h.in, h.inOff = h.in[:0], 0
	h.mu.Unlock()
	if c.mode == modeRecord {
		c.hs = nil // the handshake's memory goes with it
	}
	return dst
}

// ConnectionState is crypto/tls's state of the finished handshake (version,
// suite, SNI, ALPN).
func (c *Conn) ConnectionState() tls.ConnectionState { return c.state }

// RecordLayer reports whether this package protects the connection's records
// (TLS 1.3) rather than crypto/tls (TLS 1.2, or Options.CryptoTLSOnly; a
// client connection until crypto/tls has read the server's first session
// ticket).
func (c *Conn) RecordLayer() bool { return c.mode == modeRecord }

// Alert is a TLS alert description (RFC 8446 §6).
type Alert uint8

// The alerts the record layer sends or recognises.
const (
	AlertCloseNotify       Alert = 0
	AlertUnexpectedMessage Alert = 10
	AlertBadRecordMAC      Alert = 20
	AlertRecordOverflow    Alert = 22
	AlertDecodeError       Alert = 50
	AlertIllegalParameter  Alert = 47
	AlertInternalError     Alert = 80
)

// Error is a fatal record-layer error: an alert we must send (Remote false)
// or one the peer sent (Remote true).
type Error struct {
	Alert  Alert
	Remote bool
	Msg    string
}

func (e *Error) Error() string {
	if e.Remote {
		return "tlsconn: peer sent alert " + itoa(int(e.Alert))
	}
	return "tlsconn: " + e.Msg + " (alert " + itoa(int(e.Alert)) + ")"
}

func itoa(n int) string {
	var b [4]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Errors with no allocation on the data path.
var (
	errBadRecordMAC   = &Error{Alert: AlertBadRecordMAC, Msg: "record authentication failed"}
	errRecordOverflow = &Error{Alert: AlertRecordOverflow, Msg: "record too long"}
	errUnexpected     = &Error{Alert: AlertUnexpectedMessage, Msg: "unexpected record"}
	errUnexpectedHS   = &Error{Alert: AlertUnexpectedMessage, Msg: "unexpected post-handshake message"}
	errKeyUpdate      = &Error{Alert: AlertDecodeError, Msg: "malformed KeyUpdate"}
	errBadKeyUpdate   = &Error{Alert: AlertIllegalParameter, Msg: "KeyUpdate request not 0 or 1"}
	errTooManyEmpty   = &Error{Alert: AlertUnexpectedMessage, Msg: "too many records without data"}
	errSeqExhausted   = &Error{Alert: AlertInternalError, Msg: "sequence number exhausted"}
	errBadAlert       = &Error{Alert: AlertDecodeError, Msg: "malformed alert"}
	errNotEstablished = errors.New("tlsconn: handshake not finished")
)

// Open decrypts, in place, the record at the start of in. It returns the
// application data (a slice of in, possibly empty) and how many bytes of in the
// record took; n == 0 without error means in holds no complete record yet
// (a record is at most MaxRecordLen bytes). Call it until it returns n == 0.
// A close_notify returns io.EOF; any other failure an *Error whose alert the
// worker sends (AppendAlert) before closing. No plaintext of a record that
// fails authentication is ever returned.
//
// On a crypto/tls connection the plaintext is in the Conn's own buffer and
// n == len(in) (the bytes are queued for tls.Conn).
func (c *Conn) Open(in []byte) (plain []byte, n int, err error) {
	if c.err != nil {
		return nil, 0, c.err
	}
	switch c.mode {
	case modeRecord:
	case modeCryptoTLS:
		return c.openCryptoTLS(in)
	default:
		return nil, 0, errNotEstablished
	}
	if len(in) < recordHeaderLen {
		return nil, 0, nil
	}
	length := int(in[3])<<8 | int(in[4])
	if length > maxCiphertext {
		return nil, 0, c.fail(errRecordOverflow)
	}
	if in[0] != recordTypeApplicationData {
		return nil, 0, c.fail(errUnexpected)
	}
	n = recordHeaderLen + length
	if len(in) < n {
		return nil, 0, nil
	}
	if length < tagLen+1 {
		return nil, 0, c.fail(errBadRecordMAC)
	}
	if c.rd.seq == ^uint64(0) {
		return nil, 0, c.fail(errSeqExhausted)
	}
	body := in[recordHeaderLen:n]
	inner, aerr := c.rd.aead.Open(body[:0], c.rd.makeNonce(), body, in[:recordHeaderLen])
	if aerr != nil {
		return nil, 0, c.fail(errBadRecordMAC)
	}
	c.rd.seq++
	i := len(inner) - 1
	for i >= 0 && inner[i] == 0 {
		i--
	}
	if i < 0 {
		return nil, 0, c.fail(errUnexpected)
	}
	typ, data := inner[i], inner[:i]
	if len(data) > MaxPlaintext {
		return nil, 0, c.fail(errRecordOverflow)
	}
	if typ != recordTypeHandshake && (c.hsMsgLen > 0 || c.skip > 0) {
		return nil, 0, c.fail(errUnexpectedHS)
	}
	switch typ {
	case recordTypeApplicationData:
		if len(data) > 0 {
			c.useless = 0
			return data, n, nil
		}
	case recordTypeAlert:
		if len(data) != 2 {
			return nil, 0, c.fail(errBadAlert)
		}
		if Alert(data[1]) == AlertCloseNotify {
			c.err = io.EOF
			return nil, n, io.EOF
		}
		return nil, 0, c.fail(&Error{Alert: Alert(data[1]), Remote: true})
	case recordTypeHandshake:
		if err := c.handshakeMessages(data); err != nil {
			return nil, 0, c.fail(err)
		}
	default:
		return nil, 0, c.fail(errUnexpected)
	}
	c.useless++
	if c.useless > maxUseless {
		return nil, 0, c.fail(errTooManyEmpty)
	}
	return data[:0], n, nil
}

func (c *Conn) fail(err error) error {
	c.err = err
	return err
}

// handshakeMessages handles the post-handshake messages of one record. A
// client may send only KeyUpdate (NewSessionTicket is the server's, and the
// server never asks for post-handshake authentication); a server also
// NewSessionTicket, which a client connection skips.
func (c *Conn) handshakeMessages(data []byte) error {
	if len(data) == 0 {
		return errUnexpectedHS // zero-length handshake fragments are not allowed
	}
	for len(data) > 0 {
		if c.skip > 0 {
			k := min(len(data), c.skip)
			c.skip -= k
			data = data[k:]
			continue
		}
		need := 4
		if c.hsMsgLen >= 4 {
			need = 4 + (int(c.hsMsg[1])<<16 | int(c.hsMsg[2])<<8 | int(c.hsMsg[3]))
		}
		k := copy(c.hsMsg[c.hsMsgLen:need], data)
		c.hsMsgLen += k
		data = data[k:]
		if c.hsMsgLen < 4 {
			continue
		}
		if c.hsMsg[0] == typeNewSessionTicket && c.client != nil {
			// A server may send more tickets: crypto/tls kept the first,
			// which is the one a resumption offers.
			c.skip = int(c.hsMsg[1])<<16 | int(c.hsMsg[2])<<8 | int(c.hsMsg[3])
			c.hsMsgLen = 0
			continue
		}
		if c.hsMsg[0] != typeKeyUpdate {
			return errUnexpectedHS
		}
		if c.hsMsg[1] != 0 || c.hsMsg[2] != 0 || c.hsMsg[3] != 1 {
			return errKeyUpdate
		}
		if c.hsMsgLen < 5 {
			continue
		}
		// A KeyUpdate changes keys, so it must end its record (RFC 8446 §5.1).
		if len(data) > 0 {
			return errUnexpectedHS
		}
		c.hsMsgLen = 0
		req := c.hsMsg[4]
		if req > 1 {
			return errBadKeyUpdate
		}
		if req == 1 && c.pendingLen == 0 {
			if err := c.sendKeyUpdate(false); err != nil {
				return err
			}
		}
		if err := c.rd.update(c.suite); err != nil {
			return &Error{Alert: AlertInternalError, Msg: err.Error()}
		}
	}
	return nil
}

// sendKeyUpdate seals a KeyUpdate under the current write key into pending,
// then moves the write direction to the next secret.
func (c *Conn) sendKeyUpdate(request bool) error {
	msg := [5]byte{typeKeyUpdate, 0, 0, 1, 0}
	if request {
		msg[4] = 1
	}
	out, err := c.sealRecord(c.pending[:c.pendingLen], recordTypeHandshake, msg[:], nil)
	if err != nil {
		return err
	}
	c.pendingLen = len(out)
	if err := c.wr.update(c.suite); err != nil {
		return &Error{Alert: AlertInternalError, Msg: err.Error()}
	}
	return nil
}

// RequestKeyUpdate sends a KeyUpdate asking the client to update its key too;
// the record goes out with the next Seal or AppendPending.
func (c *Conn) RequestKeyUpdate() error {
	if c.mode != modeRecord {
		return errNotEstablished
	}
	if c.pendingLen+keyUpdateRecordLen > len(c.pending) {
		return nil // one is already on its way
	}
	return c.sendKeyUpdate(true)
}

// AppendPending appends records the record layer sealed on its own (a
// KeyUpdate answering the client's request) and returns dst. Seal includes
// them itself; this is for a worker with no data to send. Whatever the
// worker sealed before must be sent before them.
func (c *Conn) AppendPending(dst []byte) []byte {
	dst = append(dst, c.pending[:c.pendingLen]...)
	c.pendingLen = 0
	if c.mode == modeCryptoTLS {
		dst = c.Output(dst) // crypto/tls's own replies (KeyUpdate, alerts)
	}
	return dst
}

// HasPending reports whether AppendPending has bytes to send.
func (c *Conn) HasPending() bool {
	if c.pendingLen > 0 {
		return true
	}
	if c.mode == modeCryptoTLS {
		c.hs.mu.Lock()
		defer c.hs.mu.Unlock()
		return len(c.hs.out) > 0
	}
	return false
}

// SealedLen is the most bytes Seal appends for n bytes of application data.
func (c *Conn) SealedLen(n int) int {
	records := (n + MaxPlaintext - 1) / MaxPlaintext
	return n + records*RecordOverhead + len(c.pending) + keyUpdateRecordLen
}

// Seal encrypts head followed by body into records of up to MaxPlaintext
// bytes appended to dst, and returns dst: a response's head and body go out as
// one write, and as one record when together they fit. With cap(dst) at least
// len(dst)+SealedLen(len(head)+len(body)) it does not allocate.
func (c *Conn) Seal(dst, head, body []byte) ([]byte, error) {
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		return dst, c.err
	}
	switch c.mode {
	case modeRecord:
	case modeCryptoTLS:
		return c.sealCryptoTLS(dst, head, body)
	default:
		return dst, errNotEstablished
	}
	dst = c.AppendPending(dst)
	for len(head)+len(body) > 0 {
		if c.wr.seq >= c.rekeyAfter {
			if err := c.sendKeyUpdate(false); err != nil {
				return dst, err
			}
			dst = c.AppendPending(dst)
		}
		h := min(len(head), MaxPlaintext)
		b := min(len(body), MaxPlaintext-h)
		var err error
		if dst, err = c.sealRecord(dst, recordTypeApplicationData, head[:h], body[:b]); err != nil {
			return dst, err
		}
		head, body = head[h:], body[b:]
	}
	return dst, nil
}

// sealRecord appends one record of content type typ holding a then b.
func (c *Conn) sealRecord(dst []byte, typ byte, a, b []byte) ([]byte, error) {
	if c.wr.seq == ^uint64(0) {
		return dst, c.fail(errSeqExhausted)
	}
	n := len(a) + len(b)
	off := len(dst)
	total := recordHeaderLen + n + 1 + tagLen
	if cap(dst)-off < total {
		grown := make([]byte, off, off+total+MaxPlaintext/4)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:off+total]
	hdr := dst[off : off+recordHeaderLen]
	hdr[0], hdr[1], hdr[2] = recordTypeApplicationData, 3, 3
	hdr[3], hdr[4] = byte((n+1+tagLen)>>8), byte(n+1+tagLen)
	inner := dst[off+recordHeaderLen : off+recordHeaderLen+n+1]
	copy(inner, a)
	copy(inner[len(a):], b)
	inner[n] = typ
	c.wr.aead.Seal(inner[:0], c.wr.makeNonce(), inner, hdr)
	c.wr.seq++
	return dst, nil
}

// AppendAlert appends the record of a fatal alert (or close_notify) and
// returns dst. On error it returns dst unchanged: the connection just closes.
func (c *Conn) AppendAlert(dst []byte, a Alert) []byte {
	switch c.mode {
	case modeRecord:
		level := byte(2)
		if a == AlertCloseNotify {
			level = 1
		}
		out, err := c.sealRecord(dst, recordTypeAlert, []byte{level, byte(a)}, nil)
		if err != nil {
			return dst
		}
		return out
	case modeCryptoTLS:
		if a == AlertCloseNotify {
			_ = c.tc.CloseWrite()
		}
		return c.Output(dst)
	}
	return c.Output(dst)
}

// CloseNotify appends a close_notify record and returns dst.
func (c *Conn) CloseNotify(dst []byte) []byte { return c.AppendAlert(dst, AlertCloseNotify) }

// openCryptoTLS queues in for the tls.Conn and returns what it decrypts.
func (c *Conn) openCryptoTLS(in []byte) ([]byte, int, error) {
	if len(in) > 0 {
		if _, err := c.hs.feed(in); err != nil {
			return nil, 0, c.fail(err)
		}
		c.frame(in)
	}
	if c.plain == nil {
		c.plain = make([]byte, MaxPlaintext)
	}
	h := c.hs
	h.mu.Lock()
	read := h.readRecs
	h.mu.Unlock()
	if read == c.fedRecs {
		// Every whole record is read: nothing to do, or the moment a
		// client connection moves to the record layer.
		if c.waiting {
			c.takeOverClient()
		}
		return c.plain[:0], len(in), nil
	}
	n, err := c.tc.Read(c.plain)
	if err != nil {
		var wb wouldBlock
		if errors.As(err, &wb) {
			return c.plain[:n], len(in), nil
		}
		return nil, len(in), c.fail(err)
	}
	return c.plain[:n], len(in), nil
}

// ticketPatience is how many records a client connection with a session
// cache reads on crypto/tls waiting for a session ticket: servers send theirs
// right after the handshake, so one that sent none by then sends none (a
// later one is skipped by the record layer, and not resumed from).
const ticketPatience = 4

// takeOverClient moves a client connection from crypto/tls to the record
// layer, once crypto/tls has read every record fed, the server's first
// session ticket among them (so that it is in the session cache; without a
// cache, or past ticketPatience records, without one), and written
// everything it had to: the keys come from the
// traffic secrets crypto/tls logged, the sequence numbers from the records
// it read and wrote since the handshake. Both are checked by opening the
// last record read and the last written again; a mismatch (a KeyUpdate
// crypto/tls answered, say) leaves the connection on crypto/tls for good.
func (c *Conn) takeOverClient() {
	h := c.hs
	h.mu.Lock()
	defer h.mu.Unlock()
	ticketWanted := false
	if pc, ok := c.client.ClientSessionCache.(peerCache); ok && pc.h != nil {
		ticketWanted = true
	}
	if (ticketWanted && !h.ticket && c.fedRecs < ticketPatience) || c.hdrLen != 0 || c.recLeft != 0 || c.fedRecs == 0 || len(h.out) > 0 || len(h.in) > h.inOff || h.recRemain != 0 {
		return // not yet
	}
	c.waiting, h.waiting = false, false
	lastIn, lastOut := c.lastIn, h.lastOut
	c.lastIn, h.lastOut = nil, nil
	if h.wrSplit {
		return
	}
	var rd, wr direction
	if rd.setSecret(c.suite, h.serverSecret) != nil || wr.setSecret(c.suite, h.clientSecret) != nil {
		return
	}
	rd.seq = c.fedRecs - 1
	inner, ok := reopen(&rd, lastIn)
	if !ok || !wholeMessages(inner) {
		return
	}
	rd.seq = c.fedRecs
	if h.wroteRecs > 0 {
		wr.seq = h.wroteRecs - 1
		if _, ok := reopen(&wr, lastOut); !ok {
			return
		}
		wr.seq = h.wroteRecs
	}
	c.mode, c.rd, c.wr = modeRecord, rd, wr
	c.tc, c.hs, c.plain, c.sbuf = nil, nil, nil, nil
}

// reopen opens a copy of record rec with d at its current sequence number
// and returns its inner plaintext (content type last).
func reopen(d *direction, rec []byte) ([]byte, bool) {
	if len(rec) < recordHeaderLen+tagLen+1 || rec[0] != recordTypeApplicationData {
		return nil, false
	}
	inner, err := d.aead.Open(nil, d.makeNonce(), rec[recordHeaderLen:], rec[:recordHeaderLen])
	return inner, err == nil
}

// wholeMessages reports whether a record's inner plaintext, when it holds
// handshake messages, ends with the end of one (crypto/tls keeps no part of
// a message), or holds anything else.
func wholeMessages(inner []byte) bool {
	i := len(inner) - 1
	for i >= 0 && inner[i] == 0 {
		i--
	}
	if i < 0 {
		return false
	}
	if inner[i] != recordTypeHandshake {
		return true
	}
	for data := inner[:i]; len(data) > 0; {
		if len(data) < 4 {
			return false
		}
		n := 4 + (int(data[1])<<16 | int(data[2])<<8 | int(data[3]))
		if n > len(data) {
			return false
		}
		data = data[n:]
	}
	return true
}

// frame follows the record framing of the bytes fed to a crypto/tls
// connection, counting the records they complete (and, while a client
// connection waits to move to the record layer, keeping the last one).
func (c *Conn) frame(p []byte) {
	for len(p) > 0 {
		if c.recLeft > 0 {
			k := min(len(p), c.recLeft)
			if c.waiting {
				c.lastIn = append(c.lastIn, p[:k]...)
			}
			c.recLeft -= k
			p = p[k:]
			if c.recLeft == 0 {
				c.fedRecs++
			}
			continue
		}
		k := copy(c.hdr[c.hdrLen:], p)
		c.hdrLen += k
		p = p[k:]
		if c.hdrLen == recordHeaderLen {
			c.hdrLen = 0
			c.recLeft = int(c.hdr[3])<<8 | int(c.hdr[4])
			if c.waiting {
				c.lastIn = append(c.lastIn[:0], c.hdr[:]...)
			}
			if c.recLeft == 0 {
				c.fedRecs++
			}
		}
	}
}

// sealCryptoTLS writes through the tls.Conn, head and body in one record when
// they fit.
func (c *Conn) sealCryptoTLS(dst, head, body []byte) ([]byte, error) {
	dst = c.Output(dst)
	var err error
	if len(head) > 0 && len(head)+len(body) <= MaxPlaintext {
		if c.sbuf == nil {
			c.sbuf = make([]byte, 0, MaxPlaintext)
		}
		buf := append(append(c.sbuf[:0], head...), body...)
		_, err = c.tc.Write(buf)
	} else {
		if _, err = c.tc.Write(head); err == nil {
			_, err = c.tc.Write(body)
		}
	}
	if err != nil {
		return dst, c.fail(err)
	}
	return c.Output(dst), nil
}
