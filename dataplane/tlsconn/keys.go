package tlsconn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// suite is a TLS 1.3 cipher suite the record layer implements: its AEAD and
// the hash of its key schedule.
type suite struct {
	id     uint16
	keyLen int
	hash   func() hash.Hash
	aead   func(key []byte) (cipher.AEAD, error)
}

func newAESGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var suites = [...]suite{
	{tls.TLS_AES_128_GCM_SHA256, 16, sha256.New, newAESGCM},
	{tls.TLS_AES_256_GCM_SHA384, 32, sha512.New384, newAESGCM},
	{tls.TLS_CHACHA20_POLY1305_SHA256, chacha20poly1305.KeySize, sha256.New, chacha20poly1305.New},
}

// suiteByID returns the record layer's implementation of a TLS 1.3 suite, or
// nil when it has none.
func suiteByID(id uint16) *suite {
	for i := range suites {
		if suites[i].id == id {
			return &suites[i]
		}
	}
	return nil
}

// expandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, the
// only form the record layer needs ("key", "iv", "traffic upd").
func (s *suite) expandLabel(secret []byte, label string, length int) ([]byte, error) {
	const prefix = "tls13 "
	info := make([]byte, 0, 4+len(prefix)+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	return hkdf.Expand(s.hash, secret, string(info), length)
}

// nextSecret is application_traffic_secret_N+1 (RFC 8446 §7.2).
func (s *suite) nextSecret(secret []byte) ([]byte, error) {
	return s.expandLabel(secret, "traffic upd", len(secret))
}

// trafficKeys derives the write key and IV of a traffic secret (RFC 8446 §7.3).
func (s *suite) trafficKeys(secret []byte) (key, iv []byte, err error) {
	if key, err = s.expandLabel(secret, "key", s.keyLen); err != nil {
		return nil, nil, err
	}
	if iv, err = s.expandLabel(secret, "iv", ivLen); err != nil {
		return nil, nil, err
	}
	return key, iv, nil
}

const ivLen = 12

// direction is one direction's record protection: the AEAD of the current
// traffic secret, its static IV and the sequence number of the next record.
type direction struct {
	aead   cipher.AEAD
	secret []byte
	key    []byte // kept for the kTLS export
	iv     [ivLen]byte
	nonce  [ivLen]byte
	seq    uint64
}

// setSecret installs a traffic secret and resets the sequence number.
func (d *direction) setSecret(s *suite, secret []byte) error {
	key, iv, err := s.trafficKeys(secret)
	if err != nil {
		return err
	}
	a, err := s.aead(key)
	if err != nil {
		return err
	}
	if a.NonceSize() != ivLen || a.Overhead() != tagLen {
		return errors.New("tlsconn: unexpected AEAD nonce or tag size")
	}
	d.aead, d.secret, d.key, d.seq = a, secret, key, 0
	copy(d.iv[:], iv)
	return nil
}

// update moves to the next traffic secret (KeyUpdate).
func (d *direction) update(s *suite) error {
	next, err := s.nextSecret(d.secret)
	if err != nil {
		return err
	}
	return d.setSecret(s, next)
}

// makeNonce writes the per-record nonce, the IV XOR the 64-bit sequence
// number left-padded to the IV's length (RFC 8446 §5.3), and returns it.
func (d *direction) makeNonce() []byte {
	d.nonce = d.iv
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], d.seq)
	for i := range seq {
		d.nonce[ivLen-8+i] ^= seq[i]
	}
	return d.nonce[:]
}
