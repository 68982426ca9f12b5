package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/store"
	"steward/internal/vault"
)

// commandUsage is the usage line "steward COMMAND -h" prints before the flags.
var commandUsage = map[string]string{
	"backup":  "steward backup --out FILE",
	"restore": "steward restore FILE [--identity FILE]   (with every steward serve stopped)",
	"export":  "steward export EMAIL|ID [--out FILE]",
}

// backupCommand writes a backup of the database ("steward backup --out FILE").
func backupCommand(ctx context.Context, cfg *config.Config, pos []string, out string, stdout io.Writer) error {
	if len(pos) != 0 {
		return apperr.New(apperr.Invalid, "usage", "usage: steward backup --out FILE")
	}
	if out == "" {
		return apperr.Field("out", "required", "is required: the file to write the backup to")
	}
	m, err := app.Backup(ctx, cfg, out)
	if err != nil {
		return err
	}
	newest := "none"
	if m.NewestErasure > 0 {
		newest = time.UnixMilli(m.NewestErasure).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "backup written to %s: %s database, schema version %d, %d bytes, newest erasure %s, deployment %s\n",
		out, m.Engine, m.SchemaVersion, m.Entries[0].Size, newest, m.Deployment)
	fmt.Fprintln(stdout, "objects are not in it: keep files/ (versioned or replicated) and ledger/ of the blob store; never restore ledger/ to an older state")
	escrowed, err := epochEscrowed(ctx, cfg)
	if err != nil {
		return err
	}
	if !escrowed {
		fmt.Fprintln(stdout, "warning: this key epoch is not escrowed (no --escrow-recipient): once it passes (--key-epoch), the nodes destroy its key and nothing opens this backup's data keys")
	}
	return nil
}

// restoreCommand restores a backup ("steward restore FILE") and replays the erasure
// ledger.
func restoreCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, identity string, stdout io.Writer) error {
	if len(pos) != 1 {
		return apperr.New(apperr.Invalid, "usage", "usage: steward restore FILE")
	}
	var opts app.RestoreOptions
	if identity != "" {
		ids, err := vault.ReadIdentities(identity)
		if err != nil {
			return err
		}
		// The backup's data keys are wrapped at its epoch, whose key the nodes may
		// have destroyed since: they are opened from escrow and rewrapped under this
		// node's key before anything else reads them.
		opts.AfterRestore = func(ctx context.Context, db *store.DB) error {
			behind, err := vault.NeedsRecovery(ctx, db, cfg.MasterKeyFile)
			if err != nil || !behind {
				return err
			}
			n, err := vault.Recover(ctx, db, cfg.MasterKeyFile, ids, time.Now)
			if err == nil {
				fmt.Fprintf(stdout, "rewrapped %d data key(s) from escrow under this node's key\n", n)
			}
			return err
		}
	}
	rep, err := app.Restore(ctx, cfg, log, pos[0], opts)
	if err != nil && !errors.Is(err, vault.ErrKeysBehind) {
		return err
	}
	// Restored and replayed; with keys behind, serving waits for their recovery.
	m := rep.Manifest
	fmt.Fprintf(stdout, "restored the %s database of %s (schema version %d)\n", m.Engine,
		time.UnixMilli(m.CreatedAt).UTC().Format(time.RFC3339), m.SchemaVersion)
	fmt.Fprintf(stdout, "erasure ledger replayed: %d object(s) read, %d entry(ies) the backup lacked, %d subject(s) erased again\n",
		rep.Replay.Objects, rep.Replay.Entries, rep.Replay.Subjects)
	return err
}

// epochEscrowed reports whether the database's current key epoch has its key escrowed,
// so that a backup of it can be restored after the epoch passes.
func epochEscrowed(ctx context.Context, cfg *config.Config) (bool, error) {
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return false, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM kek_escrow e JOIN kek_state s ON e.epoch = s.epoch`).Scan(&n)
	return n > 0, err
}
