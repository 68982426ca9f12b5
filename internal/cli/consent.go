package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/consent"
)

// receiptCommand runs "steward receipt verify FILE": it checks a consent receipt's
// signature against the operator's key (from --receipt-key-file, or a public key given
// with --public-key, as published at /.well-known/steward-receipt-key).
func receiptCommand(cfg *config.Config, pos []string, publicKey string, stdout io.Writer) (bool, error) {
	if len(pos) != 2 || pos[0] != "verify" {
		return false, apperr.New(apperr.Invalid, "usage", "usage: steward receipt verify FILE [--public-key BASE64]")
	}
	data, err := os.ReadFile(pos[1])
	if err != nil {
		return false, err
	}
	var trusted ed25519.PublicKey
	if publicKey != "" {
		b, err := base64.StdEncoding.DecodeString(publicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return false, apperr.Field("public-key", "key_invalid", "want the base64 of a 32-byte Ed25519 public key")
		}
		trusted = b
	} else {
		signer, _, err := consent.LoadSigner(cfg.ReceiptKeyFile, cfg.BaseURL, false)
		if err != nil {
			return false, err
		}
		trusted = signer.PublicKey()
	}
	r, err := consent.Verify(data, trusted)
	if err != nil {
		fmt.Fprintln(stdout, "INVALID:", err)
		return false, nil
	}
	fmt.Fprintf(stdout, "valid receipt %s: %s %s for %q (%s) at %s, from %s, policy %s, signed by key %s\n",
		r.ReceiptID, r.Subject, r.Decision, r.PurposeName, r.LawfulBasis, r.Time, r.Source, r.PolicyVersion, r.KeyID)
	return true, nil
}

// conflictsCommand lists the newest consent conflicts, for staff.
func conflictsCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 1 || pos[0] != "conflicts" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward consent conflicts")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	list, err := a.Consent().Conflicts(ctx, 100)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no conflicts")
	}
	for _, c := range list {
		fmt.Fprintf(stdout, "%s subject %s purpose %s: %s by %s at %s, then %s by %s at %s (the later one holds)\n",
			c.At.Format("2006-01-02 15:04"), c.SubjectID, c.Purpose, c.Earlier.Decision, c.Earlier.Source,
			c.Earlier.At.Format("2006-01-02 15:04:05"), c.Later.Decision, c.Later.Source, c.Later.At.Format("2006-01-02 15:04:05"))
	}
	return nil
}
