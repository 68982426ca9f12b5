// Package retention enforces what the data map's holders declare as their retention:
// each time-limited retention is a rule (a name, the holder it applies to, a period
// and what it removes) that a daily job applies, and each run of a rule is recorded
// with how many it removed (table retention_runs: counts and times, no personal data)
// and an entry of the audit log. The rules themselves are built where the capabilities
// they call are (internal/app), each removing through its capability's own methods:
// a person is removed through the erasure service, as their own erasure would.
package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/governance"
	"steward/internal/store"
	"steward/internal/text"
)

// Role is the staff role that sees the rules and runs them by hand (admin holds it too).
const Role = "dpo"

// Args is the daily job that applies every rule.
type Args struct{}

// Kind names the job.
func (Args) Kind() string { return "retention" }

// Every is how often the job runs.
const Every = 24 * time.Hour

// Result is what one rule did at one run.
type Result struct {
	Removed int // rows or people removed
	Warned  int // people warned that they will be removed (inactive accounts)
	Held    int // people passed over because a legal hold keeps their data
}

// Rule is one retention rule.
type Rule struct {
	Name    string // short, unique, e.g. "expired_sessions"
	Holder  string // the data map holder whose data it removes
	Removes string // what it removes, in words, for staff
	Period  time.Duration
	// Off says the operator has not turned the rule on (a period of 0 for a rule
	// that is off by default): it is listed, and never applied.
	Off  bool
	Flag string // the flag that sets the period
	// Apply removes what is older than before (now less the period).
	Apply func(ctx context.Context, before time.Time) (Result, error)
}

// Auditor records governance actions in the audit log.
type Auditor interface {
	Record(ctx context.Context, q store.Querier, e governance.Event) error
}

// Service applies the rules and keeps their runs.
type Service struct {
	db    *store.DB
	audit Auditor
	rules []Rule
	now   func() time.Time
	log   *slog.Logger
}

// New returns the retention service over rules; it refuses two rules of one name or a
// rule without a holder or an Apply.
func New(db *store.DB, audit Auditor, rules []Rule, now func() time.Time, log *slog.Logger) (*Service, error) {
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Name == "" || r.Holder == "" || r.Apply == nil {
			return nil, fmt.Errorf("retention: rule %q: a name, a holder and an Apply are required", r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("retention: rule %q declared twice", r.Name)
		}
		seen[r.Name] = true
	}
	return &Service{db: db, audit: audit, rules: rules, now: now, log: log}, nil
}

// Rules returns the rules in the order they run.
func (s *Service) Rules() []Rule { return append([]Rule(nil), s.rules...) }

// Sources of a run.
const (
	Scheduled = "schedule" // the daily job
	ByStaff   = "staff"    // "run now" in the console or the API
	ByCLI     = "cli"      // steward retention run
)

// Actor is who started a run: a member of staff (ID, IP), or none for the daily job
// and the command line.
type Actor struct {
	ID, IP string
	Source string
}

