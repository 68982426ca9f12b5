package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/store"
	"steward/internal/vault"
)

// vaultCommand runs "steward vault rotate": every data key is rewrapped under the new
// master key; the files themselves are not touched. It is resumable: run it again after
// an interruption. Afterwards the operator points --master-key-file (or
// STEWARD_MASTER_KEY) at the new key.
func vaultCommand(ctx context.Context, cfg *config.Config, pos []string, newFile string, stdout io.Writer) error {
	if len(pos) != 1 || pos[0] != "rotate" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward vault rotate --new-master-key-file FILE")
	}
	if newFile == "" {
		return apperr.Field("new-master-key-file", "required", "is required: where the new master key is (or is to be made)")
	}
	if newFile == cfg.MasterKeyFile {
		return apperr.Field("new-master-key-file", "same_key", "must differ from the current --master-key-file")
	}
	current, _, err := vault.LoadMasterKey(cfg.MasterKeyFile, cfg.MasterKey, false)
	if err != nil {
		return err
	}
	next, created, err := vault.LoadMasterKey(newFile, "", true)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "made a new master key at %s (id %s); back it up\n", newFile, next.ID())
	}
	if next.ID() == current.ID() {
		return errors.New("the new master key is the current one")
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := vault.New(db, current, time.Now).Rotate(ctx, next)
	if err != nil {
		return fmt.Errorf("rotate (run it again to resume): %w", err)
	}
	fmt.Fprintf(stdout, "rewrapped %d data key(s) from master key %s to %s\n", n, current.ID(), next.ID())
	fmt.Fprintf(stdout, "now set --master-key-file=%s (STEWARD_MASTER_KEY_FILE) and keep the old key until backups made before today expire\n", newFile)
	return nil
}

// filesCommand runs "steward files reconcile".
func filesCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 1 || pos[0] != "reconcile" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward files reconcile")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	rep, err := a.Files.Reconcile(ctx, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "objects %d: orphans deleted %d, dead uploads removed %d, deletions finished %d, lost objects %d\n",
		rep.Objects, rep.OrphanObjects, rep.DeadUploads, rep.FinishedDeletes, rep.LostObjects)
	return nil
}

// staffCommand runs "steward staff grant|revoke EMAIL ROLE".
func staffCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 3 || (pos[0] != "grant" && pos[0] != "revoke") {
		return apperr.New(apperr.Invalid, "usage", "usage: steward staff grant|revoke EMAIL ROLE")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := a.Accounts.Lookup(ctx, pos[1])
	if err != nil {
		return err
	}
	if pos[0] == "grant" {
		err = a.Staff.Grant(ctx, s.ID, pos[2])
	} else {
		err = a.Staff.Revoke(ctx, s.ID, pos[2])
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%sed %s to %s\n", pos[0], pos[2], s.ID)
	return nil
}

// newsletterCommand runs "steward newsletter import FILE".
func newsletterCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, purpose string, stdout io.Writer) error {
	if len(pos) != 2 || pos[0] != "import" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward newsletter import FILE [--purpose P]")
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	rep, err := a.Newsletter.Import(ctx, f, purpose, "operator")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d rows in %s: %d imported, %d already subscribed, %d suppressed, %d invalid\n",
		rep.Rows, time.Since(start).Round(time.Millisecond), rep.Imported, rep.Existing, rep.Suppressed, rep.Invalid)
	for _, e := range rep.Errors {
		fmt.Fprintln(stdout, " ", e)
	}
	return nil
}
