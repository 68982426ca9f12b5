package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
)

// commandUsage is the usage line "steward COMMAND -h" prints before the flags.
var commandUsage = map[string]string{
	"backup":  "steward backup --out FILE",
	"restore": "steward restore FILE   (with every steward serve stopped)",
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
	return nil
}

// restoreCommand restores a backup ("steward restore FILE") and replays the erasure
// ledger.
func restoreCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 1 {
		return apperr.New(apperr.Invalid, "usage", "usage: steward restore FILE")
	}
	// Key recovery plugs in here: app.RestoreOptions.AfterRestore rewraps data keys from
	// escrow before the ledger is replayed.
	rep, err := app.Restore(ctx, cfg, log, pos[0], app.RestoreOptions{})
	if err != nil {
		return err
	}
	m := rep.Manifest
	fmt.Fprintf(stdout, "restored the %s database of %s (schema version %d)\n", m.Engine,
		time.UnixMilli(m.CreatedAt).UTC().Format(time.RFC3339), m.SchemaVersion)
	fmt.Fprintf(stdout, "erasure ledger replayed: %d object(s) read, %d entry(ies) the backup lacked, %d subject(s) erased again\n",
		rep.Replay.Objects, rep.Replay.Entries, rep.Replay.Subjects)
	return nil
}
