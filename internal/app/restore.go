package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"steward/internal/backup"
	"steward/internal/config"
	"steward/internal/rights"
	"steward/internal/store"
)

// Backup writes a backup of the configured database to out (steward backup). It opens
// the database without migrating it: a backup is of the database as it is.
func Backup(ctx context.Context, cfg *config.Config, out string) (backup.Manifest, error) {
	key, err := LedgerKey(cfg.LedgerKeyFile)
	if err != nil {
		return backup.Manifest{}, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return backup.Manifest{}, err
	}
	defer db.Close()
	return backup.Create(ctx, db, cfg.DatabaseURL, out, backup.Options{Key: key, PgDump: cfg.PgDump, Now: time.Now})
}

// RestoreOptions are what a restore takes besides the configuration.
type RestoreOptions struct {
	// AfterRestore is the hook for key recovery: it runs once the restored database
	// is migrated, before the erasure ledger is replayed, while no server can start.
	// Data keys in the backup are wrapped under epoch keys the live nodes may have
	// destroyed since; this is where they are rewrapped from escrow, so that the
	// members the backup holds can be served, and the erasures the replay runs again
	// find every key they must destroy. Nil: nothing to do.
	AfterRestore func(ctx context.Context, db *store.DB) error
}

// RestoreReport says what a restore did: counts, no identifier.
type RestoreReport struct {
	Manifest backup.Manifest
	Replay   rights.ReplayReport
}

// Restore replaces the configured database with the backup at path (steward restore;
// every server stopped), then, still holding the database alone: migrates it, runs
// the AfterRestore hook, and replays all of the erasure ledger's objects, erasing
// again whoever they name that the backup brought back. The backup and every ledger
// object are checked completely before anything changes; see backup.Restore.
func Restore(ctx context.Context, cfg *config.Config, log *slog.Logger, path string, opts RestoreOptions) (RestoreReport, error) {
	var rep RestoreReport
	key, err := LedgerKey(cfg.LedgerKeyFile)
	if err != nil {
		return rep, err
	}
	// Every ledger object must verify before the database is replaced: one that does
	// not would stop the replay after it, with the erased brought back.
	blobs, err := openBlobs(ctx, cfg, false)
	if err != nil {
		return rep, err
	}
	if _, err := rights.VerifyLedgerObjects(ctx, rights.Ledger{Key: key, Blobs: blobs}); err != nil {
		return rep, err
	}
	rep.Manifest, err = backup.Restore(ctx, path, cfg.DatabaseURL, backup.RestoreOptions{Key: key, PgRestore: cfg.PgRestore, Log: log},
		func(ctx context.Context) error {
			if opts.AfterRestore != nil {
				// Before the services are built: the vault opens no key of a
				// database at an older epoch until they are rewrapped.
				db, err := store.Open(ctx, cfg.DatabaseURL)
				if err != nil {
					return fmt.Errorf("app: restored database: %w", err)
				}
				err = Migrate(ctx, db)
				if err == nil {
					err = opts.AfterRestore(ctx, db)
				}
				if cerr := db.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("app: after restore: %w", err)
				}
			}
			a, err := New(ctx, cfg, log) // migrates
			if err != nil {
				return fmt.Errorf("app: restored database: %w", err)
			}
			defer a.Close()
			// All of it, not from the backup's newest erasure less a margin: a
			// restore is rare, and reading every object costs little beside it.
			if rep.Replay, err = a.rights.Replay(ctx, true); err != nil {
				return err
			}
			// The replay needs no key; serving does.
			return a.keysBehind
		})
	return rep, err
}
