package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// Escrow encrypts each epoch's KEK to the operator's backup recipients (age public
// keys), whose private keys are kept offline. Live nodes cannot open what it writes:
// only a restore, given the private key, can read a backup's data keys once the
// nodes have destroyed that epoch's KEK.
type Escrow struct {
	recipients []age.Recipient
	names      []string
}

// ParseRecipients reads age recipients ("age1...") separated by commas or spaces.
func ParseRecipients(s string) (*Escrow, error) {
	e := &Escrow{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		r, err := age.ParseX25519Recipient(f)
		if err != nil {
			return nil, fmt.Errorf("not an age public key (age1...): %q", f)
		}
		e.recipients = append(e.recipients, r)
		e.names = append(e.names, r.String())
	}
	if len(e.recipients) == 0 {
		return nil, errors.New("no age public key given")
	}
	return e, nil
}

// Recipients names the public keys, comma-separated.
func (e *Escrow) Recipients() string { return strings.Join(e.names, ",") }

// Seal encrypts k to every recipient.
func (e *Escrow) Seal(k KEK) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, e.recipients...)
	if err != nil {
		return nil, fmt.Errorf("vault: escrow: %w", err)
	}
	if _, err := w.Write(k.encode()); err != nil {
		return nil, fmt.Errorf("vault: escrow: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("vault: escrow: %w", err)
	}
	return buf.Bytes(), nil
}

// Identities are the operator's private keys that open escrowed KEKs.
type Identities []age.Identity

// ReadIdentities reads an age identity file (lines "AGE-SECRET-KEY-1...", comments).
func ReadIdentities(path string) (Identities, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault: escrow identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("vault: escrow identity %s: %w", path, err)
	}
	return ids, nil
}

// OpenEscrowed decrypts an escrowed KEK with the operator's identities.
func OpenEscrowed(ids Identities, sealed []byte) (KEK, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), ids...)
	if err != nil {
		return KEK{}, fmt.Errorf("vault: escrowed key: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return KEK{}, fmt.Errorf("vault: escrowed key: %w", err)
	}
	return parseKEK(data)
}

// GenerateIdentity makes a new escrow key pair: the identity (keep it offline) and
// its public key, for --escrow-recipient.
func GenerateIdentity() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	return id.String(), id.Recipient().String(), nil
}
