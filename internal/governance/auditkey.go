package governance

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
)

// AuditKey is the audit log's key, kept outside the database (a file in the data
// folder, like the receipt signing key): it signs the chain's checkpoints (Ed25519)
// and MACs each entry as it is written, so that whoever can write to the database
// but not read the key can neither forge an entry nor re-sign a rewritten chain.
type AuditKey struct {
	sign ed25519.PrivateKey
	mac  []byte
}

// NewAuditKey returns the audit key of a 32-byte seed.
func NewAuditKey(seed []byte) (*AuditKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("governance: audit key: want a %d-byte seed, got %d", ed25519.SeedSize, len(seed))
	}
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("steward audit entry mac v1"))
	return &AuditKey{sign: ed25519.NewKeyFromSeed(seed), mac: m.Sum(nil)}, nil
}

// GenerateAuditKey returns a new random audit key (tests; LoadAuditKey makes the
// deployment's).
func GenerateAuditKey() *AuditKey {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed) // crypto/rand.Read never fails
	k, _ := NewAuditKey(seed)
	return k
}

// LoadAuditKey reads the audit key from path (the base64 of an Ed25519 seed), making
// one when it does not exist and create is set; created says it was made.
func LoadAuditKey(path string, create bool) (k *AuditKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		_, _ = rand.Read(seed)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("governance: audit key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("governance: audit key: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(seed) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("governance: audit key %s: %w", path, werr)
		}
		k, err = NewAuditKey(seed)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("governance: audit key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("governance: audit key %s: want the base64 of a 32-byte Ed25519 seed", path)
	}
	k, err = NewAuditKey(seed)
	return k, false, err
}

// PublicKey is the key checkpoints are verified with.
func (k *AuditKey) PublicKey() ed25519.PublicKey { return k.sign.Public().(ed25519.PublicKey) }

// KeyID names the public key: the first 16 hex digits of its SHA-256.
func (k *AuditKey) KeyID() string {
	sum := sha256.Sum256(k.PublicKey())
	return hex.EncodeToString(sum[:8])
}

// entryMAC is the MAC of an entry's content, in hex.
func (k *AuditKey) entryMAC(content []byte) string {
	m := k.macHash()
	m.Write(content)
	return hex.EncodeToString(m.Sum(nil))
}

// macHash is the MAC of entries, to reuse (Reset) for many.
func (k *AuditKey) macHash() hash.Hash { return hmac.New(sha256.New, k.mac) }
