package rights

import (
	"context"
	"fmt"
	"time"

	"steward/internal/store"
)

// Stats are counts of erasure requests, on every node.
type Stats struct {
	Started    int64 // every request made
	Done       int64
	Unfinished int64 // pending or scrubbing
	Failing    int64 // unfinished, and its last step failed
	Overdue    int64 // unfinished, and made before the deadline given
}

// Stats counts erasure requests in one statement; those unfinished and made before
// overdue are overdue.
func (s *Service) Stats(ctx context.Context, overdue time.Time) (Stats, error) {
	var st Stats
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*),
		COUNT(CASE WHEN state = $1 THEN 1 END),
		COUNT(CASE WHEN state <> $1 AND last_error <> '' THEN 1 END),
		COUNT(CASE WHEN state <> $1 AND created_at < $2 THEN 1 END)
		FROM erasure_requests`, StateDone, store.Millis(overdue)).Scan(&st.Started, &st.Done, &st.Failing, &st.Overdue)
	if err != nil {
		return Stats{}, fmt.Errorf("rights: stats: %w", err)
	}
	st.Unfinished = st.Started - st.Done
	return st, nil
}
