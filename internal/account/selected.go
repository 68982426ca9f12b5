package account

import (
	"context"
	"fmt"
	"time"

	"steward/internal/store"
)

// Selected returns the ids of the active accounts created at or after from and
// before to (a zero bound is open) that also meet cond: an SQL condition on the column
// a.id that takes no arguments (consent.AllowedSQL), or "" for none. A breach register
// selects the members a breach affects with it.
func (s *Service) Selected(ctx context.Context, from, to time.Time, cond string) ([]string, error) {
	lo, hi := int64(0), int64(1)<<62
	if !from.IsZero() {
		lo = store.Millis(from)
	}
	if !to.IsZero() {
		hi = store.Millis(to)
	}
	q := `SELECT a.id FROM accounts a WHERE a.status = $1 AND a.created_at >= $2 AND a.created_at < $3`
	if cond != "" {
		q += " AND " + cond
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY a.id", string(Active), lo, hi)
	if err != nil {
		return nil, fmt.Errorf("account: selected: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("account: selected: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
