package vault

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"
)

// Index computes blind indexes: keyed hashes (HMAC-SHA-256) of normalized values under
// a key kept outside the database (the index key file), so that an equality lookup
// (login by email, a newsletter address, a suppression, the erasure ledger) never needs
// the value in plain text. Without the key, a hash cannot be reversed by trying every
// likely address. Index is safe for concurrent use.
type Index struct {
	key     []byte
	hashers sync.Pool // of *Hasher
}

// NewIndex returns the blind index keyed by secret (the index key file's bytes).
func NewIndex(secret []byte) *Index {
	// The derivation is the one newsletter address hashes have used since they were
	// introduced, so suppressions and subscribers stored before stay valid.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("steward newsletter v1"))
	return &Index{key: m.Sum(nil)}
}

// Address is the blind index of an email address (trimmed, in lower case).
func (x *Index) Address(email string) string {
	h, _ := x.hashers.Get().(*Hasher)
	if h == nil {
		h = x.Hasher()
	}
	defer x.hashers.Put(h)
	return h.Address(email)
}

// Of is the blind index of a value of another kind ("phone", "id"), trimmed and in
// lower case. Kinds keep equal values of different kinds apart.
func (x *Index) Of(kind, value string) string {
	h, _ := x.hashers.Get().(*Hasher)
	if h == nil {
		h = x.Hasher()
	}
	defer x.hashers.Put(h)
	return h.Of(kind, value)
}

// Hasher returns a hasher for one goroutine that hashes many values (an import)
// without setting up the keyed hash each time.
func (x *Index) Hasher() *Hasher { return &Hasher{m: hmac.New(sha256.New, x.key)} }

// Hasher computes blind indexes for one goroutine.
type Hasher struct {
	m   hash.Hash
	buf []byte
}

// Address is Index.Address.
func (h *Hasher) Address(email string) string { return h.Of("address", email) }

// Of is Index.Of.
func (h *Hasher) Of(kind, value string) string {
	h.m.Reset()
	h.buf = append(append(append(h.buf[:0], kind...), ':'), strings.ToLower(strings.TrimSpace(value))...)
	h.m.Write(h.buf)
	h.buf = h.m.Sum(h.buf[:0])
	return hex.EncodeToString(h.buf)
}
