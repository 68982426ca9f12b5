package consent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Signer signs consent receipts with the operator's Ed25519 key.
type Signer struct {
	key    ed25519.PrivateKey
	issuer string
}

// LoadSigner reads the Ed25519 seed (base64, 32 bytes) at path, making one when
// create is set and the file does not exist (created reports it).
func LoadSigner(path, issuer string, create bool) (*Signer, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		_, _ = rand.Read(seed)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("consent: receipt key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("consent: receipt key: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(seed) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("consent: receipt key %s: %w", path, werr)
		}
		return &Signer{key: ed25519.NewKeyFromSeed(seed), issuer: issuer}, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("consent: receipt key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("consent: receipt key %s: want the base64 of a 32-byte Ed25519 seed", path)
	}
	return &Signer{key: ed25519.NewKeyFromSeed(seed), issuer: issuer}, false, nil
}

// PublicKey returns the verifying key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Receipt is a consent decision as the subject keeps it. All values are strings, so
// its JSON encoding (the signed bytes) is the same wherever it is re-encoded.
type Receipt struct {
	Format        string `json:"format"`
	ReceiptID     string `json:"receipt_id"`
	Issuer        string `json:"issuer"`
	Subject       string `json:"subject"`
	Purpose       string `json:"purpose"`
	PurposeName   string `json:"purpose_name"`
	LawfulBasis   string `json:"lawful_basis"`
	Decision      string `json:"decision"`
	Time          string `json:"time"`
	Source        string `json:"source"`
	PolicyVersion string `json:"policy_version"`
	KeyID         string `json:"key_id"`
}

// Signed is a receipt with its signature, the file a member downloads.
type Signed struct {
	Receipt   Receipt `json:"receipt"`
	Algorithm string  `json:"algorithm"`
	PublicKey string  `json:"public_key"`
	Signature string  `json:"signature"`
}

const receiptFormat = "steward-consent-receipt/1"

// Receipt returns the signed receipt of one of the subject's decisions.
func (s *Service) Receipt(ctx context.Context, subjectID string, eventID int64) (Signed, error) {
	e, err := s.Event(ctx, subjectID, eventID)
	if err != nil {
		return Signed{}, err
	}
	p, _ := s.reg.Purpose(e.Purpose)
	if IsFlag(e.Purpose) {
		p = Purpose{Name: FlagName(e.Purpose)}
	}
	r := Receipt{
		Format: receiptFormat, ReceiptID: strconv.FormatInt(e.ID, 10), Issuer: s.signer.issuer, Subject: e.SubjectID,
		Purpose: e.Purpose, PurposeName: p.Name, LawfulBasis: string(p.Basis), Decision: string(e.Decision),
		Time: e.At.Format(time.RFC3339Nano), Source: string(e.Source), PolicyVersion: e.PolicyVersion,
		KeyID: KeyID(s.signer.PublicKey()),
	}
	return s.signer.Sign(r), nil
}

// Sign signs a receipt.
func (s *Signer) Sign(r Receipt) Signed {
	msg, _ := json.Marshal(r)
	return Signed{Receipt: r, Algorithm: "Ed25519", PublicKey: base64.StdEncoding.EncodeToString(s.PublicKey()),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg))}
}

// ErrBadReceipt is returned for a receipt whose signature does not hold.
var ErrBadReceipt = errors.New("consent: receipt: signature does not match")

// Verify checks a signed receipt file against the trusted key (the operator's). A
// receipt signed by any other key, or changed in any field, is refused.
func Verify(data []byte, trusted ed25519.PublicKey) (Receipt, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var s Signed
	if err := dec.Decode(&s); err != nil {
		return Receipt{}, fmt.Errorf("consent: receipt: not a receipt file: %w", err)
	}
	if s.Receipt.Format != receiptFormat || s.Algorithm != "Ed25519" {
		return Receipt{}, fmt.Errorf("consent: receipt: unknown format %q / algorithm %q", s.Receipt.Format, s.Algorithm)
	}
	pub, err := base64.StdEncoding.DecodeString(s.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Receipt{}, fmt.Errorf("consent: receipt: bad public key")
	}
	if !ed25519.PublicKey(pub).Equal(trusted) {
		return Receipt{}, fmt.Errorf("consent: receipt: signed by key %s, not by the operator's key %s", KeyID(pub), KeyID(trusted))
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return Receipt{}, ErrBadReceipt
	}
	msg, _ := json.Marshal(s.Receipt)
	if !ed25519.Verify(trusted, msg, sig) || s.Receipt.KeyID != KeyID(trusted) {
		return Receipt{}, ErrBadReceipt
	}
	return s.Receipt, nil
}
