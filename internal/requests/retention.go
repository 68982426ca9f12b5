package requests

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"steward/internal/store"
)

// ClosedRequest is a request closed long enough ago for the retention rule to delete.
type ClosedRequest struct {
	ID, SubjectID string
}

// ClosedBefore returns the requests closed before before: the retention rule deletes
// them once the period in which they serve as evidence (a complaint, a claim) is over.
func (s *Service) ClosedBefore(ctx context.Context, before time.Time) ([]ClosedRequest, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, subject_id FROM privacy_requests WHERE closed_at IS NOT NULL AND closed_at < $1 ORDER BY closed_at, id`,
		store.Millis(before))
	if err != nil {
		return nil, fmt.Errorf("requests: closed: %w", err)
	}
	var out []ClosedRequest
	for rows.Next() {
		var c ClosedRequest
		if err := rows.Scan(&c.ID, &c.SubjectID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("requests: closed: %w", err)
		}
		out = append(out, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("requests: closed: %w", err)
	}
	return out, nil
}

// DeleteClosed deletes a closed request, its history and its identity document if one
// is left; a visitor's request takes its own key with it (already shredded a day
// after it closed). A member's key is the member's, and stays.
func (s *Service) DeleteClosed(ctx context.Context, id string) error {
	var requester string
	var obj sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT requester, document_object FROM privacy_requests WHERE id = $1 AND closed_at IS NOT NULL`, id).
		Scan(&requester, &obj)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("requests: delete closed: %w", err)
	}
	if obj.Valid {
		if err := s.dropDocument(ctx, id, obj.String); err != nil {
			return err
		}
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if requester == Visitor {
			if err := s.vault.Shred(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM privacy_request_events WHERE request_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM privacy_requests WHERE id = $1 AND closed_at IS NOT NULL`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("requests: delete closed: %w", err)
	}
	return nil
}
