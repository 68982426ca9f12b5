// Package jobs runs Steward's durable background jobs on River, in the same database as
// everything else (SQLite or PostgreSQL), so a job is enqueued in the transaction of the
// change that needs it and survives a crash: a job that was running when the process
// died is picked up again. Job arguments carry only random ids, never personal data.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"steward/internal/store"
)

func driver(db *store.DB) riverdriver.Driver[*sql.Tx] {
	if db.Dialect == store.SQLite {
		return pollOnlySQLite{riversqlite.New(db.Writer())}
	}
	return riverdatabasesql.New(db.Writer())
}

// pollOnlySQLite is River's SQLite driver, saying it offers no listener: the queue runs
// in poll-only mode (see Open), where River wakes its own workers after an insert made
// outside a transaction only on a driver without one.
type pollOnlySQLite struct{ *riversqlite.Driver }

func (pollOnlySQLite) SupportsListener() bool { return false }

// Migrate creates or updates River's own tables.
func Migrate(ctx context.Context, db *store.DB) error {
	m, err := rivermigrate.New(driver(db), nil)
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}

// Args are a job's arguments: random ids only. Kind names the job's kind, which has
// one worker (Register). Capabilities enqueue jobs through their own small interface
// taking Args, so that River's types stay here.
type Args interface {
	Kind() string
}

// RunAgain is what a worker returns to run its job again at once, without counting
// an attempt: it did part of the work and yields to other jobs.
func RunAgain() error { return river.JobSnooze(0) }

// Queue is the job client: register workers, then Start.
type Queue struct {
	work     bool // this client runs jobs
	db       *store.DB
	log      *slog.Logger
	workers  *river.Workers
	client   *river.Client[*sql.Tx]
	size     int
	poll     time.Duration
	started  bool
	periodic []*river.PeriodicJob
	runsMu   sync.Mutex
	runs     map[Run]int64 // Run.N unset: the key
}

// Every schedules args to run every interval (and once at start). Call before Open.
func (q *Queue) Every(interval time.Duration, args Args) {
	q.periodic = append(q.periodic, river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args, nil }, &river.PeriodicJobOpts{RunOnStart: true}))
}

// New returns a queue with no workers yet. poll is how often idle workers look for
// new jobs (River's poll-only mode: no LISTEN/NOTIFY on database/sql).
func New(db *store.DB, log *slog.Logger, size int, poll time.Duration) *Queue {
	return &Queue{db: db, log: log, workers: river.NewWorkers(), size: size, poll: poll}
}

// Register adds a worker for the job kind of T. Call before Start.
func Register[T Args](q *Queue, fn func(ctx context.Context, args T) error) {
	river.AddWorker(q.workers, river.WorkFunc(func(ctx context.Context, j *river.Job[T]) error {
		err := fn(ctx, j.Args)
		q.ran(j.Args.Kind(), err)
		return err
	}))
}

// backoff retries soon at first, then at most every ten minutes. The wait counts from
// when River began the failed attempt, by River's own clock, which is the one that
// decides when a scheduled job is due.
type backoff struct{}

func (backoff) NextRetry(j *rivertype.JobRow) time.Time {
	d := time.Duration(math.Min(math.Pow(2, float64(j.Attempt)), 600)) * time.Second
	from := j.CreatedAt
	if j.AttemptedAt != nil {
		from = *j.AttemptedAt
	}
	return from.Add(d)
}

