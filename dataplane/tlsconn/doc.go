// Package tlsconn is a TLS connection an event-loop worker drives without a
// goroutine per connection on the data path: server side (Server), and
// client side (Client) for the worker's connections to backends.
//
// The handshake is crypto/tls's own: a Conn runs tls.Server over an in-memory
// net.Conn whose Read waits for the bytes the worker Feeds and whose Write
// queues bytes the worker drains with Output. That costs a goroutine for the
// length of each handshake, started by the first Feed: a goroutine that
// finished one waits for the next (at most MaxIdleRunners wait), so
// handshakes run on stacks already grown; the worker learns of progress through Options.Notify and may
// end a handshake at any time with Abort (Options bound its time and input).
// Certificates are chosen by the tls.Config given to NewServer
// (Certificates, GetCertificate, GetConfigForClient for SNI); a new Server, or
// a new result from those callbacks, serves new handshakes while established
// connections keep their keys.
//
// After a TLS 1.3 handshake with AES-128-GCM, AES-256-GCM or
// ChaCha20-Poly1305, the record layer here protects the records: each
// handshake gets a copy of the configuration whose KeyLogWriter captures the
// application traffic secrets in memory (crypto/tls exposes them no other way),
// keys and IVs come from HKDF-Expand-Label (RFC 8446 §7.1, §7.3), and the
// server's write sequence number is learnt by opening again the records
// crypto/tls sent under the new key (its NewSessionTicket), which also checks
// the derivation. Open decrypts one record in place; Seal encrypts a response
// head and body into records appended to the worker's buffer, one record when
// they fit. Neither allocates. KeyUpdate is handled both ways (RFC 8446
// §4.6.3), and Seal rekeys on its own before a key protects Options.RekeyAfter
// records, so sequence numbers never wrap.
//
// TLS 1.2 connections (and every connection with Options.CryptoTLSOnly) stay
// on crypto/tls: after the handshake the in-memory conn stops blocking (it
// answers "no input yet" with a temporary error, which tls.Conn survives), so
// Open and Seal drive tls.Conn.Read and Write synchronously from the worker,
// still without a goroutine. Its cost is measured beside the record layer's in
// the benchmarks.
//
// The record layer speaks only for the server: the client may send KeyUpdate
// and nothing else after its Finished.
//
// Client side: a Client's Conn runs tls.Client over the same in-memory conn,
// its goroutine started by Start (the client speaks first); Feed, Output,
// Done and Leftover work as on the server side. Its records start on
// crypto/tls: a TLS 1.3 server sends NewSessionTicket after the handshake,
// and only crypto/tls can turn one into a resumable session (the resumption
// secret never leaves it). Each Client may share a tls.ClientSessionCache,
// keyed by peer address and server name (PeerSessionCache), so that the
// next connection to the same endpoint resumes. Once crypto/tls has read
// the first ticket into it (without a cache, no ticket is asked for), and
// every record fed, a TLS 1.3 connection moves to the record layer: its
// keys come from the traffic secrets crypto/tls logged, its sequence
// numbers from the records crypto/tls read (the in-memory conn gives it one
// record at a time, so whole records fed and read are counted exactly) and
// wrote, and both are checked by opening the last record read and the last
// written again; on a mismatch (it answered a KeyUpdate, say) the
// connection stays on crypto/tls. On the record layer a client connection
// skips the server's later tickets and handles KeyUpdate as the server side
// does. Why move: crypto/tls allocates a small reader each time it asks the
// in-memory conn for bytes, one allocation per response, and costs twice
// the record layer's CPU for a small exchange (BenchmarkClientExchange); on
// crypto/tls Open calls tls.Conn.Read only when a whole record waits, so
// reads that would find nothing cost nothing. TLS 1.2 and
// Options.CryptoTLSOnly stay on crypto/tls.
//
// A worker drives a Conn like this: NewConn at accept (Server) or connect
// (Client, then Start); Feed every received chunk and send what Output
// returns (also when Notify fires) until Done reports true; send Output once
// more, take Leftover back as received bytes; from then on call Open over
// the receive buffer until it takes nothing, send AppendPending when
// HasPending, and Seal each response (or request) into the send buffer
// (SealedLen bounds its size). On an *Error from Open, send AppendAlert and
// close; on io.EOF the peer sent close_notify.
//
// Kernel TLS: ProbeKTLS says whether the kernel offers the "tls" ULP and
// EnableKTLS hands a record-layer connection's keys to it. Not used by the
// engines yet: KeyUpdate and alerts arrive as control messages under kernel
// TLS, and that handling is still to be written (the machines this was built
// on have no "tls" ULP, so the userspace record layer is the tested path).
package tlsconn
