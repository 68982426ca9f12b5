package newsletter

import (
	"context"
	"fmt"
	"slices"

	"steward/internal/consent"
	"steward/internal/store"
)

// mailPurposes are the purposes a campaign can be sent for.
func (s *Service) mailPurposes() []consent.Purpose {
	var out []consent.Purpose
	for _, p := range s.consent.Register().Purposes {
		if p.Marketing && !p.Sharing {
			out = append(out, p)
		}
	}
	return out
}

// Refresh recomputes, for the given subjects, which purposes they may be mailed for now
// (the mailable table), from the rule itself: consent.AllowedSQL, the subscription's
// status and the suppression list. Every change that can alter it calls it in the
// change's transaction, tx: the delete and the inserts commit with the change, so
// neither a crash nor a campaign's snapshot can find a subject half-refreshed.
func (s *Service) Refresh(ctx context.Context, tx *store.Tx, subjects ...string) error {
	if err := lockSubjects(ctx, tx, subjects); err != nil {
		return err
	}
	return s.inChunks(subjects, func(chunk []string) error {
		in, args := s.db.In("subject_id", 1, chunk)
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailable WHERE `+in, args...); err != nil {
			return fmt.Errorf("newsletter: refresh: %w", err)
		}
		for _, p := range s.mailPurposes() {
			if err := s.fillSubjects(ctx, tx, p.Key, chunk); err != nil {
				return err
			}
		}
		return nil
	})
}

// lockSubjects takes, until tx ends, the locks that keep two refreshes of one subject
// apart. On PostgreSQL two transactions could otherwise both delete the subject's
// rows, each unable to see what the other inserts, and the second's insert would then
// fail on the first's rows (SQLite has one writer at a time: the locks are nothing
// there). A refresh of a few subjects locks each, in order, under a shared lock of the
// table; one of many (an upgrade's batch) takes the table alone, so as not to fill
// the server's table of locks.
func lockSubjects(ctx context.Context, tx *store.Tx, subjects []string) error {
	if len(subjects) > maxSubjectLocks {
		return tx.Lock(ctx, "mailable", false)
	}
	if err := tx.Lock(ctx, "mailable", true); err != nil {
		return err
	}
	for _, id := range slices.Compact(slices.Sorted(slices.Values(subjects))) {
		if err := tx.Lock(ctx, "mailable "+id, false); err != nil {
			return err
		}
	}
	return nil
}

// maxSubjectLocks is the most subjects a refresh locks one by one.
const maxSubjectLocks = 16

// fillSubjects inserts, of the subjects, the recipients the rule allows for purpose.
func (s *Service) fillSubjects(ctx context.Context, q store.Querier, purpose string, subjects []string) error {
	return s.inChunks(subjects, func(chunk []string) error {
		in, args := s.db.In("s.subject_id", 2, chunk)
		return s.fill(ctx, q, purpose, " AND "+in, append([]any{purpose}, args...)...)
	})
}

// inChunks calls fn with as many of the values as one statement takes: 500 at a time
// on SQLite (a statement's parameters are limited), all at once on PostgreSQL (they go
// in one array, see store.DB.In).
func (s *Service) inChunks(vals []string, fn func(chunk []string) error) error {
	per := 500
	if s.db.Dialect == store.Postgres {
		per = max(len(vals), 1)
	}
	for i := 0; i < len(vals); i += per {
		if err := fn(vals[i:min(i+per, len(vals))]); err != nil {
			return err
		}
	}
	return nil
}

// fill inserts the recipients the rule allows for purpose (and the extra condition),
// with copies of their sealed address and first name (the columns share their labels).
func (s *Service) fill(ctx context.Context, q store.Querier, purpose, extra string, args ...any) error {
	aq, err := s.audienceQuery(purpose, extra)
	if err != nil {
		return err
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO mailable (purpose, subject_id, email, first_name)
		SELECT $1, a.subject_id, a.email, a.first_name FROM (`+aq+`) a`, args...); err != nil {
		return fmt.Errorf("newsletter: refresh: %w", err)
	}
	return nil
}

// RefreshAll rebuilds the whole table from the rule (at start when it is empty but
// there are subscribers, after an upgrade or a restore, and in benchmarks).
func (s *Service) RefreshAll(ctx context.Context) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, "mailable", false); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailable`); err != nil {
			return fmt.Errorf("newsletter: refresh: %w", err)
		}
		for _, p := range s.mailPurposes() {
			if err := s.fill(ctx, tx, p.Key, "", p.Key); err != nil {
				return err
			}
		}
		return nil
	})
}

// RefreshPurposes rebuilds the table's rows of the purposes from the rule, in tx: a
// material change of the privacy policy that asks them again (consent.AskAgainTx, in
// the same transaction) takes the consents given before it out of every audience.
// Purposes that are not sent by campaigns are passed over.
func (s *Service) RefreshPurposes(ctx context.Context, tx *store.Tx, purposes ...string) error {
	for _, p := range s.mailPurposes() {
		if !slices.Contains(purposes, p.Key) {
			continue
		}
		if err := tx.Lock(ctx, "mailable", false); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailable WHERE purpose = $1`, p.Key); err != nil {
			return fmt.Errorf("newsletter: refresh: %w", err)
		}
		if err := s.fill(ctx, tx, p.Key, "", p.Key); err != nil {
			return err
		}
	}
	return nil
}

// RefreshIfEmpty rebuilds the table when it is empty and there are confirmed
// subscribers: the first start after the table was added.
func (s *Service) RefreshIfEmpty(ctx context.Context) error {
	var rows, subs int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM (SELECT 1 FROM mailable LIMIT 1) m),
		(SELECT count(*) FROM (SELECT 1 FROM subscribers WHERE status = 'confirmed' LIMIT 1) x)`).Scan(&rows, &subs); err != nil {
		return fmt.Errorf("newsletter: refresh: %w", err)
	}
	if rows > 0 || subs == 0 {
		return nil
	}
	return s.RefreshAll(ctx)
}