// RuleRun is what one rule did at one run.
type RuleRun struct {
	Rule string
	Result
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Run is one run of every rule that is on.
type Run struct {
	ID        string
	Source    string
	StartedAt time.Time
	Rules     []RuleRun
}

// Removed is how many the run removed, all rules together.
func (r Run) Removed() int {
	n := 0
	for _, x := range r.Rules {
		n += x.Removed
	}
	return n
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run applies every rule that is on, records what each did, and records the run in
// the audit log. A rule that fails is recorded with its error and the others run;
// the errors are returned together (the daily job is then retried: every rule is
// idempotent).
func (s *Service) Run(ctx context.Context, by Actor) (Run, error) {
	if by.Source == "" {
		by.Source = Scheduled
	}
	run := Run{ID: newID(), Source: by.Source, StartedAt: s.now()}
	var errs []error
	for _, r := range s.rules {
		if r.Off {
			continue
		}
		rr := RuleRun{Rule: r.Name, StartedAt: s.now()}
		res, err := r.Apply(ctx, rr.StartedAt.Add(-r.Period))
		rr.Result, rr.FinishedAt = res, s.now()
		if err != nil {
			// Errors carry no personal data (ids at most); cut to fit the page.
			rr.Error = text.Cut(err.Error(), 500)
			errs = append(errs, fmt.Errorf("retention: %s: %w", r.Name, err))
			s.log.Error("retention rule failed", "rule", r.Name, "err", err)
		}
		run.Rules = append(run.Rules, rr)
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, rr := range run.Rules {
			if _, err := tx.ExecContext(ctx, `INSERT INTO retention_runs (run_id, rule, source, started_at, finished_at, removed, warned, held, error)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, run.ID, rr.Rule, run.Source, store.Millis(rr.StartedAt), store.Millis(rr.FinishedAt),
				rr.Removed, rr.Warned, rr.Held, rr.Error); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "retention_run", AccountID: by.ID, IP: by.IP, Detail: detail(run)})
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("retention: record run: %w", err))
	}
	return run, errors.Join(errs...)
}

// detail is the audit entry's detail: the source and each rule's counts (no personal
// data), e.g. "staff: expired_sessions removed 3; inactive_accounts removed 0 warned 1".
func detail(run Run) string {
	parts := make([]string, 0, len(run.Rules))
	for _, rr := range run.Rules {
		p := rr.Rule + " removed " + strconv.Itoa(rr.Removed)
		if rr.Warned > 0 {
			p += " warned " + strconv.Itoa(rr.Warned)
		}
		if rr.Held > 0 {
			p += " held " + strconv.Itoa(rr.Held)
		}
		if rr.Error != "" {
			p += " failed"
		}
		parts = append(parts, p)
	}
	return text.Cut(run.Source+": "+strings.Join(parts, "; "), 1000)
}

// Runs returns the last runs, the newest first (at most limit, 1 to 100).
func (s *Service) Runs(ctx context.Context, limit int) ([]Run, error) {
	if limit < 1 || limit > 100 {
		return nil, apperr.Field("limit", "out_of_range", "must be from 1 to 100")
	}
	ids, err := store.Strings(ctx, s.db, `SELECT run_id FROM retention_runs GROUP BY run_id ORDER BY MIN(started_at) DESC, run_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("retention: runs: %w", err)
	}
	out := make([]Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.run(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) run(ctx context.Context, id string) (Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rule, source, started_at, finished_at, removed, warned, held, error FROM retention_runs
		WHERE run_id = $1 ORDER BY started_at, rule`, id)
	if err != nil {
		return Run{}, fmt.Errorf("retention: run: %w", err)
	}
	defer rows.Close()
	run := Run{ID: id}
	for rows.Next() {
		var rr RuleRun
		var started, finished int64
		if err := rows.Scan(&rr.Rule, &run.Source, &started, &finished, &rr.Removed, &rr.Warned, &rr.Held, &rr.Error); err != nil {
			return Run{}, fmt.Errorf("retention: run: %w", err)
		}
		rr.StartedAt, rr.FinishedAt = store.FromMillis(started), store.FromMillis(finished)
		if run.StartedAt.IsZero() || rr.StartedAt.Before(run.StartedAt) {
			run.StartedAt = rr.StartedAt
		}
		run.Rules = append(run.Rules, rr)
	}
	if err := rows.Err(); err != nil {
		return Run{}, fmt.Errorf("retention: run: %w", err)
	}
	if len(run.Rules) == 0 {
		return Run{}, apperr.New(apperr.NotFound, "run_not_found", "no such retention run")
	}
	return run, nil
}

// Last returns, for each rule, its last run (zero when it never ran).
func (s *Service) Last(ctx context.Context) (map[string]RuleRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.rule, r.started_at, r.finished_at, r.removed, r.warned, r.held, r.error FROM retention_runs r
		WHERE r.started_at = (SELECT MAX(x.started_at) FROM retention_runs x WHERE x.rule = r.rule)`)
	if err != nil {
		return nil, fmt.Errorf("retention: last: %w", err)
	}
	defer rows.Close()
	out := map[string]RuleRun{}
	for rows.Next() {
		var rr RuleRun
		var started, finished int64
		if err := rows.Scan(&rr.Rule, &started, &finished, &rr.Removed, &rr.Warned, &rr.Held, &rr.Error); err != nil {
			return nil, fmt.Errorf("retention: last: %w", err)
		}
		rr.StartedAt, rr.FinishedAt = store.FromMillis(started), store.FromMillis(finished)
		out[rr.Rule] = rr
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retention: last: %w", err)
	}
	return out, nil
}
