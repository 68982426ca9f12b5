package vault

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
)

var errNotExist = fs.ErrNotExist

// scratch is OpenText's working memory.
type scratch struct {
	buf [512]byte
	ad  [128]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Sealed fields. A personal value is stored as AEAD ciphertext (AES-256-GCM) under its
// subject's data key, bound to the subject and to the column it belongs to (its
// label): version (1) | nonce (12) | ciphertext | tag (16). A value copied to another
// row, another subject or another column does not open there.

const sealVersion = 1

// sealOverhead is what sealing adds to a value.
const sealOverhead = 1 + 12 + 16

// ErrSealed is returned for a sealed value that does not open: damaged, moved, or
// sealed under another key.
var ErrSealed = errors.New("vault: a sealed value does not open")

func (k *Key) ad(buf []byte, label string) []byte {
	buf = append(buf, "steward seal v1\x00"...)
	buf = append(buf, label...)
	buf = append(buf, 0)
	return append(buf, k.subject...)
}

// Seal seals a value for the column named by label.
func (k *Key) Seal(label string, plain []byte) []byte {
	var adBuf [128]byte
	out := make([]byte, 1+12, len(plain)+sealOverhead)
	out[0] = sealVersion
	_, _ = rand.Read(out[1:13])
	return k.aead.Seal(out, out[1:13], plain, k.ad(adBuf[:0], label))
}

// SealString seals a text value; the empty string is stored as NULL (nil), so an
// empty optional field costs nothing and stays empty.
func (k *Key) SealString(label, s string) any {
	if s == "" {
		return nil
	}
	return k.Seal(label, []byte(s))
}

// Open opens a value sealed for label.
func (k *Key) Open(label string, sealed []byte) ([]byte, error) {
	if len(sealed) < sealOverhead || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: %s of %s is not a sealed value", ErrSealed, label, k.subject)
	}
	var adBuf [128]byte
	out, err := k.aead.Open(nil, sealed[1:13], sealed[13:], k.ad(adBuf[:0], label))
	if err != nil {
		return nil, fmt.Errorf("%w: %s of %s", ErrSealed, label, k.subject)
	}
	return out, nil
}

// OpenString opens a text value sealed by SealString; NULL (nil) is "".
func (k *Key) OpenString(label string, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	b, err := k.Open(label, sealed)
	return string(b), err
}

// Sealed values in text columns are the sealed bytes in base64 (standard alphabet,
// no padding): the schemas keep their text columns on both engines. They are read
// strictly (no line breaks, no stray bits in the last character), so one sealed value
// has one text: a text changed in any byte does not open.
var sealedText = base64.RawStdEncoding.Strict()

// SealText seals a text value for a text column. The empty string is sealed too, so a
// NOT NULL column always holds a sealed value.
func (k *Key) SealText(label, s string) string {
	return sealedText.EncodeToString(k.Seal(label, []byte(s)))
}

// SealOptional is SealText for a nullable column: the empty string is NULL.
func (k *Key) SealOptional(label, s string) any {
	if s == "" {
		return nil
	}
	return k.SealText(label, s)
}

// OpenText opens a value sealed by SealText or SealOptional; "" (a NULL read as
// empty) is "".
func (k *Key) OpenText(label, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	// Decoded into a pooled buffer (the usual short value) and opened in place: the
	// string is the only allocation. (A buffer on the stack would move to the heap:
	// the AEAD is an interface.)
	sc := scratchPool.Get().(*scratch)
	buf := sc.buf[:]
	defer func() {
		clear(sc.buf[:]) // the value opened in place does not linger in the pool
		scratchPool.Put(sc)
	}()
	if n := sealedText.DecodedLen(len(sealed)); n > len(buf) {
		buf = make([]byte, n)
	}
	n, err := sealedText.Decode(buf, []byte(sealed)) // converted without a copy
	if err != nil || strings.ContainsAny(sealed, "\r\n") || n < sealOverhead || buf[0] != sealVersion {
		return "", fmt.Errorf("%w: %s of %s is not a sealed value", ErrSealed, label, k.subject)
	}
	ct := buf[13:n]
	out, err := k.aead.Open(ct[:0], buf[1:13], ct, k.ad(sc.ad[:0], label))
	if err != nil {
		return "", fmt.Errorf("%w: %s of %s", ErrSealed, label, k.subject)
	}
	return string(out), nil
}
