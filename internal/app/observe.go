package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"steward/internal/blob"
	"steward/internal/jobs"
	"steward/internal/metrics"
	"steward/internal/rights"
	"steward/internal/server"
)

// metricSources are what a scrape reads; each calls a service built after the registry.
func (a *App) metricSources() metrics.Sources {
	return metrics.Sources{
		JobRuns:   func() []jobs.Run { return a.jobs.Runs() },
		JobCounts: func(ctx context.Context) ([]jobs.Count, error) { return a.jobs.Counts(ctx) },
		Outbox:    func(ctx context.Context) (int64, error) { return a.outbox.Queued(ctx) },
		Erasures: func(ctx context.Context, overdue time.Time) (rights.Stats, error) {
			return a.rights.Stats(ctx, overdue)
		},
		Now: a.now,
	}
}

// MetricsHandler serves /metrics, with /healthz and /readyz, for the listener of
// --metrics-addr: apart from the site, so that operators choose who reaches it.
func (a *App) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	a.registerHealth(mux)
	return mux
}

// ServeMetrics answers MetricsHandler on ln until ctx ends.
func (a *App) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return serveUntil(ctx, ln, &http.Server{
		Handler:           a.MetricsHandler(),
		ReadHeaderTimeout: server.ReadHeaderTimeout,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}, 5*time.Second)
}

// registerHealth adds /healthz (the process answers: 200) and /readyz (what it needs
// answers too: 200, or 503 naming what failed).
func (a *App) registerHealth(mux server.Router) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		server.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := a.ready.check(r.Context())
		if len(failed) > 0 {
			server.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
			return
		}
		server.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// readiness checks the database, the blob store and the mail server, each with a short
// timeout and all at once. A result is kept for a second: /readyz is public, and a
// flood of it must not become a flood of connections to the database and mail server.
// Why a check failed is logged, never answered.
type readiness struct {
	checks []readyCheck
	log    *slog.Logger
	mu     sync.Mutex
	at     time.Time
	failed []string
}

type readyCheck struct {
	name string
	fn   func(ctx context.Context) error
}

const (
	readyTimeout = 2 * time.Second
	readyKeep    = time.Second
)

func (r *readiness) check(ctx context.Context) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.at) < readyKeep {
		return r.failed
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	errs := make([]error, len(r.checks))
	var wg sync.WaitGroup
	for i, c := range r.checks {
		wg.Go(func() { errs[i] = c.fn(ctx) })
	}
	wg.Wait()
	failed := []string{}
	for i, err := range errs {
		if err != nil {
			failed = append(failed, r.checks[i].name)
			r.log.Warn("not ready", "check", r.checks[i].name, "err", err)
		}
	}
	r.failed, r.at = failed, time.Now()
	return failed
}

// readinessChecks are the checks of /readyz: a ping of the database, a read of an
// object that does not exist (answered "not found" by a store that works), and a
// connection to the SMTP server (or, writing .eml files, the outbox folder).
func (a *App) readinessChecks() []readyCheck {
	cfg := a.config
	mailCheck := func(ctx context.Context) error {
		dir := filepath.Join(cfg.DataDir, "outbox")
		if _, err := os.Stat(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if cfg.MailMode == "smtp" {
		mailCheck = func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", cfg.SMTPAddr)
			if err != nil {
				return err
			}
			return c.Close()
		}
	}
	return []readyCheck{
		{"database", func(ctx context.Context) error {
			var one int
			return a.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
		}},
		{"storage", func(ctx context.Context) error {
			rc, err := a.blobs.Open(ctx, "readyz-probe", 0, -1)
			if errors.Is(err, blob.ErrNotFound) {
				return nil
			}
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"mail", mailCheck},
	}
}
