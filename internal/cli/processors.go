package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
)

// processorsCommand runs "steward processors secret NAME": it prints the secret the
// processor checks the signature of its notices with (Steward-Signature, HMAC-SHA-256),
// for the operator to give it. The secret is derived from the deployment's key: it is
// the same on every node and at every run, and changes with nothing but the key.
func processorsCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 2 || pos[0] != "secret" {
		return apperr.New(apperr.Invalid, "usage", "usage: steward processors secret NAME")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	list, err := a.Processors().List(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Key)
	}
	if !slices.Contains(names, pos[1]) {
		return apperr.New(apperr.Invalid, "processor_unknown",
			fmt.Sprintf("%q is not a processor of the register (/staff/processors); the register has: %s", pos[1], strings.Join(names, ", ")))
	}
	fmt.Fprintln(stdout, a.Notices().Secret(pos[1]))
	return nil
}
