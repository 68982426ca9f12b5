package mail

import (
	"context"
	"fmt"
)

// Queued counts the messages in the outbox: queued, being sent, waiting to be tried
// again, or set aside.
func (o *Outbox) Queued(ctx context.Context) (int64, error) {
	var n int64
	if err := o.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("mail: queued: %w", err)
	}
	return n, nil
}
