package dataplanev1

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Hash returns the content hash of snap: the lowercase hex SHA-256 of the
// deterministic protobuf serialization of snap with Version and Hash cleared. Two
// snapshots that differ only in Version or Hash have the same hash. snap is not
// modified. Hash returns "" if snap cannot be serialized (a string field holds
// invalid UTF-8), which Validate reports as an error.
func Hash(snap *Snapshot) string {
	h, err := computeHash(snap)
	if err != nil {
		return ""
	}
	return h
}

// computeHash is Hash with the serialization error.
func computeHash(snap *Snapshot) (string, error) {
	content := ShallowCopy(snap)
	content.Version = 0
	content.Hash = ""
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(content)
	if err != nil {
		return "", fmt.Errorf("serializing snapshot: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ShallowCopy returns a new message of m's type whose fields (and unknown fields)
// are those of m; message, list and bytes values are shared with m, not copied, so
// the copy's fields may be replaced but not modified in place.
func ShallowCopy[T proto.Message](m T) T {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return dst.Interface().(T)
}

// WithHash returns a shallow copy of snap with Hash set to hash, or snap itself if
// it already carries that hash.
func WithHash(snap *Snapshot, hash string) *Snapshot {
	if snap.GetHash() == hash {
		return snap
	}
	c := ShallowCopy(snap)
	c.Hash = hash
	return c
}
