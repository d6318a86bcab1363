package tlsconn

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
)

// Kernel TLS (linux/tls.h): the crypto_info a socket takes with
// setsockopt(SOL_TLS, TLS_TX or TLS_RX) once its TCP_ULP is "tls".
const (
	tlsTX          = 1
	tlsRX          = 2
	ktlsVersion13  = 0x0304
	ktlsAESGCM128  = 51
	ktlsAESGCM256  = 52
	ktlsChaCha20P1 = 54
)

// ErrKTLSUnsupported is returned when the connection cannot move to kernel
// TLS: not on the record layer, or a suite the export does not cover.
var ErrKTLSUnsupported = errors.New("tlsconn: kernel TLS not possible for this connection")

// ktlsCipher returns the kernel's cipher type and its salt length for a suite.
func ktlsCipher(id uint16) (cipher uint16, saltLen int, ok bool) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return ktlsAESGCM128, 4, true
	case tls.TLS_AES_256_GCM_SHA384:
		return ktlsAESGCM256, 4, true
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return ktlsChaCha20P1, 0, true
	}
	return 0, 0, false
}

// cryptoInfo lays out one direction as the kernel's
// tls12_crypto_info_<cipher> struct: version and cipher type (host order),
// then iv, key, salt and rec_seq. For TLS 1.3 the salt is the first bytes of
// the 12-byte IV and the iv field the rest; rec_seq is the next sequence
// number, big-endian.
func cryptoInfo(id uint16, d *direction) ([]byte, error) {
	cipher, saltLen, ok := ktlsCipher(id)
	if !ok {
		return nil, ErrKTLSUnsupported
	}
	b := binary.NativeEndian.AppendUint16(nil, ktlsVersion13)
	b = binary.NativeEndian.AppendUint16(b, cipher)
	b = append(b, d.iv[saltLen:]...)
	b = append(b, d.key...)
	b = append(b, d.iv[:saltLen]...)
	return binary.BigEndian.AppendUint64(b, d.seq), nil
}

// KTLSCryptoInfo returns the TLS_TX (server writes) and TLS_RX (client
// writes) crypto_info of a record-layer connection, for setsockopt after
// TCP_ULP "tls" (EnableKTLS does both). From then on the kernel owns the
// sequence numbers: the Conn must not Seal or Open again, and records already
// received must have been opened first.
func (c *Conn) KTLSCryptoInfo() (tx, rx []byte, err error) {
	if c.mode != modeRecord || c.pendingLen > 0 || c.hsMsgLen > 0 {
		return nil, nil, ErrKTLSUnsupported
	}
	if tx, err = cryptoInfo(c.suite.id, &c.wr); err != nil {
		return nil, nil, err
	}
	if rx, err = cryptoInfo(c.suite.id, &c.rd); err != nil {
		return nil, nil, err
	}
	return tx, rx, nil
}
