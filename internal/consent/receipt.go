package consent

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/strictjson"
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

// Sign signs a receipt. A value that is not valid UTF-8 is signed with U+FFFD in
// place of each bad byte, as it is written in the file: JSON would write the escape
// \ufffd instead, which no reading of the file re-encodes to, and the receipt would
// not verify.
func (s *Signer) Sign(r Receipt) Signed {
	for _, v := range []*string{&r.Format, &r.ReceiptID, &r.Issuer, &r.Subject, &r.Purpose, &r.PurposeName,
		&r.LawfulBasis, &r.Decision, &r.Time, &r.Source, &r.PolicyVersion, &r.KeyID} {
		*v = strings.ToValidUTF8(*v, "\uFFFD")
	}
	msg, _ := json.Marshal(r)
	return Signed{Receipt: r, Algorithm: "Ed25519", PublicKey: base64.StdEncoding.EncodeToString(s.PublicKey()),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg))}
}

// ErrBadReceipt is returned for a receipt whose signature does not hold.
var ErrBadReceipt = errors.New("consent: receipt: signature does not match")

// ErrOtherKey is returned for a receipt signed by another key than the one trusted.
var ErrOtherKey = errors.New("consent: receipt: another key")

// receiptKeys and signedKeys are the exact member names of a receipt and of its file.
var (
	receiptKeys = []string{"format", "receipt_id", "issuer", "subject", "purpose", "purpose_name", "lawful_basis",
		"decision", "time", "source", "policy_version", "key_id"}
	signedKeys = []string{"receipt", "algorithm", "public_key", "signature"}
)

// Verify checks a signed receipt file against the trusted key (the operator's). The
// signature is checked over the receipt's bytes as received (whitespace aside), and the
// receipt is read from those bytes strictly: every member named exactly once, in its
// exact case, each a string, nothing unknown and nothing after the file's one object.
// So a receipt reads the same to everyone who verifies it, and one signed by any other
// key, or changed in any byte that matters, is refused.
func Verify(data []byte, trusted ed25519.PublicKey) (Receipt, error) {
	file, err := strictObject(data, signedKeys)
	if err != nil {
		return Receipt{}, fmt.Errorf("consent: receipt: not a receipt file: %w", err)
	}
	var alg, pubText, sigText string
	for _, f := range []struct {
		name string
		out  *string
	}{{"algorithm", &alg}, {"public_key", &pubText}, {"signature", &sigText}} {
		if err := json.Unmarshal(file[f.name], f.out); err != nil {
			return Receipt{}, fmt.Errorf("consent: receipt: not a receipt file: %s is not a string", f.name)
		}
	}
	var signed bytes.Buffer
	if err := json.Compact(&signed, file["receipt"]); err != nil {
		return Receipt{}, fmt.Errorf("consent: receipt: not a receipt file: %w", err)
	}
	fields, err := strictObject(signed.Bytes(), receiptKeys)
	if err != nil {
		return Receipt{}, fmt.Errorf("consent: receipt: not a receipt: %w", err)
	}
	vals := map[string]string{}
	for _, k := range receiptKeys {
		var v string
		if err := json.Unmarshal(fields[k], &v); err != nil {
			return Receipt{}, fmt.Errorf("consent: receipt: not a receipt: %s is not a string", k)
		}
		vals[k] = v
	}
	r := Receipt{Format: vals["format"], ReceiptID: vals["receipt_id"], Issuer: vals["issuer"], Subject: vals["subject"],
		Purpose: vals["purpose"], PurposeName: vals["purpose_name"], LawfulBasis: vals["lawful_basis"], Decision: vals["decision"],
		Time: vals["time"], Source: vals["source"], PolicyVersion: vals["policy_version"], KeyID: vals["key_id"]}
	if r.Format != receiptFormat || alg != "Ed25519" {
		return Receipt{}, fmt.Errorf("consent: receipt: unknown format %q / algorithm %q", r.Format, alg)
	}
	pub, err := base64.StdEncoding.DecodeString(pubText)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Receipt{}, fmt.Errorf("consent: receipt: bad public key")
	}
	if !ed25519.PublicKey(pub).Equal(trusted) {
		return Receipt{}, fmt.Errorf("%w: signed by key %s, not by the operator's key %s", ErrOtherKey, KeyID(pub), KeyID(trusted))
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return Receipt{}, ErrBadReceipt
	}
	if !ed25519.Verify(trusted, signed.Bytes(), sig) || r.KeyID != KeyID(trusted) {
		return Receipt{}, ErrBadReceipt
	}
	// The bytes signed are the receipt as Sign encodes it: a reading of them that
	// differs from what was signed (an escaped key, say) cannot have verified, and
	// this says so should the encoding ever change.
	if again, _ := json.Marshal(r); !bytes.Equal(again, signed.Bytes()) {
		return Receipt{}, ErrBadReceipt
	}
	return r, nil
}

// strictObject reads data as exactly one JSON object whose members are exactly the
// named ones, each once and in its exact case, with nothing after it, and returns each
// member's raw value.
func strictObject(data []byte, names []string) (map[string]json.RawMessage, error) {
	var out map[string]json.RawMessage
	if err := strictjson.Check(data, &out); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &out); err != nil || out == nil {
		return nil, errors.New("want a JSON object")
	}
	for name := range out {
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("unknown member %q", name)
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("member %q missing", n)
		}
	}
	return out, nil
}
