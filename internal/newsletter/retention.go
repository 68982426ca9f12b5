package newsletter

import (
	"context"
	"fmt"
	"time"

	"steward/internal/store"
)

// Unconfirmed returns the subjects of the subscriptions made without an account and
// never confirmed: subscribed before before, with no confirmation link still working.
// The retention rule erases them; their address was never proven, so it is not put
// on the suppression list (it may be someone else's, who never asked).
func (s *Service) Unconfirmed(ctx context.Context, before time.Time) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT subject_id FROM subscribers WHERE status = $1 AND account_id IS NULL AND created_at < $2
		AND NOT EXISTS (SELECT 1 FROM subscriber_tokens t WHERE t.subscriber_id = subscribers.id AND t.expires_at > $3) ORDER BY subject_id`,
		StatusPending, store.Millis(before), store.Millis(s.now()))
	if err != nil {
		return nil, fmt.Errorf("newsletter: unconfirmed: %w", err)
	}
	return ids, nil
}
