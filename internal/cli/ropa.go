package cli

import (
	"context"
	"io"
	"log/slog"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/ropa"
)

// ropaCommand runs "steward ropa [--format markdown|csv|json]": it writes the records
// of processing activities (GDPR art. 30), built from the data map, the purposes, the
// register of processors and the transfers, to stdout.
func ropaCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, format string, stdout io.Writer) error {
	if len(pos) != 0 {
		return apperr.New(apperr.Invalid, "usage", "usage: steward ropa [--format markdown|csv|json]")
	}
	if err := ropa.CheckFormat(format); err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	rec, err := a.Records().Build(ctx)
	if err != nil {
		return err
	}
	return rec.Write(stdout, format)
}
