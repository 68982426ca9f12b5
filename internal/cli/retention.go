package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/retention"
)

// retentionCommand runs "steward retention list" (the rules, their periods and their
// last runs) and "steward retention run" (apply every rule now, as the daily job does).
func retentionCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, pos []string, stdout io.Writer) error {
	if len(pos) != 1 || (pos[0] != "list" && pos[0] != "run") {
		return apperr.New(apperr.Invalid, "usage", "usage: steward retention list|run")
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if pos[0] == "run" {
		run, err := a.Retention().Run(ctx, retention.Actor{Source: retention.ByCLI})
		fmt.Fprintln(w, "RULE\tREMOVED\tWARNED\tHELD\tERROR")
		for _, rr := range run.Rules {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", rr.Rule, rr.Removed, rr.Warned, rr.Held, rr.Error)
		}
		if ferr := w.Flush(); ferr != nil {
			return ferr
		}
		return err
	}
	last, err := a.Retention().Last(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "RULE\tHOLDER\tPERIOD\tFLAG\tLAST RUN\tREMOVED")
	for _, r := range a.Retention().Rules() {
		period := r.Period.String()
		if r.Off {
			period = "off"
		}
		lastRun, removed := "never", ""
		if rr, ok := last[r.Name]; ok {
			lastRun, removed = rr.StartedAt.UTC().Format("2006-01-02 15:04 UTC"), fmt.Sprint(rr.Removed)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Holder, period, r.Flag, lastRun, removed)
	}
	return w.Flush()
}
