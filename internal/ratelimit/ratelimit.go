// Package ratelimit owns the rate_limits table: token buckets kept in the database, so
// that every node of a deployment spends from the same buckets (a limit held per node
// would be as many times looser as there are nodes).
//
// A bucket is one row, its theoretical arrival time (GCRA): taking a token is one
// UPSERT ... RETURNING on either engine, atomic under the row's lock however many
// nodes take at once. Every attempt moves the bucket on, refused ones too, but never
// further than one token past the burst: a client that keeps hammering a full bucket
// stays refused, and is let in again two intervals after it stops.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"steward/internal/store"
)

// Rule is a limit: Burst attempts at once, then one every Every.
type Rule struct {
	Burst int
	Every time.Duration
}

// Buckets are the token buckets of every limit, in the database.
type Buckets struct {
	db     *store.DB
	now    func() time.Time
	log    *slog.Logger
	pruned atomic.Int64 // Unix milliseconds of this node's last prune
}

// New returns the buckets kept in db.
func New(db *store.DB, now func() time.Time, log *slog.Logger) *Buckets {
	return &Buckets{db: db, now: now, log: log}
}

// pruneEvery is how often a node deletes the full buckets.
const pruneEvery = time.Minute

// Take spends one token of the bucket named key under rule, and reports whether it had
// one. key must not hold a plain value (an IP address, an email): it is stored.
func (b *Buckets) Take(ctx context.Context, key string, r Rule) (bool, error) {
	now := b.now().UnixMilli()
	every := r.Every.Milliseconds()
	if every < 1 {
		every = 1
	}
	tolerance := int64(r.Burst) * every
	// A full (or absent) bucket starts again from now; else the bucket moves on by one
	// interval, but no further than one token past the burst.
	rows, err := b.db.QueryWriter(ctx, `INSERT INTO rate_limits (bucket, tat) VALUES ($1, $2)
		ON CONFLICT (bucket) DO UPDATE SET tat = CASE
			WHEN rate_limits.tat <= $3 THEN $2
			WHEN rate_limits.tat + $4 > $5 THEN $5
			ELSE rate_limits.tat + $4 END
		RETURNING tat`, key, now+every, now, every, now+tolerance+every)
	if err != nil {
		return false, fmt.Errorf("ratelimit: take: %w", err)
	}
	var tat int64
	if rows.Next() {
		err = rows.Scan(&tat)
	} else if err = rows.Err(); err == nil {
		err = errors.New("no row returned")
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("ratelimit: take: %w", err)
	}
	b.prune(ctx, now)
	return tat-now <= tolerance, nil
}

// Give returns the token a Take spent on something that then did not happen (a mail
// that could not be queued, which its sender tries again): the bucket moves back by
// one interval.
func (b *Buckets) Give(ctx context.Context, key string, r Rule) error {
	every := max(r.Every.Milliseconds(), 1)
	if _, err := b.db.ExecContext(ctx, `UPDATE rate_limits SET tat = tat - $1 WHERE bucket = $2`, every, key); err != nil {
		return fmt.Errorf("ratelimit: give: %w", err)
	}
	return nil
}

// prune deletes the full buckets, at most once a minute on each node. A failure only
// leaves rows that the next prune deletes: it is logged, and the take stands.
func (b *Buckets) prune(ctx context.Context, now int64) {
	last := b.pruned.Load()
	if now-last < pruneEvery.Milliseconds() || !b.pruned.CompareAndSwap(last, now) {
		return
	}
	if _, err := b.db.ExecContext(ctx, `DELETE FROM rate_limits WHERE tat < $1`, now); err != nil {
		b.log.WarnContext(ctx, "ratelimit: pruning full buckets; the next prune retries", "err", err)
	}
}
