package analytics

import (
	"context"
	"fmt"
	"time"

	"steward/internal/store"
)

// MaintainArgs is the periodic job that destroys the salts of past days, rolls the
// events of yesterday and today up, and purges what is older than its retention.
type MaintainArgs struct{}

// Kind names the job.
func (MaintainArgs) Kind() string { return "analytics_maintain" }

// Maintain runs the periodic work: salts, rollups, purge.
func (s *Service) Maintain(ctx context.Context) error {
	today := DayOf(s.now())
	if err := s.DestroySalts(ctx); err != nil {
		return err
	}
	for _, d := range []int64{today - 1, today} {
		if err := s.Rollup(ctx, d); err != nil {
			return err
		}
	}
	if err := s.attribution(ctx, today); err != nil { // campaigns and conversions: attribution.go
		return err
	}
	_, _, err := s.Purge(ctx)
	return err
}

// DestroySalts deletes the salt of every day before today, so that no visitor hash of
// those days can be made again or linked to today's. On SQLite (secure_delete is on)
// the row is overwritten in the file, and the write-ahead log, which kept its page,
// is checkpointed and truncated. On PostgreSQL the table is UNLOGGED (the salt never
// enters the WAL, replicas or WAL archives): it is truncated, which gives it a new
// file and unlinks the old one, and today's salt is written again, all in one
// transaction under the table's lock (every node waits, then reads today's salt).
func (s *Service) DestroySalts(ctx context.Context) error {
	today := DayOf(s.now())
	if s.db.Dialect == store.SQLite {
		res, err := s.db.ExecContext(ctx, `DELETE FROM salts WHERE day < $1`, today)
		if err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return s.db.Compact(ctx)
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `LOCK TABLE salts IN ACCESS EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		var old int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM salts WHERE day < $1`, today).Scan(&old); err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		if old == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT day, salt FROM salts WHERE day >= $1`, today)
		if err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		type kept struct {
			day  int64
			salt []byte
		}
		var keep []kept
		for rows.Next() {
			var k kept
			if err := rows.Scan(&k.day, &k.salt); err != nil {
				rows.Close()
				return fmt.Errorf("analytics: destroy salts: %w", err)
			}
			keep = append(keep, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `TRUNCATE salts`); err != nil {
			return fmt.Errorf("analytics: destroy salts: %w", err)
		}
		for _, k := range keep {
			if _, err := tx.ExecContext(ctx, `INSERT INTO salts (day, salt) VALUES ($1, $2)`, k.day, k.salt); err != nil {
				return fmt.Errorf("analytics: destroy salts: %w", err)
			}
		}
		return nil
	})
}

// Rollup counts a day's events again, per site: visitors (distinct hashes of the
// day), pageviews, other events, and robots apart (daily_sites); per page
// (daily_pages); and each site's day broken down (daily_dims: pages, entry and exit
// pages, referrers, countries, browsers, events, outbound links, transitions). The
// events are read once, before the write begins, so the store's writer waits only for
// the write.
func (s *Service) Rollup(ctx context.Context, day int64) error {
	r, err := s.rollupDay(ctx, day)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error { return r.write(ctx, tx, day) })
}

// Purge deletes request log lines older than RequestLogDays and the raw events of the
// days that ended more than EventDays ago (whole UTC days; their rollups stay).
func (s *Service) Purge(ctx context.Context) (logs, events int64, err error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, `DELETE FROM request_log WHERE at < $1`,
		store.Millis(now.Add(-time.Duration(s.cfg.RequestLogDays)*24*time.Hour)))
	if err != nil {
		return 0, 0, fmt.Errorf("analytics: purge request log: %w", err)
	}
	logs, _ = res.RowsAffected()
	res, err = s.db.ExecContext(ctx, `DELETE FROM events WHERE day < $1`, DayOf(now)-int64(s.cfg.EventDays))
	if err != nil {
		return logs, 0, fmt.Errorf("analytics: purge events: %w", err)
	}
	events, _ = res.RowsAffected()
	return logs, events, nil
}

// Day is one site's day as rolled up.
type Day struct {
	Site                              string
	Day                               int64
	Visitors, Pageviews, Events, Bots int64
}

// Page is one page's day as rolled up.
type Page struct {
	Path                string
	Visitors, Pageviews int64
}

// Days reads the rolled-up days of a site from..to (inclusive).
func (s *Service) Days(ctx context.Context, site string, from, to int64) ([]Day, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT site, day, visitors, pageviews, events, bots FROM daily_sites
		WHERE site = $1 AND day >= $2 AND day <= $3 ORDER BY day`, site, from, to)
	if err != nil {
		return nil, fmt.Errorf("analytics: days: %w", err)
	}
	defer rows.Close()
	var out []Day
	for rows.Next() {
		var d Day
		if err := rows.Scan(&d.Site, &d.Day, &d.Visitors, &d.Pageviews, &d.Events, &d.Bots); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// TopPages reads a site's most viewed pages of one day, at most n.
func (s *Service) TopPages(ctx context.Context, site string, day int64, n int) ([]Page, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT path, visitors, pageviews FROM daily_pages
		WHERE site = $1 AND day = $2 ORDER BY pageviews DESC, path LIMIT $3`, site, day, n)
	if err != nil {
		return nil, fmt.Errorf("analytics: top pages: %w", err)
	}
	defer rows.Close()
	var out []Page
	for rows.Next() {
		var p Page
		if err := rows.Scan(&p.Path, &p.Visitors, &p.Pageviews); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