// Open builds the client. With work set it also processes jobs after Start; without,
// it only inserts (for command-line tools).
func (q *Queue) Open(work bool) error {
	cfg := &river.Config{
		Logger:               quietLogger(q.log),
		FetchPollInterval:    q.poll,
		FetchCooldown:        min(q.poll/4, 10*time.Millisecond), // how soon after a fetch a wake can fetch again
		JobTimeout:           2 * time.Minute,
		RescueStuckJobsAfter: 5 * time.Minute,
		RetryPolicy:          backoff{},
		MaxAttempts:          25,
		PollOnly:             true,
	}
	if work {
		river.AddWorker(q.workers, river.WorkFunc(func(context.Context, *river.Job[wakeArgs]) error { return nil }))
		q.work = true
		cfg.Workers = q.workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: q.size}}
		cfg.PeriodicJobs = q.periodic
	}
	c, err := river.NewClient(driver(q.db), cfg)
	if err != nil {
		return fmt.Errorf("jobs: client: %w", err)
	}
	q.client = c
	return nil
}

// Start begins working jobs until Stop.
func (q *Queue) Start(ctx context.Context) error {
	if q.client == nil {
		return errors.New("jobs: start before open")
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	q.started = true
	return nil
}

// Stop lets running jobs finish (until ctx ends) and stops.
func (q *Queue) Stop(ctx context.Context) error {
	if !q.started {
		return nil
	}
	q.started = false
	return q.client.Stop(ctx)
}

// Enqueue inserts a job in tx; it runs only if tx commits.
func (q *Queue) Enqueue(ctx context.Context, tx *store.Tx, args Args) error {
	if q.client == nil {
		return errors.New("jobs: enqueue before open")
	}
	if _, err := q.client.InsertTx(ctx, tx.SQL(), args, nil); err != nil {
		return fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	if q.work {
		tx.AfterCommit(func() { q.wake(context.WithoutCancel(ctx)) })
	}
	return nil
}

// wakeArgs is a job that does nothing. River in poll-only mode (no LISTEN/NOTIFY on
// database/sql) looks for work at each poll, or at once after an insert made outside a
// transaction; a job queued in a transaction of ours would wait for the next poll. So
// once that transaction commits, this node inserts a wake job: its insert makes River
// look now, and it finds the real job with it. If the wake fails, the next poll does.
type wakeArgs struct{}

func (wakeArgs) Kind() string { return "wake" }

func (q *Queue) wake(ctx context.Context) {
	if _, err := q.client.Insert(ctx, wakeArgs{}, &river.InsertOpts{MaxAttempts: 1}); err != nil {
		q.log.Debug("jobs: wake", "err", err)
	}
}

// Run counts the runs of one kind of job on this node that ended one way: "ok",
// "again" (it yielded with RunAgain) or "error" (it failed; River retries it later,
// or discards it after its last attempt).
type Run struct {
	Kind, Result string
	N            int64
}

func (q *Queue) ran(kind string, err error) {
	result := "ok"
	var snooze *river.JobSnoozeError
	switch {
	case errors.As(err, &snooze):
		result = "again"
	case err != nil:
		result = "error"
	}
	q.runsMu.Lock()
	defer q.runsMu.Unlock()
	if q.runs == nil {
		q.runs = map[Run]int64{}
	}
	q.runs[Run{Kind: kind, Result: result}]++
}

// Runs returns the counts of job runs on this node since it started.
func (q *Queue) Runs() []Run {
	q.runsMu.Lock()
	defer q.runsMu.Unlock()
	out := make([]Run, 0, len(q.runs))
	for k, n := range q.runs {
		k.N = n
		out = append(out, k)
	}
	return out
}

// Count is how many jobs of a kind are in a state, on every node: "available",
// "scheduled", "retryable" and "running" are queued or working; "discarded" failed
// for good (kept by River for a week); "cancelled" will not run.
type Count struct {
	Kind, State string
	N           int64
}

// Counts reads how many jobs of each kind are in each state but completed, from
// River's table: one grouped count.
func (q *Queue) Counts(ctx context.Context) ([]Count, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM river_job WHERE state <> 'completed' GROUP BY kind, state`)
	if err != nil {
		return nil, fmt.Errorf("jobs: counts: %w", err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Kind, &c.State, &c.N); err != nil {
			return nil, fmt.Errorf("jobs: counts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs: counts: %w", err)
	}
	return out, nil
}
