package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/governance"
)

// auditCommand runs "steward audit verify": it chains what is not chained yet, then
// recomputes the whole chain and checks every checkpoint's signature with the audit
// key (docs/design.md, "The audit log"). It returns whether the log is intact.
func auditCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) (bool, error) {
	if len(pos) != 1 || pos[0] != "verify" {
		return false, apperr.New(apperr.Invalid, "usage", "usage: steward audit verify")
	}
	// Without the deployment's key nothing can be verified: do not let the start make
	// a new one.
	keyFile := app.AuditKeyFile(cfg)
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("no audit key at %s: put back the deployment's audit key (it is made by the first steward serve)", keyFile)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return false, err
	}
	defer a.Close()
	n, err := a.Audit().Chain(ctx, a.DB())
	if err != nil {
		return false, err
	}
	rep, err := a.Audit().VerifyAndKeep(ctx, a.DB(), governance.VerifyCommand)
	if err != nil {
		return false, err
	}
	if n > 0 {
		fmt.Fprintf(stdout, "chained %d new entries first\n", n)
	}
	fmt.Fprintf(stdout, "entries checked: %d", rep.Entries)
	if rep.Legacy > 0 {
		fmt.Fprintf(stdout, " (the first %d from before the chain, without a MAC)", rep.Legacy)
	}
	fmt.Fprintf(stdout, "\ncheckpoints verified: %d\n", rep.Checkpoints)
	switch {
	case rep.Entries > 0 && rep.Intact():
		fmt.Fprintf(stdout, "head: entry %d, hash %s\n", rep.Head, rep.HeadHash)
	case rep.Entries > 0:
		fmt.Fprintf(stdout, "intact up to entry %d, hash %s\n", rep.Head, rep.HeadHash)
	}
	if rep.Unchained > 0 {
		fmt.Fprintf(stdout, "not chained yet: %d (an earlier release's entries, sealed at the next start, or written since)\n", rep.Unchained)
	}
	if !rep.Intact() {
		fmt.Fprintf(stdout, "BROKEN at entry %d: %s\n", rep.BrokenAt, rep.Problem)
		return false, nil
	}
	fmt.Fprintln(stdout, "the audit log is intact")
	return true, nil
}
