package jobs

import (
	"context"
	"log/slog"
)

// quiet is the logger River gets: what River says below WARN (a client started, a
// maintenance service that "ran successfully" every minute) is logged at DEBUG, so a
// log at the default level holds Steward's own lines and River's warnings and errors.
type quiet struct{ slog.Handler }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return q.Handler.Enabled(ctx, demote(l))
}

func (q quiet) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return q.Handler.Handle(ctx, r)
}

func (q quiet) WithAttrs(as []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(as)} }

func (q quiet) WithGroup(name string) slog.Handler { return quiet{q.Handler.WithGroup(name)} }

func quietLogger(log *slog.Logger) *slog.Logger { return slog.New(quiet{log.Handler()}) }
